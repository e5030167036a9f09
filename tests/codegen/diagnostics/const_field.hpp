// pobj-gen must reject this with one diagnostic (golden: const_field.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT config {
  const std::int64_t version;
};
