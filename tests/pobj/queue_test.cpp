// pobj::queue: FIFO order through many segments, inline and block values, persistence across
// reopening, no leak, and concurrent producers and consumers checked for linearizability (also
// under TSan).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>

#include "history.hpp"
#include "test_util.hpp"

namespace {

template <class T>
pobj::queue<T> root_queue(pobj::pool& p, const char* name = "queue") {
  if (pobj::offset_t off = p.root(name); off != 0) return pobj::queue<T>{off};
  return pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto q = pobj::make_queue<T>(tx);
    p.set_root(name, q.offset);
    return q;
  });
}

}  // namespace

TEST_CASE("queue is first in, first out, across segments and reopening", "[queue]") {
  pobj_test::scratch_path path("queue");
  std::deque<std::string> model;
  std::size_t used_before = 0;
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    used_before = p.heap().stats().bytes_used;
    pobj::queue_ref<pobj::bytes> q(p, root_queue<pobj::bytes>(p));
    CHECK(q.empty());
    CHECK_FALSE(q.try_pop());
    CHECK_FALSE(q.front());
    std::mt19937_64 rng(3);
    for (int i = 0; i < 2000; ++i) {  // pushes outrun pops: ~20 segments live at the end
      if (rng() % 3 != 0 || model.empty()) {
        std::string v = std::to_string(i) + std::string(rng() % 40, '.');
        q.push(v);
        model.push_back(v);
      } else {
        REQUIRE(q.try_pop() == model.front());
        model.pop_front();
      }
      REQUIRE(q.size() == model.size());
    }
    CHECK(*q.front() == model.front());
    CHECK(p.heap().check().ok());
  }
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  pobj::queue_ref<pobj::bytes> q(p, root_queue<pobj::bytes>(p));
  CHECK(q.size() == model.size());
  std::vector<std::string> walked;
  q.for_each([&](const std::string& v) { walked.push_back(v); });
  CHECK(walked == std::vector<std::string>(model.begin(), model.end()));
  while (!model.empty()) {
    REQUIRE(q.try_pop() == model.front());
    model.pop_front();
  }
  CHECK(q.empty());
  CHECK(p.heap().check().ok());
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::destroy(tx, root_queue<pobj::bytes>(p));
    p.remove_root("queue");
  });
  CHECK(p.heap().stats().bytes_used == used_before);
}

TEST_CASE("queue stores small values in its slots and large ones in blocks", "[queue]") {
  pobj_test::scratch_path path("queue-values");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::queue_ref<std::uint64_t> small(p, root_queue<std::uint64_t>(p, "small"));
  struct point {
    double x, y, z;
  };
  pobj::queue_ref<point> large(p, root_queue<point>(p, "large"));
  const std::size_t before = p.heap().stats().bytes_used;
  for (std::uint64_t i = 0; i < 61; ++i) small.push(i * 3);  // within the first segment
  CHECK(p.heap().stats().bytes_used == before);               // no block per value
  for (int i = 0; i < 100; ++i) large.push(point{i * 1.0, i * 2.0, i * 3.0});
  for (std::uint64_t i = 0; i < 61; ++i) REQUIRE(small.try_pop() == i * 3);
  for (int i = 0; i < 100; ++i) {
    const auto v = large.try_pop();
    REQUIRE(v);
    CHECK(v->z == i * 3.0);
  }
  CHECK(p.heap().check().ok());
  // A handle of another value kind is refused, as is a non-queue, and a push inside a block.
  CHECK_THROWS_AS((pobj::queue_ref<pobj::bytes>(p, pobj::queue<pobj::bytes>{p.root("small")})), pobj::error);
  CHECK_THROWS_AS((pobj::queue_ref<std::uint64_t>(p, pobj::queue<std::uint64_t>{p.root("small") + 64})), pobj::error);
  CHECK_THROWS_AS(pobj::run_tx(p, [&](pobj::transaction&) { small.push(1); }), pobj::error);
}

