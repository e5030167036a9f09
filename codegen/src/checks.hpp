// pobj-gen's checks: which C++ types a persistent field (or a value record, or a shared
// method's parameter) may have, and, for the rest, the reason and a hint the diagnostic gives.
#pragma once

#include <clang-c/Index.h>

#include <string>
#include <utility>

#include "model.hpp"

namespace pobj_gen {

struct field_kind {
  kind k = kind::value;
  std::string target;
};

using why_not = std::pair<std::string, std::string>;  // reason and hint; empty if storable

// Why a type cannot be stored in a persistent field (or, with in_record, in a value record), with
// a hint; empty if it can, and then `out` says what kind of field it is.
why_not unsupported(CXType t, field_kind* out, bool in_record);

// What a shared method's parameter (or, with result, its result) arrives or leaves as: the type
// the generated code parses the text into, or empty if the type cannot be one.
std::string shared_type(CXType t, bool result);

}  // namespace pobj_gen
