// The public pobj::heap: statistics, check and repair, and the reserve/cancel entry points.
#include <pobj/heap.hpp>

#include <algorithm>
#include <bit>
#include <unordered_set>

#include <fmt/format.h>

#include "heap/heap_impl.hpp"
#include "pool/pool_impl.hpp"

namespace pobj {

using namespace detail;

namespace {

// Calls fn(offset, size, meta) for every allocated block and extent, and report(line) for every
// inconsistency in the chunk tables and run headers.
template <class Fn, class Report>
void for_each_allocated(const heap_impl& h, Fn&& fn, Report&& report) {
  const std::uint64_t chunks = h.visible_chunks.load(std::memory_order_acquire);
  for (std::uint64_t g = 0; g < chunks; ++g) {
    if (heap_impl::is_table(g)) continue;
    std::uint64_t w = h.entry(g)->word.load(std::memory_order_acquire);
    std::uint64_t base = h.chunk_offset(g);
    switch (word_state(w)) {
      case chunk_state::free: break;
      case chunk_state::extent: {
        std::uint64_t n = word_count(w);
        if (n == 0 || g + n > chunks || (g % zone_chunks) + n > zone_chunks) {
          report(fmt::format("chunk {}: extent of {} chunks runs past the heap or its zone", g, n));
          break;
        }
        fn(base, n * chunk_size, h.entry(g)->meta.load(std::memory_order_relaxed));
        g += n - 1;
        break;
      }
      case chunk_state::run: {
        std::uint32_t cls = word_class(w);
        if (cls >= size_classes().size()) {
          report(fmt::format("chunk {}: run of unknown size class {}", g, cls));
          break;
        }
        const size_class& sc = size_classes()[cls];
        const auto* rh = h.pool.at<run_header>(base);
        if (rh->magic != run_magic || rh->size_class != cls || rh->block_size != sc.block_size ||
            rh->block_count != sc.block_count) {
          report(fmt::format("chunk {}: run header does not match size class {}", g, cls));
          break;
        }
        const auto* bitmap = h.pool.at<std::atomic<std::uint64_t>>(base + sc.bitmap_offset);
        const auto* meta = h.pool.at<std::atomic<std::uint64_t>>(base + sc.meta_offset);
        std::size_t words = (sc.block_count + 63) / 64;
        for (std::size_t i = 0; i < words; ++i) {
          std::uint64_t bits = bitmap[i].load(std::memory_order_relaxed);
          if (i == words - 1 && sc.block_count % 64 != 0 && (bits >> (sc.block_count % 64)) != 0) {
            report(fmt::format("chunk {}: bits set past the last block of the run", g));
            bits &= (std::uint64_t{1} << (sc.block_count % 64)) - 1;
          }
          while (bits != 0) {
            std::uint64_t b = static_cast<std::uint64_t>(std::countr_zero(bits));
            bits &= bits - 1;
            std::uint64_t idx = i * 64 + b;
            fn(base + sc.data_offset + idx * sc.block_size, sc.block_size,
               meta[idx].load(std::memory_order_relaxed));
          }
        }
        break;
      }
      default: report(fmt::format("chunk {}: unknown chunk state {}", g, w & 0xff)); break;
    }
  }
}

}  // namespace

reservation heap::reserve(std::size_t size, std::uint16_t type) { return impl_->reserve(size, type); }

void heap::cancel(reservation& r) noexcept {
  if (!r) return;
  impl_->give_back(r.offset, r.size);
  r = reservation{};
}

bool heap::is_allocated(offset_t object) const {
  block_ref b = impl_->locate(object);
  if (b.entry == nullptr) return false;
  if (b.run != nullptr) return (b.bitmap_word->load(std::memory_order_acquire) & b.bit) != 0;
  return b.state == chunk_state::extent;
}

std::size_t heap::usable_size(offset_t object) const { return is_allocated(object) ? impl_->locate(object).size : 0; }

std::uint16_t heap::type_of(offset_t object) const {
  if (!is_allocated(object)) return 0;
  return meta_type(impl_->locate(object).meta->load(std::memory_order_relaxed));
}

heap_stats heap::stats() const {
  heap_impl& h = *impl_;
  heap_stats s;
  s.pool_size = h.pool.domain->size();
  lock_guard lock(h.mu);
  s.chunks_total = h.chunks - (h.chunks + zone_chunks - 1) / zone_chunks;
  s.heap_size = s.chunks_total * chunk_size;
  for (auto& [first, n] : h.free_chunks) s.chunks_free += n;
  std::vector<size_class_stats> per(size_classes().size());
  for (std::size_t c = 0; c < per.size(); ++c) per[c].block_size = size_classes()[c].block_size;
  for (std::uint64_t g = 0; g < h.chunks; ++g) {
    if (heap_impl::is_table(g)) continue;
    std::uint64_t w = h.entry(g)->word.load(std::memory_order_acquire);
    if (word_state(w) == chunk_state::run && word_class(w) < per.size()) {
      auto& pc = per[word_class(w)];
      ++pc.runs;
      pc.blocks_free += size_classes()[word_class(w)].block_count;
    } else if (word_state(w) == chunk_state::extent && word_count(w) > 0) {
      ++s.extents;
      s.extent_bytes += std::uint64_t{word_count(w)} * chunk_size;
      g += word_count(w) - 1;
    }
  }
  for_each_allocated(
      h,
      [&](std::uint64_t, std::size_t size, std::uint64_t) {
        if (size > heap_impl::max_run_size()) return;
        auto& pc = per[static_cast<std::size_t>(class_for(size))];
        ++pc.blocks_used;
        --pc.blocks_free;
      },
      [](const std::string&) {});
  s.bytes_used = s.extent_bytes;
  s.bytes_free = s.chunks_free * chunk_size;
  for (auto& pc : per) {
    s.bytes_used += pc.blocks_used * pc.block_size;
    s.bytes_free += pc.blocks_free * pc.block_size;
    if (pc.runs > 0) s.classes.push_back(pc);
  }
  return s;
}

void heap::set_tracer(std::uint16_t type, tracer fn) {
  lock_guard lock(impl_->tracers_mu);
  impl_->tracers[type] = std::move(fn);
}

check_report heap::check() const {
  heap_impl& h = *impl_;
  check_report report;
  // Every allocated object, by offset -> (size, type).
  std::unordered_map<std::uint64_t, std::pair<std::size_t, std::uint16_t>> allocated;
  for_each_allocated(
      h,
      [&](std::uint64_t off, std::size_t size, std::uint64_t meta) {
        allocated.emplace(off, std::pair{size, meta_type(meta)});
      },
      [&](std::string line) { report.corrupt.push_back(std::move(line)); });

  std::unordered_set<std::uint64_t> marked;
  std::vector<std::uint64_t> work;
  pool_impl& p = h.pool;
  for (std::uint64_t i = 0; i < p.header.root_entries; ++i) {
    const root_entry& e = p.roots[i];
    if (e.object == 0) continue;
    std::string name(e.name, strnlen(e.name, sizeof(e.name)));
    if (!allocated.contains(e.object)) {
      report.corrupt.push_back(
          fmt::format("root '{}' refers to {:#x}, which is not an allocated object", name, e.object));
      continue;
    }
    if (marked.insert(e.object).second) work.push_back(e.object);
  }
  std::unordered_map<std::uint16_t, tracer> tracers;
  {
    lock_guard lock(h.tracers_mu);
    tracers = h.tracers;
  }
  while (!work.empty()) {
    std::uint64_t off = work.back();
    work.pop_back();
    const auto& info = allocated.at(off);
    const std::size_t size = info.first;
    const std::uint16_t type = info.second;
    ++report.reachable_objects;
    report.reachable_bytes += size;
    const void* obj = p.at<std::byte>(off);
    auto visit = [&](offset_t ref) {
      if (ref != 0 && allocated.contains(ref) && marked.insert(ref).second) work.push_back(ref);
    };
    if (auto t = tracers.find(type); t != tracers.end()) {
      t->second(obj, size,
                reference_visitor(
                    [&](offset_t ref) {
                      if (ref != 0 && !allocated.contains(ref)) {
                        report.corrupt.push_back(fmt::format(
                            "object {:#x} (type {}) refers to {:#x}, which is not an allocated object", off, type, ref));
                        return;
                      }
                      visit(ref);
                    },
                    visit));
    } else {
      const auto* words = static_cast<const std::uint64_t*>(obj);
      for (std::size_t i = 0; i < size / 8; ++i) visit(words[i]);
    }
  }
  for (auto& [off, info] : allocated) {
    if (!marked.contains(off)) report.unreachable.push_back(off);
  }
  std::sort(report.unreachable.begin(), report.unreachable.end());
  return report;
}

check_report heap::repair() {
  heap_impl& h = *impl_;
  if (h.pool.domain->read_only()) {
    throw error(errc::invalid_argument, fmt::format("pobj: pool '{}' is open read-only: repair needs it writable",
                                                    h.pool.path));
  }
  check_report report = check();
  for (offset_t off : report.unreachable) {
    block_ref b = h.locate(off);
    h.persist_free(off);
    if (b.run != nullptr) {
      lock_guard lock(h.mu);
      h.release_block(off);
    } else if (b.entry != nullptr) {
      h.give_back(off, b.size);
    }
    ++report.repaired;
  }
  h.pool.drain();
  return report;
}

}  // namespace pobj
