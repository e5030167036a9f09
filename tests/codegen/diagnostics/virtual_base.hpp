// pobj-gen must reject this with one diagnostic (golden: virtual_base.stderr): a virtual base
// class gives the class a vtable pointer (and a layout the compiler chooses).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT item {
  std::uint64_t id;
};

struct POBJ_PERSISTENT dvd : virtual item {
  std::uint64_t minutes;
};
