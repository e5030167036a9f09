// Internal state of a pool's heap: DRAM views of runs and chunks, thread caches, generations.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <pobj/heap.hpp>

#include "pool/layout.hpp"
#include "common/sync.hpp"

namespace pobj::detail {

struct pool_impl;

struct size_class {
  std::uint32_t block_size;
  std::uint32_t block_count;
  std::uint32_t bitmap_offset;
  std::uint32_t meta_offset;
  std::uint32_t data_offset;
};
const std::vector<size_class>& size_classes();
// The smallest class whose blocks hold n bytes, or -1 when n needs an extent.
int class_for(std::size_t n) noexcept;

// The DRAM view of one run: which blocks are allocated or handed to a thread cache.
struct run_state {
  mutex mu;
  std::uint64_t chunk = 0;
  std::uint32_t cls = 0;
  std::vector<std::uint64_t> taken POBJ_GUARDED_BY(mu);
  std::uint32_t free_count POBJ_GUARDED_BY(mu) = 0;
  bool listed = false;  // in heap_impl::available[cls] (REQUIRES heap_impl::mu)
};

struct thread_cache {
  std::vector<std::vector<std::uint64_t>> free;  // per class: offsets of free blocks
  std::uint64_t gen_next = 0;
  std::uint64_t gen_end = 0;
};

// Where an offset lies in the heap.
struct block_ref {
  chunk_entry* entry = nullptr;
  std::uint64_t chunk = 0;  // global chunk index
  chunk_state state = chunk_state::free;
  run_header* run = nullptr;
  std::uint32_t index = 0;  // block index in the run
  std::atomic<std::uint64_t>* bitmap_word = nullptr;
  std::uint64_t bit = 0;
  std::atomic<std::uint64_t>* meta = nullptr;  // run block meta, or extent meta
  std::size_t size = 0;                        // block size or extent bytes
};

struct heap_impl {
  static constexpr std::size_t batch = 32;

  explicit heap_impl(pool_impl& pool);
  ~heap_impl();

  pool_impl& pool;
  mutex mu;  // chunks, run lists, growth, generation leases, caches
  std::uint64_t chunks POBJ_GUARDED_BY(mu) = 0;  // chunk slots the pool holds now, tables included
  std::atomic<std::uint64_t> visible_chunks{0};  // the same, for readers that hold no lock
  // Per chunk slot (up to max_size): 1 once the run in it has a DRAM view. A block freed in a run
  // without one must not enter a thread cache: loading the run will find its clear bit.
  std::unique_ptr<std::atomic<std::uint8_t>[]> run_loaded;
  std::map<std::uint64_t, std::uint64_t> free_chunks POBJ_GUARDED_BY(mu);  // first chunk -> count
  std::unordered_map<std::uint64_t, std::unique_ptr<run_state>> runs POBJ_GUARDED_BY(mu);
  std::vector<std::vector<run_state*>> available POBJ_GUARDED_BY(mu);    // per class, runs with free blocks
  std::vector<std::vector<std::uint64_t>> unloaded POBJ_GUARDED_BY(mu);  // per class, run chunks not read yet
  std::vector<std::unique_ptr<thread_cache>> caches POBJ_GUARDED_BY(mu);
  mutex tracers_mu;
  std::unordered_map<std::uint16_t, tracer> tracers POBJ_GUARDED_BY(tracers_mu);

  // Layout helpers.
  std::uint64_t chunk_offset(std::uint64_t chunk) const noexcept;
  chunk_entry* entry(std::uint64_t chunk) const noexcept;
  static bool is_table(std::uint64_t chunk) noexcept { return chunk % zone_chunks == 0; }
  // Resolves an offset that should start an allocated or reserved block; entry == nullptr if not.
  block_ref locate(std::uint64_t off) const noexcept;

  // Allocation state (DRAM).
  thread_cache& cache();
  reservation reserve(std::size_t size, std::uint16_t type);
  // A block or extent of `size` usable bytes becomes free in DRAM (it is free, or was never
  // allocated, persistently): run blocks go to this thread's cache, extents to the free chunks.
  void give_back(std::uint64_t off, std::size_t size) noexcept;
  void release_cache(thread_cache& tc) noexcept;
  // Marks a run block free in the run's DRAM view (the block leaves every cache).
  void release_block(std::uint64_t off) noexcept POBJ_REQUIRES(mu);
  std::uint64_t next_generation(thread_cache& tc);

  // Persistent allocation state: flush only, the caller drains.
  // Writes a block's generation and type (flush only). Done when a block joins a failure-atomic
  // block, so the meta is durable with the allocation record, before the bit can be.
  void write_meta(std::uint64_t off, std::uint64_t gen, std::uint16_t type);
  // Marks a block allocated (and writes its meta too when with_meta), flush only.
  void persist_alloc(std::uint64_t off, std::size_t size, std::uint64_t gen, std::uint16_t type,
                     bool with_meta = true);
  void persist_free(std::uint64_t off);
  // Recovery of a logged allocation or free, flush only. allocate: mark allocated whatever the
  // state; the others act only when the block still carries `gen` (it was not reused since).
  enum class recover_op { allocate, set_if_same_generation, clear_if_same_generation };
  void recover(std::uint64_t off, std::size_t size, std::uint64_t gen, std::uint16_t type, recover_op op);
  static std::size_t max_run_size() noexcept;

 private:
  void refill(thread_cache& tc, std::uint32_t cls) POBJ_EXCLUDES(mu);
  run_state* load_run(std::uint64_t chunk, std::uint32_t cls) POBJ_REQUIRES(mu);
  run_state* new_run(std::uint32_t cls) POBJ_REQUIRES(mu);
  std::uint64_t take_chunks(std::uint64_t count) POBJ_REQUIRES(mu);  // grows the pool if needed
  void return_chunks(std::uint64_t first, std::uint64_t count) POBJ_REQUIRES(mu);
  void grow(std::uint64_t min_new_chunks) POBJ_REQUIRES(mu);
  void build();
  std::uint64_t gen_global_ POBJ_GUARDED_BY(mu) = 0;  // next generation to hand to a thread cache
};

}  // namespace pobj::detail
