// pobj-gen must reject this with one diagnostic (golden: object_by_value.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT engine {
  std::int64_t power;
};

struct POBJ_PERSISTENT car {
  engine motor;
};
