// Semaphores with leases (docs/kvstore.md, "Shared objects"): SEM.CREATE, SEM.ACQUIRE,
// SEM.RELEASE, SEM.RENEW, SEM.AVAILABLE. A lease's permits come back when it expires.
#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "objects_state.hpp"

namespace pobj::kv::objects {

namespace {

// ---- semaphore ---------------------------------------------------------------------------------

// Gives back the permits of leases that ran out by now; true if any did.
bool reclaim(semaphore_state& s, std::int64_t now) {
  bool any = false;
  for (auto it = s.leases.begin(); it != s.leases.end();) {
    if (it->expires_ms <= now) {
      s.available += static_cast<std::int64_t>(it->permits);
      it = s.leases.erase(it);
      any = true;
    } else {
      ++it;
    }
  }
  return any;
}

// The semaphore at argv[1]: false after an error reply (another type, or none).
bool load_semaphore(command_context& c, std::optional<entry>& e, semaphore_state& s) {
  if (!load(c, c.argv[1], kind::semaphore, e)) return false;
  if (!e) {
    c.reply.error("ERR no such semaphore");
    return false;
  }
  s = decode_semaphore(e->payload);
  return true;
}

}  // namespace

// SEM.CREATE key permits: 1 if made, 0 if the key already holds a semaphore.
void sem_create(command_context& c) {
  std::int64_t n = 0;
  if (!parse_integer(c, c.argv[2], n)) return;
  if (n < 0) return c.reply.error("ERR permits must not be negative");
  std::optional<entry> e;
  if (!load(c, c.argv[1], kind::semaphore, e)) return;
  if (e) return c.reply.integer(0);
  semaphore_state s;
  s.available = n;
  save(c, c.argv[1], e, encode(s));
  c.reply.integer(1);
}

// SEM.ACQUIRE key [PERMITS n] [LEASE ms] [TIMEOUT ms]: takes n permits, waiting for them. With
// LEASE the permits come back by themselves after ms unless released (or renewed) first, and the
// reply is the lease's id; without, +OK. nil if the time runs out first.
void sem_acquire(command_context& c) {
  options o;
  if (!parse_options(c, 2, {"permits", "lease", "timeout", "deadline"}, o)) return;
  std::optional<entry> e;
  semaphore_state s;
  if (!load_semaphore(c, e, s)) return;
  const bool reclaimed = reclaim(s, c.now_ms);
  if (s.available >= o.permits) {
    s.available -= o.permits;
    std::string id;
    if (o.lease_ms > 0) {
      id = fmt::format("lease:{}", s.next_lease++);
      s.leases.push_back({id, static_cast<std::uint64_t>(o.permits), c.now_ms + o.lease_ms});
    }
    save(c, c.argv[1], e, encode(s));
    if (reclaimed && s.available > 0) c.server.signal_ready(c.argv[1]);
    return o.lease_ms > 0 ? c.reply.bulk(id) : c.reply.ok();
  }
  if (reclaimed) {
    save(c, c.argv[1], e, encode(s));
    c.server.signal_ready(c.argv[1]);  // a waiter for fewer permits may go on
  }
  if (timed_out(c, o) || c.client.in_exec) return c.reply.null();
  // Wake at the deadline, or when the next lease runs out, whichever is first.
  std::int64_t wake = o.deadline_ms;
  for (const lease& l : s.leases) wake = wake == 0 ? l.expires_ms : std::min(wake, l.expires_ms);
  std::vector<std::string> retry{"SEM.ACQUIRE", std::string(c.argv[1]), "PERMITS", std::to_string(o.permits)};
  if (o.lease_ms > 0) {
    retry.emplace_back("LEASE");
    retry.push_back(std::to_string(o.lease_ms));
  }
  retry.emplace_back("DEADLINE");
  retry.push_back(std::to_string(o.deadline_ms));
  wait(c, c.argv[1], wake, std::move(retry));
}

// SEM.RELEASE key [PERMITS n] | SEM.RELEASE key LEASE id: gives n permits back (the available
// count after), or the lease's (the permits it held; 0 if the lease ran out or is unknown).
void sem_release(command_context& c) {
  std::optional<entry> e;
  semaphore_state s;
  if (!load_semaphore(c, e, s)) return;
  reclaim(s, c.now_ms);
  std::int64_t n = 1;
  std::string lease_id;
  if (c.argv.size() == 4 && equals_ignore_case(c.argv[2], "lease")) {
    lease_id = std::string(c.argv[3]);
  } else if (c.argv.size() == 4 && equals_ignore_case(c.argv[2], "permits")) {
    if (!parse_integer(c, c.argv[3], n)) return;
    if (n < 1) return c.reply.error("ERR permits must be positive");
  } else if (c.argv.size() != 2) {
    return syntax_error(c);
  }
  std::int64_t reply = 0;
  if (!lease_id.empty()) {
    for (auto it = s.leases.begin(); it != s.leases.end(); ++it) {
      if (it->id == lease_id) {
        reply = static_cast<std::int64_t>(it->permits);
        s.available += reply;
        s.leases.erase(it);
        break;
      }
    }
  } else {
    s.available += n;
    reply = s.available;
  }
  save(c, c.argv[1], e, encode(s));
  c.server.signal_ready(c.argv[1]);
  c.reply.integer(reply);
}

// SEM.RENEW key lease ms: the lease now runs out ms from now; 1, or 0 if it already ran out.
void sem_renew(command_context& c) {
  std::int64_t ms = 0;
  if (!parse_integer(c, c.argv[3], ms)) return;
  if (ms < 1) return c.reply.error("ERR lease must be a positive number of milliseconds");
  std::optional<entry> e;
  semaphore_state s;
  if (!load_semaphore(c, e, s)) return;
  const bool reclaimed = reclaim(s, c.now_ms);
  std::int64_t renewed = 0;
  for (lease& l : s.leases) {
    if (l.id == c.argv[2]) {
      l.expires_ms = c.now_ms + ms;
      renewed = 1;
    }
  }
  if (renewed || reclaimed) save(c, c.argv[1], e, encode(s));
  if (reclaimed) c.server.signal_ready(c.argv[1]);
  c.reply.integer(renewed);
}

// SEM.AVAILABLE key: permits free now (leases that ran out count as given back).
void sem_available(command_context& c) {
  std::optional<entry> e;
  semaphore_state s;
  if (!load_semaphore(c, e, s)) return;
  reclaim(s, c.now_ms);
  c.reply.integer(s.available);
}

}  // namespace pobj::kv::objects
