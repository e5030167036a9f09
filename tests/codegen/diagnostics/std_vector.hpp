// pobj-gen must reject this with one diagnostic (golden: std_vector.stderr).
#pragma once

#include <cstdint>
#include <vector>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT bag {
  std::vector<int> items;
};
