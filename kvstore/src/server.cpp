// pobj-kv's event loop (server.hpp): the turn of reads, batches, expiry and writes, the shutdown,
// and the INFO text and CLIENT LIST the server commands read. The rest of the server is in
// networking.cpp (connections, reads, writes), group_commit.cpp (batches, tickets, the syncer's
// use) and blocked.cpp (clients parked by BLPOP and the like).
#include "server.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "log.hpp"
#include "server_impl.hpp"

namespace pobj::kv {

server::server(engine& e, config& cfg) : engine_(&e), config_(&cfg) {
  engine_->set_server(this);
  if (engine_->db().pool().deferred_durability()) syncer_ = std::make_unique<syncer>(engine_->db().pool());
}

void server::set_replicated(replicated* r) {
  replica_ = r;
  // (installing a copy of the leader's pool closes this one: the syncer must not be inside it)
  r->before_pool_closes([this] { syncer_.reset(); });
}

server::~server() {
  syncer_.reset();
  engine_->set_server(nullptr);
  for (auto& [fd, c] : connections_) ::close(fd);
  for (const int fd : listen_fds_) ::close(fd);
  if (spare_fd_ >= 0) ::close(spare_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void server::run() {
  started_ms_ = wall_ms();
  std::vector<epoll_event> events(256);
  while (!stop_.load()) {
    bool input_waiting = false;
    for (auto& [fd, c] : connections_) input_waiting |= servable(*c);
    const std::int64_t now = wall_ms();
    const std::int64_t wake = std::min(next_expire_ms_, next_deadline());
    const int timeout = input_waiting ? 0 : static_cast<int>(std::clamp<std::int64_t>(wake - now, 0, 100));
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0 && errno != EINTR) throw std::runtime_error(fmt::format("epoll_wait: {}", std::strerror(errno)));
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (std::find(listen_fds_.begin(), listen_fds_.end(), fd) != listen_fds_.end()) {
        accept_clients(fd);
        continue;
      }
      if (replica_ && fd == replica_->fd()) {  // committed entries to apply: below
        continue;
      }
      if (syncer_ && fd == syncer_->fd) {  // batches became durable: their replies go out below
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(fd, &count, sizeof(count));
        continue;
      }
      const std::uint32_t what = events[static_cast<std::size_t>(i)].events;
      if (auto u = upstreams_.find(fd); u != upstreams_.end()) {  // a relay's link to the leader
        upstream_io(*u->second, what);
        continue;
      }
      auto it = connections_.find(fd);
      if (it == connections_.end()) continue;
      connection& c = *it->second;
      if (what & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_from(c);
      if ((what & EPOLLOUT) && !c.dead) flush(c);
    }
    const std::int64_t batch_now = wall_ms();
    // A member applies what its group committed before it runs anything (a batch runs on the
    // applied state).
    if (replica_) {
      replica_->apply_committed(stop_);
      on_leader_change();
    }
    process(batch_now);
    time_out_blocked(batch_now);
    if (batch_now >= next_expire_ms_) {
      active_expire(batch_now);
      next_expire_ms_ = batch_now + 1000 / std::max(1, config_->hz);
    }
    if (syncer_ && !engine_->db().pool().durable(last_ticket_)) syncer_->request(last_ticket_);
    for (auto& [fd, c] : connections_) {
      if (!c->dead && sendable(*c) > c->sent) flush(*c);
      if (c->up) {
        // A relayed client closes once the leader has answered it and closed (end_forwarding).
        if (c->eof && !c->up->shut && !c->dead && c->in.size() == c->parsed) send_upstream(*c);
        if (!c->dead) continue;
      }
      const bool answered = c->sent == c->out.size() && (c->s.close_after_reply || !c->has_input);
      if (c->dead || ((c->s.close_after_reply || c->eof) && answered)) closing_.push_back(c.get());
    }
    for (connection* c : closing_) close(*c);
    closing_.clear();
  }
  // Everything committed is made persistent; what is still unsent is sent if it can be.
  engine_->db().pool().sync(last_ticket_);
  for (auto& [fd, c] : connections_) {
    if (!c->dead) flush(*c);
  }
  log::notice("pobj-kv is now ready to exit, bye bye...");
}

void server::active_expire(std::int64_t now) {
  if (replica_) {
    // Replicated: the leader's cycle is an entry (one block of up to 200 keys, with the leader's
    // time), which every member applies alike; a follower expires nothing on its own.
    if (!replica_->leader()) return;
    replica_->maintain(now);
    try {
      transaction tx(engine_->db().pool());
      const bool epoch_known = engine_->db().replies_epoch_known();
      const std::size_t removed = engine_->db().expire_some(tx, now, 200);
      const bool rotated = engine_->db().rotate_replies(tx, now, engine_->settings().reply_ttl_s * 1000);
      if (removed == 0 && !rotated && epoch_known) {
        tx.abort();  // nothing to expire: no entry (an idle group's log stays still)
        engine_->db().reload();
      } else if (!replica_->replicate(tx, {}, now, true)) {
        engine_->db().reload();
      }
    } catch (const std::exception& e) {
      engine_->db().reload();
      log::warning("active expiry failed: {}", e.what());
    }
    return;
  }
  // A bounded share of each cycle, in blocks of up to 200 keys, as Redis's active expiry.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(25);
  while (std::chrono::steady_clock::now() < deadline) {
    std::size_t removed = 0;
    try {
      transaction tx(engine_->db().pool());
      removed = engine_->db().expire_some(tx, now, 200);
      engine_->db().rotate_replies(tx, now, engine_->settings().reply_ttl_s * 1000);
      last_ticket_ = std::max(last_ticket_, tx.commit_deferred());
    } catch (const std::exception& e) {
      // The block rolled back: the store's handles (a rotated reply generation) must follow.
      engine_->db().reload();
      log::warning("active expiry failed: {}", e.what());
      return;
    }
    if (removed < 200) return;
  }
}

std::string server::client_list() const {
  std::string out;
  const std::int64_t now = wall_ms();
  for (const auto& [fd, c] : connections_) {
    out += fmt::format("id={} addr={} fd={} name={} age={} idle={} db=0 multi={} qbuf={} obl={} cmd={} resp={}\n",
                       c->s.id, c->s.address, fd, c->s.name, (now - c->s.created_ms) / 1000, (now - c->s.last_ms) / 1000,
                       c->s.in_multi ? static_cast<long>(c->s.queued.size()) : -1L, c->in.size() - c->parsed,
                       c->out.size() - c->sent, c->s.last_command.empty() ? "NULL" : c->s.last_command, c->s.protocol);
  }
  return out;
}

replication_view server::replication() const {
  if (replica_) return replica_->view();
  return replication_view{};
}

std::string server::change_member(bool add, std::uint64_t id, std::string_view raft_address) {
  if (!replica_)
    return "ERR this server is not a member of a replicated group (start it with --replicas; docs/replication.md)";
  return replica_->change_member(add, id, raft_address);
}

std::string server::transfer_leadership(std::uint64_t id) {
  if (!replica_)
    return "ERR this server is not a member of a replicated group (start it with --replicas; docs/replication.md)";
  return replica_->transfer_leadership(id);
}

std::string server::info_section(std::string_view section) const {
  if (section == "replication") {
    return replica_ ? replica_->info() : std::string("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
  }
  if (section == "server") {
    pobj::pool& p = engine_->db().pool();
    return fmt::format(
        "# Server\r\nredis_version:7.0.0\r\npobj_kv_version:" POBJ_KV_VERSION "\r\nredis_mode:standalone\r\nos:Linux\r\n"
        "process_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nhz:{}\r\nexecutable_threads:1\r\n"
        "pool_open_ms:{:.3f}\r\npool_boot_count:{}\r\n\r\n",
        getpid(), port_, (wall_ms() - started_ms_) / 1000, config_->hz, p.recovery().open_ms, p.recovery().boot_count);
  }
  if (section == "clients") {
    std::size_t in_multi = 0;
    for (const auto& [fd, c] : connections_) in_multi += c->s.in_multi ? 1 : 0;
    return fmt::format("# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nclients_in_multi:{}\r\n"
                       "rejected_connections:{}\r\n\r\n",
                       connections_.size(), config_->maxclients, in_multi, rejected_clients_);
  }
  if (section == "persistence") {
    const pobj::media::counters m = pobj::media::thread_counters();
    const pobj::media::domain::journal_stats j = engine_->db().pool().journal_figures();
    const int failure = engine_->db().pool().durability_failure();
    const double per_batch = stats_.batches == 0 ? 0.0
                                                 : static_cast<double>(stats_.batched_commands) /
                                                       static_cast<double>(stats_.batches);
    return fmt::format(
        "# Persistence\r\nloading:0\r\npersist_mode:{}\r\naof_enabled:0\r\nrdb_changes_since_last_save:0\r\n"
        "fences:{}\r\nlines_written_back:{}\r\ngroup_commits:{}\r\ngroup_commit_commands:{}\r\n"
        "group_commit_avg_size:{:.2f}\r\ngroup_commit_max_size:{}\r\ngroup_commit_replays:{}\r\n"
        "commands_run_alone:{}\r\nreclamation_pending_blocks:{}\r\n"
        "journal_syncs:{}\r\njournal_bytes:{}\r\njournal_checkpoints:{}\r\njournal_failed_writes:{}\r\n"
        "journal_status:{}\r\nbatches_waiting_for_sync:{}\r\n"
        "once_stored_replies:{}\r\n\r\n",
        pobj::to_string(engine_->db().pool().mode()), m.drains, m.lines, stats_.batches, stats_.batched_commands,
        per_batch, stats_.largest, stats_.replays, stats_.alone, pobj::reclaim_pending(engine_->db().pool()),
        j.syncs, j.bytes, j.checkpoints, j.failed_writes,
        failure == 0 ? std::string("ok") : fmt::format("failing ({})", std::strerror(failure)), durable_waits_,
        engine_->db().stored_replies());
  }
  return {};
}

}  // namespace pobj::kv
