// pobj::atomic: durable linearizable 64-bit atomics. Single-thread semantics, persistence across
// reopening, the fence count, refusal inside blocks, and concurrent use (also under TSan).
#include <atomic>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>

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
