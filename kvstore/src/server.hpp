// kvstore/server: pobj-kv's network side: connections, batching, group commit, replies.
//
// One thread runs an epoll loop. Each turn it reads what the ready connections sent, parses their
// commands and runs them through the engine, all inside one failure-atomic block (a batch, up to
// max_batch commands across connections and pipelines); then it commits the block, one commit for
// all of them, and only then sends their replies. So a reply to a write is sent only once the
// write is persistent, and a reply to a read only once what it read is (group commit). In page
// mode the block commits without waiting for the disk (transaction::commit_deferred): a syncer
// thread makes it durable while this thread reads and runs the next batch, and the batch's
// replies go out once its ticket is durable, in order on each connection. Commands
// that change a connection's state, or that need a block of their own (EXEC, FLUSHALL), end the
// batch and run alone.
//
// BLPOP/BRPOP with nothing to pop park their connection (no reply; its later commands wait). A
// push marks its key ready; the oldest client blocked on it then pops, in the same batch as the
// push, so both replies go out after that batch commits. A client whose time runs out gets a
// null reply. Blocked clients do not outlive a restart: their connections close with the server.
//
// When a command fails inside a batch (the pool full, a block too large), the block rolls back:
// the commands before it run again in a new block (the engine is deterministic, so they do the
// same) and commit, and the failing command runs alone and gets its error. No reply is sent for a
// change that is not persistent, and no command's change is lost or applied twice.
//
// Thread safety: run() on one thread; request_shutdown() from any thread (or a signal).
// Crash consistency: a reply is sent only once what it reports is persistent (group commit); a
// crash loses no acknowledged write, and a restart replays nothing.
#pragma once

#include <atomic>
#include <deque>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine.hpp"
#include "replicated.hpp"
#include "resp.hpp"

namespace pobj::kv {

struct batch_stats {
  std::uint64_t batches = 0;           // blocks committed for batches
  std::uint64_t batched_commands = 0;  // commands in them
  std::uint64_t largest = 0;           // most commands in one batch
  std::uint64_t replays = 0;           // batches rolled back and run again after a failure
  std::uint64_t alone = 0;             // commands run in a block of their own
};

// Binds a socket to every address of cfg.bind at cfg.port, before anything else is done (no pool
// is made when an address cannot be had); returns the sockets and the port bound (port 0: the one
// the system gave the first). server::listen() starts listening on them. Throws
// std::runtime_error with the reason.
std::pair<std::vector<int>, int> listen_on(const config& cfg);

class server final : public server_view {
 public:
  static constexpr std::size_t max_batch = 1024;
  static constexpr std::size_t max_output = 64u << 20;  // a connection stops being served past this
  static constexpr std::size_t max_unparsed = 8u << 20;  // reading stops past this much waiting input
  static constexpr std::size_t max_query_buffer = 1u << 30;  // a client past this is closed (as Redis)
  // Replicated: a Raft entry (a batch) stays under the transport's frame (4 MiB); a batch ends at
  // half of it, and a command larger than that is refused.
  static constexpr std::size_t max_entry_bytes = 4u << 20;

  server(engine& e, config& cfg);
  ~server() override;
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Makes this server a member of a replicated group (call before listen()): batches commit only
  // once the group has them, and only the leader serves commands that touch the store.
  void set_replicated(replicated* r);
  // Serves the listening sockets listen_on() made (owning them from now on), on `port`.
  void listen(std::vector<int> sockets, int port);
  int port() const noexcept { return port_; }
  // Serves until request_shutdown() (SHUTDOWN, SIGTERM, SIGINT); then closes every connection.
  void run();
  void request_shutdown() override { stop_.store(true); }
  std::string change_member(bool add, std::uint64_t id, std::string_view raft_address) override;
  std::string transfer_leadership(std::uint64_t id) override;

  std::size_t client_count() const override { return connections_.size(); }
  std::string client_list() const override;
  std::string info_section(std::string_view section) const override;
  replication_view replication() const override;

 private:
  struct connection;
  struct upstream;
  struct pending {
    connection* conn;
    std::vector<std::string_view> argv;
    std::vector<std::string> owned;  // inline requests' arguments (the parser reuses its storage)
    std::size_t reply_from;
    bool accepted = false;  // the engine ran it (or queued it): replication records only those
  };

