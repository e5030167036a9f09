// pobj::string as an object of its own (a named root): made in a block, read in place after
// reopening, refused where the offset is no string block, freed without a leak.
#include <string>

#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>

#include "test_util.hpp"

TEST_CASE("a string object can be a named root", "[string]") {
  pobj_test::scratch_path path("string-root");
  const std::string long_value(5000, 'x'), binary("a\0b", 3);
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      p.set_root("greeting", pobj::make_string_object(tx, "hi"));  // short: still a block of its own
      p.set_root("long", pobj::make_string_object(tx, long_value));
      p.set_root("binary", pobj::make_string_object(tx, binary));
      p.set_root("empty", pobj::make_string_object(tx, ""));
    });
  }
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  CHECK(pobj::read_string_object(p, p.root("greeting")) == "hi");
  CHECK(pobj::read_string_object(p, p.root("long")) == long_value);
  CHECK(pobj::read_string_object(p, p.root("binary")) == binary);
  CHECK(pobj::read_string_object(p, p.root("empty")).empty());
  CHECK(p.heap().check().ok());
  // Anything else is refused: no offset, the middle of a block, a block of another type.
  CHECK_THROWS_AS(pobj::read_string_object(p, 0), pobj::error);
  CHECK_THROWS_AS(pobj::read_string_object(p, p.root("long") + 8), pobj::error);
  const pobj::offset_t other = pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto m = pobj::make_hash_map<std::uint64_t, std::uint64_t>(tx);
    p.set_root("map", m.offset);
    return m.offset;
  });
  CHECK_THROWS_AS(pobj::read_string_object(p, other), pobj::error);
  const std::size_t used = p.heap().stats().bytes_used;
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    tx.free(p.root("long"));
    p.remove_root("long");
  });
  CHECK(p.heap().stats().bytes_used < used - 5000);
  CHECK(p.heap().check().ok());
}
