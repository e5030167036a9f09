// Internal, part of <pobj/object.hpp> (which includes it where it needs it; include that, not
// this): field-wise equality and formatting for generated proxies, and the
// base their proxies share.
//
// Thread safety: as pobj/object.hpp states. Crash consistency: as pobj/object.hpp states.
#pragma once

namespace pobj {

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
  } else if constexpr (std::is_arithmetic_v<F> || std::is_enum_v<F> || std::is_same_v<F, std::string_view>) {
    return a == b;
  } else if constexpr (std::is_same_v<F, std::span<const std::byte>>) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
  } else if constexpr (requires { a.load(); }) {  // an atomic: what it holds now
    return field_equal(a.load(), b.load());
  } else if constexpr (requires { a.offset; }) {
    return a.offset == b.offset;
  } else {  // a value record: field by field, nested records too
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (field_equal(boost::pfr::get<I>(a), boost::pfr::get<I>(b)) && ...);
    }(std::make_index_sequence<boost::pfr::tuple_size_v<F>>{});
  }
}

// Field-wise hashing on the same terms.
template <class F>
std::size_t hash_field(const F& v) noexcept {
  if constexpr (std::is_arithmetic_v<F> || std::is_enum_v<F>) {
    return std::hash<F>{}(v);
  } else if constexpr (requires { v.offset; }) {
    return std::hash<std::uint64_t>{}(v.offset);
  } else {
    std::size_t h = 0;
    boost::pfr::for_each_field(v, [&](const auto& f) { h ^= hash_field(f) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); });
    return h;
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
  } else if constexpr (std::is_same_v<F, std::string_view>) {
    return fmt::format_to(out, "\"{}\"", v);
  } else if constexpr (std::is_same_v<F, std::span<const std::byte>>) {
    out = fmt::format_to(out, "x\"");
    for (std::byte b : v) out = fmt::format_to(out, "{:02x}", static_cast<unsigned>(b));
    return fmt::format_to(out, "\"");
  } else if constexpr (requires { v.offset; }) {
    return v.offset == 0 ? fmt::format_to(out, "null") : fmt::format_to(out, "@{:#x}", v.offset);
  } else if constexpr (requires { v.load(); }) {  // an atomic: what it holds now
    return format_field(out, v.load());
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

// What every generated proxy holds: the pool and the object (after its header).
class proxy_base {
 public:
  proxy_base(pobj::pool& p, void* object) noexcept : pool_(&p), object_(object) {}
  pobj::pool& pool() const noexcept { return *pool_; }
  // Where the last field of the layout this object was made with ends (before the end of the
  // class's if fields were appended since).
  std::uint32_t stored_size() const noexcept { return header_of(object_).size; }

 protected:
  pobj::pool* pool_;
  void* object_;
};

}  // namespace detail

}  // namespace pobj
