// Coordination objects for serverless functions (docs/kvstore.md, "Shared objects"): CAS on
// strings, and cyclic barriers, count-down latches, semaphores with leases and futures, each a
// key of type "object" whose state lives inline in its keyspace entry, so it is in the pool and
// changes with the command's block.
//
// Blocking calls (BARRIER.AWAIT, LATCH.AWAIT, SEM.ACQUIRE, FUTURE.GET) never poll: a call that
// cannot go on parks its connection (as BLPOP) with the command to run again (session::blocking
// ::retry, with its absolute DEADLINE and its waiter ID). A change that may let waiters go on
// signals the key; the server then runs each waiter's call again in the same batch. At the
// deadline the call runs again, withdraws (a barrier arrival is taken back) and replies nil.
//
// Restarts: parked connections close with the server, and the objects keep their state. A
// barrier counts an arrival once per waiter ID: a caller that retries with the same ID (ONCE
// gives its request id; the clients pass one) is not counted twice and, if its generation
// completed meanwhile, gets its arrival index. A semaphore's leased permits come back when the
// lease expires, whoever holds them and whatever happened to the holder.
#include <array>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

enum class kind : std::uint8_t { barrier = 1, latch = 2, semaphore = 3, future = 4 };

// ---- encoding of the states ------------------------------------------------------------------

struct writer {
  std::string out;
  void u8(std::uint8_t v) { out.push_back(static_cast<char>(v)); }
  void u64(std::uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
  void str(std::string_view s) {
    u64(s.size());
    out.append(s);
  }
};

struct reader {
  std::string_view in;
  std::size_t at = 1;  // after the kind byte
  void need(std::size_t n) const {
    if (in.size() - at < n) throw pobj::error(pobj::errc::corrupt, "pobj-kv: a damaged coordination object");
  }
  std::uint64_t u64() {
    need(8);
    std::uint64_t v;
    std::memcpy(&v, in.data() + at, 8);
    at += 8;
    return v;
  }
  std::string str() {
    const std::uint64_t n = u64();
    need(n);
    std::string s(in.substr(at, n));
    at += n;
    return s;
  }
  std::vector<std::uint64_t> u64s() {
    const std::uint64_t n = u64();
    need(n * 8);
    std::vector<std::uint64_t> v(n);
    for (auto& x : v) x = u64();
    return v;
  }
};

// A barrier knows its waiters by a 64-bit hash of their IDs (FNV-1a: the same on every machine
// and every run), so that an arrival rewrites 8 bytes per waiter, not the IDs.
std::uint64_t waiter_hash(std::string_view id) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : id) h = (h ^ ch) * 0x100000001b3ULL;
  return h;
}
struct arrival {
  std::uint64_t waiter;      // waiter_hash of its id
  std::int64_t deadline_ms;  // when it is taken back (0: never)
};
struct barrier_state {
  std::uint64_t parties = 0, generation = 0;
  std::vector<arrival> arrived;         // this generation's waiters, in arrival order
  std::vector<std::uint64_t> previous;  // the last completed generation's
};
struct lease {
  std::string id;
  std::uint64_t permits = 0;
  std::int64_t expires_ms = 0;
};
struct semaphore_state {
  std::int64_t available = 0;
  std::uint64_t next_lease = 1;
  std::vector<lease> leases;
};

