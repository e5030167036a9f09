// pobj-gen must reject this with one diagnostic (golden: over_aligned.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT alignas(64) line {
  std::int64_t words[8];
};
