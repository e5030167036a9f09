// pobj::atomic: durable linearizable 64-bit atomics. Single-thread semantics, persistence across
// reopening, the fence count, refusal inside blocks, and concurrent use (also under TSan).
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>

#include "history.hpp"
#include "test_util.hpp"

namespace {

struct counters {
  pobj::atomic<std::int64_t> hits;
  pobj::atomic<std::uint64_t> mask;
  pobj::atomic<pobj::ref<counters>> next;
};

counters& make_root(pobj::pool& p) {
  if (pobj::offset_t off = p.root("counters"); off != 0) return *p.at<counters>(off);
  return *pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::allocation a = tx.alloc(sizeof(counters));
    auto* c = new (a.pointer) counters{};
    p.set_root("counters", a.offset);
    return c;
  });
}

}  // namespace

TEST_CASE("atomics load, store, exchange, compare-exchange and add, durably", "[atomic]") {
  pobj_test::scratch_path path("atomic");
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    counters& c = make_root(p);
    pobj::atomic_ref<std::int64_t> hits(p, c.hits);
    CHECK(hits.load() == 0);
    std::uint64_t before = pobj::media::thread_counters().drains;
    CHECK(hits.fetch_add(5) == 0);  // after the block that made the root: two fences (ordering rule)
    CHECK(pobj::media::thread_counters().drains - before == 2);
    before = pobj::media::thread_counters().drains;
    CHECK(hits.fetch_add(-7) == 5);
    CHECK(pobj::media::thread_counters().drains - before == 1);  // then one fence per write
    CHECK(hits.load() == -2);
    std::int64_t expected = 3;
    CHECK_FALSE(hits.compare_exchange(expected, 10));
    CHECK(expected == -2);
    CHECK(hits.compare_exchange(expected, 10));
    CHECK(hits.exchange(11) == 10);
    pobj::atomic_ref<std::uint64_t> mask(p, c.mask);
    mask.store(~std::uint64_t{0});
    pobj::atomic_ref<pobj::ref<counters>> next(p, c.next);
    next.store(pobj::ref<counters>(p.root("counters")));
  }
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  counters& c = make_root(p);
  CHECK(pobj::atomic_ref<std::int64_t>(p, c.hits).load() == 11);
  CHECK(pobj::atomic_ref<std::uint64_t>(p, c.mask).load() == ~std::uint64_t{0});
  CHECK(pobj::atomic_ref<pobj::ref<counters>>(p, c.next).load().offset == p.root("counters"));
}

TEST_CASE("atomics refuse to run inside a failure-atomic block", "[atomic]") {
  pobj_test::scratch_path path("atomic-block");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  counters& c = make_root(p);
  pobj::atomic_ref<std::int64_t> hits(p, c.hits);
  CHECK_THROWS_AS(pobj::run_tx(p, [&](pobj::transaction&) { hits.fetch_add(1); }), pobj::error);
  CHECK(hits.load() == 0);
  pobj::run_tx(p, [&](pobj::transaction& tx) { tx.set(c.hits.word, std::uint64_t{4}); });  // the block's way
  CHECK(hits.load() == 4);
}

