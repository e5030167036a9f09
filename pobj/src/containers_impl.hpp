// The DRAM side of the pool's concurrent containers (hash_map.cpp, ordered_map.cpp, queue.cpp):
// their locks and sequence numbers, made when a container is first used after the pool opens.
// Nothing here is needed to read the containers' persistent state; all of it starts empty.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include <pobj/pool.hpp>

#include "kv_node.hpp"
#include "sync.hpp"

namespace pobj::detail {

namespace hmap {
// One per hash map: splits exclude the map's other writers; dir_seq is odd while one runs.
struct map_state {
  std::uint64_t header = 0;
  bool owning = false;  // values are containers the map owns
  std::shared_mutex resize;
  std::atomic<std::uint64_t> dir_seq{0};
};
}  // namespace hmap

namespace omap {
// One per ordered map: structure changes (splits, removing an empty leaf) exclude the map's other
// writers; tree_seq is odd while one runs.
struct tree_state {
  std::uint64_t header = 0;
  bool owning = false;  // values are containers the map owns
  std::shared_mutex structure;
  std::atomic<std::uint64_t> tree_seq{0};
};
}  // namespace omap

namespace pqueue {
// One per queue: producers serialize on `tail`, consumers on `head`; `pushed` and `popped` count
// the operations that have committed (consumers never read past `pushed`).
struct queue_state {
  std::uint64_t header = 0;
  mutex tail, head;
  alignas(64) std::atomic<std::uint64_t> pushed{0};
  alignas(64) std::atomic<std::uint64_t> popped{0};
};
}  // namespace pqueue

namespace hmap {
struct pool_maps {
  static constexpr std::size_t stripe_count = 1024;
  // Segments' and leaves' writer locks, by the block's offset.
  std::array<kv::stripe, stripe_count> stripes{};
  kv::stripe& stripe_of(std::uint64_t block) noexcept { return stripes[(block >> 4) % stripe_count]; }
  mutex mu;
  std::unordered_map<std::uint64_t, std::unique_ptr<map_state>> maps POBJ_GUARDED_BY(mu);
  std::unordered_map<std::uint64_t, std::unique_ptr<omap::tree_state>> trees POBJ_GUARDED_BY(mu);
  std::unordered_map<std::uint64_t, std::unique_ptr<pqueue::queue_state>> queues POBJ_GUARDED_BY(mu);
};

// Called when a pool opens: the DRAM state, and precise tracers for the containers' blocks.
void attach_pool(pool& p);
}  // namespace hmap

namespace omap {
void attach_pool(pool& p);
}
namespace pqueue {
void attach_pool(pool& p);
}

}  // namespace pobj::detail
