#include <pobj/transaction.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>

#include <fmt/format.h>

#include "heap/heap_impl.hpp"
#include "pool/pool_impl.hpp"
#include "tx/log_entries.hpp"
#include "tx/tx_impl.hpp"

namespace pobj {

using namespace detail;

namespace detail {

namespace {

void ensure_started(tx_state& st) {
  if (st.started) return;
  auto* hdr = reinterpret_cast<log_buffer_header*>(st.log);
  hdr->state.store((st.seq << 2) | log_active, std::memory_order_release);
  st.started = true;  // flushed with the first entries: they share its line
}

// Appends an entry; with `second`, the payload is `payload` then `second`, `size` bytes each.
// Returns the log position of the payload.
std::size_t append(tx_manager& m, tx_state& st, entry_kind kind, std::uint64_t offset, const void* payload,
                   std::uint32_t size, std::size_t extra_reserve = 0, const void* second = nullptr) {
  const std::size_t capacity = m.pool.header.lane_log_size - sizeof(log_buffer_header);
  std::uint32_t total = second != nullptr ? 2 * size : size;
  std::size_t need = entry_header_size + pad8(total);
  if (st.pos + need + st.redo_reserve + extra_reserve + commit_word_size > capacity) {
    throw error(errc::transaction_too_large,
                fmt::format("pobj: a failure-atomic block needs more than its lane's {} bytes of log; open the "
                            "pool with a larger lane_log_size or split the block",
                            m.pool.header.lane_log_size));
  }
  ensure_started(st);
  std::byte* at = log_data(st) + st.pos;
  log_entry_header h{st.seq, kind, total, offset, 0};
  std::memcpy(at + entry_header_size, payload, size);
  if (second != nullptr) std::memcpy(at + entry_header_size + size, second, size);
  if (pad8(total) != total) std::memset(at + entry_header_size + total, 0, pad8(total) - total);
  h.checksum = entry_checksum(h, at + entry_header_size);
  std::memcpy(at, &h, sizeof(h));
  st.entry_sums.add_u64(h.checksum);
  std::size_t payload_at = st.pos + entry_header_size;
  st.pos += need;
  st.redo_reserve += extra_reserve;
  return payload_at;
}

void flush_log(tx_manager& m, tx_state& st) {
  if (st.pos > st.flushed || (st.started && st.flushed == 0)) {
    std::byte* from = st.flushed == 0 ? st.log : log_data(st) + st.flushed;  // the state word first
    m.pool.flush(from, static_cast<std::size_t>(log_data(st) + st.pos - from));
    st.flushed = st.pos;
  }
}

void reset(tx_state& st) {
  // Hooks run once the block has ended (committed or rolled back), with no lane held, and once
  // the state is clean: a hook may run blocks of its own on this thread.
  auto hooks = std::move(st.on_end);
  st.on_end.clear();
  st.entry_sums = checksum64{};
  st.ln = nullptr;
  st.log = nullptr;
  st.pos = st.flushed = 0;
  st.started = false;
  st.heap_entries_unfenced = false;
  st.redo_reserve = 0;
  st.ranges.clear();
  st.fresh.clear();
  st.index.clear();
  st.freed.clear();
  for (auto& hook : hooks) hook();
}

// The block's index, built once its lists are long (block_index).
void maybe_index(tx_state& st) {
  if (st.index.active || st.fresh.size() + st.ranges.size() + st.freed.size() <= block_index::linear_max) return;
  st.index.active = true;
  for (std::size_t i = 0; i < st.fresh.size(); ++i) st.index.fresh[st.fresh[i].offset] = i;
  for (const logged_range& r : st.ranges) {
    auto& n = st.index.ranges[r.offset];
    n = std::max(n, r.size);
  }
  for (const freed_object& f : st.freed) st.index.freed.insert(f.offset);
}

// Whether [off, off + n) lies inside one of the block's fresh objects (written in place, never
// logged) or ranges it logged already.
bool covered(const tx_state& st, std::uint64_t off, std::uint64_t n) {
  auto inside = [&](std::uint64_t a, std::uint64_t size) { return off >= a && off + n <= a + size; };
  if (!st.index.active) {
    return std::any_of(st.fresh.begin(), st.fresh.end(), [&](const fresh_object& f) { return inside(f.offset, f.size); }) ||
           std::any_of(st.ranges.begin(), st.ranges.end(), [&](const logged_range& l) { return inside(l.offset, l.size); });
  }
  // Fresh objects never overlap: the last one starting at or before off is the only candidate.
  if (auto it = st.index.fresh.upper_bound(off); it != st.index.fresh.begin()) {
    const fresh_object& f = st.fresh[std::prev(it)->second];
    if (inside(f.offset, f.size)) return true;
  }
  // Logged ranges may overlap; missing one that covers off only logs the range again.
  if (auto it = st.index.ranges.upper_bound(off); it != st.index.ranges.begin()) {
    --it;
    if (inside(it->first, it->second)) return true;
  }
  return false;
}

}  // namespace

// The index in st.fresh of the live fresh object at `object`, or -1.
std::ptrdiff_t fresh_at(const tx_state& st, std::uint64_t object) {
  if (st.index.active) {
    auto it = st.index.fresh.find(object);
    if (it == st.index.fresh.end() || st.fresh[it->second].freed) return -1;
    return static_cast<std::ptrdiff_t>(it->second);
  }
  for (std::size_t i = 0; i < st.fresh.size(); ++i) {
    if (st.fresh[i].offset == object && !st.fresh[i].freed) return static_cast<std::ptrdiff_t>(i);
  }
  return -1;
}

bool freed_here(const tx_state& st, std::uint64_t object) {
  if (st.index.active) return st.index.freed.contains(object);
  return std::any_of(st.freed.begin(), st.freed.end(), [&](const freed_object& f) { return f.offset == object; });
}

// The tail that commit and abort share, once the block's outcome is durable: the log is
// invalidated (it stays valid until the invalidation is durable: the ordering rule, whose
// pending mark other lanes' fences settle), and the lane's next block uses its other buffer.
void tx_manager::invalidate_log(tx_state& st) noexcept {
  auto* hdr = reinterpret_cast<log_buffer_header*>(st.log);
  hdr->state.store((st.seq << 2) | log_empty, std::memory_order_release);
  pool.flush(&hdr->state, 8);
  if (!pool.ordered()) {
    const std::uint64_t value = (st.seq << 1) | static_cast<std::uint64_t>(st.ln->buffer);
    mark_pending(st.ln, value);
    tl_own_invalidation = {pool.id, st.ln, value};
  }
  st.ln->seq++;
  st.ln->buffer ^= 1;
}

void tx_manager::begin(tx_state& st) {
  st.ln = acquire_lane();
  st.seq = st.ln->seq;
  st.log = reinterpret_cast<std::byte*>(buffer_header(st.ln->index, st.ln->buffer));
  __builtin_prefetch(st.log, 1);
  st.pos = st.flushed = 0;
  st.started = false;
}

void tx_manager::commit(tx_state& st, bool deferred) {
  if (!st.started) {
    release_lane(st.ln);
    reset(st);
    return;
  }
  if (st.heap_entries_unfenced) {
    // Allocation and free records must be durable before the bits they describe change.
    flush_log(*this, st);
    fence_with_rule(*this, st);
  }
  heap_impl& heap = *pool.heap;
  auto& objects = st.objects;
  objects.clear();
  for (auto& f : st.fresh) {
    if (f.freed) continue;
    heap.persist_alloc(f.offset, f.size, f.gen, f.type, false);
    objects.emplace_back(f.offset, f.requested);
    pool.flush(pool.at<std::byte>(f.offset), f.requested);
  }
  for (auto& f : st.freed) heap.persist_free(f.offset);
  st.redo_reserve = 0;  // reserved by the snapshots for exactly these appends
  for (auto& r : st.ranges) {
    const std::byte* now = pool.at<std::byte>(r.offset);
    // A set() logged the value it stored; if the range still holds it, that entry is the redo.
    if (r.new_at < 0 || std::memcmp(now, log_data(st) + r.new_at, r.size) != 0) {
      append(*this, st, entry_kind::redo, r.offset, now, static_cast<std::uint32_t>(r.size));
    }
    pool.flush(now, r.size);
  }
  std::uint64_t sum = commit_checksum(st.entry_sums, pool, objects);
  std::memcpy(log_data(st) + st.pos, &sum, 8);
  st.pos += 8;
  flush_log(*this, st);
  // With the rule: the lane's previous invalidation (maybe left by another thread) must be durable
  // before mark_pending below replaces it. A deferred commit where persistence is ordered waits
  // for nothing: the block is persistent, whole, once a later sync covers its flushes.
  if (deferred && pool.ordered()) {
    pool.domain->barrier();
  } else if (pool.ordered()) {
    pool.drain();
  } else {
    fence_with_rule(*this, st);
  }
  // Committed.
  invalidate_log(st);
  // The lane's next block starts in the other buffer, whose line an earlier write-back evicted
  // (clwb evicts on some CPUs): fetch it back while this thread goes on.
  __builtin_prefetch(buffer_header(st.ln->index, st.ln->buffer), 1);
  for (auto& f : st.fresh) {
    if (f.freed) heap.give_back(f.offset, f.size);
  }
  for (auto& f : st.freed) heap.give_back(f.offset, f.size);
  release_lane(st.ln);
  reset(st);
}

void tx_manager::abort(tx_state& st) noexcept {
  heap_impl& heap = *pool.heap;
  if (st.started) {
    // Walk the log back to front, restoring what the block changed in place.
    std::vector<const log_entry_header*> undo;
    for (std::size_t pos = 0; pos < st.pos;) {
      const auto* e = reinterpret_cast<const log_entry_header*>(log_data(st) + pos);
      if (e->kind == entry_kind::undo || e->kind == entry_kind::undo_redo) undo.push_back(e);
      pos += entry_header_size + pad8(e->size);
    }
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      const log_entry_header* e = *it;
      std::uint32_t n = e->kind == entry_kind::undo_redo ? e->size / 2 : e->size;
      std::memcpy(pool.at<std::byte>(e->offset), reinterpret_cast<const std::byte*>(e) + entry_header_size, n);
      pool.flush(pool.at<std::byte>(e->offset), n);
    }
    // The restored bytes are durable before the invalidation can be (the log itself needs no
    // write-back: it is about to be invalid).
    fence_with_rule(*this, st);
    invalidate_log(st);
  }
  for (auto& f : st.fresh) heap.give_back(f.offset, f.size);
  release_lane(st.ln);
  reset(st);
}

}  // namespace detail

