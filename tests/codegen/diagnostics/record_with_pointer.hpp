// pobj-gen must reject this with one diagnostic (golden: record_with_pointer.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct span_of_ints {
  int* data;
  std::uint64_t size;
};

struct POBJ_PERSISTENT holder {
  span_of_ints items;
};
