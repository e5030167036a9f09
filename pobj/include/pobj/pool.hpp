// pobj/pool: a pool is one file holding persistent objects, mapped at any address.
//
// A pool has a checksummed header (docs/format/pool.md), a directory of named roots through which
// a program finds its data again, per-thread log lanes for failure-atomic blocks, and a heap. It
// grows on demand without moving what it holds: the address space for max_size is reserved when
// the pool is opened, and growth extends the file and maps the new part after the old.
//
// References inside a pool are 8-byte offsets from the pool's base (offset_t; 0 is null), so a
// pool maps anywhere.
//
// Thread safety: a pool handle may be used by any number of threads at once; closing it (or
// destroying the handle) requires that no other thread still uses it. One process at a time may
// have a pool open (an exclusive file lock); a second open fails with errc::locked.
// Crash consistency: create() leaves either no valid pool or a complete empty one. open() runs
// recovery before it returns: every interrupted failure-atomic block is rolled back or
// completed and every interrupted allocation is undone (see docs/transactions.md). A failed open
// changes nothing on disk.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pobj/error.hpp>
#include <pobj/media.hpp>

namespace pobj {

using offset_t = std::uint64_t;

inline constexpr std::size_t KiB = 1024;
inline constexpr std::size_t MiB = 1024 * KiB;
inline constexpr std::size_t GiB = 1024 * MiB;

struct pool_options {
  persist_mode mode = persist_mode::auto_detect;  // POBJ_PERSIST_MODE overrides
  std::size_t size = 64 * MiB;                    // create: initial file size
  std::size_t max_size = 64 * GiB;                // the pool never grows past this
  std::uint32_t lanes = 64;                       // create: concurrent failure-atomic blocks
  std::uint32_t lane_log_size = 64 * KiB;         // create: bytes of log per block
  std::shared_ptr<sim::simulator> simulator;      // sim mode only
  // page mode: bytes of the journal file `<path>.journal` when one is created (0: an eighth of
  // the initial size, from 1 MiB to 64 MiB). Every sync writes a record to it; once a lap is
  // used up the pool file is synced and the journal starts again (docs/persistence.md).
  std::size_t journal_size = 0;
  // Tests only: sync once this many journal bytes are pending (0: a quarter of the journal), and
  // whether syncs write the pool file at all (false: as if power failed right after every sync,
  // so that a test can recover from any prefix of the journal).
  std::size_t journal_record_limit = 0;
  bool journal_apply = true;
  // open() only: inspect the pool without changing its files (checks: pobj-check, pobj-kv
  // --check). The file is opened read-only under a shared lock (refused while a writer has it
  // open) and mapped privately: recovery, a page-mode journal's replay and every later store
  // happen in this process's memory only, and nothing is ever written to the pool or its
  // journal. Growing the pool and heap::repair() throw errc::invalid_argument.
  bool read_only = false;
  // Every file operation on the pool, its journal and their directory goes through this (null:
  // the system's). Tests pass a fault-injecting one (media::file_ops, tests/pobj/disk_fault_test.cpp).
  std::shared_ptr<media::file_ops> files;
};

// What open() found and did. Opening never scans the data; this says what it touched.
struct recovery_report {
  std::uint32_t blocks_rolled_back = 0;    // interrupted failure-atomic blocks undone
  std::uint32_t blocks_rolled_forward = 0; // committed blocks whose effects were re-applied
  std::uint64_t journal_records = 0;       // page-mode journal records replayed into the file
  std::uint64_t boot_count = 0;            // how many times the pool has been opened
  double open_ms = 0;                      // wall time of open(), recovery included
};

class heap;

namespace detail {
struct pool_impl;
}

class pool {
 public:
  // Creates a new pool file; fails with already_exists if `path` exists.
  static pool create(const std::string& path, const pool_options& options = {});
  // Opens an existing pool, recovering it if the last user crashed.
  static pool open(const std::string& path, const pool_options& options = {});
  // Opens `path` if it exists, else creates it.
  static pool open_or_create(const std::string& path, const pool_options& options = {});
  // Deletes the pool file and its page-mode journal. Returns false if there was no pool file.
  // REQUIRES: the pool is not open.
  static bool remove(const std::string& path);
  // The smallest pool create() accepts with these options (the metadata plus eight chunks).
  static std::size_t minimum_size(const pool_options& options = {});

