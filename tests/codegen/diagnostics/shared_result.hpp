// pobj-gen must reject this with one diagnostic (golden: shared_result.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT tally {
  std::int64_t count;
  POBJ_SHARED const std::int64_t* where() const;
};
