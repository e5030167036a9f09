// pobj::ordered_map under the crash simulator, with a durable-linearizability oracle: the
// recovered map holds exactly the completed operations, plus the one in flight or not, and its
// scans agree with its finds. Each structural operation alone at every fence (a leaf split that
// makes a new root, an insert that splits an inner node, erases that empty leaves and free their
// separator blocks, replacements in place and by a new node), then a long mixed workload at
// seeded random fences. The harness checks the heap after each recovery: no leak, no dangling
// reference.
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/ordered_map.hpp>
#include <pobj/testing/crash_harness.hpp>

#include "map_oracle.hpp"
#include "test_util.hpp"

namespace {

using tree_type = pobj::ordered_map<pobj::bytes, pobj::bytes>;
using tree_ref = pobj::ordered_map_ref<pobj::bytes, pobj::bytes>;
using op = map_oracle::op<std::string>;

// The tree's height (the header's third word: docs/types.md).
std::uint64_t height(pobj::pool& p) {
  std::uint64_t h;
  std::memcpy(&h, p.base() + p.root("map") + 16, 8);
  return h;
}

// Keys that sort as their numbers, with a shared 8-byte stem when `shared` (so that separators
// need whole-key blocks).
std::string key(std::uint64_t k, bool shared = false) {
  std::string s = std::to_string(k);
  return (shared ? "account:" : "") + std::string(8 - std::min<std::size_t>(8, s.size()), '0') + s;
}
std::string value(std::uint64_t k, int version) { return std::string(k % 30, 'v') + "#" + std::to_string(version); }

// The shared oracle, plus: scans in both directions agree with find.
pobj::testing::crash_test tree_test(const std::string& name, std::vector<op> prefix, std::vector<op> ops) {
  return map_oracle::map_test<tree_type, tree_ref, std::string>(
      name, std::move(prefix), std::move(ops),
      [](pobj::transaction& tx) { return pobj::make_ordered_map<pobj::bytes, pobj::bytes>(tx); },
      [](tree_ref& tree, const map_oracle::model<std::string>& got) {
        std::size_t backwards = 0;
        tree.reverse_scan({}, [&](const std::string& k, const std::string& v) {
          ++backwards;
          pobj::testing::expect(tree.find(k) == v, "the reverse scan and find disagree on '{}'", k);
        });
        pobj::testing::expect(backwards == got.size(), "the reverse scan finds {}, the scan {}", backwards, got.size());
      });
}

std::vector<op> filled(std::uint64_t n, bool shared = false) {
  std::vector<op> v;
  for (std::uint64_t k = 0; k < n; ++k) v.push_back({op::insert, key(k, shared), value(k, 0)});
  return v;
}

pobj::testing::crash_result run_checked(const pobj::testing::crash_test& t) {
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  return result;
}

}  // namespace

