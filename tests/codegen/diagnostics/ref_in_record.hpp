// pobj-gen must reject this with one diagnostic (golden: ref_in_record.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>
#include <pobj/ref.hpp>

struct POBJ_PERSISTENT person {
  std::int64_t id;
};

struct pair_of_people {
  pobj::ref<person> first, second;
};

struct POBJ_PERSISTENT meeting {
  pair_of_people attendees;
};
