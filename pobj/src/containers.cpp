// What the containers share as parts of other objects (pobj/containers.hpp): destroying one by
// its header block, whatever its kind.
#include <pobj/containers.hpp>

#include <fmt/format.h>
#include <pobj/heap.hpp>

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
