// pobj::atomic under the crash simulator: a sequence of adds, stores, exchanges and
// compare-exchanges, crashed at every fence. The recovered word holds the value after the
// completed operations, or after the one in flight too, never anything else; blocks committed
// between the atomics keep their order with them (the ordering rule).
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/atomic.hpp>
#include <pobj/testing/crash_harness.hpp>
#include <pobj/transaction.hpp>

namespace {

struct state {
  pobj::atomic<std::int64_t> value;
  std::int64_t blocks;  // changed by failure-atomic blocks between the atomics
};

// The value after each of the operations below, in order.
std::vector<std::int64_t> expected_values() {
  std::vector<std::int64_t> v;
  std::int64_t x = 0;
  for (int i = 0; i < 24; ++i) {
    switch (i % 4) {
      case 0: x += i; break;
      case 1: x = i * 100; break;
      case 2: x = -x; break;
      case 3: x = x + 1; break;  // compare-exchange from the known value
    }
    v.push_back(x);
  }
  return v;
}

}  // namespace

TEST_CASE("atomic operations are durable and ordered with blocks at every fence", "[crash][atomic]") {
  const auto values = expected_values();
  pobj::testing::crash_test t;
  t.name = "atomics";
  t.options.size = 16 * pobj::MiB;
  t.options.lanes = 2;
  t.setup = [](pobj::pool& p) {
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      pobj::allocation a = tx.alloc(sizeof(state));
      new (a.pointer) state{};
      p.set_root("state", a.offset);
    });
  };
  t.workload = [](pobj::testing::crash_context& ctx) {
    pobj::pool& p = ctx.pool();
    auto& s = *p.at<state>(p.root("state"));
    pobj::atomic_ref<std::int64_t> a(p, s.value);
    std::int64_t x = 0;
    for (int i = 0; i < 24; ++i) {
      ctx.begin_op();
      switch (i % 4) {
        case 0: a.fetch_add(i); x += i; break;
        case 1:
          // A block writes the same word first: if the atomic's store could become persistent
          // while that block's log is still valid, recovery would replay the block over it.
          pobj::run_tx(p, [&](pobj::transaction& tx) { tx.set(s.value.word, static_cast<std::uint64_t>(i * 100 - 1)); });
          a.store(i * 100);
          x = i * 100;
          break;
        case 2: a.exchange(-x); x = -x; break;
        case 3: {
          std::int64_t e = x;
          a.compare_exchange(e, x + 1);
          x = x + 1;
          break;
        }
      }
      // A block after each atomic: its commit leaves a log invalidation pending, which the next
      // atomic must make durable before its store.
      pobj::run_tx(p, [&](pobj::transaction& tx) { tx.set(s.blocks, std::int64_t{i + 1}); });
      ctx.end_op();
    }
  };
  t.verify = [values](pobj::pool& p, const pobj::testing::crash_point& pt) {
    auto& s = *p.at<state>(p.root("state"));
    const std::int64_t got = pobj::atomic_ref<std::int64_t>(p, s.value).load();
    const std::size_t done = pt.ops_completed;
    const std::int64_t after_done = done == 0 ? 0 : values[done - 1];
    // In flight: the operation's value, or (a store) the value its preceding block wrote.
    const bool in_flight_ok = pt.op_in_flight && done < values.size() &&
                              (got == values[done] || (done % 4 == 1 && got == static_cast<std::int64_t>(done) * 100 - 1));
    pobj::testing::expect(got == after_done || in_flight_ok, "value {} after {} operations{}", got, done,
                          pt.op_in_flight ? " and one in flight" : "");
    // The block of operation k commits after its atomic: never a block without its atomic.
    const std::int64_t blocks = s.blocks;
    pobj::testing::expect(blocks == static_cast<std::int64_t>(done) || (pt.op_in_flight && blocks == static_cast<std::int64_t>(done) + 1),
                          "{} blocks after {} operations", blocks, done);
    if (blocks == static_cast<std::int64_t>(done) + 1) {
      pobj::testing::expect(got == values[done], "the block of operation {} survived without its atomic", done);
    }
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.points == result.fences);  // every fence
  REQUIRE(result.ok());
}
