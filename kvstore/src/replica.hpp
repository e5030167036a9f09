// kvstore/replica: a pobj-kv server as a member of a Raft group (replication/, docs/replication.md).
//
// The leader runs each batch as a single server does, in an open failure-atomic block, then
// proposes the batch's record (its commands in order, each with its connection's id and protocol,
// and the batch's time) as one Raft entry, and waits. When the entry commits at index I, and the
// store has applied every entry before I, the block records I as applied and commits: the replies
// go out. If anything else commits first (a leader change), the block is rolled back, its clients
// get -TRYAGAIN (the batch may yet commit: indeterminate, as a timeout), and the committed entries
// are applied as a follower applies them. Active expiry and ONCE's reply rotation travel as
// entries too, with the leader's time, so every member expires alike.
//
// A follower applies each committed entry in one block with its index (the commands run through
// the engine with a session per origin connection; their replies are dropped). It serves no
// command that reads or writes the store: it relays its clients to the leader (forwarding.cpp), or
// answers -READONLY with the leader's id and address.
//
// Members: the founders are listed in `replicas`; RAFT ADD and REMOVE change the group through
// raft's configuration changes, an added member's raft address travelling in its change's
// context. Every member records the addresses in its pool, so a restart finds members added since
// its `replicas` was written.
//
// Thread safety: the raft thread persists and sends; everything that touches the engine runs on
// the server's thread (apply_committed, replicate). leader() and figures are safe from any thread.
// Crash consistency: an entry's changes and its index commit in one block: a restart neither loses
// nor re-applies one, and replays nothing but entries committed after the last applied.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine.hpp"
#include "raft_node.hpp"
#include "replicated.hpp"

namespace pobj::repl {
class log_store;
class transport;
}  // namespace pobj::repl

namespace pobj::kv {

struct replica_member {
  std::uint64_t id = 0;
  std::string host;
  std::uint16_t port = 0;  // its raft port
};

// Parses "1=127.0.0.1:7401,2=127.0.0.1:7402,..."; throws std::invalid_argument.
std::vector<replica_member> parse_members(std::string_view text);
// One member: `address` is HOST:PORT. Throws std::invalid_argument.
replica_member parse_member(std::uint64_t id, std::string_view address);

class replica final : public replicated {
 public:
  // Opens the Raft state in the engine's pool (bootstrapping a new group there if the pool has
  // none: refused if the pool already holds keys), connects to the other members and starts the
  // replica. Throws std::runtime_error with the reason.
  replica(engine& e, const config& cfg);
  ~replica() override;

  bool leader() const noexcept override { return leader_id_.load() == self_; }
  std::uint64_t member_id() const override { return self_; }
  std::uint64_t leader_id() const noexcept { return leader_id_.load(); }
  std::string leader_address() const;
  // Readable when committed entries wait to be applied (the server's epoll watches it).
  int fd() const noexcept override { return event_fd_; }

  // Applies the committed entries that arrived (server thread; followers, and a leader's
  // entries of other terms).
  void apply_committed(const std::atomic<bool>& stop) override;
  bool confirm_read() override;

  // Leader, server thread: `tx` holds a batch run on the applied state, not committed; `record`
  // its commands. Returns true once the entry committed and tx committed with its index; false if
  // it did not (tx is rolled back then: the caller reloads the store and fails the replies).
  bool replicate(transaction& tx, std::vector<recorded_command> record, std::int64_t now, bool expiry) override;

  // Log compaction: once the log holds over 2x raft-log-entries entries, the leader proposes, in
  // steps of at most 2,000, to drop those every member has and more than raft-log-entries behind.
  // Every member drops them when it applies that entry (the point is the group's, not each one's).
  void maintain(std::int64_t now) override;
  std::string info() const override;     // INFO replication's text
  std::string refusal() const override;  // the -READONLY error a follower answers
  replication_view view() const override;
  std::pair<std::uint64_t, std::string> leader_client() const override;
  std::uint64_t leading_member() const override { return leader_id_.load(); }
  // RAFT ADD / REMOVE on the leader: proposes the change (an added member's raft address travels
  // in it, and every member records it) and waits up to 5 s for it to commit.
  std::string change_member(bool add, std::uint64_t id, std::string_view raft_address) override;
  // RAFT TRANSFER: asks member `id` to take the lead, and waits up to 5 s until it has.
  std::string transfer_leadership(std::uint64_t id) override;
  void before_pool_closes(std::function<void()> stop_pool_users) override { stop_pool_users_ = std::move(stop_pool_users); }

