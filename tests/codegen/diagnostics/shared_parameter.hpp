// pobj-gen must reject this with one diagnostic (golden: shared_parameter.stderr).
#pragma once

#include <cstdint>
#include <vector>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT tally {
  std::int64_t count;
  POBJ_SHARED std::int64_t add_all(const std::vector<std::int64_t>& values);
};
