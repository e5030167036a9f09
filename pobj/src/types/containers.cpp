// What the containers share as parts of other objects (pobj/containers.hpp): destroying one by
// its header block, whatever its kind, at once when it is small and through a reclamation batch
// when it is not.
//
// A reclamation batch is one block (heap type reclaim_batch, docs/format/pool.md) listing the
// blocks of destroyed containers, and how many of them are already free:
//
//   [magic u64]["count" u64]["done" u64][offsets u64 x count]
//
// It is made, filled (in place: a fresh block is covered by the commit checksum, never logged)
// and named by a root "pobj.reclaim.<offset>" in the destroying block, so that block stays small
// whatever the container holds. After that block commits, the thread that made it frees the
// listed blocks, a bounded number per block, advancing `done` in the same block; the last one frees
// the batch and drops its root. A crash leaves the batch named by its root, with `done` saying
// where to resume: the heap check traces what is left through it, and reclaim() finishes it.
#include <pobj/containers.hpp>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <pobj/heap.hpp>

#include "types/containers_impl.hpp"
#include "object/schema_impl.hpp"
#include "tx/tx_impl.hpp"

namespace pobj::detail {

namespace {

constexpr std::uint64_t batch_magic = 0x316c6352'6a624f50;  // "PObjRcl1"
constexpr std::size_t batch_base = 24;                     // the offsets start here
constexpr std::string_view batch_prefix = "pobj.reclaim.";

struct batch_head {
  std::uint64_t magic;
  std::uint64_t count;
  std::uint64_t done;
};
static_assert(sizeof(batch_head) == batch_base);

std::string batch_root(std::uint64_t batch) { return fmt::format("{}{:016x}", batch_prefix, batch); }

// Blocks one reclamation step frees: half of what a lane's log holds of free records (48 bytes
// each), so a step never runs out of log.
std::size_t step_blocks(const pool& p) {
  const std::size_t log = p.impl().header.lane_log_size;
  return std::max<std::size_t>(1, (log > 4096 ? log - 4096 : 0) / 96);
}

const batch_head& checked_batch(pool& p, std::uint64_t batch) {
  const auto* b = p.at<batch_head>(batch);
  const std::size_t size = batch != 0 ? p.heap().usable_size(batch) : 0;
  if (size < batch_base || p.heap().type_of(batch) != heap_type::reclaim_batch || b->magic != batch_magic ||
      b->done > b->count || b->count > (size - batch_base) / 8) {
    throw error(errc::corrupt, fmt::format("pobj: reclamation batch {:#x} in pool '{}' is damaged", batch, p.path()));
  }
  return *b;
}

// Frees what the batch still lists, a step per block; returns the blocks freed.
std::uint64_t finish(pool& p, std::uint64_t batch) {
  const std::string name = batch_root(batch);
  const std::size_t step = step_blocks(p);
  std::uint64_t freed = 0;
  for (bool last = false; !last;) {
    run_tx(p, [&](transaction& tx) {
      const batch_head& b = checked_batch(p, batch);
      const auto* offsets = reinterpret_cast<const std::uint64_t*>(p.base() + batch + batch_base);
      const std::uint64_t stop = std::min<std::uint64_t>(b.count, b.done + step);
      for (std::uint64_t i = b.done; i < stop; ++i) tx.free(offsets[i]);
      freed += stop - b.done;
      last = stop == b.count;
      if (last) {
        tx.free(batch);
        p.set_root(name, 0);
      } else {
        tx.set(const_cast<batch_head&>(b).done, stop);
      }
    });
  }
  return freed;
}

// What one step of a destroying block may free on the spot: a quarter of what a step frees.
std::size_t inline_blocks(const pool& p) { return std::max<std::size_t>(1, step_blocks(p) / 4); }

}  // namespace

namespace containers {

void collect_container(pool& p, std::uint64_t header, std::vector<std::uint64_t>& out) {
  switch (block_type(p, header)) {
    case heap_type::map_header: hmap::collect(p, header, out); return;
    case heap_type::tree_header: omap::collect(p, header, out); return;
    case heap_type::queue_header: pqueue::collect(p, header, out); return;
    case heap_type::vector_header: {
      out.push_back(header);
      if (const std::uint64_t data = p.at<vector_header>(header)->data; data != 0) out.push_back(data);
      return;
    }
    default:
      // An object of a persistent class that an owning map holds (pobj::owned_object).
      if (const std::uint16_t t = block_type(p, header); t != 0 && t < heap_type::first_reserved) {
        collect_object(p, header, out);
        return;
      }
      throw error(errc::corrupt, fmt::format("pobj: {:#x} in pool '{}' is not a container", header, p.path()));
  }
}

}  // namespace containers

void destroy_container(transaction& tx, std::uint64_t header) {
  pool& p = tx.get_pool();
  std::vector<std::uint64_t> blocks;
  containers::collect_container(p, header, blocks);
  if (blocks.size() <= inline_blocks(p)) {
    for (const std::uint64_t b : blocks) tx.free(b);
    return;
  }
  const allocation a = tx.alloc(batch_base + blocks.size() * 8, heap_type::reclaim_batch);
  auto* head = static_cast<batch_head*>(a.pointer);
  *head = batch_head{batch_magic, blocks.size(), 0};
  std::memcpy(static_cast<std::byte*>(a.pointer) + batch_base, blocks.data(), blocks.size() * 8);
  p.set_root(batch_root(a.offset), a.offset);
  // Once the outermost block has ended, and only if it committed (the root then names the batch;
  // on the abort path the block is still open while hooks run), free what the batch lists.
  pool* pp = &p;
  p.impl().tx->state().on_end.push_back([pp, batch = a.offset] {
    if (transaction::active(*pp) || pp->root(batch_root(batch)) != batch) return;
    try {
      finish(*pp, batch);
    } catch (...) {
      // Left for reclaim(): the batch is still named by its root, and still traced.
      containers::pool_containers& all = containers::containers_of(*pp);
      lock_guard lock(all.leftover_mu);
      all.leftover.push_back(batch);
    }
  });
}

}  // namespace pobj::detail

