// pobj/atomic: durable linearizable 64-bit atomics (integers and references) in a pool.
//
// pobj::atomic<T> is the storage: one 8-byte word, usable as a field of a persistent class, a
// value inside another object, or a root object. pobj::atomic_ref<T> operates on it: load,
// store, exchange, compare_exchange and (integers) fetch_add.
//
// Durable linearizability: when an operation returns, its effect is persistent; and no thread ever
// returns a value that a crash could still take back. Writers count themselves in a DRAM counter
// of the word's stripe while their store is not yet persistent; a reader that sees a writer in
// flight writes the word's line back and fences before it returns what it read (so it never acts
// on a value that is not persistent yet). A reader that sees no writer pays one extra load.
//
// Cost (cache_line mode): a write is one fence (plus one if a failure-atomic block committed on
// this thread since its last fence: the ordering rule of docs/transactions.md); a read is a load,
// or a write-back and a fence while a writer of the same stripe is in flight.
//
// Thread safety: every operation may run concurrently with any other, from any thread.
// Crash consistency: an aligned 8-byte word: after a crash it holds the value of a completed
// operation or of one in flight. Operations are durable on their own and must not run inside a
// failure-atomic block (they throw errc::invalid_argument there); for changes that must commit
// with others, use the block's own stores.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include <pobj/pool.hpp>
#include <pobj/ref.hpp>

namespace pobj {

namespace detail {
template <class T>
struct is_ref : std::false_type {};
template <class T>
struct is_ref<ref<T>> : std::true_type {};
}  // namespace detail

template <class T>
concept atomic_value = (std::is_integral_v<T> && sizeof(T) == 8) || detail::is_ref<T>::value;

// The persistent storage of an atomic: one aligned word. Value-initialized, it holds 0 (null).
template <atomic_value T>
struct atomic {
  alignas(8) std::uint64_t word = 0;

  // Storage holding `v`, to initialize a new object's field (a builder's, or make()'s init).
  static constexpr atomic of(T v) noexcept {
    if constexpr (detail::is_ref<T>::value) {
      return atomic{v.offset};
    } else {
      return atomic{static_cast<std::uint64_t>(v)};
    }
  }
};
static_assert(sizeof(atomic<std::int64_t>) == 8);

namespace detail {
// The DRAM counter of writers in flight for the stripe of `word` in p.
std::atomic<std::uint64_t>& inflight(pool& p, const void* word) noexcept;
// Before an in-place store outside a block: makes pending log invalidations durable (the
// ordering rule). Throws errc::invalid_argument inside an open block.
void before_atomic_store(pool& p);
// Writes the line of `word` back and fences.
void persist_word(pool& p, const void* word) noexcept;
}  // namespace detail

template <atomic_value T>
class atomic_ref {
 public:
  atomic_ref(pool& p, atomic<T>& a) noexcept : pool_(&p), word_(&a.word) {}

  // The value, persistent before it is returned.
  T load() const noexcept {
    std::uint64_t v = std::atomic_ref<std::uint64_t>(*word_).load(std::memory_order_seq_cst);
    if (detail::inflight(*pool_, word_).load(std::memory_order_seq_cst) != 0) detail::persist_word(*pool_, word_);
    return from_word(v);
  }

  void store(T value) {
    write([&](std::atomic_ref<std::uint64_t> w) {
      w.store(to_word(value), std::memory_order_seq_cst);
      return 0;
    });
  }

  T exchange(T value) {
    return from_word(write([&](std::atomic_ref<std::uint64_t> w) { return w.exchange(to_word(value)); }));
  }

  // If the word holds `expected`, stores `desired` and returns true; else loads the word into
  // `expected` (persistent, as load() returns it) and returns false.
  bool compare_exchange(T& expected, T desired) {
    std::uint64_t e = to_word(expected);
    bool done = false;
    write([&](std::atomic_ref<std::uint64_t> w) {
      done = w.compare_exchange_strong(e, to_word(desired), std::memory_order_seq_cst);
      return 0;
    });
    expected = from_word(e);
    return done;
  }

  // Adds `delta` (wrapping) and returns the value before.
  T fetch_add(T delta)
    requires std::is_integral_v<T>
  {
    return from_word(write([&](std::atomic_ref<std::uint64_t> w) {
      return w.fetch_add(static_cast<std::uint64_t>(delta), std::memory_order_seq_cst);
    }));
  }

 private:
  static std::uint64_t to_word(T v) noexcept {
    if constexpr (detail::is_ref<T>::value) {
      return v.offset;
    } else {
      return static_cast<std::uint64_t>(v);
    }
  }
  static T from_word(std::uint64_t w) noexcept {
    if constexpr (detail::is_ref<T>::value) {
      return T(w);
    } else {
      return static_cast<T>(w);
    }
  }
  // Counts this writer in flight around the store and its write-back, so readers of the stripe
  // persist what they read.
  template <class F>
  std::uint64_t write(F&& op) {
    detail::before_atomic_store(*pool_);
    auto& inflight = detail::inflight(*pool_, word_);
    inflight.fetch_add(1, std::memory_order_seq_cst);
    std::uint64_t result = op(std::atomic_ref<std::uint64_t>(*word_));
    detail::persist_word(*pool_, word_);
    inflight.fetch_sub(1, std::memory_order_seq_cst);
    return result;
  }

  pool* pool_;
  std::uint64_t* word_;
};

template <class T>
atomic_ref(pool&, atomic<T>&) -> atomic_ref<T>;

}  // namespace pobj
