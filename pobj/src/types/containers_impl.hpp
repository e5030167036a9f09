// The DRAM side of the pool's concurrent containers (hash_map.cpp, ordered_map.cpp, queue.cpp):
// their locks and sequence numbers, made when a container is first used after the pool opens and
// kept until the pool closes (handles point at them). Nothing here is needed to read the
// containers' persistent state; all of it starts empty.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include <pobj/pool.hpp>

#include "types/entry_node.hpp"
#include "common/sync.hpp"

namespace pobj::detail::containers {

// One per map (hash or ordered): structure changes (a hash map's splits, a tree's splits and leaf
// removals) hold `structure` exclusively and keep `structure_seq` odd; other writers hold it
// shared. Whether values are containers the map owns is the header's magic, read where needed.
struct map_state {
  std::uint64_t header = 0;
  // Whether the map's keys or values may hold references (the handle's types say; DRAM only:
  // what persists is the heap type of each node, node_type_for).
  std::atomic<bool> refs{false};
  std::uint16_t node_type(bool owning) const noexcept {
    return node_type_for(owning, refs.load(std::memory_order_relaxed));
  }
  std::shared_mutex structure;
  std::atomic<std::uint64_t> structure_seq{0};
};

// One per queue: producers serialize on `tail`, consumers on `head`; `pushed` and `popped` count
// the operations that have committed (consumers never read past `pushed`). create() resets them
// when a queue is made where a destroyed one was.
struct queue_state {
  std::uint64_t header = 0;
  mutex tail, head;
  alignas(64) std::atomic<std::uint64_t> pushed{0};
  alignas(64) std::atomic<std::uint64_t> popped{0};
};

struct pool_containers {
  static constexpr std::size_t stripe_count = 1024;
  // Segments' and leaves' writer locks, by the block's offset.
  std::array<stripe, stripe_count> stripes{};
  stripe& stripe_of(std::uint64_t block) noexcept { return stripes[(block >> 4) % stripe_count]; }
  mutex mu;
  std::unordered_map<std::uint64_t, std::unique_ptr<map_state>> maps POBJ_GUARDED_BY(mu);
  std::unordered_map<std::uint64_t, std::unique_ptr<queue_state>> queues POBJ_GUARDED_BY(mu);
  // Reclamation batches a crash left unfinished (found when the pool opened), for reclaim().
  mutex leftover_mu;
  std::vector<std::uint64_t> leftover POBJ_GUARDED_BY(leftover_mu);
};

inline pool_containers& containers_of(pool& p) noexcept { return *p.impl().containers; }

// The state of the map at `header`, after checking on every call that the header is an
// allocated block of heap type `type` holding `magic` (or `owning_magic` for maps owning
// container values, as the caller's type says); `what` names the kind in errors.
map_state& attach_map(pool& p, std::uint64_t header, std::uint16_t type, std::uint64_t magic,
                      std::uint64_t owning_magic, bool owning, bool refs, const char* what);

// Called when a pool opens: the DRAM state and the tracers of every container's blocks.
void attach_pool(pool& p);

}  // namespace pobj::detail::containers

// Each kind's attach_pool, and collect: appends every block of the container at `header` (and of
// the containers it owns) to `out`, the header first, reading only.
namespace pobj::detail::hmap {
void attach_pool(pool& p);
void collect(pool& p, std::uint64_t header, std::vector<std::uint64_t>& out);
}  // namespace pobj::detail::hmap
namespace pobj::detail::omap {
void attach_pool(pool& p);
void collect(pool& p, std::uint64_t header, std::vector<std::uint64_t>& out);
}  // namespace pobj::detail::omap
namespace pobj::detail::pqueue {
void attach_pool(pool& p);
void collect(pool& p, std::uint64_t header, std::vector<std::uint64_t>& out);
}  // namespace pobj::detail::pqueue