std::string encode(const barrier_state& b) {
  writer w;
  w.u8(static_cast<std::uint8_t>(kind::barrier));
  w.u64(b.parties);
  w.u64(b.generation);
  w.u64(b.arrived.size());
  for (const auto& a : b.arrived) {
    w.u64(a.waiter);
    w.u64(static_cast<std::uint64_t>(a.deadline_ms));
  }
  w.u64(b.previous.size());
  for (const auto t : b.previous) w.u64(t);
  return std::move(w.out);
}
barrier_state decode_barrier(std::string_view p) {
  reader r{p};
  barrier_state b;
  b.parties = r.u64();
  b.generation = r.u64();
  const std::uint64_t n = r.u64();
  r.need(n * 16);
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t waiter = r.u64();
    b.arrived.push_back({waiter, static_cast<std::int64_t>(r.u64())});
  }
  b.previous = r.u64s();
  return b;
}
std::string encode_count(kind k, std::uint64_t n) {
  writer w;
  w.u8(static_cast<std::uint8_t>(k));
  w.u64(n);
  return std::move(w.out);
}
std::string encode(const semaphore_state& s) {
  writer w;
  w.u8(static_cast<std::uint8_t>(kind::semaphore));
  w.u64(static_cast<std::uint64_t>(s.available));
  w.u64(s.next_lease);
  w.u64(s.leases.size());
  for (const auto& l : s.leases) {
    w.str(l.id);
    w.u64(l.permits);
    w.u64(static_cast<std::uint64_t>(l.expires_ms));
  }
  return std::move(w.out);
}
semaphore_state decode_semaphore(std::string_view p) {
  reader r{p};
  semaphore_state s;
  s.available = static_cast<std::int64_t>(r.u64());
  s.next_lease = r.u64();
  const std::uint64_t n = r.u64();
  r.need(n * 24);
  for (std::uint64_t i = 0; i < n; ++i) {
    lease l;
    l.id = r.str();
    l.permits = r.u64();
    l.expires_ms = static_cast<std::int64_t>(r.u64());
    s.leases.push_back(std::move(l));
  }
  return s;
}
std::string encode_future(bool set, std::string_view value) {
  writer w;
  w.u8(static_cast<std::uint8_t>(kind::future));
  w.u8(set ? 1 : 0);
  w.out.append(value);
  return std::move(w.out);
}

// ---- common steps ------------------------------------------------------------------------------

// The object of kind k at key: false after a WRONGTYPE reply; `payload` empty if absent.
bool load(command_context& c, std::string_view key, kind k, std::optional<entry>& e) {
  if (!typed_entry(c, key, value_type::object, e)) return false;
  if (e && (e->payload.empty() || static_cast<std::uint8_t>(e->payload[0]) != static_cast<std::uint8_t>(k))) {
    wrong_type(c);
    return false;
  }
  return true;
}

void save(command_context& c, std::string_view key, const std::optional<entry>& before, std::string payload) {
  c.db.put(c.tx, key, entry{value_type::object, before ? before->expires_ms : 0, std::move(payload)});
  c.server.touch(key);
}

// Options after the fixed arguments: TIMEOUT ms, DEADLINE ms-since-epoch (what a waiting call
// runs again with), ID waiter-id, PERMITS n, LEASE ms. False after an error reply.
struct options {
  std::int64_t deadline_ms = 0;  // 0: no time limit
  bool rerun = false;            // DEADLINE given: a parked call running again
  std::string id;
  std::int64_t permits = 1;
  std::int64_t lease_ms = 0;
};
bool parse_options(command_context& c, std::size_t from, std::initializer_list<std::string_view> allowed, options& o) {
  for (std::size_t i = from; i < c.argv.size(); i += 2) {
    const std::string name = lower(c.argv[i]);
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end() || i + 1 >= c.argv.size()) {
      syntax_error(c);
      return false;
    }
    const std::string_view v = c.argv[i + 1];
    std::int64_t n = 0;
    if (name == "id") {
      o.id = std::string(v);
      continue;
    }
    if (!parse_integer(c, v, n)) return false;
    if (name == "timeout") {
      if (n < 0) {
        c.reply.error("ERR timeout is negative");
        return false;
      }
      o.deadline_ms = n == 0 ? 0 : c.now_ms + n;
    } else if (name == "deadline") {
      o.deadline_ms = n;
      o.rerun = true;
    } else if (name == "permits") {
      if (n < 1) {
        c.reply.error("ERR permits must be positive");
        return false;
      }
      o.permits = n;
    } else if (name == "lease") {
      if (n < 1) {
        c.reply.error("ERR lease must be a positive number of milliseconds");
        return false;
      }
      o.lease_ms = n;
    }
  }
  return true;
}