  void accept_clients(int listen_fd);
  bool servable(const connection& c) const;
  void read_from(connection& c);
  void process(std::int64_t now);
  void serve(connection& c, std::int64_t now);
  void run_in_batch(connection& c, std::vector<std::string_view>& argv, bool inline_request, std::int64_t now);
  void run_alone(connection& c, std::span<const std::string_view> argv, std::int64_t now);
  void commit_batch();
  void recover(std::size_t failed, std::int64_t now, const std::exception& why);
  void error_reply(connection& c, std::size_t reply_from, const std::exception& why);
  void flush(connection& c);
  void close(connection& c);
  void update_events(connection& c);
  // c's replies from reply_from on wait until `ticket` is durable.
  void wait_for(connection& c, std::size_t reply_from, std::uint64_t ticket);
  // How far c's replies may be sent now: up to the first whose batch is not yet durable.
  std::size_t sendable(connection& c) const;
  void active_expire(std::int64_t now);
  // Replicated: a follower refuses a command that touches the store (true: refused, answered).
  // A command a follower cannot serve is relayed to the leader when it can be (forwarding.cpp):
  // `from` is where it starts in c.in.
  bool refused_here(connection& c, std::span<const std::string_view> argv, std::size_t from);
  // Forwarding (forwarding.cpp): whether c may be relayed to the leader now; making it a pipe
  // from c.in[from] on; the pipe's two directions; its end; what a change of leader ends.
  bool forwardable(const connection& c) const;
  void start_forwarding(connection& c, std::size_t from);
  void relay_input(connection& c);
  void send_upstream(connection& c);
  void upstream_io(connection& c, std::uint32_t events);
  void update_upstream_events(connection& c);
  // Closes c's relay; c closes once what the leader answered (and `reply`, an error, if given) is sent.
  void end_forwarding(connection& c, std::string_view why, std::string_view reply = {});
  void on_leader_change();
  // Replicated: c's replies from reply_from on become -TRYAGAIN errors, one per command.
  // Replaces the replies from reply_from with -TRYAGAIN for `commands` commands (`reads`: a batch
  // of reads only, which changed nothing and may simply be retried).
  void fail_unreplicated(connection& c, std::size_t reply_from, std::size_t commands, bool reads = false);
  std::uint64_t session_key(const session& s) const;
  // Blocked clients (BLPOP/BRPOP): parked after their command, woken by pushes or their time.
  void note_blocked(connection& c);
  void wake_ready(std::int64_t now);
  void time_out_blocked(std::int64_t now);
  std::int64_t next_deadline() const;

  engine* engine_;
  config* config_;
  std::vector<int> listen_fds_;  // one per bind address
  int spare_fd_ = -1;  // given up to accept and close a client when the process has no fd left
  int epoll_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::uint64_t next_id_ = 1;
  std::unordered_map<int, std::unique_ptr<connection>> connections_;
  std::vector<connection*> closing_;
  std::vector<connection*> blocked_;  // in the order they blocked
  std::optional<transaction> batch_;
  std::vector<pending> pending_;
  batch_stats stats_;
  struct syncer;
  std::unique_ptr<syncer> syncer_;  // page mode: makes committed batches durable off this thread
  replicated* replica_ = nullptr;   // a member of a replicated group, or a single server
  std::unordered_map<int, connection*> upstreams_;  // relays to the leader, by their fd
  std::uint64_t forwarded_connections_ = 0;  // clients relayed to the leader, ever
  std::uint64_t last_leader_ = 0;   // the leader as of the last turn (0 before one is known)
  bool was_leading_ = false;
  std::int64_t batch_now_ = 0;      // the time of the batch being run
  std::size_t batch_bytes_ = 0;     // replicated: the arguments' bytes in the batch (a Raft entry's size)
  std::uint64_t last_ticket_ = 0;   // of the last batch committed
  std::uint64_t durable_waits_ = 0; // batches whose replies waited for the syncer
  std::int64_t started_ms_ = 0;
  std::int64_t next_expire_ms_ = 0;
  std::uint64_t rejected_clients_ = 0;
};

}  // namespace pobj::kv
