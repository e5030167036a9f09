// pobj/codec: how the containers store keys and values as bytes (internal; used by hash_map.hpp,
// ordered_map.hpp and queue.hpp).
//
// value_codec<T>: a trivially copyable T is stored as its bytes; pobj::bytes and pobj::string as
// byte strings of any length (in as std::string_view, out as std::string).
// ordered_codec<K>: keys whose byte order (memcmp) is their order: integers and enums big-endian
// with the sign bit flipped for signed types, floating point numbers by the usual bit transform
// (negative numbers inverted), byte strings as they are.
//
// Thread safety: pure functions of their arguments; safe from any thread.
// Crash consistency: not applicable (no state). The encodings are part of the containers'
// on-media format: changing one changes the format (docs/format/pool.md).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include <pobj/string.hpp>

namespace pobj {

class transaction;

// The containers' storage types (their headers define them).
template <class K, class V>
struct hash_map;
template <class K, class V>
struct ordered_map;
template <class K>
struct set;
template <class T>
struct queue;
template <class T>
  requires std::is_trivially_copyable_v<T>
struct vector;

}  // namespace pobj

namespace pobj::detail {

}  // namespace pobj::detail

namespace pobj {

// An object of any persistent class (pobj/object.hpp), held by the container it is a value of:
// hash_map<K, owned_object> owns its objects as an owning map owns containers. The heap's check
// traces each one through the map; erasing or replacing the entry destroys the object, with the
// strings and containers it owns. `offset` is the object's block (ref<T>::offset).
struct owned_object {
  std::uint64_t offset = 0;
};

}  // namespace pobj

namespace pobj::detail {

// Container storage: an owned reference to the container's header block (or an object's).
template <class T>
inline constexpr bool is_container = false;
template <>
inline constexpr bool is_container<owned_object> = true;
template <class K, class V>
inline constexpr bool is_container<hash_map<K, V>> = true;
template <class K, class V>
inline constexpr bool is_container<ordered_map<K, V>> = true;
template <class K>
inline constexpr bool is_container<set<K>> = true;
template <class T>
inline constexpr bool is_container<queue<T>> = true;
template <class T>
inline constexpr bool is_container<vector<T>> = true;

// Frees a container (found by its header's heap type) and all it holds, in the block.
void destroy_container(transaction& tx, std::uint64_t header);
// Sets an owning field to another container (or none), destroying the one it held, in the block.
void replace_container(transaction& tx, std::uint64_t& field, std::uint64_t header);

template <class T>
inline constexpr bool is_byte_string = std::is_same_v<T, pobj::bytes> || std::is_same_v<T, pobj::string>;

// A set's value: nothing.
struct no_value;

// Whether a key or value stored as bytes may hold a reference into the pool (pobj::ref,
// pobj::record, or a struct or array with one), which the heap's check must then follow: the
// containers give such entries a heap type whose tracer reads their bytes as possible references
// (heap_type::map_node_refs). Numbers, enums, byte strings and owned containers hold none; any
// other class type may (the check cannot see its members).
template <class T>
inline constexpr bool may_hold_refs =
    !(std::is_arithmetic_v<T> || std::is_enum_v<T> || std::is_null_pointer_v<T> || is_byte_string<T> ||
      std::is_same_v<T, no_value> || is_container<T>);
template <class T, std::size_t N>
inline constexpr bool may_hold_refs<std::array<T, N>> = may_hold_refs<T>;
template <class T, std::size_t N>
inline constexpr bool may_hold_refs<T[N]> = may_hold_refs<T>;

template <class T>
struct value_codec {
  static_assert(std::is_trivially_copyable_v<T>, "container keys and values are trivially copyable, or pobj::bytes");
  using in = const T&;
  using out = T;
  static std::string_view encode(const T& v) noexcept { return {reinterpret_cast<const char*>(&v), sizeof(T)}; }
  static T decode(std::string_view s) noexcept {
    T v{};
    std::memcpy(&v, s.data(), std::min(s.size(), sizeof(T)));
    return v;
  }
};

template <class T>
  requires is_byte_string<T>
struct value_codec<T> {
  using in = std::string_view;
  using out = std::string;
  static std::string_view encode(std::string_view v) noexcept { return v; }
  static std::string decode(std::string_view s) { return std::string(s); }
};

// A set's value: nothing.
struct no_value {
  friend constexpr bool operator==(no_value, no_value) noexcept { return true; }
};
template <>
struct value_codec<no_value> {
  using in = no_value;
  using out = no_value;
  static std::string_view encode(no_value) noexcept { return {}; }
  static no_value decode(std::string_view) noexcept { return {}; }
};

template <class T>
inline constexpr bool is_ordered_scalar = std::is_integral_v<T> || std::is_enum_v<T> || std::is_floating_point_v<T>;

template <class T>
constexpr bool is_signed_key() noexcept {
  if constexpr (std::is_enum_v<T>) {
    return std::is_signed_v<std::underlying_type_t<T>>;
  } else {
    return std::is_signed_v<T>;
  }
}

template <class T>
struct ordered_codec {
  static_assert(is_ordered_scalar<T> || is_byte_string<T>,
                "ordered_map keys are integers, enums, floating point numbers, or pobj::string / pobj::bytes");
};

// Fixed-size encoded key (a temporary that lives to the end of the full expression).
template <std::size_t N>
struct encoded_key {
  std::array<char, N> bytes;
  operator std::string_view() const noexcept { return {bytes.data(), N}; }
};

template <class T>
  requires is_ordered_scalar<T>
struct ordered_codec<T> {
  using in = T;
  using out = T;
  static constexpr std::size_t N = sizeof(T);
  using word = std::conditional_t<N == 1, std::uint8_t,
                                  std::conditional_t<N == 2, std::uint16_t,
                                                     std::conditional_t<N == 4, std::uint32_t, std::uint64_t>>>;
  static_assert(N == sizeof(word), "ordered_map keys of 1, 2, 4 or 8 bytes");
  static constexpr word top = word(word{1} << (8 * N - 1));

  static word to_ordered(T v) noexcept {
    if constexpr (std::is_floating_point_v<T>) {
      if (v == T(0)) v = T(0);  // -0.0 and +0.0 are one key
    }
    word w;
    std::memcpy(&w, &v, N);
    if constexpr (std::is_floating_point_v<T>) {
      w = (w & top) ? word(~w) : word(w | top);
    } else if constexpr (is_signed_key<T>()) {
      w = word(w ^ top);
    }
    return w;
  }
  static T from_ordered(word w) noexcept {
    if constexpr (std::is_floating_point_v<T>) {
      w = (w & top) ? word(w & ~top) : word(~w);
    } else if constexpr (is_signed_key<T>()) {
      w = word(w ^ top);
    }
    T v;
    std::memcpy(&v, &w, N);
    return v;
  }
  static encoded_key<N> encode(T v) noexcept {
    word w = to_ordered(v);
    encoded_key<N> k;
    for (std::size_t i = 0; i < N; ++i) k.bytes[i] = static_cast<char>((w >> (8 * (N - 1 - i))) & 0xff);
    return k;
  }
  static T decode(std::string_view s) noexcept {
    word w = 0;
    for (std::size_t i = 0; i < N && i < s.size(); ++i) w = word((w << 8) | static_cast<unsigned char>(s[i]));
    return from_ordered(w);
  }
};

template <class T>
  requires is_byte_string<T>
struct ordered_codec<T> : value_codec<T> {};

}  // namespace pobj::detail
