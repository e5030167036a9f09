// The classes of the object benchmarks (bench/object/object_bench.cpp): a 256-byte object of 32
// 8-byte fields, as in the J-NVM paper's raw-access benchmark, and a list node for dereference.
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/ref.hpp>

namespace objbench {

struct POBJ_PERSISTENT obj256 {
  std::int64_t f0;
  std::int64_t f1;
  std::int64_t f2;
  std::int64_t f3;
  std::int64_t f4;
  std::int64_t f5;
  std::int64_t f6;
  std::int64_t f7;
  std::int64_t f8;
  std::int64_t f9;
  std::int64_t f10;
  std::int64_t f11;
  std::int64_t f12;
  std::int64_t f13;
  std::int64_t f14;
  std::int64_t f15;
  std::int64_t f16;
  std::int64_t f17;
  std::int64_t f18;
  std::int64_t f19;
  std::int64_t f20;
  std::int64_t f21;
  std::int64_t f22;
  std::int64_t f23;
  std::int64_t f24;
  std::int64_t f25;
  std::int64_t f26;
  std::int64_t f27;
  std::int64_t f28;
  std::int64_t f29;
  std::int64_t f30;
  std::int64_t f31;
};
static_assert(sizeof(obj256) == 256);

struct POBJ_PERSISTENT node {
  pobj::ref<node> next;
  std::int64_t value;
};

}  // namespace objbench
