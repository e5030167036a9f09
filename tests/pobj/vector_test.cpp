// pobj::vector: push_back with growth, pop_back, set, clear, reserve, bounds, persistence across
// reopening, rollback with the caller's block, and no leak.
#include <stdexcept>

#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>

#include "test_util.hpp"

namespace {

struct point {
  std::int32_t x, y;
  double weight;
};

pobj::vector<point> root_vector(pobj::pool& p) {
  if (pobj::offset_t off = p.root("v"); off != 0) return pobj::vector<point>{off};
  return pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto v = pobj::make_vector<point>(tx);
    p.set_root("v", v.offset);
    return v;
  });
}

}  // namespace

TEST_CASE("vector grows, shrinks and keeps its elements across reopening", "[vector]") {
  pobj_test::scratch_path path("vector");
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    pobj::vector_ref<point> v(p, root_vector(p));
    CHECK(v.empty());
    for (int i = 0; i < 1000; ++i) v.push_back({i, -i, i * 0.5});
    CHECK(v.size() == 1000);
    CHECK(v.capacity() >= 1000);
    v.pop_back();
    v.set(10, {7, 7, 7.0});
    CHECK(v.at(10).x == 7);
    CHECK_THROWS_AS(v.at(999), pobj::error);
    CHECK_THROWS_AS(v.set(999, {}), pobj::error);
    CHECK(p.heap().check().ok());
  }
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  pobj::vector_ref<point> v(p, root_vector(p));
  REQUIRE(v.size() == 999);
  CHECK(v[10].weight == 7.0);
  CHECK(v[998].x == 998);
  int sum = 0;
  for (const point& pt : v) sum += pt.y;
  CHECK(sum == -(998 * 999 / 2) + 10 + 7);  // element 10 was replaced
  v.clear();
  CHECK(v.empty());
  CHECK_THROWS_AS(v.pop_back(), pobj::error);
  v.reserve(5000);
  CHECK(v.capacity() >= 5000);
  CHECK(p.heap().check().ok());
}

TEST_CASE("vector operations join the caller's block and roll back with it", "[vector]") {
  pobj_test::scratch_path path("vector-block");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::vector_ref<point> v(p, root_vector(p));
  v.push_back({1, 1, 1});
  const std::size_t used = p.heap().stats().bytes_used;
  try {
    pobj::run_tx(p, [&](pobj::transaction&) {
      for (int i = 0; i < 100; ++i) v.push_back({i, i, 0});  // grows several times
      throw std::runtime_error("abort");
    });
  } catch (const std::runtime_error&) {
  }
  CHECK(v.size() == 1);
  CHECK(v[0].x == 1);
  CHECK(p.heap().stats().bytes_used == used);  // the grown blocks are gone with the block
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::destroy(tx, root_vector(p));
    p.remove_root("v");
  });
  CHECK(p.heap().check().ok());
}
