// A valid input: references kept in containers, the way a user's catalogue keeps its books: as
// map values and keys, tree values, queue items (inline and in nodes), vector elements, records
// in maps, and an array field. The heap's check must follow every one of them.
#pragma once

#include <array>
#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/containers.hpp>
#include <pobj/record.hpp>
#include <pobj/ref.hpp>
#include <pobj/string.hpp>

namespace catalogue {

struct POBJ_PERSISTENT book {
  pobj::string title;
  std::uint64_t year;
};

// A plain struct with a reference in it, stored by value in containers (not a value record:
// those refuse references in persistent classes; as container values they are traced).
struct loan {
  pobj::ref<book> item;
  std::uint64_t due;
};
struct note {
  std::uint64_t day;
  std::uint64_t page;
};

struct POBJ_PERSISTENT shelves {
  pobj::hash_map<std::uint64_t, pobj::ref<book>> by_isbn;
  pobj::hash_map<pobj::ref<book>, std::uint64_t> copies;
  pobj::ordered_map<std::int64_t, pobj::ref<book>> by_year;
  pobj::ordered_map<std::int64_t, loan> loans;
  pobj::queue<pobj::ref<book>> to_shelve;
  pobj::queue<loan> returns;
  pobj::vector<pobj::ref<book>> display;
  pobj::hash_map<std::uint64_t, std::array<pobj::ref<book>, 2>> pairs;
  pobj::hash_map<pobj::string, pobj::record<note>> notes;
  pobj::ref<book> featured[2];
};

}  // namespace catalogue
