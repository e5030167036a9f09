// pobj-gen must reject this with one diagnostic (golden: array_of_records.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct point {
  std::int32_t x, y;
};

struct POBJ_PERSISTENT polygon {
  point corners[4];
};
