// Internal state of an open pool, shared by the pool, heap and transaction layers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <pobj/heap.hpp>
#include <pobj/media.hpp>
#include <pobj/pool.hpp>

#include "pool/layout.hpp"
#include "common/sync.hpp"

namespace pobj::detail {

struct heap_impl;
struct tx_manager;
struct thread_cache;
struct tx_state;
struct class_state;
struct pool_impl;
namespace containers {
struct pool_containers;
}

// A hook the pool declares for the layers below the transaction layer, which implements it
// (tx_manager): a fence that also makes every committed block's pending log invalidation durable
// (the ordering rule, docs/transactions.md), so no log can replay over a store made after it.
struct ordering_rule {
  virtual void drain_ordered() = 0;

 protected:
  ordering_rule() = default;
  ordering_rule(const ordering_rule&) = default;
  ordering_rule& operator=(const ordering_rule&) = default;
  ~ordering_rule() = default;
};

// A hook the pool declares and the heap defines (heap.cpp): gives a thread's cached blocks back
// to the pool's heap when the thread exits while the pool is open.
void release_thread_cache(pool_impl& p, thread_cache& cache) noexcept;

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
  std::unique_ptr<containers::pool_containers> containers;  // the containers' locks (containers_impl.hpp)
  // Writers of pobj::atomic words in flight, by stripe of the word's line (pobj/atomic.hpp).
  struct alignas(64) inflight_counter {
    std::atomic<std::uint64_t> writers{0};
  };
  static constexpr std::size_t inflight_stripes = 256;
  std::array<inflight_counter, inflight_stripes> inflight{};
  recovery_report report;
  mutex roots_mu;
  std::unordered_map<std::uint64_t, int> root_tombstones POBJ_GUARDED_BY(roots_mu);  // slots freed by open blocks
  // The transaction layer's ordering rule, for lower layers (the heap) that make new state
  // reachable; set by the composition root (open.cpp) once the transaction layer is up.
  ordering_rule* ordering = nullptr;

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

  // The file operations every call on this pool's files makes (pool_options::files, or the system's).
  media::file_ops& files() const noexcept { return options.files != nullptr ? *options.files : *media::system_files(); }

  // This thread's context for this pool (created on first use).
  thread_context& local();
};

// The pool layer's steps of create and open. The composition root (open.cpp) calls them in
// order, between the bring-ups of the layers above.

std::uint64_t new_pool_id() noexcept;  // unique in this process, never reused

// Creates, locks and sizes the file at p.path for p.options and fills p.header (not yet written);
// sets p.fd. Returns the pool's size. Throws pobj::error, leaving no file behind.
std::uint64_t create_file(pool_impl& p);

// Opens and locks the pool file at p.path, reads and checks its header into p.header, and replays
// its page-mode journal (read-only: collects the journal's pieces instead); sets p.fd.
struct opened_file {
  std::uint64_t size = 0;                     // the pool's size, from its superblock
  std::uint64_t journal_records = 0;          // journal records replayed
  std::vector<media::journal_piece> pieces;  // read-only: the journal's, for the private mapping
};
opened_file open_file(pool_impl& p);

// Maps the file (media's domain) and finds the superblock and roots; a fresh pool gets its
// superblock and then its header, which makes the file a pool, and its directory entry is synced.
void map_pool(pool_impl& p, std::uint64_t size, bool fresh, const std::vector<media::journal_piece>& pieces = {});

// Open pools by id: a thread's exit gives its cached blocks back only to a pool still open.
void register_pool(pool_impl& p);
void unregister_pool(pool_impl& p) noexcept;

// Root names (roots.cpp): throws invalid_argument unless `name` is 1 to root_name_max bytes
// without NUL; the name an entry holds.
void check_root_name(std::string_view name);
std::string_view entry_name(const root_entry& e);

// The last step of an open: counts the boot, durably (recovery_report::boot_count).
void count_boot(pool_impl& p);

}  // namespace pobj::detail
