#include <pobj/transaction.hpp>
#include <pobj/atomic.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "checksum.hpp"
#include "heap_impl.hpp"
#include "pool_impl.hpp"
#include "tx_impl.hpp"

namespace pobj {

using namespace detail;

namespace detail {

namespace {

constexpr std::size_t entry_header_size = sizeof(log_entry_header);
constexpr std::size_t commit_word_size = 8;
constexpr std::size_t pad8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

// The invalidation this thread stored and flushed last: its own fences order that flush, so the
// ordering rule need not write it back again when this thread is the one that fences.
struct own_invalidation {
  std::uint64_t pool_id = 0;
  const lane* ln = nullptr;
  std::uint64_t value = 0;
};
thread_local own_invalidation tl_own_invalidation;

std::uint64_t entry_checksum(const log_entry_header& h, const std::byte* payload) {
  log_entry_header copy = h;
  copy.checksum = 0;
  checksum64 c;
  c.add(&copy, sizeof(copy));
  c.add(payload, h.size);
  return c.value();
}

struct alloc_payload {
  std::uint64_t gen;
  std::uint64_t usable;
  std::uint64_t requested_and_type;  // requested << 16 | type
};

// The commit word: a checksum over the checksums of the block's entries (each covers its own
// bytes) and over every object the block allocated (and did not free again), so a commit whose
// entries or objects did not all reach the medium never validates.
template <class Objects>
std::uint64_t commit_checksum(const checksum64& entries, const pool_impl& p, const Objects& objects) {
  checksum64 c = entries;
  for (const auto& [off, requested] : objects) {
    c.add_u64(off);
    c.add(p.at<std::byte>(off), requested);
  }
  return c.value();
}

}  // namespace

void ordered_drain(pool_impl& p);

tx_manager::tx_manager(pool_impl& p) : pool(p), pending_mask((p.header.lane_count + 63) / 64) {
  for (std::uint32_t i = 0; i < p.header.lane_count; ++i) {
    lanes.push_back(std::make_unique<lane>());
    lanes.back()->index = i;
  }
  p.ordered_drain = &ordered_drain;
}

log_buffer_header* tx_manager::buffer_header(std::uint32_t lane_index, int buffer) const noexcept {
  return pool.at<log_buffer_header>(pool.header.lanes_offset +
                                    (std::uint64_t{lane_index} * 2 + static_cast<std::uint64_t>(buffer)) *
                                        pool.header.lane_log_size);
}

recovery_report tx_manager::recover() {
  recovery_report report;
  const std::size_t capacity = pool.header.lane_log_size - sizeof(log_buffer_header);
  heap_impl& heap = *pool.heap;
  struct entry_view {
    const log_entry_header* header;
    const std::byte* payload;
  };
  auto gen_of = [](const entry_view& v) {
    std::uint64_t g;
    std::memcpy(&g, v.payload, 8);
    return g;
  };
  for (auto& ln : lanes) {
    std::uint64_t states[2] = {buffer_header(ln->index, 0)->state.load(), buffer_header(ln->index, 1)->state.load()};
    // Older block first: a lane's later block was logged after the earlier one's end.
    int order[2] = {0, 1};
    if ((states[1] >> 2) < (states[0] >> 2)) std::swap(order[0], order[1]);
    std::uint64_t max_seq = std::max(states[0] >> 2, states[1] >> 2);
    for (int b : order) {
      log_buffer_header* hdr = buffer_header(ln->index, b);
      std::uint64_t state = states[b];
      if ((state & 3) != log_active) continue;
      std::uint64_t seq = state >> 2;
      const std::byte* data = reinterpret_cast<const std::byte*>(hdr) + sizeof(log_buffer_header);
      std::vector<entry_view> entries;
      checksum64 entry_sums;
      bool committed = false;
      std::size_t pos = 0;
      // A block that allocated an object and freed it again: neither allocated nor checksummed.
      auto freed_in_block = [&](std::uint64_t off, std::uint64_t gen) {
        bool allocated = false, freed = false;
        for (auto& v : entries) {
          if (v.header->offset != off || gen_of(v) != gen) continue;
          allocated |= v.header->kind == entry_kind::alloc;
          freed |= v.header->kind == entry_kind::free;
        }
        return allocated && freed;
      };
      while (pos + commit_word_size <= capacity) {
        const auto* e = reinterpret_cast<const log_entry_header*>(data + pos);
        bool entry = pos + entry_header_size <= capacity && e->seq == seq && e->size <= capacity &&
                     pos + entry_header_size + pad8(e->size) <= capacity &&
                     entry_checksum(*e, data + pos + entry_header_size) == e->checksum;
        // A checksum-valid entry of the wrong shape can only come from a damaged file: stop there.
        if (entry && ((e->kind == entry_kind::alloc && e->size != sizeof(alloc_payload)) ||
                      (e->kind == entry_kind::free && e->size != 16) ||
                      (e->kind == entry_kind::undo_redo && e->size % 2 != 0))) {
          entry = false;
        }
        if (entry) {
          entries.push_back({e, data + pos + entry_header_size});
          entry_sums.add_u64(e->checksum);
          pos += entry_header_size + pad8(e->size);
          continue;
        }
        // Not an entry of this block: either its commit word, or the end of an uncommitted log.
        std::vector<std::pair<std::uint64_t, std::uint64_t>> objects;
        for (auto& v : entries) {
          if (v.header->kind != entry_kind::alloc || freed_in_block(v.header->offset, gen_of(v))) continue;
          alloc_payload a;
          std::memcpy(&a, v.payload, sizeof(a));
          std::uint64_t requested = a.requested_and_type >> 16;
          if (pool.data_range(v.header->offset, requested)) objects.emplace_back(v.header->offset, requested);
        }
        std::uint64_t word;
        std::memcpy(&word, data + pos, 8);
        committed = !entries.empty() && commit_checksum(entry_sums, pool, objects) == word;
        break;
      }
      auto in_pool = [&](std::uint64_t off, std::uint64_t n) { return pool.data_range(off, n); };
      auto restore = [&](const entry_view& v, bool new_half) {
        const log_entry_header* e = v.header;
        std::uint64_t n = e->kind == entry_kind::undo_redo ? e->size / 2 : e->size;
        if (!in_pool(e->offset, n)) return;
        std::memcpy(pool.at<std::byte>(e->offset), v.payload + (new_half && e->kind == entry_kind::undo_redo ? n : 0), n);
        pool.flush(pool.at<std::byte>(e->offset), n);
      };
      if (committed) {
        for (auto& v : entries) {
          const log_entry_header* e = v.header;
          if (e->kind == entry_kind::redo || e->kind == entry_kind::undo_redo) {
            restore(v, true);
          } else if (e->kind == entry_kind::alloc && !freed_in_block(e->offset, gen_of(v))) {
            alloc_payload a;
            std::memcpy(&a, v.payload, sizeof(a));
            heap.recover(e->offset, a.usable, a.gen, static_cast<std::uint16_t>(a.requested_and_type & 0xffff),
                         heap_impl::recover_op::allocate);
          } else if (e->kind == entry_kind::free) {
            heap.recover(e->offset, 0, gen_of(v), 0, heap_impl::recover_op::clear_if_same_generation);
          }
        }
        ++report.blocks_rolled_forward;
      } else {
        for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
          const log_entry_header* e = it->header;
          if (e->kind == entry_kind::undo || e->kind == entry_kind::undo_redo) {
            restore(*it, false);
          } else if (e->kind == entry_kind::alloc) {
            heap.recover(e->offset, 0, gen_of(*it), 0, heap_impl::recover_op::clear_if_same_generation);
          } else if (e->kind == entry_kind::free && !freed_in_block(e->offset, gen_of(*it))) {
            std::uint64_t freed[2];  // generation, size
            std::memcpy(freed, it->payload, sizeof(freed));
            heap.recover(e->offset, freed[1], freed[0], 0, heap_impl::recover_op::set_if_same_generation);
          }
        }
        ++report.blocks_rolled_back;
      }
      pool.drain();
      hdr->state.store((seq << 2) | log_empty, std::memory_order_release);
      pool.persist(&hdr->state, 8);
    }
    ln->seq = max_seq + 1;
    ln->buffer = 0;
  }
  return report;
}

tx_state& tx_manager::state() {
  thread_context& ctx = pool.local();
  if (ctx.tx == nullptr) {
    lock_guard lock(states_mu);
    states.push_back(std::make_unique<tx_state>());
    ctx.tx = states.back().get();
  }
  return *ctx.tx;
}

lane* tx_manager::acquire_lane() noexcept {
  thread_local std::uint32_t preferred = static_cast<std::uint32_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  const std::size_t n = lanes.size();
  for (std::size_t spin = 0;; ++spin) {
    for (std::size_t k = 0; k < n; ++k) {
      lane* l = lanes[(preferred + k) % n].get();
      if (!l->busy.load(std::memory_order_relaxed) && !l->busy.exchange(true, std::memory_order_acquire)) {
        preferred = l->index;
        return l;
      }
    }
    std::this_thread::yield();  // more threads in blocks than lanes: wait for one to end
  }
}

void tx_manager::release_lane(lane* l) noexcept { l->busy.store(false, std::memory_order_release); }

void tx_manager::mark_pending(lane* l, std::uint64_t value) noexcept {
  // seq_cst: the store must be visible before the mask is read, or a thread dropping this lane's
  // bit (flush_pending) could miss the new pending value.
  l->pending.store(value, std::memory_order_seq_cst);
  // A lane's bit stays set while the lane is in use, so the common path writes no shared word.
  std::uint64_t bit = std::uint64_t{1} << (l->index % 64);
  auto& word = pending_mask[l->index / 64];
  if ((word.load(std::memory_order_relaxed) & bit) == 0) word.fetch_or(bit, std::memory_order_release);
}

bool tx_manager::flush_pending(const lane* self, std::vector<std::pair<lane*, std::uint64_t>>& seen) noexcept {
  seen.clear();
  for (std::size_t w = 0; w < pending_mask.size(); ++w) {
    std::uint64_t m = pending_mask[w].load(std::memory_order_acquire);
    while (m != 0) {
      std::size_t i = w * 64 + static_cast<std::size_t>(std::countr_zero(m));
      m &= m - 1;
      lane* l = lanes[i].get();
      std::uint64_t v = l->pending.load(std::memory_order_acquire);
      if (v == 0) {
        // Nothing pending: drop the bit of a lane that sits idle (its next commit sets it again).
        if (l != self && !l->busy.load(std::memory_order_relaxed)) {
          std::uint64_t bit = std::uint64_t{1} << (i % 64);
          pending_mask[w].fetch_and(~bit, std::memory_order_seq_cst);
          if (l->pending.load(std::memory_order_seq_cst) != 0) pending_mask[w].fetch_or(bit, std::memory_order_seq_cst);
        }
        continue;
      }
      // The owner flushed this line already, but its flush is ordered only by its own fence:
      // write it back again so that the caller's fence covers it (unless the caller is the owner).
      const own_invalidation& own = tl_own_invalidation;
      if (own.pool_id != pool.id || own.ln != l || own.value != v) {
        pool.flush(buffer_header(l->index, static_cast<int>(v & 1)), 8);
      }
      seen.emplace_back(l, v);
    }
  }
  return !seen.empty();
}

void tx_manager::settle_pending(const std::vector<std::pair<lane*, std::uint64_t>>& seen) noexcept {
  for (auto [l, v] : seen) {
    std::uint64_t expected = v;
    l->pending.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
  }
}

namespace {

// A fence that also makes every pending log invalidation durable (the ordering rule). Where
// persistence is ordered (page mode) every invalidation is persistent before anything flushed
// after it, so a barrier does both, for free.
void fence_with_rule(tx_manager& m, tx_state& st) {
  if (m.pool.ordered()) {
    m.pool.domain->barrier();
    return;
  }
  m.flush_pending(st.ln, st.seen);
  m.pool.drain();
  m.settle_pending(st.seen);
}

std::byte* log_data(tx_state& st) { return st.log + sizeof(log_buffer_header); }

}  // namespace

// Before an in-place store outside a block (the ordering rule): makes the pending log
// invalidations of committed blocks durable first, with one fence, and only if there are any.
void settle_before_store(pool_impl& p, thread_context& ctx) {
  tx_manager& m = *p.tx;
  auto& seen = (ctx.tx != nullptr ? *ctx.tx : m.state()).seen;
  if (m.flush_pending(nullptr, seen)) {
    p.drain();
    m.settle_pending(seen);
  }
}

void ordered_drain(pool_impl& p) {
  tx_state& st = p.tx->state();
  p.tx->flush_pending(nullptr, st.seen);
  p.drain();
  p.tx->settle_pending(st.seen);
}

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

}  // namespace

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
  // Committed. The log stays valid until its invalidation is durable; see the ordering rule.
  auto* hdr = reinterpret_cast<log_buffer_header*>(st.log);
  hdr->state.store((st.seq << 2) | log_empty, std::memory_order_release);
  pool.flush(&hdr->state, 8);
  if (!pool.ordered()) {
    mark_pending(st.ln, (st.seq << 1) | static_cast<std::uint64_t>(st.ln->buffer));
    tl_own_invalidation = {pool.id, st.ln, (st.seq << 1) | static_cast<std::uint64_t>(st.ln->buffer)};
  }
  st.ln->seq++;
  st.ln->buffer ^= 1;
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
    auto* hdr = reinterpret_cast<log_buffer_header*>(st.log);
    hdr->state.store((st.seq << 2) | log_empty, std::memory_order_release);
    pool.flush(&hdr->state, 8);
    if (!pool.ordered()) {
      mark_pending(st.ln, (st.seq << 1) | static_cast<std::uint64_t>(st.ln->buffer));
      tl_own_invalidation = {pool.id, st.ln, (st.seq << 1) | static_cast<std::uint64_t>(st.ln->buffer)};
    }
    st.ln->seq++;
    st.ln->buffer ^= 1;
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

