// An incompatible version of evo::item: a field changed type in place.
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>

namespace evo {

struct POBJ_PERSISTENT item {
  std::int64_t id;
  std::int64_t count;
};

}  // namespace evo