// A waiter ID for this call: the caller's, ONCE's request id, or one unique to this server's life.
std::string waiter_id(command_context& c, const options& o) {
  if (!o.id.empty()) return o.id;
  if (!c.client.request_id.empty()) return "once:" + c.client.request_id;
  return fmt::format("b{}.s{}.{}", c.db.pool().recovery().boot_count, c.client.id, ++c.client.tokens);
}

bool timed_out(const command_context& c, const options& o) { return o.deadline_ms != 0 && c.now_ms >= o.deadline_ms; }

// Parks the caller until `key` is signalled or `wake_ms` (0: never); then `retry` runs again.
void wait(command_context& c, std::string_view key, std::int64_t wake_ms, std::vector<std::string> retry) {
  session::blocking& b = c.client.blocked;
  b.active = true;
  b.keys.assign(1, std::string(key));
  b.deadline_ms = wake_ms;
  b.retry = std::move(retry);
}

std::ptrdiff_t index_of(const std::vector<std::uint64_t>& v, std::uint64_t s) {  // -1 if absent
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == s) return static_cast<std::ptrdiff_t>(i);
  }
  return -1;
}

// ---- CAS ---------------------------------------------------------------------------------------

// CAS key expected new: sets key to new if it holds exactly expected. 1 if it did, else 0 (an
// absent key holds nothing: SETNX creates).
void cas(command_context& c) {
  std::optional<entry> e;
  if (!typed_entry(c, c.argv[1], value_type::string, e)) return;
  if (!e || e->payload != c.argv[2]) return c.reply.integer(0);
  c.db.put(c.tx, c.argv[1], entry{value_type::string, e->expires_ms, std::string(c.argv[3])});
  c.server.touch(c.argv[1]);
  c.reply.integer(1);
}

// ---- cyclic barrier ----------------------------------------------------------------------------

// BARRIER.AWAIT key parties [TIMEOUT ms] [ID waiter]: waits until `parties` callers have arrived
// in this generation; replies the caller's arrival index (0 for the first), or nil if its time
// ran out first (its arrival is taken back). Then the next generation starts.
void barrier_await(command_context& c) {
  std::int64_t parties = 0;
  if (!parse_integer(c, c.argv[2], parties)) return;
  if (parties < 1 || parties > 1'000'000) return c.reply.error("ERR parties must be 1 to 1000000");
  options o;
  if (!parse_options(c, 3, {"timeout", "deadline", "id"}, o)) return;
  std::optional<entry> e;
  if (!load(c, c.argv[1], kind::barrier, e)) return;
  barrier_state b = e ? decode_barrier(e->payload) : barrier_state{static_cast<std::uint64_t>(parties), 0, {}, {}};
  if (b.parties != static_cast<std::uint64_t>(parties)) {
    return c.reply.error(fmt::format("ERR the barrier at this key has {} parties", b.parties));
  }
  const std::string id = waiter_id(c, o);
  const std::uint64_t me = waiter_hash(id);
  // Arrivals whose time ran out while their callers were away (a dropped connection, a dead
  // function) are taken back now, as their callers would have done.
  const auto expired = [&](const arrival& a) { return a.waiter != me && a.deadline_ms != 0 && a.deadline_ms <= c.now_ms; };
  bool changed = std::erase_if(b.arrived, expired) > 0;
  auto at = std::find_if(b.arrived.begin(), b.arrived.end(), [&](const arrival& a) { return a.waiter == me; });
  if (at == b.arrived.end()) {
    // A call running again (parked, or retried under ONCE) whose generation completed meanwhile
    // gets its index. A new call with an id used before simply arrives: ids name calls, and a
    // caller that passes the same ID every round is not one that retries.
    if (o.rerun || !c.client.request_id.empty()) {
      if (const std::ptrdiff_t done = index_of(b.previous, me); done >= 0) {
        if (changed) save(c, c.argv[1], e, encode(b));
        return c.reply.integer(done);
      }
    }
    b.arrived.push_back({me, o.deadline_ms});
    at = b.arrived.end() - 1;
    changed = true;
    if (b.arrived.size() == b.parties) {
      const auto index = static_cast<std::int64_t>(b.arrived.size()) - 1;
      b.previous.clear();
      for (const arrival& a : b.arrived) b.previous.push_back(a.waiter);
      b.arrived.clear();
      ++b.generation;
      save(c, c.argv[1], e, encode(b));
      c.server.signal_ready(c.argv[1]);
      return c.reply.integer(index);
    }
  }
  if (timed_out(c, o) || c.client.in_exec) {
    b.arrived.erase(at);
    save(c, c.argv[1], e, encode(b));
    return c.reply.null();
  }
  if (changed) save(c, c.argv[1], e, encode(b));
  wait(c, c.argv[1], o.deadline_ms,
       {"BARRIER.AWAIT", std::string(c.argv[1]), std::string(c.argv[2]), "ID", id, "DEADLINE",
        std::to_string(o.deadline_ms)});
}

