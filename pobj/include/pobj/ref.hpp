// pobj/ref: a persistent reference to an object of a persistent class: the 8-byte offset of the
// object in its pool (0 is null), so it means the same wherever the pool is mapped.
//
// Thread safety: a value type; concurrent reads are safe, a store into pool memory is the
// caller's to order (inside a failure-atomic block, or with pool::durable_store).
// Crash consistency: an aligned 8-byte value: a crash leaves either the old or the new reference.
#pragma once

#include <cstdint>
#include <type_traits>

namespace pobj {

template <class T>
struct ref {
  std::uint64_t offset = 0;

  constexpr ref() = default;
  constexpr explicit ref(std::uint64_t off) noexcept : offset(off) {}
  // A reference to a derived class converts to one to its base (the object is the same block).
  template <class U>
    requires(std::is_base_of_v<T, U> && !std::is_same_v<T, U>)
  constexpr ref(ref<U> derived) noexcept : offset(derived.offset) {}
  constexpr explicit operator bool() const noexcept { return offset != 0; }
  friend constexpr bool operator==(ref a, ref b) noexcept = default;
};

static_assert(sizeof(ref<void>) == 8 && alignof(ref<void>) == 8);
static_assert(std::is_trivially_copyable_v<ref<void>>);

}  // namespace pobj