  pool() noexcept;
  pool(pool&&) noexcept;
  pool& operator=(pool&&) noexcept;
  ~pool();

  // Unmaps the pool and releases its lock. REQUIRES: no failure-atomic block is open on it.
  void close();
  bool is_open() const noexcept { return impl_ != nullptr; }

  // Where the pool is mapped; it never moves while the pool is open (growth maps after it).
  std::byte* base() const noexcept { return base_; }
  std::size_t size() const noexcept;  // bytes of the file in use now
  std::size_t max_size() const noexcept;
  persist_mode mode() const noexcept;
  const std::string& path() const noexcept;
  // Unique among the pools this process has opened, never reused (caches key on it).
  std::uint64_t instance_id() const noexcept;
  std::array<std::uint8_t, 16> uuid() const noexcept;
  const recovery_report& recovery() const noexcept;
  media::domain& media() const noexcept;

  // Durability tickets of deferred commits (transaction::commit_deferred). A ticket covers every
  // block committed before it was taken: durable(t) says whether they are all persistent, sync(t)
  // waits until they are. deferred_durability() is true where a ticket can be pending (page mode,
  // where a sync is a journal fdatasync); elsewhere every commit is persistent when it returns and
  // every ticket is durable at once. A server acknowledges a write once its ticket is durable.
  bool deferred_durability() const noexcept;
  bool durable(std::uint64_t ticket) const noexcept;
  void sync(std::uint64_t ticket) const noexcept;
  // The error number of a journal write failing now (being retried; no ticket past it is
  // durable), or 0 (media::domain::failure()). A server refuses writes while it is not 0.
  int durability_failure() const noexcept;
  // Page mode: the journal's figures (syncs, bytes, checkpoints); zero elsewhere.
  media::domain::journal_stats journal_figures() const noexcept;
  pobj::heap& heap() const noexcept;

  template <class T>
  T* at(offset_t off) const noexcept {
    return off == 0 ? nullptr : reinterpret_cast<T*>(base() + off);
  }
  offset_t offset_of(const void* p) const noexcept {
    return p == nullptr ? 0 : static_cast<offset_t>(static_cast<const std::byte*>(p) - base());
  }
  bool contains(const void* p, std::size_t n = 1) const noexcept;

  // A durable 8-byte store outside a failure-atomic block: when it returns, the value is
  // persistent (inside a block, it joins the block). Other threads can read the value between the
  // store and its write-back: data they act on needs the caller's lock held across the call.
  // REQUIRES: `word` is 8-aligned and inside the pool.
  void durable_store(std::uint64_t* word, std::uint64_t value);
  // The same for a field of 1, 2, 4 or 8 naturally aligned bytes (so within one aligned word);
  // the word's other bytes are preserved even if other threads store into them concurrently.
  void durable_store(void* field, const void* value, std::size_t n);

  // Named roots: a persistent directory from names (1 to 47 bytes) to objects.
  // root() returns 0 when the name is unknown. set_root() and remove_root() are failure-atomic;
  // inside an open block they join it. The directory holds up to root_capacity names.
  static constexpr std::size_t root_name_max = 47;
  static constexpr std::size_t root_capacity = 1024;
  offset_t root(std::string_view name) const;
  void set_root(std::string_view name, offset_t object);
  bool remove_root(std::string_view name);
  std::vector<std::pair<std::string, offset_t>> roots() const;

  detail::pool_impl& impl() const noexcept { return *impl_; }

 private:
  explicit pool(std::unique_ptr<detail::pool_impl> impl) noexcept;
  std::unique_ptr<detail::pool_impl> impl_;
  std::byte* base_ = nullptr;  // impl_->base(), kept here so that dereferencing is inline
};

}  // namespace pobj
