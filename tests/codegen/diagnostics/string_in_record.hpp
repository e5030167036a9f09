// pobj-gen must reject this with one diagnostic (golden: string_in_record.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>
#include <pobj/string.hpp>

struct address {
  pobj::string street;
};

struct POBJ_PERSISTENT customer {
  address home;
};
