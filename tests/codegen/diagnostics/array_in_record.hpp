// pobj-gen must reject this with one diagnostic (golden: array_in_record.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct rgb {
  std::uint8_t channels[3];
};

struct POBJ_PERSISTENT pixel {
  rgb color;
};
