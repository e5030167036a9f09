// pobj-gen must reject this with one diagnostic (golden: static_method.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT registry {
  std::int64_t count;
  POBJ_METHOD static registry* instance();
};
