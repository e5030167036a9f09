// The registry of shared classes (pobj/shared.hpp) and the argument parsing their generated
// methods share.
#include <pobj/shared.hpp>

#include <algorithm>
#include <cctype>
#include <limits>
#include <memory>
#include <mutex>

#include <fmt/format.h>

namespace pobj {

namespace {

struct registry {
  std::mutex mu;
  std::vector<const shared_class*> classes;
};

registry& the_registry() {
  static registry* r = new registry;  // never destroyed: lookups may run during exit
  return *r;
}

}  // namespace

namespace detail {

bool register_shared_class(const shared_class& c) noexcept {
  registry& r = the_registry();
  std::lock_guard lock(r.mu);
  const bool known = std::any_of(r.classes.begin(), r.classes.end(),
                                 [&](const shared_class* x) { return x->info->class_id == c.info->class_id; });
  if (!known) r.classes.push_back(&c);
  return true;
}

}  // namespace detail

const shared_class* find_shared_class(std::string_view qualified_name) noexcept {
  registry& r = the_registry();
  std::lock_guard lock(r.mu);
  for (const shared_class* c : r.classes) {
    if (qualified_name == c->info->name) return c;
  }
  return nullptr;
}

const shared_class* find_shared_class(std::uint64_t class_id) noexcept {
  registry& r = the_registry();
  std::lock_guard lock(r.mu);
  for (const shared_class* c : r.classes) {
    if (c->info->class_id == class_id) return c;
  }
  return nullptr;
}

const shared_class* shared_base(const shared_class& c) noexcept {
  return c.info->base_id != 0 ? find_shared_class(c.info->base_id) : nullptr;
}

const shared_method* find_shared_method(const shared_class& c, std::string_view name) noexcept {
  // A chain of single inheritance within one header: a few links at most.
  for (const shared_class* k = &c; k != nullptr; k = shared_base(*k)) {
    for (const shared_method& m : k->methods) {
      if (name == m.name) return &m;
    }
  }
  return nullptr;
}

std::vector<const shared_class*> shared_classes() {
  registry& r = the_registry();
  std::lock_guard lock(r.mu);
  return r.classes;
}

void shared_call::set_unsigned(std::uint64_t v) {
  if (v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    result_ = static_cast<std::int64_t>(v);
  } else {
    result_ = std::to_string(v);
  }
}

bool shared_call::parse_bool(std::string_view s, bool& out) const noexcept {
  std::string l(s.size(), '\0');
  std::transform(s.begin(), s.end(), l.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (l == "1" || l == "true") {
    out = true;
    return true;
  }
  if (l == "0" || l == "false") {
    out = false;
    return true;
  }
  return false;
}

void shared_call::bad_argument(std::size_t i, const char* name, std::string_view wanted) const {
  throw shared_argument_error(fmt::format("argument {} ('{}') of {}: '{}' is not {}", i + 1, name, method_,
                                          args_[i].substr(0, 64), wanted));
}

}  // namespace pobj