 private:
  struct committed {
    std::uint64_t index = 0;
    int type = 0;  // 0 normal, else a conf change
    std::string data;
  };
  void on_ready(pobj::repl::ready& rd);
  // Raft thread: a committed change of members (its address into the transport, the lists).
  void on_member_change(const pobj::repl::member_change& c, const pobj::repl::conf_state& after);
  // In the block applying the entry at `index`: what a change there records in the pool.
  void record_member_change(transaction& tx, std::uint64_t index);
  void apply_one(const committed& c);
  void apply_record(transaction& tx, std::string_view data);
  std::string encode(std::uint64_t id, const std::vector<recorded_command>& record, std::int64_t now, bool expiry,
                     std::uint64_t compact_to, bool announce) const;
  bool propose_and_wait(transaction& tx, std::uint64_t id, std::string entry, std::uint64_t compact_to);
  void compacted(std::uint64_t index);  // after the block that compacted the pool's log committed
  void signal();
  void drain_signal();
  // Warns (at most every 10 s) that frames of a member with another engine were refused.
  void log_engine_refusals() const;
  // Tests: whether the links to `peer` are cut (POBJ_KV_TEST_NET names a file of member ids, read
  // again every 20 ms: the transport drops every frame to and from them, a partition).
  bool cut_off(std::uint64_t peer);

  // Pool snapshots (replica_snapshot.cpp). Raft asks the leader to send a member one when the
  // member needs entries the log no longer holds (it fell behind the compaction, or is new). A
  // thread copies the pool while the group serves, then the pages written meanwhile; the server
  // thread takes the last pass between two entries (the group's only pause), a thread
  // per member streams the copy in chunks, and the member installs it: its raft stops, the copy
  // becomes its pool (its own identity and hard state, applied at the copy's index) and the
  // process restarts on it (exec), to catch up from the log.
  struct snapshot_copy;
  struct snapshot_prep;
  struct snapshot_out;
  struct snapshot_in;
  void want_snapshot(std::uint64_t member);  // raft thread: raft would send it a snapshot
  void take_snapshots();                     // server thread: the copy, and a sender per member
  void start_snapshot_copy(std::vector<std::uint64_t> members);  // server thread
  void copy_pool(snapshot_prep& prep);      // the copying thread: every pass but the last
  void finish_snapshot_copy();              // server thread: the last pass (paused), the senders
  // Tests (POBJ_KV_TEST_VERIFY_COPY): the copy in `fd` must equal the pool's memory; throws if not.
  static void verify_copy(int fd, const char* base, std::uint64_t size);
  void send_snapshot(std::shared_ptr<snapshot_out> t);  // a sender's thread
  void on_snapshot_frame(std::uint64_t from, std::uint8_t kind, std::string_view payload);  // transport thread
  // Server thread, once a whole copy arrived: installs it and executes this program again (or, when
  // this member's log holds the copy's last entry already, drops the copy and returns).
  void install_snapshot(const std::atomic<bool>& stop);
  void remove_snapshot_files();
  void stop_snapshots();  // the senders' threads end (the destructor)

  engine* engine_;
  std::uint64_t self_ = 0;
  std::string group_;
  std::vector<replica_member> members_;   // GUARDED_BY(mu_): every member's raft address known
  std::vector<std::uint64_t> voters_, learners_;  // GUARDED_BY(mu_): the configuration raft applied last
  std::map<std::uint64_t, pobj::repl::member_change> changes_;  // GUARDED_BY(mu_): by index, until applied
  std::deque<pobj::repl::member_change> recent_changes_;          // GUARDED_BY(mu_): the last few committed
  std::unique_ptr<pobj::repl::log_store> log_;
  std::unique_ptr<pobj::repl::transport> transport_;
  std::unique_ptr<pobj::repl::node> node_;
  std::atomic<pobj::repl::transport*> link_{nullptr};  // the raft thread's view of transport_
  std::atomic<pobj::repl::node*> raft_{nullptr};       // the raft thread's view of node_
  int event_fd_ = -1;

  std::atomic<std::uint64_t> leader_id_{0};
  std::atomic<std::uint64_t> term_{0};
  std::atomic<std::uint64_t> commit_{0};
  std::atomic<std::uint64_t> applied_{0};
  std::atomic<std::uint64_t> last_index_{0};

