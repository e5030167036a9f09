// Version 2 of evo::item without the POBJ_APPENDED marks: refused while the pool holds objects
// made by version 1 (they are too small for the new fields).
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/string.hpp>

namespace evo {

struct POBJ_PERSISTENT item {
  std::int64_t id;
  std::int32_t count;
  std::int32_t rank = 9;  // in version 1's tail padding
  double weight = 2.5;
  pobj::string note;
};

}  // namespace evo
