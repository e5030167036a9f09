// pobj/vector: a growable persistent array of trivially copyable T.
//
// pobj::vector<T> is the storage: one 8-byte word (the offset of the vector's header block),
// usable as a field of a persistent class or, by its offset, as a named root. Make one with
// pobj::make_vector<T>(tx); use it through pobj::vector_ref<T>(pool, v).
//
// Layout: a header block [u64 size][u64 capacity][u64 data] and a data block of capacity
// elements. Growth doubles the capacity: a fresh data block, the elements copied, the old block
// freed, all in the growing operation's block.
//
// Cost (cache_line mode): push_back, pop_back, set and clear are one failure-atomic block each
// (2 fences; a push_back that grows writes back the copied elements too); inside an open block
// they join it. Reads are loads.
//
// Thread safety: not a concurrent type: concurrent use needs the caller's lock (readers included,
// while a writer may run). Crash consistency: every operation is all or nothing and durable when
// it returns (tests/crash/vector_crash_test.cpp); a crash during growth leaks nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include <fmt/format.h>

#include <pobj/codec.hpp>
#include <pobj/error.hpp>
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

namespace pobj {

template <class T>
  requires std::is_trivially_copyable_v<T>
struct vector {
  std::uint64_t offset = 0;  // of the header block; 0 is none
  constexpr explicit operator bool() const noexcept { return offset != 0; }
};

namespace detail {
struct vector_header {
  std::uint64_t size;
  std::uint64_t capacity;
  std::uint64_t data;  // offset of the element block, 0 while capacity is 0
};
inline constexpr std::uint16_t vector_header_type = heap_type::vector_header;
}  // namespace detail

template <class T>
  requires std::is_trivially_copyable_v<T>
vector<T> make_vector(transaction& tx, std::size_t reserve = 0) {
  static_assert(!detail::is_container<T>, "a pobj::vector holds values, not containers (keep those in a map)");
  allocation h = tx.alloc(sizeof(detail::vector_header), detail::vector_header_type);
  auto* header = ::new (h.pointer) detail::vector_header{0, 0, 0};
  if (reserve > 0) {
    header->data = tx.alloc(reserve * sizeof(T)).offset;
    header->capacity = reserve;
  }
  return vector<T>{h.offset};
}

template <class T>
  requires std::is_trivially_copyable_v<T>
void destroy(transaction& tx, vector<T> v) {
  auto* header = tx.get_pool().template at<detail::vector_header>(v.offset);
  if (header->data != 0) tx.free(header->data);
  tx.free(v.offset);
}

template <class T>
  requires std::is_trivially_copyable_v<T>
class vector_ref {
 public:
  // REQUIRES: v was made in p by make_vector<T>.
  vector_ref(pool& p, vector<T> v) : pool_(&p), header_(p.at<detail::vector_header>(v.offset)) {
    if (v.offset == 0) throw error(errc::invalid_argument, "pobj: a null pobj::vector");
  }

  std::size_t size() const noexcept { return header_->size; }
  std::size_t capacity() const noexcept { return header_->capacity; }
  bool empty() const noexcept { return size() == 0; }
  const T* data() const noexcept { return header_->data == 0 ? nullptr : pool_->at<const T>(header_->data); }
  std::span<const T> view() const noexcept { return {data(), size()}; }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + size(); }
  const T& operator[](std::size_t i) const noexcept { return data()[i]; }
  const T& at(std::size_t i) const {
    check(i);
    return data()[i];
  }

  void push_back(const T& value) {
    run_tx(*pool_, [&](transaction& tx) {
      detail::vector_header& h = *header_;
      if (h.size == h.capacity) grow(tx, h.capacity == 0 ? 4 : h.capacity * 2);
      T* slot = pool_->at<T>(h.data) + h.size;
      // The slot is outside the vector until size grows, but logging it costs nothing extra: it
      // shares the fence with the size's log entry, and the commit writes it back.
      tx.snapshot({byte_range{&h.size, 8}, byte_range{slot, sizeof(T)}});
      std::memcpy(static_cast<void*>(slot), &value, sizeof(T));
      h.size = h.size + 1;
    });
  }

  void pop_back() {
    if (empty()) throw error(errc::invalid_argument, "pobj: pop_back on an empty pobj::vector");
    run_tx(*pool_, [&](transaction& tx) { tx.set(header_->size, header_->size - 1); });
  }

  void set(std::size_t i, const T& value) {
    check(i);
    run_tx(*pool_, [&](transaction& tx) { tx.set(pool_->at<T>(header_->data)[i], value); });
  }

  void clear() {
    run_tx(*pool_, [&](transaction& tx) { tx.set(header_->size, std::uint64_t{0}); });
  }

  // Capacity for at least n elements (one block; copies the elements if it grows).
  void reserve(std::size_t n) {
    if (n <= capacity()) return;
    run_tx(*pool_, [&](transaction& tx) { grow(tx, n); });
  }

 private:
  void check(std::size_t i) const {
    if (i >= size()) {
      throw error(errc::invalid_argument,
                  fmt::format("pobj: index {} is out of range for a pobj::vector of {} elements", i, size()));
    }
  }
  void grow(transaction& tx, std::size_t capacity) {
    detail::vector_header& h = *header_;
    allocation a = tx.alloc(capacity * sizeof(T));  // fresh: written in place, never logged
    if (h.size > 0) std::memcpy(a.pointer, pool_->at<T>(h.data), h.size * sizeof(T));
    tx.snapshot(&h, sizeof(h));
    if (h.data != 0) tx.free(h.data);
    h.data = a.offset;
    h.capacity = capacity;
  }

  pool* pool_;
  detail::vector_header* header_;
};

}  // namespace pobj
