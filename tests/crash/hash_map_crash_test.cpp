// pobj::hash_map under the crash simulator, with a durable-linearizability oracle: the recovered
// map holds exactly the completed operations, plus the one in flight or not. Every mutating
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

namespace {

using map_type = pobj::hash_map<std::uint64_t, pobj::bytes>;
using model = std::map<std::uint64_t, std::string>;

struct op {
  enum kind { insert, assign, erase } what;
  std::uint64_t key;
  std::string value;
};

void apply(model& m, const op& o) {
  if (o.what == op::erase) m.erase(o.key);
  else if (o.what == op::assign || !m.contains(o.key)) m[o.key] = o.value;
}

model contents(pobj::pool& p) {
  model m;
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> h(p, map_type{p.root("map")});
  h.for_each([&](std::uint64_t k, const std::string& v) { m[k] = v; });
  return m;
}

std::string value(std::uint64_t k, int version) { return std::string(k % 40, 'v') + "#" + std::to_string(version); }

pobj::testing::crash_test map_test(const std::string& name, std::vector<op> prefix, std::vector<op> ops) {
  pobj::testing::crash_test t;
  t.name = name;
  t.options.size = 16 * pobj::MiB;
  t.options.lanes = 2;
  t.setup = [prefix](pobj::pool& p) {
    auto handle = pobj::run_tx(p, [&](pobj::transaction& tx) {
      auto m = pobj::make_hash_map<std::uint64_t, pobj::bytes>(tx);
      p.set_root("map", m.offset);
      return m;
    });
    pobj::hash_map_ref<std::uint64_t, pobj::bytes> h(p, handle);
    for (const op& o : prefix) h.insert_or_assign(o.key, o.value);
  };
  t.workload = [ops](pobj::testing::crash_context& ctx) {
    pobj::hash_map_ref<std::uint64_t, pobj::bytes> h(ctx.pool(), map_type{ctx.pool().root("map")});
    for (const op& o : ops) {
      ctx.begin_op();
      switch (o.what) {
        case op::insert: h.insert(o.key, o.value); break;
        case op::assign: h.insert_or_assign(o.key, o.value); break;
        case op::erase: h.erase(o.key); break;
      }
      ctx.end_op();
    }
  };
  t.verify = [prefix, ops](pobj::pool& p, const pobj::testing::crash_point& pt) {
    model done;
    for (const op& o : prefix) apply(done, o);
    for (std::size_t i = 0; i < pt.ops_completed; ++i) apply(done, ops[i]);
    model with_next = done;
    if (pt.ops_completed < ops.size()) apply(with_next, ops[pt.ops_completed]);
    const model got = contents(p);
    pobj::testing::expect(got == done || (pt.op_in_flight && got == with_next),
                          "{} entries after {} operations{} (expected {} or {})", got.size(), pt.ops_completed,
                          pt.op_in_flight ? " and one in flight" : "", done.size(), with_next.size());
    pobj::hash_map_ref<std::uint64_t, pobj::bytes> h(p, map_type{p.root("map")});
    pobj::testing::expect(h.size() == got.size(), "size() says {}, the walk finds {}", h.size(), got.size());
  };
  return t;
}

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
