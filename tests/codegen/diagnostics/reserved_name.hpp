// pobj-gen must reject this with one diagnostic (golden: reserved_name.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT swimming {
  std::int64_t pool;
};
