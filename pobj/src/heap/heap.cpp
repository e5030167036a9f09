#include "heap/heap_impl.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_set>

#include <fmt/format.h>
#include <pobj/error.hpp>

#include "pool/pool_impl.hpp"

namespace pobj::detail {

namespace {

std::vector<size_class> make_classes() {
  std::vector<std::uint32_t> sizes;
  for (std::uint32_t s = 16; s <= 128; s += 16) sizes.push_back(s);
  // Four classes per doubling above 128 bytes: at most 25% internal waste.
  for (std::uint32_t base = 128; base < heap::max_small_size; base *= 2) {
    for (std::uint32_t k = 1; k <= 4; ++k) sizes.push_back(base + base / 4 * k);
  }
  std::vector<size_class> out;
  for (std::uint32_t bs : sizes) {
    std::uint32_t n = static_cast<std::uint32_t>((chunk_size - sizeof(run_header)) / (bs + 8));
    for (;; --n) {
      std::uint32_t bitmap = static_cast<std::uint32_t>(align_up((n + 63) / 64 * 8, line_size));
      std::uint32_t meta = static_cast<std::uint32_t>(align_up(std::uint64_t{n} * 8, line_size));
      std::uint32_t data = static_cast<std::uint32_t>(sizeof(run_header)) + bitmap + meta;
      if (data + std::uint64_t{n} * bs <= chunk_size) {
        out.push_back({bs, n, static_cast<std::uint32_t>(sizeof(run_header)),
                       static_cast<std::uint32_t>(sizeof(run_header)) + bitmap, data});
        break;
      }
    }
  }
  return out;
}

}  // namespace

const std::vector<size_class>& size_classes() {
  static const std::vector<size_class> classes = make_classes();
  return classes;
}

int class_for(std::size_t n) noexcept {
  const auto& cs = size_classes();
  if (n > cs.back().block_size) return -1;
  auto it = std::lower_bound(cs.begin(), cs.end(), n,
                             [](const size_class& c, std::size_t v) { return c.block_size < v; });
  return static_cast<int>(it - cs.begin());
}

heap_impl::heap_impl(pool_impl& p) : pool(p) {
  std::uint64_t slots = (p.domain->reserved() - p.header.heap_offset) / chunk_size + 1;
  run_loaded = std::make_unique<std::atomic<std::uint8_t>[]>(slots);
  available.resize(size_classes().size());
  unloaded.resize(size_classes().size());
  build();
}

heap_impl::~heap_impl() = default;

std::uint64_t heap_impl::chunk_offset(std::uint64_t chunk) const noexcept {
  return pool.header.heap_offset + chunk * chunk_size;
}

chunk_entry* heap_impl::entry(std::uint64_t chunk) const noexcept {
  std::uint64_t zone = chunk / zone_chunks;
  auto* table = pool.at<chunk_entry>(pool.header.heap_offset + zone * zone_size);
  return table + chunk % zone_chunks;
}

void heap_impl::build() {
  lock_guard lock(mu);  // no other thread sees the heap yet; the analysis wants it held
  std::uint64_t size = pool.super->size.load(std::memory_order_relaxed);
  chunks = (size - pool.header.heap_offset) / chunk_size;
  visible_chunks.store(chunks, std::memory_order_release);
  std::uint64_t run_start = 0, run_len = 0;
  auto flush_free = [&]() POBJ_REQUIRES(mu) {
    if (run_len > 0) free_chunks.emplace(run_start, run_len);
    run_len = 0;
  };
  for (std::uint64_t g = 0; g < chunks; ++g) {
    if (is_table(g)) {
      flush_free();
      continue;
    }
    std::uint64_t w = entry(g)->word.load(std::memory_order_relaxed);
    switch (word_state(w)) {
      case chunk_state::free:
        if (run_len == 0) run_start = g;
        ++run_len;
        break;
      case chunk_state::run:
        flush_free();
        if (word_class(w) < size_classes().size()) unloaded[word_class(w)].push_back(g);
        break;
      case chunk_state::extent: {
        flush_free();
        std::uint64_t n = word_count(w);
        if (n >= 1 && g + n <= chunks) g += n - 1;
        break;
      }
      default: flush_free(); break;  // check() reports it; never hand it out
    }
  }
  flush_free();
}

block_ref heap_impl::locate(std::uint64_t off) const noexcept {
  block_ref b;
  if (off < pool.header.heap_offset) return b;
  std::uint64_t g = (off - pool.header.heap_offset) / chunk_size;
  if (is_table(g) || g >= visible_chunks.load(std::memory_order_acquire)) return b;
  chunk_entry* e = entry(g);
  std::uint64_t w = e->word.load(std::memory_order_acquire);
  b.chunk = g;
  b.state = word_state(w);
  std::uint64_t base = chunk_offset(g);
  switch (b.state) {
    case chunk_state::free:
      b.entry = e;
      b.meta = &e->meta;
      return b;
    case chunk_state::extent: {
      std::uint64_t n = word_count(w);
      if (off != base || n == 0 || g + n > visible_chunks.load(std::memory_order_acquire) ||
          (g % zone_chunks) + n > zone_chunks) {
        return block_ref{};  // not an extent head, or a corrupt one: check() reports it
      }
      b.entry = e;
      b.meta = &e->meta;
      b.size = n * chunk_size;
      return b;
    }
    case chunk_state::run: {
      std::uint32_t cls = word_class(w);
      if (cls >= size_classes().size()) return block_ref{};
      const size_class& sc = size_classes()[cls];
      if (off < base + sc.data_offset) return block_ref{};
      std::uint64_t rel = off - base - sc.data_offset;
      if (rel % sc.block_size != 0 || rel / sc.block_size >= sc.block_count) return block_ref{};
      b.entry = e;
      b.run = pool.at<run_header>(base);
      b.index = static_cast<std::uint32_t>(rel / sc.block_size);
      b.bitmap_word = pool.at<std::atomic<std::uint64_t>>(base + sc.bitmap_offset) + b.index / 64;
      b.bit = std::uint64_t{1} << (b.index % 64);
      b.meta = pool.at<std::atomic<std::uint64_t>>(base + sc.meta_offset) + b.index;
      b.size = sc.block_size;
      return b;
    }
  }
  return block_ref{};
}

thread_cache& heap_impl::cache() {
  thread_context& ctx = pool.local();
  if (ctx.cache == nullptr) {
    lock_guard lock(mu);
    caches.push_back(std::make_unique<thread_cache>());
    caches.back()->free.resize(size_classes().size());
    ctx.cache = caches.back().get();
  }
  return *ctx.cache;
}

std::uint64_t heap_impl::next_generation(thread_cache& tc) {
  constexpr std::uint64_t grab = 4096;
  constexpr std::uint64_t lease = std::uint64_t{1} << 22;
  if (tc.gen_next == tc.gen_end) {
    lock_guard lock(mu);
    static_assert(grab <= lease);
    // gen_lease is the first generation not yet handed out in any run of the pool. Handing out
    // [next, next + grab) needs the persistent lease to cover it first.
    std::uint64_t persisted = pool.super->gen_lease.load(std::memory_order_relaxed);
    if (gen_global_ == 0) gen_global_ = persisted;
    if (gen_global_ + grab > persisted) {
      pool.super->gen_lease.store(gen_global_ + lease, std::memory_order_relaxed);
      pool.persist_ordered(&pool.super->gen_lease, 8);
    }
    tc.gen_next = gen_global_;
    tc.gen_end = gen_global_ + grab;
    gen_global_ += grab;
  }
  return tc.gen_next++;
}

reservation heap_impl::reserve(std::size_t size, std::uint16_t type) {
  if (size == 0) size = 1;
  thread_cache& tc = cache();
  std::uint64_t gen = next_generation(tc);
  int cls = class_for(size);
  if (cls < 0) {
    std::uint64_t n = (size + chunk_size - 1) / chunk_size;
    if (n > zone_chunks - 1) {
      throw error(errc::invalid_argument,
                  fmt::format("pobj: cannot allocate {} bytes: the largest object is {} bytes", size,
                              (zone_chunks - 1) * chunk_size));
    }
    lock_guard lock(mu);
    std::uint64_t first = take_chunks(n);
    std::uint64_t off = chunk_offset(first);
    return reservation{off, pool.base() + off, n * chunk_size, type, gen};
  }
  auto& list = tc.free[static_cast<std::size_t>(cls)];
  if (list.empty()) refill(tc, static_cast<std::uint32_t>(cls));
  std::uint64_t off = list.back();
  list.pop_back();
  return reservation{off, pool.base() + off, size_classes()[static_cast<std::size_t>(cls)].block_size, type, gen};
}

void heap_impl::refill(thread_cache& tc, std::uint32_t cls) {
  lock_guard lock(mu);
  const size_class& sc = size_classes()[cls];
  auto& out = tc.free[cls];
  while (out.size() < batch) {
    run_state* r = nullptr;
    if (!available[cls].empty()) {
      r = available[cls].back();
    } else if (!unloaded[cls].empty()) {
      std::uint64_t g = unloaded[cls].back();
      unloaded[cls].pop_back();
      load_run(g, cls);
      continue;
    } else if (!out.empty()) {
      return;  // something is better than growing the pool for a full batch
    } else {
      r = new_run(cls);
    }
    lock_guard rl(r->mu);
    std::uint64_t base = chunk_offset(r->chunk) + sc.data_offset;
    for (std::size_t w = 0; w < r->taken.size() && out.size() < batch && r->free_count > 0; ++w) {
      while (r->taken[w] != ~std::uint64_t{0} && out.size() < batch) {
        int b = std::countr_one(r->taken[w]);
        r->taken[w] |= std::uint64_t{1} << b;
        --r->free_count;
        out.push_back(base + (w * 64 + static_cast<std::uint64_t>(b)) * sc.block_size);
      }
    }
    if (out.size() < batch && r->free_count > 0) r->free_count = 0;  // no zero bit left: resync
    if (r->free_count == 0) {
      auto& av = available[cls];
      av.erase(std::find(av.begin(), av.end(), r));
      r->listed = false;
    }
  }
}

run_state* heap_impl::load_run(std::uint64_t chunk, std::uint32_t cls) {
  const size_class& sc = size_classes()[cls];
  auto* rh = pool.at<run_header>(chunk_offset(chunk));
  if (rh->magic != run_magic || rh->size_class != cls || rh->block_size != sc.block_size ||
      rh->block_count != sc.block_count) {
    return nullptr;  // corrupt: check() reports it, allocation never uses it
  }
  auto r = std::make_unique<run_state>();
  r->chunk = chunk;
  r->cls = cls;
  lock_guard rl(r->mu);
  std::size_t words = (sc.block_count + 63) / 64;
  r->taken.resize(words);
  auto* bitmap = pool.at<std::atomic<std::uint64_t>>(chunk_offset(chunk) + sc.bitmap_offset);
  for (std::size_t w = 0; w < words; ++w) r->taken[w] = bitmap[w].load(std::memory_order_relaxed);
  if (sc.block_count % 64 != 0) r->taken.back() |= ~std::uint64_t{0} << (sc.block_count % 64);
  std::uint32_t used = 0;
  for (auto w : r->taken) used += static_cast<std::uint32_t>(std::popcount(w));
  r->free_count = static_cast<std::uint32_t>(words * 64) - used;
  const bool has_free = r->free_count > 0;
  run_state* raw = r.get();
  runs.emplace(chunk, std::move(r));
  run_loaded[chunk].store(1, std::memory_order_release);
  if (has_free) {
    available[cls].push_back(raw);
    raw->listed = true;
  }
  return raw;
}

run_state* heap_impl::new_run(std::uint32_t cls) {
  const size_class& sc = size_classes()[cls];
  std::uint64_t g = take_chunks(1);
  std::uint64_t base = chunk_offset(g);
  auto* rh = pool.at<run_header>(base);
  std::memset(static_cast<void*>(rh), 0, sizeof(run_header));
  rh->magic = run_magic;
  rh->size_class = cls;
  rh->block_size = sc.block_size;
  rh->block_count = sc.block_count;
  rh->bitmap_offset = sc.bitmap_offset;
  rh->meta_offset = sc.meta_offset;
  rh->data_offset = sc.data_offset;
  std::memset(pool.base() + base + sc.bitmap_offset, 0, sc.meta_offset - sc.bitmap_offset);
  pool.flush(rh, sc.meta_offset);
  // The run exists once its chunk entry says so; a crash before this leaves the chunk free. No
  // committed log may replay over the new header once the entry is durable: ordering rule.
  if (pool.ordered()) pool.domain->barrier();
  else if (pool.ordering != nullptr) pool.ordering->drain_ordered();
  else pool.drain();
  chunk_entry* e = entry(g);
  e->word.store(chunk_word(chunk_state::run, cls, 1), std::memory_order_release);
  pool.persist_ordered(&e->word, 8);  // before any block that allocates from the run commits
  auto r = std::make_unique<run_state>();
  r->chunk = g;
  r->cls = cls;
  lock_guard rl(r->mu);
  r->taken.assign((sc.block_count + 63) / 64, 0);
  if (sc.block_count % 64 != 0) r->taken.back() |= ~std::uint64_t{0} << (sc.block_count % 64);
  r->free_count = sc.block_count;
  run_state* raw = r.get();
  runs.emplace(g, std::move(r));
  run_loaded[g].store(1, std::memory_order_release);
  available[cls].push_back(raw);
  raw->listed = true;
  return raw;
}

std::uint64_t heap_impl::take_chunks(std::uint64_t count) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    for (auto it = free_chunks.begin(); it != free_chunks.end(); ++it) {
      if (it->second >= count) {
        std::uint64_t first = it->first, n = it->second;
        free_chunks.erase(it);
        if (n > count) free_chunks.emplace(first + count, n - count);
        return first;
      }
    }
    grow(count);
  }
  throw error(errc::out_of_space, fmt::format("pobj: pool '{}' has no {} contiguous free chunks", pool.path, count));
}