  // The Raft state's maps (log_store) have one writer at a time, from its first write to its
  // block's commit: the raft thread's persisting and the server thread's applied index.
  std::mutex state_mu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<committed> queue_;  // GUARDED_BY(mu_): committed, not yet applied, in order
  std::map<std::uint64_t, pobj::repl::conf_state> members_conf_;  // GUARDED_BY(mu_): by entry index
  std::unordered_map<std::uint64_t, session> sessions_;  // the server thread's: per origin connection
  std::uint64_t proposals_ = 0, interrupted_ = 0, timed_out_ = 0;
  std::uint64_t keep_entries_ = 10000;
  std::atomic<std::uint64_t> first_index_{1};   // the log's first entry (after compaction)
  std::atomic<std::uint64_t> min_match_{0};     // the leader's view: what every member holds
  std::atomic<std::int64_t> status_ms_{0};      // when min_match_ was learned (steady ms)
  std::int64_t status_asked_ms_ = 0;
  std::uint64_t compact_pending_ = 0;           // server thread: set by apply_record
  std::optional<std::pair<std::uint64_t, std::string>> announced_;  // server thread: by apply_record
  std::string client_address_;                  // where clients reach this member ("host:port")
  std::map<std::uint64_t, std::string> clients_;  // GUARDED_BY(mu_): each member's, as announced
  // Read confirmations (confirm_read) waiting for raft's answer: context -> the index raft named
  // (0 until it answers). GUARDED_BY(mu_)
  std::unordered_map<std::string, std::uint64_t> read_waits_;
  std::atomic<std::uint64_t> reads_confirmed_{0}, reads_unconfirmed_{0};
  std::atomic<std::uint64_t> announced_term_{0};  // the term whose leader this member announced itself in
  std::vector<pobj::repl::peer_progress> progress_;  // GUARDED_BY(mu_): the leader's last status
  std::uint64_t engine_fingerprint_ = 0;        // frames carry it (transport_options::engine)
  std::string engine_described_;
  mutable std::uint64_t engine_refusals_logged_ = 0;  // GUARDED_BY(mu_)
  mutable std::int64_t engine_refusal_log_ms_ = 0;    // GUARDED_BY(mu_)
  std::mutex snap_mu_;
  std::condition_variable snap_cv_;
  std::vector<std::uint64_t> snapshot_wanted_;               // GUARDED_BY(snap_mu_)
  // After a failed transfer to a member still heard from, its next copy waits (10 s, doubling to
  // 160 s): a member that takes no copy must not pause the group every few seconds. (One that went
  // silent gets none until it is heard from: heard_ms.) GUARDED_BY(snap_mu_)
  std::map<std::uint64_t, std::pair<std::int64_t, std::int64_t>> snapshot_retry_;  // at (us), pause (us)
  std::vector<std::shared_ptr<snapshot_out>> snapshots_out_;  // GUARDED_BY(snap_mu_): running or done
  std::shared_ptr<snapshot_in> snapshot_in_;                  // GUARDED_BY(snap_mu_)
  std::shared_ptr<snapshot_prep> snapshot_prep_;  // the server thread's: a copy being taken
  std::uint64_t snapshot_copies_ = 0;              // the server thread's: copies started
  std::function<void()> stop_pool_users_;  // the server thread's: before_pool_closes
  std::atomic<bool> install_ready_{false};
  std::atomic<bool> stopping_{false};
  std::string pool_path_;
  std::atomic<std::uint64_t> snapshots_sent_{0}, snapshots_failed_{0}, snapshot_bytes_{0};
  std::atomic<std::uint64_t> snapshot_pause_us_{0}, snapshot_copy_bytes_{0}, snapshot_transfer_ms_{0};
  std::atomic<std::uint64_t> snapshot_copy_ms_{0};
  // When each member last sent this one a frame (steady clock, ms): the pool is copied only for a
  // member heard from lately (none for one that is down, and no pause before the next try once it
  // is back: a failed transfer to it was its silence, not a reason to wait).
  std::int64_t heard_ms(std::uint64_t member) const;
  mutable std::mutex heard_mu_;
  std::unordered_map<std::uint64_t, std::int64_t> heard_ms_;  // GUARDED_BY(heard_mu_)
  std::string net_file_;  // POBJ_KV_TEST_NET
  // Tests (POBJ_KV_TEST_DELAYS=apply=MS,snapshot-done=MS,copy=MS): each entry a follower applies
  // waits (its apply lags its log), a snapshot's done frame waits (a copy arrives late), and each
  // pass of a pool copy waits (the group writes meanwhile). POBJ_KV_TEST_VERIFY_COPY=1: the last
  // pass of a copy compares it with the pool (verify_copy).
  std::int64_t test_apply_delay_ms_ = 0, test_done_delay_ms_ = 0, test_copy_delay_ms_ = 0;
  bool test_verify_copy_ = false;
  std::mutex net_mu_;
  std::vector<std::uint64_t> net_cut_;  // GUARDED_BY(net_mu_)
  std::chrono::steady_clock::time_point net_read_{};  // GUARDED_BY(net_mu_)
};

}  // namespace pobj::kv