// BARRIER.WAITING key: callers waiting in the current generation (0 if none).
void barrier_waiting(command_context& c) {
  std::optional<entry> e;
  if (!load(c, c.argv[1], kind::barrier, e)) return;
  if (!e) return c.reply.integer(0);
  const barrier_state b = decode_barrier(e->payload);
  c.reply.integer(std::count_if(b.arrived.begin(), b.arrived.end(), [&](const arrival& a) {
    return a.deadline_ms == 0 || a.deadline_ms > c.now_ms;
  }));
}

// ---- count-down latch --------------------------------------------------------------------------

std::uint64_t latch_count(const entry& e) {
  reader r{e.payload};
  return r.u64();
}

// LATCH.CREATE key count: 1 if made, 0 if the key already holds a latch.
void latch_create(command_context& c) {
  std::int64_t n = 0;
  if (!parse_integer(c, c.argv[2], n)) return;
  if (n < 0) return c.reply.error("ERR count must not be negative");
  std::optional<entry> e;
  if (!load(c, c.argv[1], kind::latch, e)) return;
  if (e) return c.reply.integer(0);
  save(c, c.argv[1], e, encode_count(kind::latch, static_cast<std::uint64_t>(n)));
  if (n == 0) c.server.signal_ready(c.argv[1]);
  c.reply.integer(1);
}

// LATCH.COUNTDOWN key: the count left (it stops at 0). Waiters go on when it reaches 0.
void latch_countdown(command_context& c) {
  std::optional<entry> e;
  if (!load(c, c.argv[1], kind::latch, e)) return;
  if (!e) return c.reply.error("ERR no such latch");
  std::uint64_t n = latch_count(*e);
  if (n > 0) {
    --n;
    save(c, c.argv[1], e, encode_count(kind::latch, n));
    if (n == 0) c.server.signal_ready(c.argv[1]);
  }
  c.reply.integer(static_cast<std::int64_t>(n));
}

// LATCH.AWAIT key [TIMEOUT ms]: 1 once the count is 0 (waiting for the latch to be made and to
// reach 0), nil if the time runs out first.
void latch_await(command_context& c) {
  options o;
  if (!parse_options(c, 2, {"timeout", "deadline"}, o)) return;
  std::optional<entry> e;
  if (!load(c, c.argv[1], kind::latch, e)) return;
  if (e && latch_count(*e) == 0) return c.reply.integer(1);
  if (timed_out(c, o) || c.client.in_exec) return c.reply.null();
  wait(c, c.argv[1], o.deadline_ms, {"LATCH.AWAIT", std::string(c.argv[1]), "DEADLINE", std::to_string(o.deadline_ms)});
}

