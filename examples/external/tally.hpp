// A user-defined shared object built outside the pobj tree: a library pobj-kv loads with
// --objects-library, whose POBJ_SHARED methods clients call with OBJ.CALL.
#pragma once

#include <cstdint>
#include <string_view>

#include <pobj/annotate.hpp>
#include <pobj/string.hpp>

namespace shop {

struct POBJ_PERSISTENT tally {
  std::int64_t total;
  std::int64_t count;
  pobj::string last;

  // Adds `cents` for `item`; returns the total.
  POBJ_SHARED std::int64_t add(std::string_view item, std::int64_t cents);
  POBJ_SHARED double mean() const;
};

}  // namespace shop