// ---- transaction ----------------------------------------------------------------------------

transaction::transaction(pool& p) : pool_(&p), uncaught_(std::uncaught_exceptions()) {
  tx_manager& m = *p.impl().tx;
  state_ = &m.state();
  if (state_->aborted) {
    throw error(errc::transaction_aborted, "pobj: cannot open a scope inside a failure-atomic block that was aborted");
  }
  if (state_->depth == 0) m.begin(*state_);
  ++state_->depth;
}

transaction::~transaction() noexcept {
  if (done_) return;
  tx_state& st = *state_;
  tx_manager& m = *pool_->impl().tx;
  if (st.aborted) {
    if (--st.depth == 0) st.aborted = false;
    return;
  }
  if (std::uncaught_exceptions() > uncaught_) {
    m.abort(st);
    st.aborted = --st.depth > 0;
    return;
  }
  if (st.depth == 1) {
    st.depth = 0;
    m.commit(st, false);
  } else {
    --st.depth;
  }
}

bool transaction::active(const pool& p) noexcept {
  if (!p.is_open()) return false;
  thread_context& ctx = p.impl().local();
  return ctx.tx != nullptr && ctx.tx->depth > 0;
}

namespace {
void check_live(const tx_state& st, bool done) {
  if (st.aborted) throw error(errc::transaction_aborted, "pobj: this failure-atomic block was aborted");
  if (done || st.depth == 0) {
    throw error(errc::transaction_aborted, "pobj: this failure-atomic block has already committed or aborted");
  }
}
}  // namespace

