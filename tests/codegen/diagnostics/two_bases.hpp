// pobj-gen must reject this with one diagnostic (golden: two_bases.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT a {
  std::int64_t x;
};
struct POBJ_PERSISTENT b {
  std::int64_t y;
};
struct POBJ_PERSISTENT both : a, b {
  std::int64_t z;
};
