// A persistent class, built outside the pobj tree against the installed pobj (meson and CMake).
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/ref.hpp>

namespace shop {

struct POBJ_PERSISTENT order {
  std::int64_t cents;
  std::uint32_t quantity;
  pobj::ref<order> previous;
};

}  // namespace shop
