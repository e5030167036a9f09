// pobj/record: value records stored whole, without a proxy.
//
// A value record is a trivially copyable aggregate of supported fields (integers, floating point,
// enums, arrays of these, references, other value records). It can be a field of a persistent
// class (stored inline), or stand alone in the pool as an immutable record: make_record() copies
// it into a block of its own and returns a record<T> handle (an 8-byte offset, usable as a field
// or a root); get() reads it in place. Records never change: to "update" one, make a new one and
// swap the handle in the same block. Boost.PFR reflects the fields, so records hash, compare and
// format field by field with no code from the user.
//
// Thread safety: records are immutable once made: any number of threads may read them.
// Crash consistency: make_record() and free_record() take effect only if the block commits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <type_traits>

#include <pobj/object.hpp>
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

namespace pobj {

template <class T>
concept value_record = std::is_trivially_copyable_v<T> && std::is_aggregate_v<T> && !std::is_array_v<T>;

template <value_record T>
struct record {
  std::uint64_t offset = 0;  // of the block holding the T; 0 is none

  constexpr record() = default;
  constexpr explicit record(std::uint64_t off) noexcept : offset(off) {}
  constexpr explicit operator bool() const noexcept { return offset != 0; }
  friend constexpr bool operator==(record a, record b) noexcept = default;
};

namespace detail {
inline constexpr std::uint16_t record_block_type = heap_type::record;
}

// A copy of `value` in its own block, which exists only if the block commits.
template <value_record T>
record<T> make_record(transaction& tx, const T& value) {
  allocation a = tx.alloc(sizeof(T), detail::record_block_type);
  std::memcpy(a.pointer, &value, sizeof(T));
  return record<T>(a.offset);
}

// The record, read in place. REQUIRES: r is not null and was made in p.
template <value_record T>
const T& get(const pool& p, record<T> r) noexcept {
  return *p.at<const T>(r.offset);
}

// Frees the record when the block commits.
template <value_record T>
void free_record(transaction& tx, record<T> r) {
  tx.free(r.offset);
}

// Field-by-field hashing, equality and formatting (Boost.PFR): no code from the user.
template <value_record T>
std::size_t hash_record(const T& v) noexcept {
  return detail::hash_field(v);
}
template <value_record T>
bool equal_records(const T& a, const T& b) noexcept {
  return detail::field_equal(a, b);
}
// "{12345, 840}": the fields in order, nested records in braces, char arrays as strings.
template <value_record T>
std::string format_record(const T& v) {
  std::string out;
  detail::format_field(std::back_inserter(out), v);
  return out;
}

}  // namespace pobj
