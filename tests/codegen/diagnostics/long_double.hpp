// pobj-gen must reject this with one diagnostic (golden: long_double.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT sample {
  long double value;
};
