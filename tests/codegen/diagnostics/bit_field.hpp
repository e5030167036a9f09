// pobj-gen must reject this with one diagnostic (golden: bit_field.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT flags {
  std::uint32_t bits : 3;
};
