// Internal: the byte-string engine of the hash map (pobj/hash_map.hpp; pobj/src/types/hash_map.cpp), which the public templates
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

namespace detail::hmap {

using containers::map_state;

// The engine works on byte strings; hash_map_ref encodes K and V.
// owning: V is a container the map owns (pobj/containers.hpp).
std::uint64_t create(transaction& tx, bool owning);
map_state& attach(pool& p, std::uint64_t header, bool owning, bool refs);
bool find(pool& p, map_state& m, std::string_view key, std::string* value);
// 0: inserted; 1: present and left alone (overwrite false); 2: present and replaced.
// joining: the caller's open block, which the change joins (the caller has the map to itself).
int put(pool& p, map_state& m, std::string_view key, std::string_view value, bool overwrite,
        transaction* joining = nullptr);
// keep_owned: in an owning map, the container (or object) the entry holds is not destroyed.
bool erase(pool& p, map_state& m, std::string_view key, transaction* joining = nullptr, bool keep_owned = false);
std::uint64_t size(pool& p, map_state& m);
bool empty(pool& p, map_state& m);
void for_each(pool& p, map_state& m, const std::function<void(std::string_view, std::string_view)>& fn);
// fn for the entries of the hash range `cursor` falls in, from the cursor on; the next range's
// cursor, or 0 after the last.
std::uint64_t scan(pool& p, map_state& m, std::uint64_t cursor,
                   const std::function<void(std::string_view, std::string_view)>& fn);

}  // namespace detail::hmap

}  // namespace pobj
