// Recovery of failure-atomic blocks at open: each lane's logs are read, committed blocks are
// rolled forward and uncommitted ones back (docs/transactions.md).
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "heap/heap_impl.hpp"
#include "pool/pool_impl.hpp"
#include "tx/log_entries.hpp"
#include "tx/tx_impl.hpp"

namespace pobj::detail {

recovery_report tx_manager::recover() {
  recovery_report report;
  const std::size_t capacity = pool.header.lane_log_size - sizeof(log_buffer_header);
  heap_impl& heap = *pool.heap;
  struct entry_view {
    const log_entry_header* header;
    const std::byte* payload;
  };
  auto gen_of = [](const entry_view& v) {
    std::uint64_t g;
    std::memcpy(&g, v.payload, 8);
    return g;
  };
  for (auto& ln : lanes) {
    std::uint64_t states[2] = {buffer_header(ln->index, 0)->state.load(), buffer_header(ln->index, 1)->state.load()};
    // Older block first: a lane's later block was logged after the earlier one's end.
    int order[2] = {0, 1};
    if ((states[1] >> 2) < (states[0] >> 2)) std::swap(order[0], order[1]);
    std::uint64_t max_seq = std::max(states[0] >> 2, states[1] >> 2);
    for (int b : order) {
      log_buffer_header* hdr = buffer_header(ln->index, b);
      std::uint64_t state = states[b];
      if ((state & 3) != log_active) continue;
      std::uint64_t seq = state >> 2;
      const std::byte* data = reinterpret_cast<const std::byte*>(hdr) + sizeof(log_buffer_header);
      std::vector<entry_view> entries;
      checksum64 entry_sums;
      bool committed = false;
      std::size_t pos = 0;
      // A block that allocated an object and freed it again: neither allocated nor checksummed.
      auto freed_in_block = [&](std::uint64_t off, std::uint64_t gen) {
        bool allocated = false, freed = false;
        for (auto& v : entries) {
          if (v.header->offset != off || gen_of(v) != gen) continue;
          allocated |= v.header->kind == entry_kind::alloc;
          freed |= v.header->kind == entry_kind::free;
        }
        return allocated && freed;
      };
      while (pos + commit_word_size <= capacity) {
        const auto* e = reinterpret_cast<const log_entry_header*>(data + pos);
        bool entry = pos + entry_header_size <= capacity && e->seq == seq && e->size <= capacity &&
                     pos + entry_header_size + pad8(e->size) <= capacity &&
                     entry_checksum(*e, data + pos + entry_header_size) == e->checksum;
        // A checksum-valid entry of the wrong shape can only come from a damaged file: stop there.
        if (entry && ((e->kind == entry_kind::alloc && e->size != sizeof(alloc_payload)) ||
                      (e->kind == entry_kind::free && e->size != 16) ||
                      (e->kind == entry_kind::undo_redo && e->size % 2 != 0))) {
          entry = false;
        }
        if (entry) {
          entries.push_back({e, data + pos + entry_header_size});
          entry_sums.add_u64(e->checksum);
          pos += entry_header_size + pad8(e->size);
          continue;
        }
        // Not an entry of this block: either its commit word, or the end of an uncommitted log.
        std::vector<std::pair<std::uint64_t, std::uint64_t>> objects;
        for (auto& v : entries) {
          if (v.header->kind != entry_kind::alloc || freed_in_block(v.header->offset, gen_of(v))) continue;
          alloc_payload a;
          std::memcpy(&a, v.payload, sizeof(a));
          std::uint64_t requested = a.requested_and_type >> 16;
          if (pool.data_range(v.header->offset, requested)) objects.emplace_back(v.header->offset, requested);
        }
        std::uint64_t word;
        std::memcpy(&word, data + pos, 8);
        committed = !entries.empty() && commit_checksum(entry_sums, pool, objects) == word;
        break;
      }
      auto in_pool = [&](std::uint64_t off, std::uint64_t n) { return pool.data_range(off, n); };
      auto restore = [&](const entry_view& v, bool new_half) {
        const log_entry_header* e = v.header;
        std::uint64_t n = e->kind == entry_kind::undo_redo ? e->size / 2 : e->size;
        if (!in_pool(e->offset, n)) return;
        std::memcpy(pool.at<std::byte>(e->offset), v.payload + (new_half && e->kind == entry_kind::undo_redo ? n : 0), n);
        pool.flush(pool.at<std::byte>(e->offset), n);
      };
      if (committed) {
        for (auto& v : entries) {
          const log_entry_header* e = v.header;
          if (e->kind == entry_kind::redo || e->kind == entry_kind::undo_redo) {
            restore(v, true);
          } else if (e->kind == entry_kind::alloc && !freed_in_block(e->offset, gen_of(v))) {
            alloc_payload a;
            std::memcpy(&a, v.payload, sizeof(a));
            heap.recover(e->offset, a.usable, a.gen, static_cast<std::uint16_t>(a.requested_and_type & 0xffff),
                         heap_impl::recover_op::allocate);
          } else if (e->kind == entry_kind::free) {
            heap.recover(e->offset, 0, gen_of(v), 0, heap_impl::recover_op::clear_if_same_generation);
          }
        }
        ++report.blocks_rolled_forward;
      } else {
        for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
          const log_entry_header* e = it->header;
          if (e->kind == entry_kind::undo || e->kind == entry_kind::undo_redo) {
            restore(*it, false);
          } else if (e->kind == entry_kind::alloc) {
            heap.recover(e->offset, 0, gen_of(*it), 0, heap_impl::recover_op::clear_if_same_generation);
          } else if (e->kind == entry_kind::free && !freed_in_block(e->offset, gen_of(*it))) {
            std::uint64_t freed[2];  // generation, size
            std::memcpy(freed, it->payload, sizeof(freed));
            heap.recover(e->offset, freed[1], freed[0], 0, heap_impl::recover_op::set_if_same_generation);
          }
        }
        ++report.blocks_rolled_back;
      }
      pool.drain();
      hdr->state.store((seq << 2) | log_empty, std::memory_order_release);
      pool.persist(&hdr->state, 8);
    }
    ln->seq = max_seq + 1;
    ln->buffer = 0;
  }
  return report;
}

}  // namespace pobj::detail
