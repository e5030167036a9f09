// kvstore/replicated: what the server asks of a member of a replicated group (kvstore/replica.hpp
// implements it over replication/; a server without one is a single server).
//
// Thread safety: leader() and info() from any thread; the rest on the server's thread.
// Crash consistency: see replica.hpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <pobj/transaction.hpp>

#include "engine.hpp"

namespace pobj::kv {

// One command of a batch's record: what every member runs, in order, for that batch.
struct recorded_command {
  std::uint64_t session = 0;  // the origin connection, unique in the group
  int protocol = 2;
  std::vector<std::string> argv;
};

class replicated {
 public:
  virtual ~replicated() = default;
  // Whether this member leads: only the leader runs commands that touch the store.
  virtual bool leader() const = 0;
  // The error a member that does not lead answers (without its leading '-').
  virtual std::string refusal() const = 0;
  // Readable when committed entries wait to be applied by apply_committed().
  virtual int fd() const = 0;
  // Applies what the group committed. Returns early, the rest left for the next call (fd() stays
  // readable), once `stop` is set and, on a member that does not lead, after a slice of 50 ms: a
  // long backlog holds up neither a shutdown nor the member's clients.
  virtual void apply_committed(const std::atomic<bool>& stop) = 0;
  // `tx` holds a batch run on the applied state, not committed. True once the group committed it
  // and tx committed with its index; false if not (tx rolled back: the caller reloads the store
  // and answers -TRYAGAIN). `expiry`: the batch is an active expiry cycle at `now`.
  virtual bool replicate(transaction& tx, std::vector<recorded_command> record, std::int64_t now, bool expiry) = 0;
  // For a batch that only read (its block changed nothing): true once the group has confirmed
  // that this member still leads and that the batch ran on every entry committed before it
  // (raft's ReadIndex, with a context of its own), so its replies are linearizable without an
  // entry; false if not (the caller sends the batch through the log instead).
  virtual bool confirm_read() = 0;
  // The leader's housekeeping, once per expiry cycle (log compaction); nothing elsewhere.
  virtual void maintain(std::int64_t now) = 0;
  virtual std::string info() const = 0;
  virtual replication_view view() const = 0;
  // The leader and where clients reach it ("host:port", as it announced it), read together; 0
  // while no leader is known, an empty address while it has not announced one.
  virtual std::pair<std::uint64_t, std::string> leader_client() const = 0;
  virtual std::uint64_t leading_member() const = 0;
  // This member's id: sessions are named (id << 40) | connection id in records.
  virtual std::uint64_t member_id() const = 0;
  // server_view::change_member's (server thread).
  virtual std::string change_member(bool add, std::uint64_t id, std::string_view raft_address) = 0;
  virtual std::string transfer_leadership(std::uint64_t id) = 0;
  // What stops the server's other threads that use the pool (page mode's syncer): a member runs it
  // before it closes its pool to install a copy of the leader's (server thread).
  virtual void before_pool_closes(std::function<void()> stop_pool_users) = 0;
};

}  // namespace pobj::kv
