// pobj-kv's group commit (server.hpp): the commands of every ready connection run in one
// failure-atomic block (a batch), committed once; each reply waits for its batch's durability
// ticket; a failed batch is rolled back and run again command by command.
#include "server.hpp"

#include <algorithm>
#include <exception>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "log.hpp"
#include "server_impl.hpp"

namespace pobj::kv {

bool server::servable(const connection& c) const {
  return c.has_input && !c.dead && !c.s.close_after_reply && !c.s.blocked.active &&
         c.out.size() - c.sent <= max_output;
}

void server::process(std::int64_t now) {
  batch_now_ = now;
  for (auto& [fd, c] : connections_) {
    if (servable(*c)) serve(*c, now);
  }
  commit_batch();
  // Nothing refers to the consumed input or the sent output any more (the batch has committed):
  // drop them when that is cheap (all of it) or worth it (much of it), not at every turn.
  for (auto& [fd, c] : connections_) {
    if (c->parsed > 0 && (c->parsed == c->in.size() || c->parsed >= (1u << 20) || 2 * c->parsed >= c->in.size())) {
      c->in.erase(0, c->parsed);
      c->parsed = 0;
    }
    if (c->sent > 0 && (c->sent == c->out.size() || c->sent >= (1u << 20) || 2 * c->sent >= c->out.size())) {
      c->out.erase(0, c->sent);
      c->committed -= c->sent;
      for (auto& d : c->durability) d.first -= c->sent;
      c->sent = 0;
    }
    // A connection with replies to send now gets its events set by flush(), right after.
    if (!c->dead && !(sendable(*c) > c->sent)) update_events(*c);
  }
}

void server::serve(connection& c, std::int64_t now) {
  if (c.up) return relay_input(c);  // relayed to the leader: its bytes go there unparsed
  std::vector<std::string_view> argv;
  for (int commands = 0; commands < 256; ++commands) {
    if (c.out.size() - c.sent > max_output) return;  // stop until the client reads its replies
    std::size_t consumed = 0;
    const std::string_view input = std::string_view(c.in).substr(c.parsed);
    const auto status = c.parser.parse(input, c.s.authenticated, argv, consumed);
    if (status == request_parser::status::incomplete) {
      c.has_input = false;
      return;
    }
    if (status == request_parser::status::error) {
      // Redis replies and closes; what came before it is answered first.
      commit_batch();
      reply_writer(c.out, c.s.protocol).error("ERR " + c.parser.error_message());
      c.committed = c.out.size();
      c.s.close_after_reply = true;
      c.has_input = false;
      return;
    }
    const std::size_t from = c.parsed;
    c.parsed += consumed;
    if (argv.empty()) continue;
    if (replica_ && refused_here(c, argv, from)) {
      if (c.up || c.s.close_after_reply) return;  // relayed to the leader from here on
      continue;
    }
    const bool inline_request = input[0] != '*';
    if (engine_->placement_of(c.s, argv) == engine::placement::alone) {
      commit_batch();
      if (inline_request) {
        std::vector<std::string> owned(argv.begin(), argv.end());
        std::vector<std::string_view> views(owned.begin(), owned.end());
        run_alone(c, views, now);
      } else {
        run_alone(c, argv, now);
      }
      // EXEC may have pushed to lists that clients wait on; the wakes start a new batch.
      wake_ready(now);
      if (c.s.close_after_reply) {
        c.has_input = false;
        return;
      }
      continue;
    }
    run_in_batch(c, argv, inline_request, now);
    note_blocked(c);
    wake_ready(now);
    if (pending_.size() >= max_batch) commit_batch();
    if (c.s.blocked.active) return;  // its later commands wait until it is woken
  }
}

void server::run_in_batch(connection& c, std::vector<std::string_view>& argv, bool inline_request, std::int64_t now) {
  pending p{&c, {}, {}, c.out.size()};
  if (inline_request) {
    p.owned.assign(argv.begin(), argv.end());
    p.argv.assign(p.owned.begin(), p.owned.end());
  } else {
    p.argv = argv;  // views into c.in, which stays put until the batch has committed
  }
  pending_.push_back(std::move(p));
  if (!batch_) batch_.emplace(engine_->db().pool());
  pending& q = pending_.back();
  try {
    reply_writer w(c.out, c.s.protocol);
    engine_->execute(c.s, q.argv, w, *batch_, now);
    q.accepted = c.s.accepted;
  } catch (const std::exception& e) {
    recover(pending_.size() - 1, now, e);
    return;
  }
  if (replica_) {
    // A batch is one Raft entry: it ends before the entry outgrows what the transport carries.
    for (const auto a : q.argv) batch_bytes_ += a.size() + 16;
    if (batch_bytes_ > max_entry_bytes / 2) commit_batch();
  }
}

void server::run_alone(connection& c, std::span<const std::string_view> argv, std::int64_t now) {
  const std::size_t reply_from = c.out.size();
  ++stats_.alone;
  std::uint64_t ticket = last_ticket_;  // a failed command's error waits for what came before
  // Replicated: what every member must run for this command (nothing for one that changes only
  // the connection's state; an EXEC that will run its queue: MULTI, the queue, EXEC).
  std::vector<recorded_command> record;
  bool exec_runs = false;
  if (replica_) {
    const std::uint64_t key = session_key(c.s);
    if (lower(argv[0]) == "exec" && c.s.in_multi && !c.s.multi_failed && !c.s.watch_dirty &&
        !engine_->watched_expired(c.s, now)) {
      exec_runs = true;
      record.push_back({key, c.s.protocol, {"MULTI"}});
      for (const auto& q : c.s.queued) record.push_back({key, c.s.protocol, q});
      record.push_back({key, c.s.protocol, {"EXEC"}});
    }
  }
  try {
    transaction tx(engine_->db().pool());
    reply_writer w(c.out, c.s.protocol);
    const bool was_in_multi = c.s.in_multi;
    engine_->execute(c.s, argv, w, tx, now);
    if (replica_ && !exec_runs) {
      // Any other command that ran and may change the store (FLUSHALL...); not one queued in MULTI.
      const command_spec* spec = engine_->find(lower(argv[0]));
      record.clear();
      if (c.s.accepted && !was_in_multi && spec != nullptr && (spec->flags & command_flags::write))
        record.push_back({session_key(c.s), c.s.protocol, std::vector<std::string>(argv.begin(), argv.end())});
    } else if (replica_ && !(c.s.accepted && c.out.size() > reply_from && c.out[reply_from] == '*' &&
                             c.out.compare(reply_from, 3, "*-1") != 0)) {
      record.clear();  // EXEC did not run its queue (EXECABORT, MISCONF): nothing to replicate
    }
    if (replica_ && !record.empty() && !replica_->leader()) {
      tx.abort();
      engine_->db().reload();
      fail_unreplicated(c, reply_from, 1);
      c.committed = c.out.size();
      return;
    }
    if (replica_ && !record.empty()) {
      if (!replica_->replicate(tx, std::move(record), now, false)) {
        engine_->db().reload();
        fail_unreplicated(c, reply_from, 1);
      }
      c.committed = c.out.size();
      return;
    }
    if (replica_ && !replica_->leader()) {
      tx.abort();  // a follower changes nothing of its own
    } else {
      ticket = tx.commit_deferred();
    }
  } catch (const std::exception& e) {
    engine_->db().reload();
    error_reply(c, reply_from, e);
  }
  wait_for(c, reply_from, ticket);
  c.committed = c.out.size();
}

void server::wait_for(connection& c, std::size_t reply_from, std::uint64_t ticket) {
  last_ticket_ = std::max(last_ticket_, ticket);
  if (engine_->db().pool().durable(ticket)) return;
  if (c.durability.empty() || c.durability.back().second != ticket) c.durability.emplace_back(reply_from, ticket);
}

void server::commit_batch() {
  if (!batch_) return;
  if (replica_) {
    bool ok = true;
    // The commands that read or write the store go to the group: as an entry if any writes, or
    // if a read changed something (it removed an expired key); a batch of reads that changed
    // nothing, through raft's ReadIndex (confirm_read: no entry, nothing for the followers to
    // apply). A batch of only PING, INFO and the like needs neither.
    const bool leading = replica_->leader();
    std::vector<recorded_command> record;
    std::vector<bool> recorded(pending_.size(), false);
    bool writes = false;
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      const pending& p = pending_[i];
      const command_spec* spec = engine_->find(lower(p.argv[0]));
      // A follower's batch holds stale reads (READONLY) at most: answered from its own state.
      if (!leading && p.conn->s.stale_reads && spec != nullptr && !(spec->flags & command_flags::write)) continue;
      if (p.accepted && spec != nullptr && (spec->flags & (command_flags::write | command_flags::readonly))) {
        recorded[i] = true;
        writes = writes || (spec->flags & command_flags::write);
        record.push_back({session_key(p.conn->s), p.conn->s.protocol, std::vector<std::string>(p.argv.begin(), p.argv.end())});
      }
    }
    batch_bytes_ = 0;
    if (!record.empty()) {
      // Only the leader commits through the group; a member that stopped leading while the batch
      // ran rolls it back and answers -TRYAGAIN.
      if (leading && !writes && !batch_->changed() && replica_->confirm_read()) {
        // Only reads, and they changed nothing (no expired key removed): the group confirmed
        // that this member leads and that they ran on every committed entry. No entry needed.
        batch_->abort();
      } else if (leading) {
        ok = replica_->replicate(*batch_, std::move(record), batch_now_, false);
      } else {
        batch_->abort();
        ok = false;
      }
    } else {
      batch_->abort();  // nothing of the store changed: PING, INFO, refused commands
    }
    batch_.reset();
    if (!ok) {
      // The commands the group did not take get -TRYAGAIN; the others (PING, INFO, ...) keep
      // their replies. Each command's reply runs to the next reply of its connection in the batch.
      engine_->db().reload();
      std::vector<std::string> replies(pending_.size());
      std::unordered_map<connection*, std::size_t> end;
      for (std::size_t i = pending_.size(); i-- > 0;) {
        connection* c = pending_[i].conn;
        const std::size_t to = end.count(c) ? end[c] : c->out.size();
        if (!recorded[i]) replies[i] = c->out.substr(pending_[i].reply_from, to - pending_[i].reply_from);
        end[c] = pending_[i].reply_from;
      }
      for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) it->conn->out.resize(it->reply_from);
      for (std::size_t i = 0; i < pending_.size(); ++i) {
        connection& c = *pending_[i].conn;
        if (recorded[i]) fail_unreplicated(c, c.out.size(), 1, !writes);
        else c.out += replies[i];
      }
    }
    ++stats_.batches;
    stats_.batched_commands += pending_.size();
    stats_.largest = std::max<std::uint64_t>(stats_.largest, pending_.size());
    for (auto& p : pending_) p.conn->committed = p.conn->out.size();
    pending_.clear();
    return;
  }
  std::uint64_t ticket = 0;
  try {
    ticket = batch_->commit_deferred();
  } catch (const std::exception&) {
    // Nothing of the batch is persistent: run it again, command by command.
    batch_->abort();
    batch_.reset();
    engine_->db().reload();
    std::vector<pending> again = std::move(pending_);
    pending_.clear();
    for (auto it = again.rbegin(); it != again.rend(); ++it) it->conn->out.resize(it->reply_from);
    for (auto& p : again) run_alone(*p.conn, p.argv, wall_ms());
    return;
  }
  batch_.reset();
  ++stats_.batches;
  stats_.batched_commands += pending_.size();
  stats_.largest = std::max<std::uint64_t>(stats_.largest, pending_.size());
  durable_waits_ += engine_->db().pool().durable(ticket) ? 0 : 1;
  for (auto& p : pending_) {
    wait_for(*p.conn, p.reply_from, ticket);
    p.conn->committed = p.conn->out.size();
  }
  pending_.clear();
}

