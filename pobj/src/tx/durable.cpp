// Stores outside failure-atomic blocks that are durable on their own: publish of fresh objects,
// durable_store of one field, the hooks of pobj::atomic, and heap::free. Each obeys the ordering
// rule before its store (settle_before_store).
#include <pobj/atomic.hpp>
#include <pobj/transaction.hpp>

#include <atomic>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "heap/heap_impl.hpp"
#include "pool/pool_impl.hpp"
#include "tx/tx_impl.hpp"

namespace pobj {

using namespace detail;

void publish(pool& p, std::span<reservation> objects, std::span<const publish_link> links) {
  for (const publish_link& l : links) {
    if (!p.contains(l.word, 8) || reinterpret_cast<std::uintptr_t>(l.word) % 8 != 0 ||
        !p.impl().data_range(p.offset_of(l.word), 8)) {
      throw error(errc::invalid_argument, "pobj: publish link word outside the pool or not 8-aligned");
    }
  }
  transaction tx(p);
  for (reservation& r : objects) tx.adopt(r);
  // One fence for every link's undo record (and the allocation records before them) ...
  tx_state& st = *tx.state_;
  std::vector<byte_range> words = std::move(st.words);
  words.clear();
  std::vector<const void*> values(links.size());
  for (std::size_t i = 0; i < links.size(); ++i) {
    words.push_back({links[i].word, 8});
    values[i] = &links[i].value;
  }
  tx.log(words, values.data());
  st.words = std::move(words);
  for (const publish_link& l : links) std::atomic_ref<std::uint64_t>(*l.word).store(l.value, std::memory_order_release);
  // ... and one at commit, when the outermost scope ends.
}

void pool::durable_store(std::uint64_t* word, std::uint64_t value) { durable_store(word, &value, 8); }

namespace detail {

std::atomic<std::uint64_t>& inflight(pool& p, const void* word) noexcept {
  const std::uint64_t line = p.offset_of(word) / 64;
  return p.impl().inflight[line % pool_impl::inflight_stripes].writers;
}

void before_atomic_store(pool& p) {
  pool_impl& impl = p.impl();
  thread_context& ctx = impl.local();
  if (ctx.tx != nullptr && ctx.tx->depth > 0) {
    throw error(errc::invalid_argument,
                "pobj: an atomic operation inside a failure-atomic block (atomics are durable on their own; "
                "inside a block, change the value with the block's stores)");
  }
  settle_before_store(impl, ctx);
}

void persist_word(pool& p, const void* word) noexcept { p.impl().persist(word, 8); }

}  // namespace detail

void pool::durable_store(void* field, const void* value, std::size_t n) {
  auto addr = reinterpret_cast<std::uintptr_t>(field);
  if ((n != 1 && n != 2 && n != 4 && n != 8) || addr % n != 0 || !contains(field, n) ||
      !impl_->data_range(offset_of(field), n)) {
    throw error(errc::invalid_argument,
                "pobj: durable_store of a field that is not 1, 2, 4 or 8 naturally aligned bytes in the pool's data");
  }
  thread_context& ctx = impl_->local();
  if (ctx.tx != nullptr && ctx.tx->depth > 0) {  // a block is open on this thread: join it
    transaction tx(*this);
    byte_range r{field, n};
    tx.log(std::span<const byte_range>(&r, 1), &value);
    std::memcpy(field, value, n);
    return;
  }
  settle_before_store(*impl_, ctx);
  auto* word = reinterpret_cast<std::uint64_t*>(addr & ~std::uintptr_t{7});
  std::atomic_ref<std::uint64_t> w(*word);
  if (n == 8) {
    std::uint64_t v;
    std::memcpy(&v, value, 8);
    w.store(v, std::memory_order_release);
    impl_->persist(word, 8);
    return;
  }
  // A smaller field shares its aligned word with others: replace its bytes with a compare-and-swap,
  // so stores to the word's other fields by other threads are not lost.
  std::uint64_t old = w.load(std::memory_order_relaxed), updated;
  do {
    updated = old;
    std::memcpy(reinterpret_cast<std::byte*>(&updated) + (addr & 7), value, n);
  } while (!w.compare_exchange_weak(old, updated, std::memory_order_release, std::memory_order_relaxed));
  impl_->persist(word, 8);
}

void heap::free(offset_t object) {
  pool_impl& p = impl_->pool;
  block_ref b = impl_->locate(object);
  if (!is_allocated(object)) {
    throw error(errc::invalid_argument, fmt::format("pobj: free of {:#x}, which is not an allocated object", object));
  }
  thread_context& ctx = p.local();
  if (ctx.tx != nullptr && ctx.tx->depth > 0) {
    throw error(errc::invalid_argument, "pobj: heap::free inside a failure-atomic block; use transaction::free");
  }
  settle_before_store(p, ctx);
  impl_->persist_free(object);
  p.drain();
  impl_->give_back(object, b.size);
}

}  // namespace pobj