// LATCH.COUNT key: the count, or nil if there is no latch.
void latch_count_cmd(command_context& c) {
  std::optional<entry> e;
  if (!load(c, c.argv[1], kind::latch, e)) return;
  if (!e) return c.reply.null();
  c.reply.integer(static_cast<std::int64_t>(latch_count(*e)));
}

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

// ---- future ------------------------------------------------------------------------------------

// FUTURE.SET key value: sets the future's value once; 1, or 0 if it was already set (unchanged).
void future_set(command_context& c) {
  std::optional<entry> e;
  if (!load(c, c.argv[1], kind::future, e)) return;
  if (e && e->payload.size() >= 2 && e->payload[1] != 0) return c.reply.integer(0);
  save(c, c.argv[1], e, encode_future(true, c.argv[2]));
  c.server.signal_ready(c.argv[1]);
  c.reply.integer(1);
}

// FUTURE.GET key [TIMEOUT ms]: the value, waiting until it is set; nil if the time runs out.
void future_get(command_context& c) {
  options o;
  if (!parse_options(c, 2, {"timeout", "deadline"}, o)) return;
  std::optional<entry> e;
  if (!load(c, c.argv[1], kind::future, e)) return;
  if (e && e->payload.size() >= 2 && e->payload[1] != 0) return c.reply.bulk(std::string_view(e->payload).substr(2));
  if (timed_out(c, o) || c.client.in_exec) return c.reply.null();
  wait(c, c.argv[1], o.deadline_ms, {"FUTURE.GET", std::string(c.argv[1]), "DEADLINE", std::to_string(o.deadline_ms)});
}

using namespace command_flags;

const std::array table{
    command_spec{"cas", 4, write | deny_oom | fast, cas, 1, 1, 1, "object", "sets a string if it holds an expected value"},
    command_spec{"barrier.await", -3, write | deny_oom | no_multi, barrier_await, 1, 1, 1, "object",
                 "waits at a cyclic barrier until all parties arrive"},
    command_spec{"barrier.waiting", 2, readonly | fast, barrier_waiting, 1, 1, 1, "object",
                 "callers waiting at a barrier"},
    command_spec{"latch.create", 3, write | deny_oom | fast, latch_create, 1, 1, 1, "object", "makes a count-down latch"},
    command_spec{"latch.countdown", 2, write | fast, latch_countdown, 1, 1, 1, "object", "counts a latch down"},
    command_spec{"latch.await", -2, readonly | no_multi, latch_await, 1, 1, 1, "object", "waits until a latch reaches 0"},
    command_spec{"latch.count", 2, readonly | fast, latch_count_cmd, 1, 1, 1, "object", "a latch's count"},
    command_spec{"sem.create", 3, write | deny_oom | fast, sem_create, 1, 1, 1, "object", "makes a semaphore"},
    command_spec{"sem.acquire", -2, write | deny_oom | no_multi, sem_acquire, 1, 1, 1, "object",
                 "takes permits, waiting for them; optionally leased"},
    command_spec{"sem.release", -2, write | fast, sem_release, 1, 1, 1, "object", "gives permits or a lease back"},
    command_spec{"sem.renew", 4, write | fast, sem_renew, 1, 1, 1, "object", "extends a lease"},
    command_spec{"sem.available", 2, readonly | fast, sem_available, 1, 1, 1, "object", "permits free now"},
    command_spec{"future.set", 3, write | deny_oom | fast, future_set, 1, 1, 1, "object", "sets a future's value, once"},
    command_spec{"future.get", -2, readonly | no_multi, future_get, 1, 1, 1, "object", "a future's value, waiting for it"},
};

}  // namespace

std::span<const command_spec> object_commands() { return table; }

}  // namespace pobj::kv
