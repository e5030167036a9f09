// pobj-gen must reject this with one diagnostic (golden: virtual_destructor.stderr): a virtual
// destructor gives the class a vtable, whose pointer would be stored in the pool.
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>
#include <pobj/string.hpp>

struct POBJ_PERSISTENT item {
  pobj::string title;
  virtual ~item() = default;
};