namespace pobj {

std::uint64_t reclaim(pool& p) {
  if (transaction::active(p)) {
    throw error(errc::invalid_argument, "pobj: reclaim() inside a failure-atomic block");
  }
  detail::containers::pool_containers& all = detail::containers::containers_of(p);
  std::vector<std::uint64_t> batches;
  {
    detail::lock_guard lock(all.leftover_mu);
    batches.swap(all.leftover);
  }
  std::uint64_t freed = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    try {
      freed += detail::finish(p, batches[i]);
    } catch (...) {
      detail::lock_guard lock(all.leftover_mu);
      all.leftover.insert(all.leftover.end(), batches.begin() + static_cast<std::ptrdiff_t>(i), batches.end());
      throw;
    }
  }
  return freed;
}

std::uint64_t reclaim_pending(pool& p) {
  std::uint64_t n = 0;
  for (const auto& [name, object] : p.roots()) {
    if (!name.starts_with(detail::batch_prefix)) continue;
    const detail::batch_head& b = detail::checked_batch(p, object);
    n += b.count - b.done;
  }
  return n;
}

}  // namespace pobj

namespace pobj::detail {

void replace_container(transaction& tx, std::uint64_t& field, std::uint64_t header) {
  const std::uint64_t old = field;
  if (old == header) return;
  tx.set(field, header);
  if (old != 0) destroy_container(tx, old);
}

}  // namespace pobj::detail

namespace pobj::detail::containers {

map_state& attach_map(pool& p, std::uint64_t header, std::uint16_t type, std::uint64_t magic,
                      std::uint64_t owning_magic, bool owning, bool refs, const char* what) {
  // Checked on every call: a state outlives its map, and the block of a destroyed map (whose
  // magic is still there) may be free or hold something else now.
  const std::uint64_t found = header != 0 && block_type(p, header) == type ? load(p.base() + header) : 0;
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
  if (refs) slot->refs.store(true, std::memory_order_relaxed);
  return *slot;
}

void attach_pool(pool& p) {
  p.impl().containers = std::make_unique<pool_containers>();
  {
    // Batches a crash left half done; reclaim() finishes them.
    pool_containers& all = *p.impl().containers;
    lock_guard lock(all.leftover_mu);
    for (const auto& [name, object] : p.roots()) {
      if (name.starts_with(batch_prefix)) all.leftover.push_back(object);
    }
  }
  p.heap().set_tracer(heap_type::reclaim_batch, [](const void* o, std::size_t size, const reference_visitor& visit) {
    batch_head b;
    std::memcpy(&b, o, sizeof(b));
    if (b.magic != batch_magic) return;
    const std::uint64_t count = std::min<std::uint64_t>(b.count, (size - batch_base) / 8);
    for (std::uint64_t i = b.done; i < count; ++i) {
      std::uint64_t w;
      std::memcpy(&w, static_cast<const std::byte*>(o) + batch_base + i * 8, 8);
      visit(w);
    }
  });
  hmap::attach_pool(p);
  omap::attach_pool(p);
  pqueue::attach_pool(p);
}

}  // namespace pobj::detail::containers

namespace pobj::detail {

void null_container_field(const char* cls, const char* field, const char* make) {
  throw error(errc::invalid_argument,
              fmt::format("pobj: field '{}' of {} holds no container yet (container fields start null): make one in a "
                          "block and install it, e.g. set_{}(tx, {}(tx))",
                          field, cls, field, make));
}

}  // namespace pobj::detail
