// pobj/queue: a durable multi-producer multi-consumer FIFO queue in a pool.
//
// pobj::queue<T> is the storage: one 8-byte word (the offset of the queue's header block),
// usable as a field of a persistent class, as a value in another container, or, by its offset,
// as a named root. Make one with pobj::make_queue<T>(tx); use it through
// pobj::queue_ref<T>(pool, q): push, try_pop, front, size, empty, for_each.
// T is trivially copyable (values of up to 8 bytes are stored in the queue's slots, larger ones
// in a block each) or pobj::string / pobj::bytes (a block each).
//
// Layout (docs/types.md): a header whose head and tail lines each hold a segment offset and a
// count of the operations so far (pops, pushes); segments of 62 slots linked from head to tail.
// The pusher that finds the tail segment full links a fresh one; the popper that finds the head
// segment used up frees it and moves to the next.
//
// Thread safety: producers serialize among themselves, and consumers among themselves (two DRAM
// locks, as the two-lock queue of Michael and Scott), so a push and a pop run in parallel. A
// pushed value becomes visible to consumers (and counts in size()) only after its block commits,
// and a pop's effect only after its block commits: no thread observes what a crash could take
// back. Operations are blocks of their own: inside an open failure-atomic block they throw
// errc::invalid_argument.
//
// Cost (cache_line mode): push and pop are one failure-atomic block each (2 fences); a push of a
// value over 8 bytes allocates its block in it, a pop frees it. Every 62nd push links a segment
// and every 62nd pop frees one, in the same block.
//
// Crash consistency: every push and pop is all or nothing and durable when it returns
// (tests/crash/queue_crash_test.cpp); nothing leaks.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <pobj/codec.hpp>
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>
#include <pobj/detail/queue_engine.hpp>

namespace pobj {

template <class T>
struct queue {
  std::uint64_t offset = 0;  // of the queue's header block; 0 is none
  constexpr explicit operator bool() const noexcept { return offset != 0; }
};


template <class T>
queue<T> make_queue(transaction& tx) {
  static_assert(!detail::is_container<T>, "a pobj::queue holds values, not containers (keep those in a map)");
  return queue<T>{detail::pqueue::create(tx, detail::pqueue::stores_inline<T>, detail::may_hold_refs<T>)};
}

// Frees the queue and everything in it, when the block commits.
template <class T>
void destroy(transaction& tx, queue<T> q) {
  detail::destroy_container(tx, q.offset);
}

template <class T>
class queue_ref {
  using vc = detail::value_codec<T>;

 public:
  using value_type = typename vc::out;

  // REQUIRES: q was made in p by make_queue<T>.
  queue_ref(pool& p, queue<T> q)
      : pool_(&p), state_(&detail::pqueue::attach(p, q.offset, detail::pqueue::stores_inline<T>, detail::may_hold_refs<T>)) {}

  // Appends a value at the back.
  void push(typename vc::in value) { detail::pqueue::push(*pool_, *state_, vc::encode(value)); }
  // Removes and returns the front value; nullopt if the queue is empty.
  std::optional<value_type> try_pop() {
    std::string v;
    if (!detail::pqueue::pop(*pool_, *state_, &v)) return std::nullopt;
    return vc::decode(v);
  }
  // The front value, left in place.
  std::optional<value_type> front() const {
    std::string v;
    if (!detail::pqueue::front(*pool_, *state_, &v)) return std::nullopt;
    return vc::decode(v);
  }
  // Pushes minus pops that have committed.
  std::uint64_t size() const noexcept { return detail::pqueue::size(*state_); }
  bool empty() const noexcept { return size() == 0; }
  // fn(value) from front to back, over the values present when it starts that no consumer pops
  // meanwhile. It copies a segment's values at a time under the consumers' lock and calls fn
  // outside it, so fn may use the queue (pops included).
  template <class F>
  void for_each(F&& fn) const {
    detail::pqueue::for_each(*pool_, *state_, [&](std::string_view v) { fn(vc::decode(v)); });
  }

 private:
  pool* pool_;
  detail::pqueue::queue_state* state_;
};

}  // namespace pobj
