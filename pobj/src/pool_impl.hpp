// Internal state of an open pool, shared by the pool, heap and transaction layers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <pobj/heap.hpp>
#include <pobj/pool.hpp>

#include "layout.hpp"
#include "sync.hpp"

namespace pobj::detail {

struct heap_impl;
struct tx_manager;
struct thread_cache;
struct tx_state;
struct class_state;
namespace kv {
struct pool_containers;
}

// What one thread keeps for one open pool.
struct thread_context {
  std::uint64_t pool_id = 0;
  thread_cache* cache = nullptr;
  tx_state* tx = nullptr;
};

struct pool_impl {
  std::uint64_t id = 0;  // unique in this process, never reused
  std::string path;
  int fd = -1;
  pool_options options;
  std::unique_ptr<media::domain> domain;
  pool_header header{};
  superblock* super = nullptr;
  root_entry* roots = nullptr;
  std::unique_ptr<heap_impl> heap;
  std::unique_ptr<pobj::heap> heap_handle;
  std::unique_ptr<tx_manager> tx;
  std::unique_ptr<class_state> classes;  // the pool's class table, in DRAM (schema.cpp)
  std::unique_ptr<kv::pool_containers> containers;  // the containers' locks (containers_impl.hpp)
  // Writers of pobj::atomic words in flight, by stripe of the word's line (pobj/atomic.hpp).
  struct alignas(64) inflight_counter {
    std::atomic<std::uint64_t> writers{0};
  };
  static constexpr std::size_t inflight_stripes = 256;
  std::array<inflight_counter, inflight_stripes> inflight{};
  recovery_report report;
  mutex roots_mu;
  std::unordered_map<std::uint64_t, int> root_tombstones POBJ_GUARDED_BY(roots_mu);  // slots freed by open blocks
  // A fence that also makes pending log invalidations durable (the ordering rule); installed by
  // the transaction layer for lower layers that make new state reachable.
  void (*ordered_drain)(pool_impl&) = nullptr;

  pool_impl();
  ~pool_impl();

  std::byte* base() const noexcept { return domain->base(); }
  template <class T>
  T* at(std::uint64_t off) const noexcept {
    return reinterpret_cast<T*>(domain->base() + off);
  }
  std::uint64_t offset_of(const void* p) const noexcept {
    return static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - domain->base());
  }
  void flush(const void* p, std::size_t n) const noexcept { domain->flush(p, n); }
  void drain() const noexcept { domain->drain(); }
  void persist(const void* p, std::size_t n) const noexcept { domain->persist(p, n); }
  // Where persistence is ordered (page mode), [p, p + n) need only be persistent before whatever
  // is flushed later: no wait. Elsewhere the same as persist().
  void persist_ordered(const void* p, std::size_t n) const noexcept {
    domain->flush(p, n);
    domain->barrier();
  }
  bool ordered() const noexcept { return domain->ordered(); }

  // True if [off, off + n) lies in an area user data may occupy: the root directory or the heap.
  bool data_range(std::uint64_t off, std::uint64_t n) const noexcept {
    std::uint64_t size = domain->size();
    if (n > size || off > size - n) return false;
    std::uint64_t roots_end = header.roots_offset + header.root_entries * sizeof(root_entry);
    return (off >= header.roots_offset && off + n <= roots_end) || off >= header.heap_offset;
  }

  // This thread's context for this pool (created on first use).
  thread_context& local();
};

}  // namespace pobj::detail