std::size_t server::sendable(connection& c) const {
  const pobj::pool& pool = engine_->db().pool();
  while (!c.durability.empty() && pool.durable(c.durability.front().second)) c.durability.pop_front();
  return c.durability.empty() ? c.committed : std::min(c.committed, c.durability.front().first);
}

void server::recover(std::size_t failed, std::int64_t now, const std::exception& why) {
  // The batch's block is rolled back (or about to be): none of its commands happened.
  batch_->abort();
  batch_.reset();
  engine_->db().reload();
  ++stats_.replays;
  for (std::size_t i = failed + 1; i-- > 0;) pending_[i].conn->out.resize(pending_[i].reply_from);
  std::vector<pending> before(std::make_move_iterator(pending_.begin()),
                              std::make_move_iterator(pending_.begin() + static_cast<std::ptrdiff_t>(failed)));
  pending culprit = std::move(pending_[failed]);
  pending_.clear();
  // The commands before it, again, in a new block: deterministic, they do what they did.
  for (std::size_t i = 0; i < before.size(); ++i) {
    pending_.push_back(std::move(before[i]));
    pending& q = pending_.back();
    q.reply_from = q.conn->out.size();
    if (!batch_) batch_.emplace(engine_->db().pool());
    try {
      reply_writer w(q.conn->out, q.conn->s.protocol);
      engine_->execute(q.conn->s, q.argv, w, *batch_, now);
      q.accepted = q.conn->s.accepted;
    } catch (const std::exception&) {
      // Not expected (they succeeded a moment ago); keep every reply honest all the same: this
      // and every later command run alone, in order.
      batch_->abort();
      batch_.reset();
      engine_->db().reload();
      for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) it->conn->out.resize(it->reply_from);
      std::vector<pending> rest = std::move(pending_);
      pending_.clear();
      for (std::size_t j = i + 1; j < before.size(); ++j) rest.push_back(std::move(before[j]));
      for (auto& r : rest) run_alone(*r.conn, r.argv, now);
      break;
    }
  }
  commit_batch();
  (void)why;
  // The failing command alone: it fails again, with its error, or (rarely) succeeds on its own.
  run_alone(*culprit.conn, culprit.argv, now);
}