// ---- publish, durable stores, frees outside blocks ------------------------------------------

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

// ---- named roots ----------------------------------------------------------------------------

namespace {
void check_root_name(std::string_view name) {
  if (name.empty() || name.size() > pool::root_name_max || name.find('\0') != std::string_view::npos) {
    throw error(errc::invalid_argument,
                fmt::format("pobj: root names are 1 to {} bytes without NUL; '{}' is not", pool::root_name_max, name));
  }
}
std::string_view entry_name(const root_entry& e) { return {e.name, strnlen(e.name, sizeof(e.name))}; }
}  // namespace

offset_t pool::root(std::string_view name) const {
  check_root_name(name);
  lock_guard lock(impl_->roots_mu);
  for (std::uint64_t i = 0; i < impl_->header.root_entries; ++i) {
    const root_entry& e = impl_->roots[i];
    if (e.object != 0 && entry_name(e) == name) return e.object;
  }
  return 0;
}

namespace detail {

std::uint16_t block_type(pool& p, std::uint64_t object) {
  if (const std::uint16_t t = p.heap().type_of(object); t != 0) return t;
  thread_context& ctx = p.impl().local();
  if (ctx.tx == nullptr || ctx.tx->depth == 0) return 0;
  const std::ptrdiff_t i = fresh_at(*ctx.tx, object);
  return i < 0 ? 0 : ctx.tx->fresh[static_cast<std::size_t>(i)].type;
}

}  // namespace detail

