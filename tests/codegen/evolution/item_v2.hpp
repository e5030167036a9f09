// Schema evolution, version 2 of evo::item: fields appended at the end (an additive change), marked
// so that objects made by version 1 read their defaults.
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/string.hpp>

namespace evo {

struct POBJ_PERSISTENT item {
  std::int64_t id;
  std::int32_t count;
  POBJ_APPENDED std::int32_t rank = 9;  // in version 1's tail padding
  POBJ_APPENDED double weight = 2.5;  // what objects made by version 1 read
  POBJ_APPENDED pobj::string note;
};

}  // namespace evo
