// A valid input: single inheritance between persistent classes, and persistent methods.
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/ref.hpp>
#include <pobj/string.hpp>

namespace shapes {

struct POBJ_PERSISTENT shape {
  std::int32_t x, y;
  pobj::string label;
  pobj::ref<shape> next;

  POBJ_FAILURE_ATOMIC void move_by(std::int32_t dx, std::int32_t dy);
};

struct POBJ_PERSISTENT circle : shape {
  double radius;
};

struct POBJ_PERSISTENT rectangle : shape {
  double width, height;
};

struct POBJ_PERSISTENT square : rectangle {
  std::uint8_t rotated;

  POBJ_FAILURE_ATOMIC void grow(double by);
};

struct POBJ_PERSISTENT drawing {
  pobj::ref<shape> layers[4];  // arrays of references
  std::int32_t depth[4];
};

}  // namespace shapes
