// pobj-kv's blocked clients (server.hpp): BLPOP, BRPOP and the like park their connection after
// their command; a push to a key they wait on wakes them in the order they blocked, and their
// timeout ends the wait.
#include "server.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "log.hpp"
#include "server_impl.hpp"

namespace pobj::kv {

void server::note_blocked(connection& c) {
  if (c.s.blocked.active && std::find(blocked_.begin(), blocked_.end(), &c) == blocked_.end()) {
    blocked_.push_back(&c);
  }
}

void server::wake_ready(std::int64_t now) {
  for (std::vector<std::string> keys = engine_->take_ready(); !keys.empty(); keys = engine_->take_ready()) {
    for (const std::string& key : keys) {
      for (std::size_t i = 0; i < blocked_.size();) {
        connection& b = *blocked_[i];
        const auto& on = b.s.blocked.keys;
        if (!b.s.blocked.active || b.dead || std::find(on.begin(), on.end(), key) == on.end()) {
          ++i;
          continue;
        }
        b.s.blocked.active = false;
        blocked_.erase(blocked_.begin() + static_cast<std::ptrdiff_t>(i));
        if (!b.s.blocked.retry.empty()) {
          // A coordination object's call runs again, in this batch. If it still cannot go on, it
          // waits again, first in line, and so do the waiters behind it: first come, first
          // served (a semaphore's release wakes one waiter, not all of them).
          std::vector<std::string> owned = std::move(b.s.blocked.retry);
          b.s.blocked = session::blocking{};
          std::vector<std::string_view> argv(owned.begin(), owned.end());
          run_in_batch(b, argv, true, now);
          if (b.s.blocked.active) {
            blocked_.insert(blocked_.begin() + static_cast<std::ptrdiff_t>(i), &b);
            break;
          }
          b.has_input = b.parsed < b.in.size();
          continue;
        }
        // Its pop runs now, in this batch, as the command it called with this one key.
        const bool left = b.s.blocked.left;
        b.s.blocked = session::blocking{};
        std::vector<std::string> owned{left ? "BLPOP" : "BRPOP", key, "0"};
        std::vector<std::string_view> argv(owned.begin(), owned.end());
        run_in_batch(b, argv, true, now);
        if (b.s.blocked.active) {  // the list was empty again: it waits, first in line
          blocked_.insert(blocked_.begin() + static_cast<std::ptrdiff_t>(i), &b);
          break;
        }
        b.has_input = b.parsed < b.in.size();  // its later commands may run now
      }
    }
  }
}

void server::time_out_blocked(std::int64_t now) {
  for (std::size_t i = 0; i < blocked_.size();) {
    connection& b = *blocked_[i];
    if (b.s.blocked.deadline_ms == 0 || b.s.blocked.deadline_ms > now) {
      ++i;
      continue;
    }
    std::vector<std::string> retry = std::move(b.s.blocked.retry);
    b.s.blocked = session::blocking{};
    blocked_.erase(blocked_.begin() + static_cast<std::ptrdiff_t>(i));
    if (!retry.empty()) {
      // Its time is up (or a lease it waits on ran out): the call runs again and decides, in a
      // batch, since withdrawing changes the object.
      std::vector<std::string_view> argv(retry.begin(), retry.end());
      run_in_batch(b, argv, true, now);
      if (b.s.blocked.active) note_blocked(b);
      else b.has_input = b.parsed < b.in.size();
      i = 0;  // the list changed under us
      continue;
    }
    const std::size_t reply_from = b.out.size();
    reply_writer(b.out, b.s.protocol).null_array();
    wait_for(b, reply_from, last_ticket_);  // after what the connection's earlier replies wait for
    b.committed = b.out.size();
    b.has_input = b.parsed < b.in.size();
  }
  if (batch_) {
    wake_ready(now);
    commit_batch();
  }
}

std::int64_t server::next_deadline() const {
  std::int64_t next = INT64_MAX;
  for (const connection* b : blocked_) {
    if (b->s.blocked.deadline_ms != 0) next = std::min(next, b->s.blocked.deadline_ms);
  }
  return next;
}

}  // namespace pobj::kv