void pool::set_root(std::string_view name, offset_t object) {
  check_root_name(name);
  // The block first, then the directory's lock: a thread waiting for a lane must never hold the
  // lock that a thread inside a block needs.
  transaction tx(*this);
  tx_state& st = impl_->tx->state();
  std::uint16_t type = 0;
  const std::ptrdiff_t at = object != 0 ? fresh_at(st, object) : -1;
  const bool fresh = at >= 0;
  if (fresh) type = st.fresh[static_cast<std::size_t>(at)].type;
  const bool freed = freed_here(st, object);
  if (object != 0 && !fresh && (freed || !heap().is_allocated(object))) {
    throw error(errc::invalid_argument,
                fmt::format("pobj: root '{}' cannot refer to {:#x}: not an allocated object", name, object));
  }
  if (object != 0 && !fresh) type = heap().type_of(object);
  lock_guard lock(impl_->roots_mu);
  root_entry* slot = nullptr;
  root_entry* free_slot = nullptr;
  for (std::uint64_t i = 0; i < impl_->header.root_entries; ++i) {
    root_entry& e = impl_->roots[i];
    if (e.object != 0 && entry_name(e) == name) {
      slot = &e;
      break;
    }
    // A slot emptied by a block that has not ended yet stays reserved: if that block rolls back,
    // it writes its old entry there again.
    if (e.object == 0 && free_slot == nullptr && !impl_->root_tombstones.contains(i)) free_slot = &e;
  }
  if (slot == nullptr) {
    if (object == 0) return;
    if (free_slot == nullptr) {
      throw error(errc::out_of_space, fmt::format("pobj: the root directory is full ({} names)", root_capacity));
    }
    slot = free_slot;
  }
  tx.snapshot(slot, sizeof(root_entry));
  std::memset(slot->name, 0, sizeof(slot->name));
  if (object != 0) std::memcpy(slot->name, name.data(), name.size());
  slot->type = type;
  slot->object = object;
  if (object == 0) {
    std::uint64_t index = static_cast<std::uint64_t>(slot - impl_->roots);
    ++impl_->root_tombstones[index];
    pool_impl* p = impl_.get();
    st.on_end.push_back([p, index] {
      lock_guard l(p->roots_mu);
      if (--p->root_tombstones[index] == 0) p->root_tombstones.erase(index);
    });
  }
}

bool pool::remove_root(std::string_view name) {
  if (root(name) == 0) return false;
  set_root(name, 0);
  return true;
}

std::vector<std::pair<std::string, offset_t>> pool::roots() const {
  std::vector<std::pair<std::string, offset_t>> out;
  lock_guard lock(impl_->roots_mu);
  for (std::uint64_t i = 0; i < impl_->header.root_entries; ++i) {
    const root_entry& e = impl_->roots[i];
    if (e.object != 0) out.emplace_back(std::string(entry_name(e)), e.object);
  }
  return out;
}

}  // namespace pobj