std::uint64_t server::session_key(const session& s) const {
  return (replica_ ? replica_->member_id() << 40 : 0) | s.id;
}

bool server::refused_here(connection& c, std::span<const std::string_view> argv, std::size_t from) {
  std::size_t bytes = 0;
  for (const auto a : argv) bytes += a.size() + 16;
  if (bytes > max_entry_bytes / 2) {
    commit_batch();
    reply_writer(c.out, c.s.protocol)
        .error(fmt::format("ERR a replicated group takes commands of up to {} bytes; this one has {}",
                           max_entry_bytes / 2, bytes));
    if (c.s.in_multi) c.s.multi_failed = true;
    c.committed = c.out.size();
    return true;
  }
  if (replica_->leader()) return false;
  const std::string name = lower(argv[0]);
  const command_spec* spec = engine_->find(name);
  if (spec == nullptr) return false;
  const bool store = spec->flags & (command_flags::write | command_flags::readonly);
  // READONLY asked for stale reads: a read runs on this member's state (its batch changes nothing
  // here: a follower's batches roll back, so even a lazily expired key stays for the leader to remove).
  if (c.s.stale_reads && !(spec->flags & command_flags::write)) return false;
  // The leader runs it: relayed there with the rest of the connection, where forwarding is on
  // (a transaction is relayed from its MULTI or WATCH, so it runs whole on the leader).
  if ((store || name == "multi" || name == "watch") && forwardable(c)) {
    commit_batch();  // what came before is answered first
    c.committed = c.out.size();
    start_forwarding(c, from);
    return true;
  }
  if (!store) return false;
  commit_batch();  // what came before is answered first
  if (c.s.in_multi) c.s.multi_failed = true;  // as a command refused while queueing: EXEC aborts
  if (const auto [leader, address] = replica_->leader_client();
      config_->replica_forward && leader != 0 && address.empty()) {
    // A new leader's address comes with its first entry: a moment's wait.
    reply_writer(c.out, c.s.protocol)
        .error(fmt::format("TRYAGAIN member {} leads but has not said yet where clients reach it; retry", leader));
  } else {
    reply_writer(c.out, c.s.protocol).error(replica_->refusal());
  }
  c.committed = c.out.size();
  return true;
}

void server::fail_unreplicated(connection& c, std::size_t reply_from, std::size_t commands, bool reads) {
  c.out.resize(reply_from);
  reply_writer w(c.out, c.s.protocol);
  for (std::size_t i = 0; i < commands; ++i) {
    if (reads)
      w.error("TRYAGAIN a majority did not confirm this member still leads (a leader change or lost majority); "
              "retry the read");
    else
      w.error("TRYAGAIN the group did not commit this command in time (a leader change or lost majority); it may "
              "still be applied");
  }
}

void server::error_reply(connection& c, std::size_t reply_from, const std::exception& why) {
  c.out.resize(reply_from);
  reply_writer w(c.out, c.s.protocol);
  if (const auto* e = dynamic_cast<const pobj::error*>(&why)) {
    if (e->code() == pobj::errc::out_of_space) {
      ++engine_->stats().rejected_oom;
      return w.error("OOM command not allowed: the pool is full (pool-max-size reached)");
    }
    if (e->code() == pobj::errc::transaction_too_large) {
      return w.error("ERR the command changes more than one failure-atomic block can hold; split it");
    }
  }
  log::warning("command failed: {}", why.what());
  w.error(fmt::format("ERR {}", why.what()));
}

}  // namespace pobj::kv
