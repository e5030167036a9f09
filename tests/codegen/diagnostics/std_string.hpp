// pobj-gen must reject this with one diagnostic (golden: std_string.stderr).
#pragma once

#include <cstdint>
#include <string>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT person {
  std::string name;
};
