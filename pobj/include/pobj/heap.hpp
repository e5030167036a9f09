// pobj/heap: the persistent allocator of a pool.
//
// Small objects (up to 64 KiB) come from runs: 256 KiB chunks cut into blocks of one size class,
// with a persistent allocation bitmap per run. Larger objects take whole chunks (extents). Each
// thread allocates from its own cache of free blocks kept in DRAM, refilled from the runs in
// batches, so the common path takes no lock and writes nothing persistent.
//
// A run keeps its size class once made: memory freed in one class is reused by that class, not
// by others (no compaction). Extents return their chunks to the pool's free chunks at once.
//
// An allocation becomes persistent only together with the link that makes it reachable: either
// inside a failure-atomic block (transaction::alloc) or through publish() of a reservation
// (transaction.hpp). A reservation the process did not publish before it died is free after
// recovery without any scan. An object is never handed out twice.
//
// Thread safety: all members may be called concurrently, except repair(), which requires that no
// other thread uses the pool.
// Crash consistency: reserve() and cancel() change nothing persistent. free() is durable when it
// returns. check() reads only; repair() frees what check() found unreachable, each free durable.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <pobj/detail/block_types.hpp>
#include <pobj/pool.hpp>

namespace pobj {

// A block taken from the heap but not yet persistent: fill it, then publish or cancel it.
// Move-only: two copies could be published twice (tests/compile_fail/reservation_copy.cpp).
struct reservation {
  offset_t offset = 0;
  void* pointer = nullptr;
  std::size_t size = 0;       // usable bytes (at least what was asked)
  std::uint16_t type = 0;
  std::uint64_t generation = 0;

  reservation() = default;
  reservation(offset_t o, void* p, std::size_t n, std::uint16_t t, std::uint64_t g) noexcept
      : offset(o), pointer(p), size(n), type(t), generation(g) {}
  reservation(const reservation&) = delete;
  reservation& operator=(const reservation&) = delete;
  reservation(reservation&& other) noexcept { *this = std::move(other); }
  reservation& operator=(reservation&& other) noexcept {
    offset = std::exchange(other.offset, 0);
    pointer = std::exchange(other.pointer, nullptr);
    size = std::exchange(other.size, 0);
    type = std::exchange(other.type, 0);
    generation = std::exchange(other.generation, 0);
    return *this;
  }
  explicit operator bool() const noexcept { return offset != 0; }
};

struct size_class_stats {
  std::size_t block_size = 0;
  std::size_t runs = 0;
  std::size_t blocks_used = 0;
  std::size_t blocks_free = 0;
};

struct heap_stats {
  std::size_t pool_size = 0;
  std::size_t heap_size = 0;        // bytes of chunks the heap manages now
  std::size_t bytes_used = 0;       // allocated blocks and extents
  std::size_t bytes_free = 0;       // free blocks in runs plus free chunks
  std::size_t chunks_total = 0;
  std::size_t chunks_free = 0;
  std::size_t extents = 0;
  std::size_t extent_bytes = 0;
  std::vector<size_class_stats> classes;  // one per size class with at least one run
};

// The heap types pobj itself uses: pobj::heap_type, in <pobj/detail/block_types.hpp> (a format header).

// What a tracer reports the references inside an object to.
class reference_visitor {
 public:
  using report = std::function<void(offset_t)>;
  reference_visitor(report certain, report possible) : certain_(std::move(certain)), possible_(std::move(possible)) {}
  // A reference the object holds (0 is null): one that is not the start of an allocated object
  // is damage, and check() says so.
  void operator()(offset_t ref) const { certain_(ref); }
  // A word that may be a reference (bytes of a type that can hold them, traced conservatively):
  // followed when it is the start of an allocated object, ignored otherwise.
  void maybe(offset_t word) const { possible_(word); }

 private:
  report certain_, possible_;
};
// Lists the references inside an object of some type (pobj-gen emits these).
using tracer = std::function<void(const void* object, std::size_t size, const reference_visitor&)>;

struct check_report {
  std::size_t reachable_objects = 0;
  std::size_t reachable_bytes = 0;
  std::vector<offset_t> unreachable;  // allocated, but no path from a root reaches them
  std::vector<std::string> corrupt;   // one line per inconsistency found
  std::size_t repaired = 0;           // repair() only: blocks freed
  bool ok() const noexcept { return unreachable.empty() && corrupt.empty(); }
};

namespace detail {
struct heap_impl;
}

class heap {
 public:
  static constexpr std::size_t chunk_size = 256 * 1024;
  static constexpr std::size_t max_small_size = 64 * 1024;

  // Takes a block of at least `size` bytes from this thread's cache. Nothing persistent changes;
  // the block's contents are unspecified. Grows the pool when it must; throws
  // errc::out_of_space at max_size.
  reservation reserve(std::size_t size, std::uint16_t type = 0);
  // Gives back a reservation that was never published.
  void cancel(reservation& r) noexcept;
  // Frees an allocated object, durably. The caller must already have made it unreachable.
  // Inside an open failure-atomic block, use transaction::free instead (this throws there).
  void free(offset_t object);

  // Usable bytes of an allocated object; 0 if `object` is not the start of one.
  std::size_t usable_size(offset_t object) const;
  std::uint16_t type_of(offset_t object) const;
  bool is_allocated(offset_t object) const;

  heap_stats stats() const;

  // Marks from the named roots. Objects of a type with a tracer are traced precisely; the others
  // conservatively (every aligned word that equals the start of an allocated object counts).
  void set_tracer(std::uint16_t type, tracer fn);
  check_report check() const;
  check_report repair();

  explicit heap(detail::heap_impl& impl) noexcept : impl_(&impl) {}
  detail::heap_impl& impl() const noexcept { return *impl_; }

 private:
  detail::heap_impl* impl_;
};

}  // namespace pobj
