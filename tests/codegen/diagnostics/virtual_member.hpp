// pobj-gen must reject this with one diagnostic (golden: virtual_member.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT animal {
  std::int64_t legs;
  virtual void speak();
};
