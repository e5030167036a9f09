// Pool creation and growth under the crash simulator.
#include <catch2/catch.hpp>

#include "workloads.hpp"

using namespace crash_workloads;

TEST_CASE("an interrupted create leaves no pool or a whole one", "[crash][pool]") {
  pobj::testing::crash_test t;
  t.name = "pool create";
  t.options = crash_options();
  t.create_in_workload = true;
  t.workload = [](crash_context& ctx) {
    ctx.begin_op();
    pool& p = ctx.create();
    ctx.end_op();
    ctx.begin_op();
    run_tx(p, [&](transaction& tx) {
      allocation a = tx.alloc(64);
      std::memset(a.pointer, 0x77, 64);
      p.set_root("first", a.offset);
    });
    ctx.end_op();
  };
  // Creation fences the superblock (fence 0), then the header (fence 1). Only a crash at or
  // before the header's fence may leave a file that is no pool.
  t.open_may_fail = [](const error& e, const crash_point& pt) {
    return pt.fence <= 1 && (e.code() == errc::not_a_pool || e.code() == errc::corrupt);
  };
  t.verify = [](pool& p, const crash_point& pt) {
    offset_t first = p.root("first");
    expect(pt.ops_completed < 2 || first != 0, "the root of a completed block is missing");
    if (first != 0) expect(*p.at<std::uint8_t>(first + 63) == 0x77, "the root object lost its contents");
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  REQUIRE(result.ok());
}

TEST_CASE("a pool that grows keeps every completed allocation", "[crash][pool]") {
  constexpr std::size_t objects = 20, size = 150 * KiB;
  pobj::testing::crash_test t;
  t.name = "pool growth";
  t.options = crash_options();
  t.setup = [](pool& p) {
    run_tx(p, [&](transaction& tx) {
      allocation a = tx.alloc(objects * 8);
      std::memset(a.pointer, 0, objects * 8);
      p.set_root("slots", a.offset);
    });
  };
  t.workload = [](crash_context& ctx) {
    pool& p = ctx.pool();
    auto* slots = p.at<std::uint64_t>(p.root("slots"));
    for (std::size_t i = 0; i < objects; ++i) {
      ctx.begin_op();
      run_tx(p, [&](transaction& tx) {
        allocation a = tx.alloc(size);
        std::memset(a.pointer, static_cast<int>(i + 1), size);
        tx.set(slots[i], a.offset);
      });
      ctx.end_op();
    }
  };
  t.verify = [](pool& p, const crash_point& pt) {
    auto* slots = p.at<std::uint64_t>(p.root("slots"));
    expect(pt.ops_completed < objects || p.size() > crash_options().size, "the pool never grew");
    for (std::size_t i = 0; i < objects; ++i) {
      bool should = i < pt.ops_completed, may = pt.op_in_flight && i == pt.ops_completed;
      expect(slots[i] != 0 || !should, "object {} of a completed block is missing", i);
      expect(slots[i] == 0 || should || may, "object {} exists before its block ran", i);
      if (slots[i] != 0) {
        expect(p.heap().is_allocated(slots[i]), "object {} is linked but not allocated", i);
        expect(*p.at<std::uint8_t>(slots[i] + size - 1) == i + 1, "object {} lost its contents", i);
      }
    }
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  REQUIRE(result.ok());
}
