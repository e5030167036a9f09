// The transaction layer's lanes: the per-thread state, lane hand-out, and the ordering rule
// (pending invalidations, the fences that make them durable) that blocks, durable stores and the
// heap's new runs obey (docs/transactions.md).
#include <atomic>
#include <thread>

#include "pool/pool_impl.hpp"
#include "tx/log_entries.hpp"
#include "tx/tx_impl.hpp"

namespace pobj::detail {

thread_local own_invalidation tl_own_invalidation;

tx_manager::tx_manager(pool_impl& p) : pool(p), pending_mask((p.header.lane_count + 63) / 64) {
  for (std::uint32_t i = 0; i < p.header.lane_count; ++i) {
    lanes.push_back(std::make_unique<lane>());
    lanes.back()->index = i;
  }
}

log_buffer_header* tx_manager::buffer_header(std::uint32_t lane_index, int buffer) const noexcept {
  return pool.at<log_buffer_header>(pool.header.lanes_offset +
                                    (std::uint64_t{lane_index} * 2 + static_cast<std::uint64_t>(buffer)) *
                                        pool.header.lane_log_size);
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

void tx_manager::drain_ordered() {
  tx_state& st = state();
  flush_pending(nullptr, st.seen);
  pool.drain();
  settle_pending(st.seen);
}

}  // namespace pobj::detail
