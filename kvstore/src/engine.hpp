// kvstore/engine: runs commands against the store: the deterministic core of pobj-kv.
//
// engine::execute(session, argv, reply, tx, now) looks the command up in the table, checks its
// arity, authentication and the session's MULTI state, and runs its handler, whose every change
// to the store joins `tx`; the reply is appended to `reply`. Given the same store, command, session
// state and `now`, it does the same thing: the server relies on this to run a batch of commands
// again after a failure rolled their block back, and a replicated log could rely on it to replay
// commands on another server.
//
// The network, batching and group commit are the server's (server.hpp); the engine never
// touches a socket or the clock.
//
// The contract the server drives today and replication (replication/) will drive next:
//
//   apply batch B, at log index I, in failure-atomic block T, at time `now`: for each command of
//   B in order, execute(session, argv, reply, T, now); then the caller commits T. The replies
//   are what the commands answered; none may be sent before T is durable (its ticket, pool.hpp).
//
// - Deterministic: the replies and the store after B depend only on the store before B, B's
//   commands and sessions, and `now` (one time per batch, never the clock; no randomness).
// - All or nothing: if T aborts (an error, a crash), nothing of B happened; running B again on
//   the same store gives the same replies (the server does this to isolate a failing command).
// - The caller owns ordering and idempotence: it applies batches in log order, each once. A
//   replicated server records I in T (so a restart knows the last index applied, with nothing
//   to replay) and never applies an index twice.
// - Commands that change a session's state or need a block of their own (placement::alone:
//   MULTI/EXEC, FLUSHALL, ...) end a batch and run in one of their own.
//
// Thread safety: one thread at a time.
// Crash consistency: every change a command makes joins the caller's block (`tx`): after a crash
// the store holds all of a committed batch and nothing of one that did not commit.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "commands.hpp"
#include "config.hpp"
#include "resp.hpp"
#include "store.hpp"

