// A valid input: containers as fields of a persistent class, one of them holding containers.
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/containers.hpp>
#include <pobj/string.hpp>

namespace library {

struct POBJ_PERSISTENT catalog {
  std::uint64_t version;
  pobj::hash_map<pobj::string, pobj::bytes> by_isbn;
  pobj::ordered_map<std::int64_t, pobj::string> by_year;
  pobj::set<pobj::string> tags;
  pobj::queue<std::uint64_t> requests;
  pobj::vector<std::uint32_t> counts;
  // Each shelf's books by position: maps the catalog owns through this map.
  pobj::hash_map<pobj::string, pobj::ordered_map<std::uint64_t, pobj::string>> shelves;
};

}  // namespace library
