// pobj-gen must reject this with one diagnostic (golden: shared_overload.stderr).
#pragma once

#include <cstdint>
#include <string_view>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT tally {
  std::int64_t count;
  POBJ_SHARED std::int64_t add(std::int64_t n);
  POBJ_SHARED std::int64_t add(std::string_view n);
};