namespace pobj::kv {

// A client connection's state.
struct session {
  std::uint64_t id = 0;
  int protocol = 2;            // RESP version (HELLO 3 switches to RESP3)
  bool authenticated = false;  // true at once on a server without a password
  std::string name;            // CLIENT SETNAME
  std::string address;         // peer, "ip:port"
  std::int64_t created_ms = 0;
  std::int64_t last_ms = 0;
  std::string last_command;
  bool close_after_reply = false;  // QUIT, or a protocol error
  bool stale_reads = false;        // READONLY: a follower serves this connection's reads locally
  bool forwarded = false;          // FORWARDED: a member relays this connection (never relayed again)
  // Set by every execute(): whether the command ran (or was queued in MULTI), as opposed to being
  // refused before running (unknown, NOAUTH, arity, MISCONF...). Replication records only those.
  bool accepted = false;
  // MULTI: the commands queued (copies), and whether one was refused when queued.
  bool in_multi = false;
  bool multi_failed = false;
  std::vector<std::vector<std::string>> queued;
  // WATCH: set when a watched key changes; EXEC then fails.
  std::vector<std::string> watched;
  // Each watched key's expiry when watched; 0 for none (or no key), -1 for a key already expired
  // then (its removal is no change).
  std::vector<std::int64_t> watched_expiry;
  bool watch_dirty = false;
  bool in_exec = false;  // EXEC is running the queue (blocking commands do not block then)
  // BLPOP/BRPOP with nothing to pop: the server parks the connection until a push or the time.
  // A coordination object's blocking call (commands/objects.cpp) sets `retry`: the command to run
  // again, in a batch, when one of the keys is signalled or at the deadline (the command then
  // sees its time has passed, withdraws and replies nil).
  struct blocking {
    bool active = false;
    bool left = true;
    std::vector<std::string> keys;
    std::int64_t deadline_ms = 0;  // 0: no time limit
    std::vector<std::string> retry;
  };
  blocking blocked;
  std::string request_id;    // ONCE's request id while ONCE runs its command (else empty)
  bool read_only_call = false;  // set by OBJ.CALL of a const method: ONCE keeps no reply for it
  std::uint64_t tokens = 0;  // waiter tokens made for this session (objects.cpp)
};

// What the engine asks of the server for INFO and CLIENT (connections, process figures).
// A replicated group as its member sees it (ROLE, WAIT, INFO replication).
struct replication_view {
  bool replicated = false;  // false: a single server (it leads itself)
  bool leading = true;
  std::uint64_t leader_id = 0;
  std::string leader_client;  // where clients reach the leader ("host:port"), empty if not known
  std::uint64_t commit = 0, applied = 0;
  std::size_t members = 1;
  struct follower {
    std::uint64_t id = 0;
    std::string client;       // where clients reach it, if it ever led; else empty
    std::uint64_t match = 0;  // the last entry it holds, as the leader last learned (< 1 s ago)
  };
  std::vector<follower> followers;  // the leader's view; empty elsewhere
  struct member {
    std::uint64_t id = 0;
    std::string raft;    // where its raft transport listens ("host:port"), if known
    std::string client;  // where clients reach it, if it announced it (it did when it led)
    bool voter = true;   // false: a learner (receives the log, does not vote)
  };
  std::vector<member> group;  // the group's configuration as this member last applied it
};

class server_view {
 public:
  virtual ~server_view() = default;
  virtual replication_view replication() const = 0;
  virtual std::size_t client_count() const = 0;
  virtual std::string client_list() const = 0;  // CLIENT LIST's text
  virtual std::string info_section(std::string_view section) const = 0;  // server's own sections
  virtual void request_shutdown() = 0;
  // RAFT ADD / REMOVE: a change of the group's members, proposed on the leader; returns once it
  // committed, or an error's text (without '-').
  virtual std::string change_member(bool add, std::uint64_t id, std::string_view raft_address) = 0;
  // RAFT TRANSFER: leadership to member `id`; returns once it leads, or an error's text.
  virtual std::string transfer_leadership(std::uint64_t id) = 0;
};

struct engine_stats {
  std::uint64_t commands = 0;
  std::uint64_t keyspace_hits = 0;
  std::uint64_t keyspace_misses = 0;
  std::uint64_t expired_keys = 0;
  std::uint64_t rejected_oom = 0;
  std::unordered_map<const command_spec*, std::uint64_t> calls;  // per command
  // Users' shared methods (OBJ.CALL), by their description's address: calls, and calls that ended
  // in an error (a bad argument, or the method's exception).
  struct method_counts {
    std::uint64_t calls = 0, errors = 0;
  };
  std::unordered_map<const void*, method_counts> methods;
};

class engine {
 public:
  engine(pobj::pool& pool, config& cfg);

  enum class placement {
    batch,  // may share a block with other commands
    alone,  // after the batch commits, in a block of its own (session state, MULTI, FLUSHALL)
  };
  placement placement_of(const session& s, std::span<const std::string_view> argv) const;

  void execute(session& s, std::span<const std::string_view> argv, reply_writer& reply, transaction& tx,
               std::int64_t now);

  const command_spec* find(std::string_view name) const;
  // Why a write would be refused now (-MISCONF: the journal is failing), or empty.
  std::string write_refusal() const;
  std::span<const command_spec* const> commands() const { return all_; }

  // WATCH: keys sessions watch; a write to one marks its watchers.
  // `expires_ms`: the key's expiry when watched (0: none or absent): EXEC fails if it has passed.
  void watch(session& s, std::string_view key, std::int64_t expires_ms);
  bool watched_expired(const session& s, std::int64_t now) const;
  void unwatch(session& s);
  void touch(std::string_view key);
  void touch_all();
  // A push made `key` non-empty: clients blocked on it may pop (the server asks take_ready()).
  void signal_ready(std::string_view key);
  std::vector<std::string> take_ready();
  // A session is gone: forget its watches.
  void forget(session& s);

  store& db() noexcept { return db_; }
  config& settings() noexcept { return *config_; }
  engine_stats& stats() noexcept { return stats_; }
  void set_server(server_view* v) noexcept { server_ = v; }
  server_view* server() const noexcept { return server_; }

 private:
  store db_;
  config* config_;
  engine_stats stats_;
  server_view* server_ = nullptr;
  std::vector<const command_spec*> all_;
  // Looked up by string_view, without making a string.
  struct name_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, const command_spec*, name_hash, std::equal_to<>> by_name_;
  std::unordered_map<std::string, std::unordered_set<session*>> watchers_;
  std::vector<std::string> ready_;
};

}  // namespace pobj::kv