void transaction::snapshot(const void* p, std::size_t n) { snapshot({byte_range{p, n}}); }

void transaction::snapshot(std::initializer_list<byte_range> ranges) {
  snapshot(std::span<const byte_range>(ranges.begin(), ranges.size()));
}

void transaction::snapshot(std::span<const byte_range> ranges) { log(ranges, nullptr); }

void transaction::log_set(void* field, const void* value, std::size_t n) {
  byte_range r{field, n};
  log(std::span<const byte_range>(&r, 1), &value);
}

// Logs `ranges` with one fence. With `values`, values[i] is what the caller will store into
// ranges[i]: the entry records old and new bytes, and the commit needs no redo copy of it.
void transaction::log(std::span<const byte_range> ranges, const void* const* values) {
  tx_state& st = *state_;
  check_live(st, done_);
  tx_manager& m = *pool_->impl().tx;
  // Check everything that can fail before appending anything: a half-logged call must not leave
  // ranges that look logged but whose records were never made durable.
  auto& todo = st.todo;
  auto& todo_values = st.todo_values;
  todo.clear();
  todo_values.clear();
  std::size_t need = 0;
  for (const byte_range& r : ranges) {
    if (r.size == 0) continue;
    if (!pool_->contains(r.pointer, r.size) ||
        !pool_->impl().data_range(pool_->offset_of(r.pointer), r.size) || r.size > (1u << 30)) {
      throw error(errc::invalid_argument,
                  "pobj: snapshot of a range outside the pool's data (objects and the root directory)");
    }
    std::uint64_t off = pool_->offset_of(r.pointer);
    auto inside = [&](std::uint64_t a, std::uint64_t n) { return off >= a && off + r.size <= a + n; };
    if (covered(st, off, r.size) ||
        std::any_of(todo.begin(), todo.end(), [&](const logged_range& l) { return inside(l.offset, l.size); })) {
      continue;  // written in place (fresh) or logged already
    }
    todo.push_back({off, r.size, -1});
    todo_values.push_back(values != nullptr ? values[&r - ranges.data()] : nullptr);
    need += entry_header_size + pad8((values != nullptr ? 2 : 1) * r.size) + entry_header_size + pad8(r.size);
  }
  if (todo.empty()) return;
  if (st.pos + need + st.redo_reserve + commit_word_size >
      pool_->impl().header.lane_log_size - sizeof(log_buffer_header)) {
    throw error(errc::transaction_too_large,
                fmt::format("pobj: a failure-atomic block needs more than its lane's {} bytes of log; open the "
                            "pool with a larger lane_log_size or split the block",
                            pool_->impl().header.lane_log_size));
  }
  for (std::size_t k = 0; k < todo.size(); ++k) {
    const logged_range& r = todo[k];
    const void* value = todo_values[k];
    const void* at = pool_->impl().at<std::byte>(r.offset);
    std::int64_t new_at = -1;
    if (value != nullptr) {
      std::size_t pos = append(m, st, entry_kind::undo_redo, r.offset, at, static_cast<std::uint32_t>(r.size),
                               entry_header_size + pad8(r.size), value);
      new_at = static_cast<std::int64_t>(pos + r.size);
    } else {
      append(m, st, entry_kind::undo, r.offset, at, static_cast<std::uint32_t>(r.size),
             entry_header_size + pad8(r.size));
    }
    st.ranges.push_back({r.offset, r.size, new_at});
    if (st.index.active) {
      auto& n = st.index.ranges[r.offset];
      n = std::max(n, r.size);
    }
  }
#ifndef POBJ_FAULT_SKIP_UNDO_FLUSH
  flush_log(m, st);
#else
  st.flushed = st.pos;  // the deliberate bug the crash tests must catch
#endif
  fence_with_rule(m, st);
  st.heap_entries_unfenced = false;
}

