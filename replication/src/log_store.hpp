// replication/log_store: a replica's Raft state in its pobj pool, beside the keyspace.
//
// Three roots: "pobj-raft.log", an ordered map from index to entry ([u64 term][u8 type][data]);
// "pobj-raft.members", an ordered map from the index of each applied conf change to the members
// after it (those at or before the snapshot's index collapse into one at the snapshot's index);
// and "pobj-raft.state", a small map holding the hard state ([u64 term][u64 vote][u64 commit]),
// the snapshot metadata (index, term: the log begins after it), the applied index, the group's
// identity and the members' addresses (raft's and clients'). docs/replication.md.
//
// A new group's log starts with one conf change entry per founder (indexes 1..n, term 1,
// committed), as etcd's own bootstrap makes it; a member added later starts empty and receives
// them from the leader, so a group whose log was never compacted needs no snapshot to grow.
//
// What each write means:
// - save(tx, ready): the hard state, a snapshot's metadata and the Ready's entries, which replace
//   any entries from the first one's index on (a new leader's log wins over an unmatched tail).
//   The caller commits tx, and waits for it to be durable, before sending the Ready's messages.
// - set_applied(tx, index) joins the block that applies the entry at `index` (the state machine's
//   changes and the index commit together: a restart neither loses nor re-applies an entry).
// - compact(tx, index): entries up to index are dropped, and the snapshot metadata moves there.
//
// Thread safety: one thread at a time (the replica's). Crash consistency: each call's changes join
// the caller's failure-atomic block: all there after a crash, or none.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <pobj/pobj.hpp>

#include "raft_node.hpp"

namespace pobj::repl {

// Who a pool's replica is: the group it belongs to and its id there.
struct member_identity {
  std::string group;  // the group's name (every member's is the same)
  std::uint64_t id = 0;
  bool operator==(const member_identity&) const = default;
};

class log_store {
 public:
  static constexpr std::string_view log_root = "pobj-raft.log";
  static constexpr std::string_view state_root = "pobj-raft.state";
  static constexpr std::string_view members_root = "pobj-raft.members";

  // Finds the Raft state in the pool, or makes its (empty) roots in a block of their own.
  explicit log_store(pobj::pool& p);

  // Whether the pool belongs to a group yet (bootstrap() or join() ran).
  bool initialized() const;
  std::optional<member_identity> identity() const;

  // A founding member of a new group of `voters`: the log holds one entry adding each (in the
  // order given; every founder must give the same order), committed, none applied yet.
  // Throws pobj::error(invalid_argument) if the pool already belongs to a group.
  void bootstrap(const member_identity& self, std::span<const std::uint64_t> voters);
  // A member added to a running group: an empty log; the leader's messages fill it.
  void join(const member_identity& self);

  // What the replica starts from: the hard state, the snapshot (with the members as of its
  // index), the entries after it and the applied index.
  start_state load() const;
  // The members as of the applied index, and as of `index` (the latest change at or before it).
  conf_state members() const;
  conf_state members_at(std::uint64_t index) const;

  void save(transaction& tx, const ready& rd);
  // Installing a snapshot of another member's pool: this pool is that copy, taken when `at.index`
  // was applied there. It becomes `self`'s: its identity, its hard state `h` (whose commit is at
  // least at.index), an empty log after the snapshot, the members as of it, applied at.index. The
  // members' addresses are kept.
  void adopt(transaction& tx, const member_identity& self, const hard_state& h, const snapshot_meta& at,
             const conf_state& members);
  void set_applied(transaction& tx, std::uint64_t index);
  // Records the members after the conf change at `index`, in the block that applies it.
  void set_members(transaction& tx, std::uint64_t index, const conf_state& c);
  std::uint64_t applied() const;
  hard_state hard() const;
  snapshot_meta snapshot() const;
  // The address where clients reach each member that announced one (it did when it led): what a
  // follower forwards its clients to. Routing only, not the replicated state: a member records an
  // announcement in the block that applies its entry.
  void set_client_address(transaction& tx, std::uint64_t id, std::string_view address);
  std::map<std::uint64_t, std::string> client_addresses() const;
  // Where each member's raft transport listens ("host:port"), as the change that added it said
  // (routing only: a member records it in the block that applies the change); empty forgets one.
  void set_raft_address(transaction& tx, std::uint64_t id, std::string_view address);
  std::map<std::uint64_t, std::string> raft_addresses() const;
  // Drops entries up to `index` (at most the applied index), in tx; returns how many.
  std::uint64_t compact(transaction& tx, std::uint64_t index);

  std::uint64_t first_index() const;  // the first entry held (snapshot index + 1)
  std::uint64_t last_index() const;   // the last entry held, or the snapshot's index
  std::uint64_t size() const;         // entries held
  std::optional<log_entry> entry(std::uint64_t index) const;

  // The members as the pool holds them (also how a pool snapshot's done frame carries them).
  static std::string encode_members(const conf_state& c);
  static conf_state decode_members(std::string_view bytes);
  static std::string encode_entry(const log_entry& e);
  static log_entry decode_entry(std::uint64_t index, std::string_view bytes);

 private:
  using log_map = pobj::ordered_map<std::uint64_t, pobj::bytes>;
  using state_map = pobj::hash_map<pobj::bytes, pobj::bytes>;
  pobj::ordered_map_ref<std::uint64_t, pobj::bytes> log() const { return {*pool_, log_}; }
  pobj::hash_map_ref<pobj::bytes, pobj::bytes> state() const { return {*pool_, state_}; }
  pobj::ordered_map_ref<std::uint64_t, pobj::bytes> confs() const { return {*pool_, members_}; }
  std::optional<std::string> get(std::string_view key) const;
  void put(transaction& tx, std::string_view key, std::string_view value);
  void set_identity(transaction& tx, const member_identity& self, bool replace = false);
  void put_addresses(transaction& tx, std::string_view key, const std::map<std::uint64_t, std::string>& all);
  std::map<std::uint64_t, std::string> addresses(std::string_view key) const;
  void put_snapshot(transaction& tx, const snapshot_meta& s, const conf_state& members);

  pobj::pool* pool_;
  log_map log_;
  state_map state_;
  log_map members_;
};

}  // namespace pobj::repl
