// The DRAM side of the pool's hash maps (pobj/hash_map.hpp): their locks and sequence numbers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include <pobj/hash_map.hpp>

#include "sync.hpp"

namespace pobj::detail::hmap {

// One per map: splits exclude the map's other writers; dir_seq is odd while one runs.
struct map_state {
  std::uint64_t header = 0;
  std::shared_mutex resize;
  std::atomic<std::uint64_t> dir_seq{0};
};

// A segment's lock and sequence number (odd while a writer of the segment is at work). Segments
// share a fixed set of stripes, by their offset.
struct alignas(64) stripe {
  std::atomic<bool> locked{false};
  std::atomic<std::uint64_t> seq{0};
};

struct pool_maps {
  static constexpr std::size_t stripe_count = 1024;
  std::array<stripe, stripe_count> stripes{};
  mutex mu;
  std::unordered_map<std::uint64_t, std::unique_ptr<map_state>> maps POBJ_GUARDED_BY(mu);
};

// Called when a pool opens: the DRAM state, and precise tracers for the maps' blocks.
void attach_pool(pool& p);

}  // namespace pobj::detail::hmap
