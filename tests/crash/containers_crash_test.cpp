// Destroying containers larger than one block frees (pobj/src/types/containers.cpp), under the crash
// simulator at every fence: the destroying block lists the container in a reclamation batch, and
// the steps after it free the listed blocks. Whatever the crash point, the recovered pool holds
// each container whole or not at all, reclaim() then frees what a crash left listed, and the heap
// check finds no leak and no dangling reference (a block freed twice or freed while reachable).
#include <string>

#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>
#include <pobj/testing/crash_harness.hpp>

namespace {

using inner_map = pobj::ordered_map<std::uint64_t, pobj::bytes>;
using outer_map = pobj::hash_map<std::uint64_t, inner_map>;

std::string value_for(std::uint64_t k) { return std::string(10 + k % 30, static_cast<char>('a' + k % 26)); }

inner_map filled(pobj::pool& p, std::uint64_t n) {
  auto m = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx); });
  auto h = pobj::handle(p, m);
  for (std::uint64_t k = 0; k < n; ++k) h.insert(k, value_for(k));
  return m;
}

// The entries of a tree if it is whole, or a message.
void expect_whole(pobj::pool& p, inner_map m, std::uint64_t n, const char* what) {
  std::uint64_t seen = 0;
  pobj::handle(p, m).for_each([&](std::uint64_t k, const std::string& v) {
    pobj::testing::expect(k == seen && v == value_for(k), "{}: entry {} is wrong", what, seen);
    ++seen;
  });
  pobj::testing::expect(seen == n, "{}: {} entries of {}", what, seen, n);
}

constexpr std::uint64_t nested_entries = 150, root_entries = 120;

}  // namespace

TEST_CASE("destroying large containers, and reclaiming them, is atomic at every fence", "[crash][containers]") {
  pobj::testing::crash_test t;
  t.name = "destroy large containers";
  t.options.size = 16 * pobj::MiB;
  t.options.lanes = 2;
  t.options.lane_log_size = 8 * pobj::KiB;  // a reclamation step frees 42 blocks: several steps each
  t.setup = [](pobj::pool& p) {
    auto outer = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_hash_map<std::uint64_t, inner_map>(tx); });
    p.set_root("outer", outer.offset);
    auto o = pobj::handle(p, outer);
    o.insert(1, filled(p, nested_entries));
    o.insert(2, filled(p, 3));
    p.set_root("tree", filled(p, root_entries).offset);
  };
  t.workload = [](pobj::testing::crash_context& ctx) {
    pobj::pool& p = ctx.pool();
    auto o = pobj::handle(p, outer_map{p.root("outer")});
    ctx.begin_op();
    o.erase(1);  // a value of a map: the erase's block lists it
    ctx.end_op();
    ctx.begin_op();
    pobj::run_tx(p, [&](pobj::transaction& tx) {  // a root, destroyed in the caller's block
      pobj::destroy(tx, inner_map{p.root("tree")});
      p.remove_root("tree");
    });
    ctx.end_op();
  };
  t.verify = [](pobj::pool& p, const pobj::testing::crash_point& pt) {
    auto o = pobj::handle(p, outer_map{p.root("outer")});
    const auto nested = o.find(1);
    // Done means gone; not begun means whole; in flight, either.
    if (pt.ops_completed >= 1) pobj::testing::expect(!nested, "the erased container is still there");
    if (pt.ops_completed == 0 && !pt.op_in_flight) pobj::testing::expect(nested.has_value(), "the container is gone");
    if (nested) expect_whole(p, *nested, nested_entries, "nested");
    expect_whole(p, *o.find(2), 3, "untouched");
    const pobj::offset_t tree = p.root("tree");
    if (pt.ops_completed >= 2) pobj::testing::expect(tree == 0, "the destroyed root is still there");
    if (pt.ops_completed < 1 || (pt.ops_completed == 1 && !pt.op_in_flight)) {
      pobj::testing::expect(tree != 0, "the root is gone");
    }
    if (tree != 0) expect_whole(p, inner_map{tree}, root_entries, "root");
    // What a crash left listed is freed now; the harness's heap check then finds no leak.
    pobj::reclaim(p);
    pobj::testing::expect(pobj::reclaim_pending(p) == 0, "{} blocks still listed", pobj::reclaim_pending(p));
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.points == result.fences);
  CHECK(result.fences > 10);  // several reclamation steps per destroy
  REQUIRE(result.ok());
}