TEST_CASE("an ordered_map leaf split that makes a new root is atomic at every fence", "[crash][ordered_map]") {
  // 63 entries fill the root leaf; the 64th insert splits it and puts an inner root above.
  auto t = tree_test("leaf split, new root", filled(63, true), {{op::insert, key(1000, true), value(1000, 0)}});
  t.verify = [verify = t.verify](pobj::pool& p, const pobj::testing::crash_point& pt) {
    verify(p, pt);
    const std::uint64_t h = height(p);
    pobj::testing::expect(pt.ops_completed == 1 ? h == 1 : (h == 0 || (pt.op_in_flight && h == 1)), "height {}", h);
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}

TEST_CASE("an ordered_map insert that splits an inner node is atomic at every fence", "[crash][ordered_map]") {
  // Ascending inserts leave half-full leaves behind and split the last one: with 1985 entries the
  // root has 63 children, and the 1986th insert splits a leaf and then the root (a third level).
  std::vector<op> ops;
  for (std::uint64_t k = 1984; k < 1990; ++k) ops.push_back({op::insert, key(k), value(k, 0)});
  auto t = tree_test("inner split", filled(1984), ops);
  t.setup = [setup = t.setup](pobj::pool& p) {
    setup(p);
    REQUIRE(height(p) == 1);
  };
  t.verify = [verify = t.verify](pobj::pool& p, const pobj::testing::crash_point& pt) {
    verify(p, pt);
    if (pt.ops_completed == 6) pobj::testing::expect(height(p) == 2, "height {} after the inner split", height(p));
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}

TEST_CASE("ordered_map erases that empty a leaf, and replacements, are atomic at every fence", "[crash][ordered_map]") {
  // Shared 8-byte stems: the separators are blocks of their own, freed with the emptied leaf.
  std::vector<op> ops{{op::assign, key(3, true), value(3, 1)},      // the same length: in place
                      {op::assign, key(4, true), "a longer value"},  // a new node
                      {op::insert, key(4, true), "ignored"}};
  for (std::uint64_t k = 31; k < 63; ++k) ops.push_back({op::erase, key(k, true), ""});  // the right leaf
  auto result = run_checked(tree_test("erase to empty", filled(64, true), ops));
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}

TEST_CASE("ordered_map erases that empty a whole subtree, and lower the tree, are atomic at every fence",
          "[crash][ordered_map]") {
  // 1990 ascending keys make a tree of height 2 whose root has two inner children. Erasing the
  // keys from the front empties the left child's leaves one by one; the erase that empties its
  // last leaf removes that leaf and the inner node above it, and the root, left with one child,
  // gives way to it (height 1). The front keys but the last two are erased before the crashes.
  std::uint64_t boundary = 0;  // the first key of the root's second child
  {
    pobj_test::scratch_path path("omap-boundary");
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    auto m = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_ordered_map<pobj::bytes, pobj::bytes>(tx); });
    tree_ref t(p, m);
    for (const op& x : filled(1990)) t.insert(x.key, x.value);
    std::uint64_t root, h, prefix;
    std::memcpy(&root, p.base() + m.offset + 8, 8);
    std::memcpy(&h, p.base() + m.offset + 16, 8);
    REQUIRE(h == 2);
    std::memcpy(&prefix, p.base() + root + 16 + 8, 8);  // entry 1's prefix: its key's first 8 bytes
    std::string k(8, '\0');
    for (std::size_t i = 0; i < 8; ++i) k[i] = static_cast<char>((prefix >> (56 - 8 * i)) & 0xff);
    boundary = std::stoull(k);
  }
  REQUIRE(boundary > 100);
  std::vector<op> prefix = filled(1990), ops;
  for (std::uint64_t k = 0; k + 2 < boundary; ++k) prefix.push_back({op::erase, key(k), ""});
  for (std::uint64_t k = boundary - 2; k < boundary + 2; ++k) ops.push_back({op::erase, key(k), ""});
  auto t = tree_test("erase a subtree, lower the root", prefix, ops);
  t.setup = [setup = t.setup](pobj::pool& p) {
    setup(p);
    REQUIRE(height(p) == 2);
  };
  t.verify = [verify = t.verify](pobj::pool& p, const pobj::testing::crash_point& pt) {
    verify(p, pt);
    const std::uint64_t h = height(p);
    if (pt.ops_completed >= 2) pobj::testing::expect(h == 1, "height {} once the left subtree is gone", h);
    if (pt.ops_completed < 1) pobj::testing::expect(h == 2, "height {} before", h);
  };
  auto result = run_checked(t);
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}

TEST_CASE("a long mixed ordered_map workload survives seeded random crashes", "[crash][ordered_map]") {
  std::mt19937_64 rng(11);
  std::vector<op> ops;
  const char* n = std::getenv("POBJ_CRASH_LONG_OPS");
  const std::size_t count = n != nullptr ? std::strtoull(n, nullptr, 0) : 400;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t k = rng() % 300;
    const bool shared = k % 3 == 0;
    switch (rng() % 5) {
      case 0:
      case 1: ops.push_back({op::insert, key(k, shared), value(k, static_cast<int>(i))}); break;
      case 2: ops.push_back({op::assign, key(k, shared), value(k, static_cast<int>(i))}); break;
      default: ops.push_back({op::erase, key(k, shared), ""}); break;
    }
  }
  auto t = tree_test("mixed", {}, ops);
  t.exhaustive_limit = 0;  // random points (POBJ_CRASH_POINTS of them)
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.fences > 500);
  REQUIRE(result.ok());
}
