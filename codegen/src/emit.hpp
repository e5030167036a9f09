// pobj-gen's emitters: the generated header for a set of persistent classes (model.hpp):
// layouts with static_asserts, class descriptions, proxies, builders, shared-method tables.
#pragma once

#include <string>
#include <vector>

#include "model.hpp"

namespace pobj_gen {

// The whole generated header; `include` is the input header's file name, which it includes.
std::string generate(const std::vector<persistent_class>& classes, const std::string& include);

}  // namespace pobj_gen
