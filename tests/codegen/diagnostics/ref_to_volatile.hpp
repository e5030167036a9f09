// pobj-gen must reject this with one diagnostic (golden: ref_to_volatile.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>
#include <pobj/ref.hpp>

struct session {
  int fd;
};

struct POBJ_PERSISTENT user {
  pobj::ref<session> current;
};
