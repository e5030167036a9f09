// The pool's root directory, read: named roots and the list of them. Writing a root is
// failure-atomic and belongs to the transaction layer (tx/roots.cpp).
#include <pobj/pool.hpp>

#include <cstring>

#include <fmt/format.h>

#include "pool/pool_impl.hpp"

namespace pobj {

using namespace detail;

void detail::check_root_name(std::string_view name) {
  if (name.empty() || name.size() > pool::root_name_max || name.find('\0') != std::string_view::npos) {
    throw error(errc::invalid_argument,
                fmt::format("pobj: root names are 1 to {} bytes without NUL; '{}' is not", pool::root_name_max, name));
  }
}

std::string_view detail::entry_name(const root_entry& e) { return {e.name, strnlen(e.name, sizeof(e.name))}; }

offset_t pool::root(std::string_view name) const {
  check_root_name(name);
  lock_guard lock(impl_->roots_mu);
  for (std::uint64_t i = 0; i < impl_->header.root_entries; ++i) {
    const root_entry& e = impl_->roots[i];
    if (e.object != 0 && entry_name(e) == name) return e.object;
  }
  return 0;
}

std::vector<std::pair<std::string, offset_t>> pool::roots() const {
  std::vector<std::pair<std::string, offset_t>> out;
  lock_guard lock(impl_->roots_mu);
  for (std::uint64_t i = 0; i < impl_->header.root_entries; ++i) {
    const root_entry& e = impl_->roots[i];
    if (e.object != 0) out.emplace_back(std::string(entry_name(e)), e.object);
  }
  return out;
}

}  // namespace pobj