TEST_CASE("concurrent adds and compare-exchanges lose nothing; readers see values only grow", "[atomic][threads]") {
  pobj_test::scratch_path path("atomic-threads");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  counters& c = make_root(p);
  constexpr int writers = 3, per_writer = 2000;
  std::atomic<bool> done{false};
  std::atomic<bool> regressed{false};
  std::thread reader([&] {
    pobj::atomic_ref<std::int64_t> hits(p, c.hits);
    std::int64_t last = 0;
    while (!done.load()) {
      std::int64_t v = hits.load();
      if (v < last) regressed = true;
      last = v;
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < writers; ++t) {
    threads.emplace_back([&, t] {
      pobj::atomic_ref<std::int64_t> hits(p, c.hits);
      pobj::atomic_ref<std::uint64_t> mask(p, c.mask);
      for (int i = 0; i < per_writer; ++i) {
        if (i % 2 == 0) {
          hits.fetch_add(1);
        } else {
          std::int64_t seen = hits.load();
          while (!hits.compare_exchange(seen, seen + 1)) {
          }
        }
        std::uint64_t m = mask.load();
        while (!mask.compare_exchange(m, m | (std::uint64_t{1} << t))) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  done = true;
  reader.join();
  CHECK_FALSE(regressed.load());
  CHECK(pobj::atomic_ref<std::int64_t>(p, c.hits).load() == writers * per_writer);
  CHECK(pobj::atomic_ref<std::uint64_t>(p, c.mask).load() == 0b111);
}

namespace {

// Runs `threads` workers of `ops` operations each; op(thread, i, clock) returns one event.
template <class Event, class Op>
std::vector<Event> record(int threads, int ops, Op op) {
  pobj_test::history_clock clock;
  std::vector<std::vector<Event>> logs(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < ops; ++i) logs[static_cast<std::size_t>(t)].push_back(op(t, i, clock));
    });
  }
  for (auto& w : workers) w.join();
  std::vector<Event> all;
  for (auto& l : logs) all.insert(all.end(), l.begin(), l.end());
  return all;
}

}  // namespace

TEST_CASE("concurrent atomic counter histories are linearizable", "[atomic][threads]") {
  // Four threads add one and load, many rounds: every add returns its own value, and the order
  // those values force respects real time (tests/pobj/history.hpp).
  pobj_test::scratch_path path("atomic-lin-counter");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  for (int round = 0; round < 5; ++round) {
    counters& c = make_root(p);
    pobj::atomic_ref<std::uint64_t> mask(p, c.mask);
    mask.store(0);
    const auto history = record<pobj_test::counter_event>(4, 300, [&](int t, int i, const pobj_test::history_clock& clock) {
      pobj_test::counter_event e{(i + t) % 3 != 0, 0, clock.now(), 0};
      e.value = e.add ? mask.fetch_add(1) : mask.load();
      e.end = clock.now();
      return e;
    });
    CHECK(pobj_test::counter_violations(history) == 0);
    CHECK(mask.load() == static_cast<std::uint64_t>(std::count_if(history.begin(), history.end(), [](const auto& e) { return e.add; })));
  }
}

TEST_CASE("concurrent atomic exchange and compare-exchange histories are linearizable", "[atomic][threads]") {
  // Four threads write unique values with exchange and compare-exchange (expecting the last value
  // they saw) and read with load: the writes must form one chain from 0 whose order respects real
  // time, and every read must fall between the write it saw and the next.
  pobj_test::scratch_path path("atomic-lin-swap");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  counters& c = make_root(p);
  pobj::atomic_ref<std::int64_t> word(p, c.hits);
  std::size_t successes = 0;
  for (int round = 0; round < 5; ++round) {
    word.store(0);
    std::vector<std::int64_t> seen(4, 0);
    const auto history = record<pobj_test::swap_event>(4, 300, [&](int t, int i, const pobj_test::history_clock& clock) {
      const auto unique = static_cast<std::int64_t>(t + 1) << 32 | (i + 1);
      std::int64_t& last = seen[static_cast<std::size_t>(t)];
      pobj_test::swap_event e{false, 0, 0, clock.now(), 0};
      switch (i % 3) {
        case 0:
          e = {true, static_cast<std::uint64_t>(word.exchange(unique)), static_cast<std::uint64_t>(unique), e.start, 0};
          break;
        case 1: {
          std::int64_t expected = last;
          const bool ok = word.compare_exchange(expected, unique);
          e = {ok, static_cast<std::uint64_t>(expected), static_cast<std::uint64_t>(unique), e.start, 0};
          break;
        }
        default: e.before = static_cast<std::uint64_t>(word.load()); break;
      }
      e.end = clock.now();
      last = static_cast<std::int64_t>(e.write ? e.after : e.before);
      return e;
    });
    successes += static_cast<std::size_t>(std::count_if(history.begin(), history.end(), [](const auto& e) { return e.write; }));
    CHECK(pobj_test::swap_violations(history) == 0);
  }
  CHECK(successes > 5 * 400);  // every exchange, and some compare-exchanges, wrote
}

TEST_CASE("the atomic history checkers reject what no linearization explains", "[atomic]") {
  using pobj_test::counter_event;
  using pobj_test::swap_event;
  // Linearizable: overlapping adds in either order, a load between them.
  CHECK(pobj_test::counter_violations({{true, 1, 0, 10}, {true, 0, 5, 15}, {false, 1, 6, 9}}) == 0);
  // An add lost (two adds returned 0), and an add ordered against real time.
  CHECK(pobj_test::counter_violations({{true, 0, 0, 1}, {true, 0, 2, 3}}) > 0);
  CHECK(pobj_test::counter_violations({{true, 1, 0, 1}, {true, 0, 2, 3}}) > 0);
  // A load that saw an add that began after it ended.
  CHECK(pobj_test::counter_violations({{false, 1, 0, 1}, {true, 0, 2, 3}}) > 0);
  // Linearizable: 0 -> 7 -> 9, a read of 7 in between.
  CHECK(pobj_test::swap_violations({{true, 0, 7, 0, 1}, {false, 7, 0, 2, 3}, {true, 7, 9, 4, 5}}) == 0);
  // A stale read: 7 read after 9 replaced it.
  CHECK(pobj_test::swap_violations({{true, 0, 7, 0, 1}, {true, 7, 9, 2, 3}, {false, 7, 0, 4, 5}}) > 0);
  // Two writes replaced the same value (a lost compare-exchange), and a read of a value never written.
  CHECK(pobj_test::swap_violations({{true, 0, 7, 0, 1}, {true, 0, 9, 0, 1}}) > 0);
  CHECK(pobj_test::swap_violations({{false, 5, 0, 0, 1}}) > 0);
}
