// pobj::hash_map under the crash simulator, with the durable-linearizability oracle of
// map_oracle.hpp: the recovered map holds exactly the completed operations, plus the one in
// flight or not. Every mutating
// operation alone at every fence (an insert that splits a segment and doubles the directory, a
// replacement, an erase that shifts its cluster back), then a long mixed workload at seeded random
// fences. The harness checks the heap after each recovery: no leak, no dangling reference.
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/hash_map.hpp>
#include <pobj/testing/crash_harness.hpp>

#include "map_oracle.hpp"

namespace {

using map_type = pobj::hash_map<std::uint64_t, pobj::bytes>;
using op = map_oracle::op<std::uint64_t>;

pobj::testing::crash_test map_test(const std::string& name, std::vector<op> prefix, std::vector<op> ops) {
  return map_oracle::map_test<map_type, pobj::hash_map_ref<std::uint64_t, pobj::bytes>, std::uint64_t>(
      name, std::move(prefix), std::move(ops),
      [](pobj::transaction& tx) { return pobj::make_hash_map<std::uint64_t, pobj::bytes>(tx); });
}

std::string value(std::uint64_t k, int version) { return std::string(k % 40, 'v') + "#" + std::to_string(version); }


std::vector<op> filled(std::uint64_t n) {
  std::vector<op> v;
  for (std::uint64_t k = 0; k < n; ++k) v.push_back({op::insert, k, value(k, 0)});
  return v;
}

}  // namespace

TEST_CASE("a hash_map insert that splits its segment is atomic at every fence", "[crash][hash_map]") {
  // 95 entries in the only segment: the 96th insert splits it and doubles the directory.
  auto result = pobj::testing::run(map_test("insert with split", filled(95), {{op::insert, 1000, value(1000, 0)}}));
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}

TEST_CASE("hash_map replacements and erases are atomic at every fence", "[crash][hash_map]") {
  std::vector<op> ops{{op::assign, 3, value(3, 1)}, {op::erase, 5, ""}, {op::erase, 77, ""},
                      {op::insert, 5, value(5, 2)}, {op::assign, 500, value(500, 1)}};
  auto result = pobj::testing::run(map_test("replace and erase", filled(60), ops));
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}

TEST_CASE("a long mixed hash_map workload survives seeded random crashes", "[crash][hash_map]") {
  std::mt19937_64 rng(9);
  std::vector<op> ops;
  const char* n = std::getenv("POBJ_CRASH_LONG_OPS");
  const std::size_t count = n != nullptr ? std::strtoull(n, nullptr, 0) : 300;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t k = rng() % 250;
    switch (rng() % 4) {
      case 0:
      case 1: ops.push_back({op::insert, k, value(k, static_cast<int>(i))}); break;
      case 2: ops.push_back({op::assign, k, value(k, static_cast<int>(i))}); break;
      default: ops.push_back({op::erase, k, ""}); break;
    }
  }
  auto t = map_test("mixed", {}, ops);
  t.exhaustive_limit = 0;  // random points (POBJ_CRASH_POINTS of them)
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.fences > 400);
  REQUIRE(result.ok());
}

TEST_CASE("hash_map changes joined in one caller's block are atomic together at every fence", "[crash][hash_map]") {
  // 90 entries: the block's inserts split the segment; with replacements and erases besides.
  pobj::testing::crash_test t = map_test("joined block", filled(90), {});
  t.workload = [](pobj::testing::crash_context& ctx) {
    pobj::pool& p = ctx.pool();
    pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, map_type{p.root("map")});
    ctx.begin_op();
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      for (std::uint64_t k = 1000; k < 1012; ++k) m.insert(tx, k, value(k, 0));
      m.insert_or_assign(tx, 3, value(3, 1));
      m.insert_or_assign(tx, 4, std::string(300, 'w'));  // a new node for a longer value
      m.erase(tx, 5);
      m.erase(tx, 1003);
    });
    ctx.end_op();
  };
  t.verify = [](pobj::pool& p, const pobj::testing::crash_point& pt) {
    pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, map_type{p.root("map")});
    std::map<std::uint64_t, std::string> got, before, after;
    m.for_each([&](std::uint64_t k, const std::string& v) { got[k] = v; });
    for (std::uint64_t k = 0; k < 90; ++k) before[k] = value(k, 0);
    after = before;
    for (std::uint64_t k = 1000; k < 1012; ++k) after[k] = value(k, 0);
    after[3] = value(3, 1);
    after[4] = std::string(300, 'w');
    after.erase(5);
    after.erase(1003);
    pobj::testing::expect(got == (pt.ops_completed == 1 ? after : before) || (pt.op_in_flight && got == after),
                          "{} entries after {} blocks", got.size(), pt.ops_completed);
    pobj::testing::expect(m.size() == got.size(), "size() says {}, the walk finds {}", m.size(), got.size());
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}