allocation transaction::alloc(std::size_t size, std::uint16_t type) {
  check_live(*state_, done_);
  reservation r = pool_->heap().reserve(size, type);
  allocation a{r.offset, r.pointer, size};
  adopt(r, size);
  return a;
}

void transaction::adopt(reservation& r) { adopt(r, r.size); }

void transaction::adopt(reservation& r, std::size_t requested) {
  tx_state& st = *state_;
  check_live(st, done_);
  if (!r || !pool_->contains(r.pointer, r.size) || pool_->offset_of(r.pointer) != r.offset ||
      pool_->heap().is_allocated(r.offset)) {
    throw error(errc::invalid_argument, "pobj: adopt/publish of a reservation that is empty, already "
                                        "published, or from another pool");
  }
  tx_manager& m = *pool_->impl().tx;
  alloc_payload a{r.generation, r.size, (std::uint64_t{requested} << 16) | r.type};
  try {
    append(m, st, entry_kind::alloc, r.offset, &a, sizeof(a));
  } catch (...) {
    pool_->heap().cancel(r);
    throw;
  }
  heap_impl& heap = *pool_->impl().heap;
  heap.write_meta(r.offset, r.generation, r.type);
  // The commit will set this block's allocation bit: start fetching its line now, so the
  // fence that comes first hides the miss (write-backs evict lines on some CPUs).
  if (block_ref b = heap.locate(r.offset); b.bitmap_word != nullptr) __builtin_prefetch(b.bitmap_word, 1);
  st.fresh.push_back({r.offset, r.size, requested, r.generation, r.type, false});
  if (st.index.active) st.index.fresh[r.offset] = st.fresh.size() - 1;
  maybe_index(st);
  st.heap_entries_unfenced = true;
  r = reservation{};
}

