// What the containers share (pobj/src/types/containers.cpp): destroying them whatever their size. A
// container too large for one block's log is listed in a reclamation batch and freed a step at a
// time once the destroying block commits; a crash in between leaves the rest to reclaim()
// (tests/crash/containers_crash_test.cpp crashes it at every fence).
#include <string>

#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>

#include "test_util.hpp"

namespace {

using inner_map = pobj::ordered_map<std::uint64_t, pobj::bytes>;
using outer_map = pobj::hash_map<std::uint64_t, inner_map>;

std::string value_for(std::uint64_t k) { return std::string(20 + k % 50, static_cast<char>('a' + k % 26)); }

// More blocks than one block's log could free: the destroying block must not need a free record
// for each (before reclamation batches, this threw errc::transaction_too_large).
constexpr std::uint64_t many = 4000;

}  // namespace

TEST_CASE("destroying a container too large for one block's log frees all of it", "[containers][regression]") {
  pobj_test::scratch_path path("destroy-large");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  const std::size_t used_before = p.heap().stats().bytes_used;

  auto hash = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_hash_map<std::uint64_t, pobj::bytes>(tx); });
  auto tree = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx); });
  auto fifo = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_queue<pobj::bytes>(tx); });
  p.set_root("hash", hash.offset);
  p.set_root("tree", tree.offset);
  p.set_root("fifo", fifo.offset);
  {
    auto h = pobj::handle(p, hash);
    auto t = pobj::handle(p, tree);
    auto q = pobj::handle(p, fifo);
    for (std::uint64_t k = 0; k < many; ++k) {
      h.insert(k, value_for(k));
      t.insert(k, value_for(k));
      q.push(value_for(k));
    }
  }
  const std::uint64_t drains = pobj::media::thread_counters().drains;
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::destroy(tx, hash);
    pobj::destroy(tx, tree);
    pobj::destroy(tx, fifo);
    p.remove_root("hash");
    p.remove_root("tree");
    p.remove_root("fifo");
  });
  // Everything is free when the block's scope has ended, in a few dozen blocks, not ~12,000.
  CHECK(pobj::media::thread_counters().drains - drains < 300);
  CHECK(pobj::reclaim_pending(p) == 0);
  CHECK(p.heap().stats().bytes_used == used_before);
  CHECK(p.roots().empty());
  CHECK(p.heap().check().ok());
  // A handle on a destroyed container is refused (its header is freed first).
  CHECK_THROWS_AS(pobj::handle(p, hash), pobj::error);
  CHECK_THROWS_AS(pobj::handle(p, tree), pobj::error);
}

TEST_CASE("erasing a key whose value is a large container frees the container", "[containers]") {
  pobj_test::scratch_path path("erase-large");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto outer = pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto m = pobj::make_hash_map<std::uint64_t, inner_map>(tx);
    p.set_root("outer", m.offset);
    return m;
  });
  auto o = pobj::handle(p, outer);
  auto make_inner = [&](std::uint64_t n) {
    auto inner = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx); });
    auto i = pobj::handle(p, inner);
    for (std::uint64_t k = 0; k < n; ++k) i.insert(k, value_for(k));
    return inner;
  };
  const std::size_t used_empty = p.heap().stats().bytes_used;
  REQUIRE(o.insert(1, make_inner(many)));
  REQUIRE(o.insert(2, make_inner(3)));
  CHECK(o.erase(1));  // one map operation: its block lists the container; then it is freed
  CHECK(pobj::reclaim_pending(p) == 0);
  CHECK(pobj::handle(p, *o.find(2)).size() == 3);
  CHECK(p.heap().check().ok());
  REQUIRE(o.insert_or_assign(2, make_inner(many)) == false);  // replacing destroys the old value
  CHECK(pobj::handle(p, *o.find(2)).size() == many);
  CHECK(o.erase(2));
  CHECK(p.heap().check().ok());
  CHECK(p.heap().stats().bytes_used == used_empty);
}

TEST_CASE("a destroying block that rolls back leaves the container whole", "[containers]") {
  pobj_test::scratch_path path("destroy-abort");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto tree = pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto m = pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx);
    p.set_root("tree", m.offset);
    return m;
  });
  auto t = pobj::handle(p, tree);
  for (std::uint64_t k = 0; k < many; ++k) t.insert(k, value_for(k));
  const std::size_t used = p.heap().stats().bytes_used;
  CHECK_THROWS_AS(pobj::run_tx(p,
                               [&](pobj::transaction& tx) {
                                 pobj::destroy(tx, tree);
                                 p.remove_root("tree");
                                 throw std::runtime_error("changed my mind");
                               }),
                  std::runtime_error);
  CHECK(p.root("tree") == tree.offset);
  CHECK(t.size() == many);
  CHECK(*t.find(many - 1) == value_for(many - 1));
  CHECK(pobj::reclaim_pending(p) == 0);
  CHECK(p.heap().stats().bytes_used == used);
  CHECK(p.heap().check().ok());
}

TEST_CASE("reclaim() refuses to run inside a block and has nothing to do on a clean pool", "[containers]") {
  pobj_test::scratch_path path("reclaim-idle");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  CHECK(pobj::reclaim(p) == 0);
  CHECK(pobj::reclaim_pending(p) == 0);
  CHECK_THROWS_AS(pobj::run_tx(p, [&](pobj::transaction&) { pobj::reclaim(p); }), pobj::error);
}

TEST_CASE("a container made in a block can be used and destroyed in that block", "[containers][regression]") {
  pobj_test::scratch_path path("fresh-container");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  const std::size_t used = p.heap().stats().bytes_used;
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto fresh = pobj::make_hash_map<std::uint64_t, pobj::bytes>(tx);
    auto m = pobj::handle(p, fresh);  // its header is not allocated until the block commits
    for (std::uint64_t k = 0; k < 100; ++k) m.insert(tx, k, value_for(k));
    CHECK(m.size() == 100);
    auto kept = pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx);
    pobj::handle(p, kept).insert(tx, 1, "one");
    p.set_root("kept", kept.offset);
    pobj::destroy(tx, fresh);  // made and destroyed in one block: nothing remains
  });
  CHECK(pobj::handle(p, pobj::ordered_map<std::uint64_t, pobj::bytes>{p.root("kept")}).find(1) == "one");
  CHECK(p.heap().check().ok());
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::destroy(tx, pobj::ordered_map<std::uint64_t, pobj::bytes>{p.root("kept")});
    p.remove_root("kept");
  });
  CHECK(p.heap().stats().bytes_used == used);
}