void heap_impl::return_chunks(std::uint64_t first, std::uint64_t count) {
  auto next = free_chunks.lower_bound(first);
  if (next != free_chunks.end() && first + count == next->first && !is_table(first + count)) {
    count += next->second;
    next = free_chunks.erase(next);
  }
  if (next != free_chunks.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == first) {
      prev->second += count;
      return;
    }
  }
  free_chunks.emplace(first, count);
}

void heap_impl::grow(std::uint64_t min_new) {
  std::uint64_t max_chunks = (pool.domain->reserved() - pool.header.heap_offset) / chunk_size;
  // Grow by a quarter of the heap (at least 8 chunks) so growth is rare, but never past max_size.
  std::uint64_t want = std::max<std::uint64_t>({min_new + 1, chunks / 4, 8});
  std::uint64_t target = std::min(chunks + want, max_chunks);
  // A run of min_new chunks must fit between two zone tables.
  const std::uint64_t have = chunks;
  auto fits = [&](std::uint64_t upto) {
    std::uint64_t start = have;
    if (is_table(start)) ++start;
    if ((start % zone_chunks) + min_new > zone_chunks) start = (start / zone_chunks + 1) * zone_chunks + 1;
    return start + min_new <= upto;
  };
  if (!fits(target)) {
    throw error(errc::out_of_space,
                fmt::format("pobj: pool '{}' is full: it holds {} bytes and its maximum size is {}",
                            pool.path, pool.domain->size(), pool.domain->reserved()));
  }
  std::uint64_t new_size = pool.header.heap_offset + target * chunk_size;
  pool.domain->grow(new_size);
  // The new size is durable only after the file's extension is; chunks past it are used only
  // after this store is persistent (or, where persistence is ordered, flushed).
  pool.super->size.store(new_size, std::memory_order_release);
  pool.persist_ordered(&pool.super->size, 8);
  for (std::uint64_t g = chunks; g < target; ++g) {
    if (!is_table(g)) return_chunks(g, 1);
  }
  chunks = target;
  visible_chunks.store(target, std::memory_order_release);
}

