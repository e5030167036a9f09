// replication/raft_node: one Raft replica, etcd's raft library driven from C++.
//
// A node runs etcd's RawNode (replication/raft/core.go, through the C surface of core.h) on a
// thread of its own. Any thread may hand it input: proposals, messages received from peers,
// read-index requests, membership changes. The node's thread calls the owner's handler with each
// Ready, in order; the handler must, before it returns,
//   1. persist the hard state, the entries and any snapshot (log_store::save, one block),
//   2. then send the messages (a message may promise what step 1 made durable),
//   3. then apply the committed entries in order (each with its index, in the block that applies it).
// The node advances only when the handler returns, so the handler's work paces the group.
//
// Time: a tick every `options::tick`; an election after election_ticks to 2x that without a
// leader; the leader heartbeats every heartbeat_ticks.
//
// Thread safety: the input methods may be called from any thread; the handler runs on the node's
// thread, one Ready at a time.
// Crash consistency: the node holds nothing durable; what survives is what the handler persisted.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace pobj::repl {

enum class role : std::uint8_t { follower = 0, candidate = 1, leader = 2, pre_candidate = 3 };
std::string_view role_name(role r) noexcept;

struct hard_state {
  std::uint64_t term = 0, vote = 0, commit = 0;
  bool operator==(const hard_state&) const = default;
};

enum class entry_type : std::uint8_t { normal = 0, conf_change = 1, conf_change_v2 = 2 };

struct log_entry {
  std::uint64_t index = 0, term = 0;
  entry_type type = entry_type::normal;
  std::string data;
  bool operator==(const log_entry&) const = default;
};

// The members, as raft encodes them (`encoded`, opaque here) and as lists.
struct conf_state {
  std::string encoded;
  std::vector<std::uint64_t> voters, learners;
};

enum class conf_op : std::uint8_t { add_voter = 0, remove = 1, add_learner = 2, update = 3, other = 255 };

// A conf change entry applied by raft: the change (its proposer's context: for pobj-kv, where the
// member is reached) and the members after it.
struct member_change {
  std::uint64_t index = 0;
  conf_op op = conf_op::other;
  std::uint64_t member = 0;
  std::string context;
};

struct snapshot_meta {
  std::uint64_t index = 0, term = 0;
  std::string conf;  // conf_state::encoded
};

// raftpb.MessageType of a snapshot: whoever sends one reports to its node when it was delivered
// or lost (node::report_snapshot), or raft never sends that member anything again.
constexpr std::uint8_t msg_snapshot = 7;

struct outgoing_message {
  std::uint64_t to = 0;
  std::uint8_t type = 0;  // raftpb.MessageType
  std::string bytes;      // the whole message, for the peer's node::step
};

struct read_state {
  std::uint64_t index = 0;  // serve the read once this index is applied
  std::string context;
};

struct peer_progress {
  std::uint64_t id = 0, match = 0, next = 0;
  bool learner = false;
};

struct node_status {
  std::uint64_t id = 0, term = 0, leader = 0;
  role state = role::follower;
  std::uint64_t commit = 0, applied = 0;
  std::vector<peer_progress> peers;  // the leader's view of each member (empty elsewhere)
};

struct ready {
  std::optional<std::pair<std::uint64_t, role>> soft;  // leader, role: when they changed
  std::optional<hard_state> hard;
  std::optional<snapshot_meta> snapshot;
  std::string snapshot_data;
  std::vector<log_entry> entries;  // to persist (they may replace a suffix of the log)
  bool must_sync = false;
  std::vector<outgoing_message> messages;
  std::vector<log_entry> committed;  // to apply, in order
  std::vector<std::pair<std::uint64_t, conf_state>> conf_changes;  // at an index, the members after it
  std::vector<member_change> member_changes;  // the same changes, each as proposed
  std::vector<read_state> reads;
  std::optional<node_status> status;
};

// What a replica starts from: what its pool holds (log_store::load).
struct start_state {
  hard_state hard;
  snapshot_meta snapshot;
  std::vector<log_entry> entries;  // those after the snapshot
  std::uint64_t applied = 0;
};

struct node_options {
  std::uint64_t id = 0;  // nonzero, unique in the group
  std::chrono::milliseconds tick{50};
  std::uint32_t election_ticks = 10;
  std::uint32_t heartbeat_ticks = 1;
  std::uint64_t max_message_bytes = 1 << 20;
  std::uint32_t max_inflight = 256;
  bool pre_vote = true;      // a partitioned member does not disrupt the group when it returns
  bool check_quorum = true;  // a leader that cannot reach a majority steps down
};

// A conf change entry's data (what a new group's log starts with: one adding each founder).
std::string conf_change_data(conf_op op, std::uint64_t member);

class node {
 public:
  using ready_handler = std::function<void(ready&)>;
  using log_handler = std::function<void(int level, std::string_view line)>;  // 0 debug .. 3 error

  // Starts the replica's thread. Throws std::invalid_argument for a zero id.
  node(node_options options, start_state start, ready_handler on_ready, log_handler on_log = {});
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  // Stops the thread (after the Ready in progress, if any). Idempotent.
  void stop();
  // False once the replica stopped: stop(), a handler that threw, or raft refusing its state.
  bool running() const;
  // Why the replica stopped on its own (the handler threw, or raft refused), or empty.
  std::string failure() const;
  std::uint64_t id() const noexcept { return options_.id; }

  void propose(std::string_view data);
  void step(std::string_view message);
  void read_index(std::string_view context);
  void campaign();
  void propose_conf_change(conf_op op, std::uint64_t member, std::string_view context = {});
  // Raft's in-memory log may drop entries up to `index` (they are applied and persisted);
  // `members` are the members as of index (log_store::members_at), which a snapshot names.
  void compact(std::uint64_t index, std::string_view members);
  void report_unreachable(std::uint64_t member);
  void transfer_leadership(std::uint64_t to);
  void report_snapshot(std::uint64_t member, bool ok);
  // Asks for a status; it arrives in a Ready's `status`.
  void request_status();

 private:
  void push(std::uint8_t kind, std::string_view a, std::string_view b = {});
  int wait(const std::uint8_t** data, std::size_t* len);
  void run(std::string config);

  static int wait_cb(void* ctx, const std::uint8_t** data, std::size_t* len) noexcept;
  static int ready_cb(void* ctx, const std::uint8_t* data, std::size_t len) noexcept;
  static void log_cb(void* ctx, int level, const char* text, std::size_t len) noexcept;

  node_options options_;
  ready_handler on_ready_;
  log_handler on_log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;  // input records (core.h) not yet taken by raft
  std::string handed_;   // the records raft is reading
  bool stopping_ = false;
  bool running_ = true;
  std::string failed_;
  std::chrono::steady_clock::time_point next_tick_;
  std::thread thread_;
};

}  // namespace pobj::repl
