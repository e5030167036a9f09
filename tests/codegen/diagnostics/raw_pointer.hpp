// pobj-gen must reject this with one diagnostic (golden: raw_pointer.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>

struct POBJ_PERSISTENT node {
  node* next;
};