void heap_impl::give_back(std::uint64_t off, std::size_t size) noexcept {
  if (size > max_run_size()) {
    // An extent: a reserved one was never written, so its length comes from the caller.
    lock_guard lock(mu);
    return_chunks((off - pool.header.heap_offset) / chunk_size, (size + chunk_size - 1) / chunk_size);
    return;
  }
  block_ref b = locate(off);
  if (b.run == nullptr) return;
  // Not loaded: the cleared bit is how the block becomes available (when the run is loaded).
  if (run_loaded[b.chunk].load(std::memory_order_acquire) == 0) return;
  thread_cache& tc = cache();
  std::uint32_t cls = word_class(b.entry->word.load(std::memory_order_relaxed));
  auto& list = tc.free[cls];
  list.push_back(off);
  if (list.size() < 4 * batch) return;
  // Keep the cache bounded: return half of it to the runs.
  lock_guard lock(mu);
  for (std::size_t k = 0; k < 2 * batch; ++k) {
    release_block(list.back());
    list.pop_back();
  }
}

void heap_impl::release_block(std::uint64_t off) noexcept {
  std::uint64_t g = (off - pool.header.heap_offset) / chunk_size;
  auto it = runs.find(g);
  if (it == runs.end()) return;  // not loaded: its persistent bit decides
  run_state* r = it->second.get();
  const size_class& sc = size_classes()[r->cls];
  lock_guard rl(r->mu);
  std::uint64_t idx = (off - chunk_offset(g) - sc.data_offset) / sc.block_size;
  r->taken[idx / 64] &= ~(std::uint64_t{1} << (idx % 64));
  ++r->free_count;
  if (!r->listed) {
    available[r->cls].push_back(r);
    r->listed = true;
  }
}

