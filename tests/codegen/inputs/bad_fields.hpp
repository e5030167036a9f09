// Each persistent class below holds one field pobj cannot store; pobj-gen must report every one
// as file:line:col: error with a hint, and write nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pobj/annotate.hpp>
#include <pobj/ref.hpp>

struct volatile_thing {
  int x;
};

struct POBJ_PERSISTENT node {
  std::int64_t value;
};

struct POBJ_PERSISTENT with_pointer {
  node* next;
};

struct POBJ_PERSISTENT with_string {
  std::string name;
};

struct POBJ_PERSISTENT with_vector {
  std::vector<int> items;
};

struct POBJ_PERSISTENT with_virtual {
  std::int64_t value;
  virtual void touch();
};

struct POBJ_PERSISTENT with_ref_to_volatile {
  pobj::ref<volatile_thing> other;
};

struct POBJ_PERSISTENT with_bitfield {
  std::uint32_t flags : 3;
};

struct POBJ_PERSISTENT with_object_by_value {
  node inner;
};

struct POBJ_PERSISTENT with_long_double {
  long double x;
};

struct record_with_pointer {
  int* p;
};

struct POBJ_PERSISTENT with_bad_record {
  record_with_pointer r;
};

struct POBJ_PERSISTENT derived_from_volatile : volatile_thing {
  std::int64_t y;
};
