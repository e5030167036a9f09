// Internal state of an open pool, shared by the pool, heap and transaction layers.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <pobj/heap.hpp>
#include <pobj/pool.hpp>

#include "layout.hpp"

namespace pobj::detail {

struct heap_impl;
struct tx_manager;
struct thread_cache;
struct tx_state;

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
  recovery_report report;
  std::mutex roots_mu;

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

  // This thread's context for this pool (created on first use).
  thread_context& local();
};

}  // namespace pobj::detail