TEST_CASE("concurrent queue histories are linearizable", "[queue][threads]") {
  // Producers push unique values, consumers pop; with unique values a queue history is
  // linearizable iff none of these occurs (Henzinger et al., "Aspect-oriented linearizability
  // proofs", 2013): a value popped that was never pushed, or popped twice; a pop that returns v
  // and ended before v's push began; v pushed entirely before w's push yet w popped entirely
  // before v's pop (or w popped while v never is, after v's push ended); a pop that found the
  // queue empty although some value was pushed before it began and popped only after it ended.
  pobj_test::scratch_path path("queue-lin");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::queue_ref<std::uint64_t> q(p, root_queue<std::uint64_t>(p));
  struct event {
    bool push;
    std::uint64_t value;  // pops: 0 if empty
    std::int64_t start, end;
  };
  constexpr int threads = 4, ops = 500;
  std::vector<std::vector<event>> logs(threads);
  const pobj_test::history_clock clock;
  auto now = [&] { return clock.now(); };
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 5);
      for (int i = 0; i < ops; ++i) {
        event e{rng() % 2 == 0, 0, now(), 0};
        if (e.push) {
          e.value = static_cast<std::uint64_t>(t + 1) << 32 | static_cast<std::uint64_t>(i + 1);
          q.push(e.value);
        } else {
          e.value = q.try_pop().value_or(0);
        }
        e.end = now();
        logs[t].push_back(e);
      }
    });
  }
  for (auto& w : workers) w.join();
  // The values left, popped now (after every operation above).
  std::vector<event> all;
  for (auto& l : logs) all.insert(all.end(), l.begin(), l.end());
  const std::int64_t late = now() + 1;
  while (auto v = q.try_pop()) all.push_back(event{false, *v, late, late});
  std::map<std::uint64_t, const event*> pushes, pops;
  std::size_t violations = 0;
  for (const auto& e : all) {
    if (e.push) pushes[e.value] = &e;
  }
  for (const auto& e : all) {
    if (e.push || e.value == 0) continue;
    if (!pushes.count(e.value) || !pops.emplace(e.value, &e).second) ++violations;  // fresh, repeated
    else if (e.end < pushes.at(e.value)->start) ++violations;
  }
  for (const auto& [v, pv] : pushes) {
    for (const auto& [w, pw] : pushes) {
      if (v == w || pv->end >= pw->start) continue;  // v pushed entirely before w
      const auto ov = pops.find(v), ow = pops.find(w);
      if (ow == pops.end()) continue;
      if (ov == pops.end() || ow->second->end < ov->second->start) ++violations;
    }
  }
  for (const auto& e : all) {
    if (e.push || e.value != 0) continue;
    for (const auto& [v, pv] : pushes) {
      if (pv->end < e.start && pops.count(v) && pops.at(v)->start > e.end) ++violations;
    }
  }
  CHECK(violations == 0);
  CHECK(pops.size() == pushes.size());  // nothing lost
}

TEST_CASE("queue producers and consumers in parallel lose and duplicate nothing", "[queue][threads]") {
  pobj_test::scratch_path path("queue-mpmc");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::queue_ref<pobj::string> q(p, root_queue<pobj::string>(p));
  constexpr int producers = 2, per_producer = 3000;
  std::atomic<int> done{0};
  std::vector<std::vector<std::string>> got(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < producers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_producer; ++i) q.push(std::to_string(t) + ":" + std::to_string(i));
      ++done;
    });
  }
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&, c] {
      for (;;) {
        if (auto v = q.try_pop()) {
          got[c].push_back(*v);
        } else if (done == producers && q.empty()) {
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  // Each consumer sees each producer's values in the order they were pushed.
  std::vector<std::string> all;
  for (const auto& g : got) {
    std::map<std::string, int> last;
    for (const auto& v : g) {
      const auto colon = v.find(':');
      const int n = std::stoi(v.substr(colon + 1));
      auto [it, fresh] = last.emplace(v.substr(0, colon), n);
      if (!fresh) {
        CHECK(n > it->second);
        it->second = n;
      }
    }
    all.insert(all.end(), g.begin(), g.end());
  }
  std::sort(all.begin(), all.end());
  CHECK(all.size() == producers * per_producer);
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  CHECK(p.heap().check().ok());
}

// Regression: a queue's DRAM counts outlived it, so a queue made where a destroyed one had been
// (the heap reuses the block) started with the old counts and popped values never pushed.
TEST_CASE("a queue made where a destroyed one was starts empty", "[queue][regression]") {
  pobj_test::scratch_path path("queue-reuse");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto old = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_queue<std::uint64_t>(tx); });
  pobj::queue_ref<std::uint64_t> q(p, old);
  for (std::uint64_t i = 1; i <= 3; ++i) q.push(i);
  pobj::run_tx(p, [&](pobj::transaction& tx) { pobj::destroy(tx, old); });
  CHECK_THROWS_AS(pobj::queue_ref<std::uint64_t>(p, old), pobj::error);  // its block is free now
  auto fresh = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_queue<std::uint64_t>(tx); });
  REQUIRE(fresh.offset == old.offset);  // the heap's thread cache hands the block back
  p.set_root("queue", fresh.offset);
  pobj::queue_ref<std::uint64_t> again(p, fresh);
  CHECK(again.size() == 0);
  CHECK_FALSE(again.try_pop());
  again.push(9);
  CHECK(again.try_pop() == 9u);
  CHECK(p.heap().check().ok());
}