void transaction::free(offset_t object) {
  tx_state& st = *state_;
  check_live(st, done_);
  tx_manager& m = *pool_->impl().tx;
  if (const std::ptrdiff_t i = fresh_at(st, object); i >= 0) {
    fresh_object& f = st.fresh[static_cast<std::size_t>(i)];
    std::uint64_t payload[2] = {f.gen, f.size};
    append(m, st, entry_kind::free, object, payload, sizeof(payload));
    f.freed = true;
    st.heap_entries_unfenced = true;
    return;
  }
  if (!pool_->heap().is_allocated(object)) {
    throw error(errc::invalid_argument, fmt::format("pobj: free of {:#x}, which is not an allocated object", object));
  }
  if (freed_here(st, object)) {
    throw error(errc::invalid_argument, fmt::format("pobj: {:#x} is freed twice in one block", object));
  }
  block_ref b = pool_->impl().heap->locate(object);
  std::uint64_t gen = meta_gen(b.meta->load(std::memory_order_relaxed));
  std::uint64_t payload[2] = {gen, b.size};
  append(m, st, entry_kind::free, object, payload, sizeof(payload));
  st.freed.push_back({object, b.size, gen});
  if (st.index.active) st.index.freed.insert(object);
  maybe_index(st);
  st.heap_entries_unfenced = true;
}

void transaction::commit() { commit_outermost(false); }

bool transaction::changed() const noexcept {
  if (done_ || state_ == nullptr) return false;
  const detail::tx_state& st = *state_;
  return st.pos != 0 || !st.ranges.empty() || !st.fresh.empty() || !st.freed.empty();
}

std::uint64_t transaction::commit_deferred() {
  commit_outermost(true);
  return pool_->media().ticket();
}

void transaction::commit_outermost(bool deferred) {
  tx_state& st = *state_;
  check_live(st, done_);
  if (st.depth != 1) {
    throw error(errc::invalid_argument, "pobj: commit of a nested scope; only the outermost scope commits");
  }
  st.depth = 0;
  pool_->impl().tx->commit(st, deferred);
  done_ = true;
}

void transaction::abort() noexcept {
  if (done_) return;
  tx_state& st = *state_;
  done_ = true;
  if (!st.aborted) pool_->impl().tx->abort(st);
  st.aborted = --st.depth > 0;
}

}  // namespace pobj