void heap_impl::release_cache(thread_cache& tc) noexcept {
  lock_guard lock(mu);
  for (auto& list : tc.free) {
    for (std::uint64_t o : list) release_block(o);
    list.clear();
  }
}

void release_thread_cache(pool_impl& p, thread_cache& cache) noexcept {
  if (p.heap != nullptr) p.heap->release_cache(cache);
}

void heap_impl::write_meta(std::uint64_t off, std::uint64_t gen, std::uint16_t type) {
  block_ref b = locate(off);
  if (b.meta == nullptr) return;
  b.meta->store(make_meta(gen, type), std::memory_order_relaxed);
  pool.flush(b.meta, 8);
}

void heap_impl::persist_alloc(std::uint64_t off, std::size_t size, std::uint64_t gen, std::uint16_t type,
                              bool with_meta) {
  block_ref b = locate(off);
  if (b.entry == nullptr) return;
  if (b.run != nullptr) {
    if (with_meta) {
      b.meta->store(make_meta(gen, type), std::memory_order_relaxed);
      pool.flush(b.meta, 8);
    }
    b.bitmap_word->fetch_or(b.bit, std::memory_order_acq_rel);
    pool.flush(b.bitmap_word, 8);
    return;
  }
  // An extent: its head entry records the length and generation.
  chunk_entry* e = entry(b.chunk);
  if (with_meta) e->meta.store(make_meta(gen, type), std::memory_order_relaxed);
  e->word.store(chunk_word(chunk_state::extent, 0, static_cast<std::uint32_t>(size / chunk_size)),
                std::memory_order_release);
  pool.flush(e, sizeof(chunk_entry));
}

