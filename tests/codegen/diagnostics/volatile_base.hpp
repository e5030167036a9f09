// pobj-gen must reject this with one diagnostic (golden: volatile_base.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct counter {
  int n;
};

struct POBJ_PERSISTENT tally : counter {
  std::int64_t total;
};
