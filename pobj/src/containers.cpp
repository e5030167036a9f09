// What the containers share as parts of other objects (pobj/containers.hpp): destroying one by
// its header block, whatever its kind.
#include <pobj/containers.hpp>

#include <fmt/format.h>
#include <pobj/heap.hpp>

#include "containers_impl.hpp"

namespace pobj::detail {

void destroy_container(transaction& tx, std::uint64_t header) {
  pool& p = tx.get_pool();
  switch (p.heap().type_of(header)) {
    case heap_type::map_header: hmap::destroy(tx, header); return;
    case heap_type::tree_header: omap::destroy(tx, header); return;
    case heap_type::queue_header: pqueue::destroy(tx, header); return;
    case heap_type::vector_header: destroy(tx, vector<std::uint64_t>{header}); return;  // any T: offsets only
    default:
      throw error(errc::corrupt, fmt::format("pobj: {:#x} in pool '{}' is not a container", header, p.path()));
  }
}

void replace_container(transaction& tx, std::uint64_t& field, std::uint64_t header) {
  const std::uint64_t old = field;
  if (old == header) return;
  tx.set(field, header);
  if (old != 0) destroy_container(tx, old);
}

}  // namespace pobj::detail

namespace pobj::detail::kv {

map_state& attach_map(pool& p, std::uint64_t header, std::uint16_t type, std::uint64_t magic,
                      std::uint64_t owning_magic, bool owning, const char* what) {
  // Checked on every call: a state outlives its map, and the block of a destroyed map (whose
  // magic is still there) may be free or hold something else now.
  const std::uint64_t found = header != 0 && p.heap().type_of(header) == type ? load(p.base() + header) : 0;
  if (found != magic && found != owning_magic) {
    throw error(errc::invalid_argument, fmt::format("pobj: {:#x} in pool '{}' is not {}", header, p.path(), what));
  }
  if (owning != (found == owning_magic)) {
    throw error(errc::invalid_argument, fmt::format("pobj: the {} at {:#x} in pool '{}' holds {} values", what, header,
                                                    p.path(), owning ? "non-container" : "container"));
  }
  pool_containers& all = containers_of(p);
  lock_guard lock(all.mu);
  auto& slot = all.maps[header];
  if (!slot) {
    slot = std::make_unique<map_state>();
    slot->header = header;
  }
  return *slot;
}

void attach_pool(pool& p) {
  p.impl().containers = std::make_unique<pool_containers>();
  hmap::attach_pool(p);
  omap::attach_pool(p);
  pqueue::attach_pool(p);
}

}  // namespace pobj::detail::kv
