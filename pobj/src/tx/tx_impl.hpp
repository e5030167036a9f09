// Internal state of failure-atomic blocks: log lanes, per-thread block state, recovery.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <vector>

#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

#include "common/checksum.hpp"
#include "pool/layout.hpp"
#include "common/sync.hpp"

namespace pobj::detail {

struct pool_impl;

struct lane {
  std::uint32_t index = 0;
  std::atomic<bool> busy{false};
  std::uint64_t seq = 0;   // of the next block (REQUIRES busy)
  int buffer = 0;          // the buffer the next block uses (REQUIRES busy)
  // Non-zero while the invalidation of one of this lane's buffers is stored and flushed by its
  // owner but not yet known to be durable: (seq << 1) | buffer.
  std::atomic<std::uint64_t> pending{0};
};

struct logged_range {
  std::uint64_t offset;
  std::uint64_t size;
  std::int64_t new_at;  // where the log holds the value set() stored, or -1 (snapshot)
};

struct fresh_object {
  std::uint64_t offset;
  std::uint64_t size;       // usable size
  std::uint64_t requested;  // bytes the caller asked for: flushed and checksummed at commit
  std::uint64_t gen;
  std::uint16_t type;
  bool freed;           // freed again by the same block: neither allocated nor checksummed
};

struct freed_object {
  std::uint64_t offset;
  std::uint64_t size;
  std::uint64_t gen;
};

// Where a block's fresh objects and logged ranges are, once it has many of them: a block that
// joins many changes (a batch of pobj-kv's commands) would otherwise search its lists linearly at
// every snapshot, alloc and free. Most blocks have a few and never build it.
struct block_index {
  static constexpr std::size_t linear_max = 16;
  bool active = false;
  std::map<std::uint64_t, std::uint64_t> fresh;   // offset -> index in tx_state::fresh
  std::map<std::uint64_t, std::uint64_t> ranges;  // offset -> largest size logged at that offset
  std::unordered_set<std::uint64_t> freed;        // offsets freed by the block (not fresh)
  void clear() {
    if (!active) return;
    active = false;
    fresh.clear();
    ranges.clear();
    freed.clear();
  }
};

struct tx_state {
  int depth = 0;
  bool aborted = false;
  lane* ln = nullptr;
  std::byte* log = nullptr;      // the buffer in use
  std::uint64_t seq = 0;
  std::size_t pos = 0;           // bytes of entries written after the header line
  std::size_t flushed = 0;       // entries [0, flushed) have been flushed
  bool started = false;          // the buffer header says active
  bool heap_entries_unfenced = false;
  std::size_t redo_reserve = 0;  // log bytes the commit will need
  checksum64 entry_sums;         // over the checksums of the entries appended so far
  std::vector<logged_range> ranges;
  std::vector<fresh_object> fresh;
  std::vector<freed_object> freed;
  block_index index;                          // over fresh, ranges and freed, once they are long
  std::vector<std::function<void()>> on_end;  // run when the block has committed or aborted
  // Scratch space, kept to avoid allocations on the hot path (here rather than in thread_local
  // variables, which may already be destroyed when a static pool closes at exit).
  std::vector<std::pair<lane*, std::uint64_t>> seen;
  std::vector<logged_range> todo;
  std::vector<const void*> todo_values;
  std::vector<byte_range> words;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> objects;  // (offset, bytes) the commit covers
};

// The heap type of `object`: an allocated block's, or that of an object the calling thread's open
// block allocated (not yet committed), or 0. Handles on containers made in the same block use it.
std::uint16_t block_type(pool& p, std::uint64_t object);

struct tx_manager final : ordering_rule {
  explicit tx_manager(pool_impl& p);

  // The ordering rule for the layers below: flush the pending invalidations, then drain.
  void drain_ordered() override;

  pool_impl& pool;
  std::vector<std::unique_ptr<lane>> lanes;
  std::vector<std::atomic<std::uint64_t>> pending_mask;  // bit i: lanes[i].pending != 0
  mutex states_mu;
  std::vector<std::unique_ptr<tx_state>> states POBJ_GUARDED_BY(states_mu);

  recovery_report recover();

  log_buffer_header* buffer_header(std::uint32_t lane_index, int buffer) const noexcept;
  tx_state& state();  // this thread's, created on first use
  lane* acquire_lane() noexcept;
  void release_lane(lane* l) noexcept;

  // The ordering rule (docs/transactions.md): before a store to pool data can become durable,
  // every committed block's log invalidation must be durable, or recovery could replay a stale
  // log over the newer store. flush_pending() writes back the pending invalidations of other
  // lanes (the caller then drains); settle_pending() clears what that drain made durable.
  // Returns whether anything was pending.
  bool flush_pending(const lane* self, std::vector<std::pair<lane*, std::uint64_t>>& seen) noexcept;
  void settle_pending(const std::vector<std::pair<lane*, std::uint64_t>>& seen) noexcept;
  void mark_pending(lane* l, std::uint64_t value) noexcept;

  void begin(tx_state& st);
  void commit(tx_state& st, bool deferred);
  void abort(tx_state& st) noexcept;
  void invalidate_log(tx_state& st) noexcept;  // commit's and abort's shared tail
};

// Before an in-place store outside a block (the ordering rule): makes the pending log
// invalidations of committed blocks durable first, with one fence, and only if there are any
// (lanes.cpp).
void settle_before_store(pool_impl& p, thread_context& ctx);

}  // namespace pobj::detail
