// Schema evolution, version 1 of evo::item (tests/codegen/evolution/evolution_test.sh).
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>

namespace evo {

struct POBJ_PERSISTENT item {
  std::int64_t id;
  std::int32_t count;
};

}  // namespace evo
