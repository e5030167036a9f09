// pobj/string: immutable persistent strings and byte strings, as fields of persistent classes.
//
// A pobj::string (or pobj::bytes) field is one 8-byte word. Up to 7 bytes live in the word itself
// (its low bit is then 1, the next 7 bits the length); longer values live in a heap block of their
// own, [8-byte length][bytes], and the word holds that block's offset (low bit 0; 0 is empty).
// Values never change in place: setting a field writes a new value and frees the old one in the
// same failure-atomic block, so a reader sees the whole old or the whole new value.
//
// Proxies read these fields as std::string_view and std::span<const std::byte>; the views stay
// valid until the field is set again or the object is destroyed. A string can also be an object
// of its own, as a named root (make_string_object below); in maps and queues, pobj::string and
// pobj::bytes are the value (and key) types of any length.
//
// Thread safety: reading is safe while no thread sets the field (the caller's locks).
// Crash consistency: set_string() is part of the caller's block: after a crash the field holds
// the old value (with its block) or the new one, and no block leaks.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

namespace pobj {

static_assert(std::endian::native == std::endian::little, "inline strings assume a little-endian word");

struct string {
  std::uint64_t word = 0;
};
struct bytes {
  std::uint64_t word = 0;
};

namespace detail {

inline constexpr std::uint16_t string_block_type = heap_type::string;  // out-of-line values
inline constexpr std::size_t inline_string_max = 7;

inline bool string_is_block(std::uint64_t word) noexcept { return word != 0 && (word & 1) == 0; }

// The bytes a string word holds. `word` must be the field in the pool (inline values are read in
// place).
inline std::string_view read_string(const pool& p, const std::uint64_t& word) noexcept {
  const std::uint64_t w = word;
  if (w == 0) return {};
  if (w & 1) {  // at most 7 bytes, whatever a damaged word says
    return {reinterpret_cast<const char*>(&word) + 1, std::min<std::size_t>((w & 0xff) >> 1, inline_string_max)};
  }
  const std::byte* block = p.base() + w;
  std::uint64_t n;
  std::memcpy(&n, block, 8);
  return {reinterpret_cast<const char*>(block + 8), static_cast<std::size_t>(n)};
}

// Sets the string word `field` to `value` in the block, freeing the old value's block at commit.
void assign_string(transaction& tx, std::uint64_t& field, std::string_view value);

}  // namespace detail

// A string as an object of its own, for a named root (or any place that holds an object's
// offset): always a block [u64 length][bytes] of heap type `string`, whatever its length.
// make_string_object() allocates and fills it in the block (fresh: written in place, never
// logged); read_string_object() reads it in place, after checking that `object` is such a block
// (errc::invalid_argument if not); destroy it with transaction::free.
offset_t make_string_object(transaction& tx, std::string_view value);
std::string_view read_string_object(const pool& p, offset_t object);

inline std::span<const std::byte> as_bytes_view(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string_view as_string_view(std::span<const std::byte> b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace pobj
