// pobj-gen must reject this with one diagnostic (golden: container_in_record.stderr).
#pragma once

#include <cstdint>
#include <pobj/annotate.hpp>
#include <pobj/hash_map.hpp>

struct totals {
  std::uint64_t count;
  pobj::hash_map<std::uint64_t, std::uint64_t> by_day;
};

struct POBJ_PERSISTENT ledger {
  totals all;
};
