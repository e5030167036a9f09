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
#include <limits>

#include <fmt/format.h>

#include "objects_state.hpp"

namespace pobj::kv {

namespace {

using namespace objects;

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
