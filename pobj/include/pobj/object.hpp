// pobj/object: what the classes pobj-gen generates build on: traits, dereference, construction,
// and the durable store behind a proxy's setters.
//
// For a class T marked POBJ_PERSISTENT, pobj-gen emits persistent_traits<T> and a proxy: two
// words (the pool and the object's address) made when a reference is dereferenced, never
// allocated. Getters read the mapped object directly. A setter of a field of 1, 2, 4 or 8
// naturally aligned bytes is one durable store outside a block (and joins the block when one is
// open on the thread); setters of larger fields take the transaction, so a store that could not be
// made durable on its own does not compile.
//
// Thread safety: proxies are values; concurrent access to one object needs the caller's locks,
// except that single-store setters on different fields never lose each other's stores.
// Crash consistency: a single-store setter is durable when it returns; like pool::durable_store,
// another thread may read the new value before it is persistent, so values other threads act on
// need the caller's lock held across the call. Setters that take a transaction are part of its
// block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string_view>
#include <type_traits>

#include <boost/pfr.hpp>
#include <fmt/format.h>

#include <pobj/pool.hpp>
#include <pobj/ref.hpp>
#include <pobj/transaction.hpp>

namespace pobj {

// Specialized by pobj-gen for each persistent class: class_id, schema_hash, size, proxy.
template <class T>
struct persistent_traits;

template <class T>
concept persistent = requires { typename persistent_traits<T>::proxy; };

template <persistent T>
using proxy = typename persistent_traits<T>::proxy;

// The proxy of the object `r` names. REQUIRES: r is not null and names a T in p.
template <persistent T>
proxy<T> deref(pool& p, ref<T> r) noexcept {
  return proxy<T>(p, p.at<T>(r.offset));
}

// A new T allocated in the block, value-initialized or a copy of `init` (all fields at once):
// it exists only if the block commits. Written in place, never logged.
template <persistent T>
proxy<T> make(transaction& tx, const T& init = T{}) {
  allocation a = tx.alloc(sizeof(T));
  return proxy<T>(tx.get_pool(), ::new (a.pointer) T(init));
}

namespace detail {

// Field-wise equality and formatting for generated proxies: scalars and enums by value, arrays
// element by element, references by offset, value records field by field (Boost.PFR).
template <class F>
bool field_equal(const F& a, const F& b) noexcept {
  if constexpr (std::is_array_v<F>) {
    for (std::size_t i = 0; i < std::extent_v<F>; ++i) {
      if (!field_equal(a[i], b[i])) return false;
    }
    return true;
  } else if constexpr (std::is_arithmetic_v<F> || std::is_enum_v<F>) {
    return a == b;
  } else if constexpr (requires { a.offset; }) {
    return a.offset == b.offset;
  } else {
    return boost::pfr::eq_fields(a, b);
  }
}

template <class Out, class F>
Out format_field(Out out, const F& v) {
  if constexpr (std::is_array_v<F> && std::is_same_v<std::remove_extent_t<F>, char>) {
    std::size_t n = 0;
    while (n < std::extent_v<F> && v[n] != '\0') ++n;
    return fmt::format_to(out, "\"{}\"", std::string_view(v, n));
  } else if constexpr (std::is_array_v<F>) {
    out = fmt::format_to(out, "[");
    for (std::size_t i = 0; i < std::extent_v<F>; ++i) {
      if (i > 0) out = fmt::format_to(out, ", ");
      out = format_field(out, v[i]);
    }
    return fmt::format_to(out, "]");
  } else if constexpr (std::is_enum_v<F>) {
    return fmt::format_to(out, "{}", static_cast<std::underlying_type_t<F>>(v));
  } else if constexpr (std::is_arithmetic_v<F>) {
    return fmt::format_to(out, "{}", v);
  } else if constexpr (requires { v.offset; }) {
    return v.offset == 0 ? fmt::format_to(out, "null") : fmt::format_to(out, "@{:#x}", v.offset);
  } else {
    out = fmt::format_to(out, "{{");
    bool first = true;
    boost::pfr::for_each_field(v, [&](const auto& f) {
      if (!first) out = fmt::format_to(out, ", ");
      out = format_field(out, f);
      first = false;
    });
    return fmt::format_to(out, "}}");
  }
}

template <class F>
void store_field(pool& p, F& field, const F& value) {
  static_assert(std::is_trivially_copyable_v<F> && (sizeof(F) == 1 || sizeof(F) == 2 || sizeof(F) == 4 || sizeof(F) == 8),
                "a single durable store holds 1, 2, 4 or 8 bytes");
  p.durable_store(&field, &value, sizeof(F));
}
}  // namespace detail

}  // namespace pobj
