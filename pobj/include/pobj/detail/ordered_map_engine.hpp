// Internal: the byte-string engine of the ordered map (pobj/ordered_map.hpp; pobj/src/types/ordered_map.cpp), which the public templates
// call with their keys and values encoded (pobj/codec.hpp). Not an interface of its own.
//
// Thread safety: as the public header states. Crash consistency: as the public header states.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <pobj/pool.hpp>

namespace pobj {

class transaction;

namespace detail::containers {
struct map_state;
}

namespace detail::omap {

using containers::map_state;

// The engine works on byte strings whose memcmp order is the key order.
// owning: V is a container the map owns (pobj/containers.hpp).
std::uint64_t create(transaction& tx, bool owning);
map_state& attach(pool& p, std::uint64_t header, bool owning, bool refs);
// The tree nodes (inner nodes and leaves) the calling thread's searches have read so far: what
// the tests count to show that an operation's cost does not grow with what was erased before.
std::uint64_t nodes_visited() noexcept;
bool find(pool& p, map_state& m, std::string_view key, std::string* value);
// 0: inserted; 1: present and left alone (overwrite false); 2: present and replaced.
// joining: the caller's open block, which the change joins (the caller has the map to itself).
int put(pool& p, map_state& m, std::string_view key, std::string_view value, bool overwrite,
        transaction* joining = nullptr);
bool erase(pool& p, map_state& m, std::string_view key, transaction* joining = nullptr);
std::uint64_t size(pool& p, map_state& m);

struct entry {
  std::string key, value;
};
// Where a scan stands: the bound the next leaf starts from (none: the first or the last key).
struct cursor {
  std::string key;
  bool bounded = false;
  bool inclusive = true;
  bool forward = true;
  bool done = false;
};
// Appends the entries of the next leaf in the cursor's direction that lie beyond its bound (maybe
// none, while done is still false), read as one consistent snapshot of that leaf, and advances it;
// with a limit, at most that many, and the walk is done once it is reached.
void next_batch(pool& p, map_state& m, cursor& c, std::vector<entry>& out, std::size_t limit = SIZE_MAX);

}  // namespace detail::omap

}  // namespace pobj