void heap_impl::persist_free(std::uint64_t off) {
  block_ref b = locate(off);
  if (b.run != nullptr) {
    b.bitmap_word->fetch_and(~b.bit, std::memory_order_acq_rel);
    pool.flush(b.bitmap_word, 8);
    return;
  }
  if (b.entry != nullptr) {
    b.entry->word.store(chunk_word(chunk_state::free, 0, 0), std::memory_order_release);
    pool.flush(b.entry, sizeof(chunk_entry));
  }
}

void heap_impl::recover(std::uint64_t off, std::size_t size, std::uint64_t gen, std::uint16_t type,
                        recover_op op) {
  block_ref b = locate(off);
  if (b.entry == nullptr) return;
  bool same_gen = meta_gen(b.meta->load(std::memory_order_relaxed)) == gen;
  switch (op) {
    case recover_op::allocate:
      persist_alloc(off, size, gen, type);
      return;
    case recover_op::set_if_same_generation:
      if (same_gen) persist_alloc(off, size, gen, meta_type(b.meta->load(std::memory_order_relaxed)));
      return;
    case recover_op::clear_if_same_generation:
      if (same_gen) persist_free(off);
      return;
  }
}

std::size_t heap_impl::max_run_size() noexcept { return size_classes().back().block_size; }

}  // namespace pobj::detail
