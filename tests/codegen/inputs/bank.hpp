// A valid input: the classes of the bank example (issue 3 will grow this into examples/bank).
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/ref.hpp>

namespace bank {

enum class kind : std::uint8_t { checking, savings };

struct money {  // a value record, stored whole
  std::int64_t cents;
  std::uint32_t currency;
};

struct POBJ_PERSISTENT branch {
  std::int64_t balance;
  char name[24];
};

struct POBJ_PERSISTENT account {
  std::int64_t balance;
  kind type;
  bool frozen;
  pobj::ref<branch> home;
  pobj::ref<account> next;  // self-references are fine
  money limit;
  double rate;
};

}  // namespace bank
