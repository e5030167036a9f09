// pobj/media: the persistence domain. The one place in pobj that issues a cache-line write-back,
// a fence for persistence or a file sync. Everything above it calls flush() for each range it
// wrote and drain() once to wait for all of them, so several lines share one fence.
//
// Modes (see docs/persistence.md):
//   byte        persist = fence only (eADR, CXL with global persistent flush, battery-backed DRAM)
//   cache_line  persist = clwb (or clflushopt, clflush) per dirty line + sfence  (ADR pmem)
//   page        the pool is mapped privately; flush copies the range into a write-ahead journal
//               (`<pool>.journal`), drain writes it with one fdatasync shared by every thread
//               that drains meanwhile, then applies it to the file  (any file system)
//   sim         the crash simulator records every flush and fence (tests)
//   auto_detect what libpmem2 detects for the mapped file (honours PMEM2_FORCE_GRANULARITY)
// The environment variable POBJ_PERSIST_MODE (byte|cache_line|page|sim|auto) overrides the
// mode asked for in the open options.
//
// Thread safety: flush(), barrier() and drain() may be called from any thread.
// Crash consistency: a store is persistent once a flush() covering it has been followed by a
// drain() on the same thread (in page mode, by any drain). barrier() orders: what a thread
// flushed before it is persistent before anything it flushes after it. In the modes with
// ordered() true (page), flushes are persistent in the order they happen, so barrier() is free
// and a caller may end a failure-atomic block with a barrier and wait for durability later
// (ticket(), sync()). Nothing else is promised.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pobj {

enum class persist_mode : std::uint8_t { auto_detect, byte, cache_line, page, sim };

std::string_view to_string(persist_mode mode) noexcept;
// Parses "auto", "byte", "cache_line", "page", "sim"; throws pobj::error(invalid_argument).
persist_mode parse_persist_mode(std::string_view text);

namespace sim {
class simulator;
}

namespace media {

inline constexpr std::size_t cache_line_size = 64;

// Write-back and fence counts of the calling thread, over every domain (thread-local, so the
// hot path pays no shared write). Benchmarks read them to report fences per operation.
struct counters {
  std::uint64_t flushes = 0;  // flush() calls
  std::uint64_t lines = 0;    // cache lines (or pages, in page mode) written back
  std::uint64_t drains = 0;   // fences
};

counters thread_counters() noexcept;

// Every file operation media makes (on the pool file, its page-mode journal and their directory)
// goes through a file_ops, in the spirit of LevelDB's Env: the system's by default (system_files()),
// or one a test passes (pool_options::files) to inject EIO, ENOSPC, short writes or delays at any
// call. Each returns what the system call returns, with errno set on failure; fallocate returns
// an error number, as posix_fallocate does. Implementations must be safe to call from any thread.
//
// What pobj does when one fails (docs/persistence.md, "When the disk fails"): a journal record
// whose write or fdatasync failed is never assumed durable because a later fdatasync succeeded
// (PostgreSQL's "fsyncgate"): the whole record is written again from pobj's own copy and synced
// again, with backoff, until that succeeds; meanwhile no ticket past it is durable (so no reply
// claims it) and failure() says why. A failed fdatasync of the pool file itself (a checkpoint, at
// most once per lap of the journal) ends the process: the journal still holds every record since
// the last checkpoint, and the next open replays it. A failed fsync when the pool grows makes
// every later grow() throw io_error until the pool is opened again.
class file_ops {
 public:
  virtual ~file_ops() = default;
  virtual int open(const char* path, int flags, unsigned mode);
  virtual int close(int fd);
  virtual long pread(int fd, void* to, std::size_t n, std::int64_t at);
  virtual long pwrite(int fd, const void* from, std::size_t n, std::int64_t at);
  virtual int fdatasync(int fd);
  virtual int fsync(int fd);
  virtual int ftruncate(int fd, std::int64_t size);
  virtual int fallocate(int fd, std::int64_t at, std::int64_t n);
  virtual int rename(const char* from, const char* to);
  virtual int unlink(const char* path);
};

// The system's file operations (shared; stateless).
const std::shared_ptr<file_ops>& system_files();

// Makes a new or renamed entry in `path`'s directory durable (fsync of the directory), so that a
// created pool file still exists after a power failure. No-op in sim mode. Throws io_error.
void sync_directory_of(const std::string& path, persist_mode mode, file_ops& files = *system_files());

namespace detail {
enum class flush_insn : std::uint8_t { clwb, clflushopt, clflush };
flush_insn detect_flush_insn() noexcept;
}  // namespace detail

// A range of the pool file that a page-mode journal record holds: `bytes` go at `offset`.
struct journal_piece {
  std::uint64_t offset = 0;
  std::vector<std::byte> bytes;
};

// A mapping of one file into a reserved range of address space that can grow in place.
class domain {
 public:
  // Before a pool file is mapped: replays the page-mode journal beside it (`<path>.journal`), if
  // it exists and holds records of the pool with this identity, and makes the result durable.
  // Returns the number of records replayed. With `pieces` (a read-only open), writes nothing to
  // either file: the journal is only read, and its pieces, in order, are appended to *pieces for
  // the caller to apply to its private mapping. Throws pobj::error (io_error, corrupt) if the
  // journal cannot be read or is damaged. The journal's format stays private to media.
  static std::uint64_t recover(int fd, const std::string& path, const std::array<std::uint8_t, 16>& identity,
                               std::vector<journal_piece>* pieces = nullptr, file_ops& files = *system_files());
  // Removes the journal beside the pool file at `path`, if there is one. Throws io_error.
  static void remove_journal(const std::string& path, file_ops& files = *system_files());

  struct options {
    persist_mode mode = persist_mode::auto_detect;
    std::size_t reserve = 0;                   // address space reserved for growth (bytes)
    std::shared_ptr<sim::simulator> simulator;  // required in sim mode
    // page mode: the journal. identity ties it to the pool (a journal of another identity is
    // ignored); journal_size is the size of a new journal file.
    std::array<std::uint8_t, 16> identity{};
    std::size_t journal_size = 8 << 20;
    std::size_t journal_record_limit = 0;  // tests: sync once this many bytes are pending
    bool journal_apply = true;             // tests: false never writes the pool file after open
    // Maps the file privately and writes nothing to it, ever: stores stay in this process's
    // memory, flushes and drains persist nothing, there is no journal, and grow() refuses.
    // `fd` may be read-only. mode() is then `byte` (a fence, persisting nothing).
    bool read_only = false;
    // The file operations every call makes (null: system_files()).
    std::shared_ptr<file_ops> files;
  };

  // Page-mode journal figures (zero in other modes).
  struct journal_stats {
    std::uint64_t syncs = 0;        // journal records written, one fdatasync each
    std::uint64_t bytes = 0;        // bytes of journal records written
    std::uint64_t checkpoints = 0;  // fdatasyncs of the pool file (once per lap of the journal)
    std::uint64_t failed_writes = 0;  // record writes or fdatasyncs that failed (each retried whole)
  };

  // The error number of the journal write now failing (page mode: it is being retried and no
  // ticket past it is durable), or 0 when every write so far succeeded or the last failure was
  // overcome. A server refuses writes while it is not 0.
  int failure() const noexcept;

  // Maps [0, size) of the open file `fd` (the caller keeps fd open and owns it).
  domain(int fd, std::string path, std::size_t size, const options& opts);
  ~domain();
  domain(const domain&) = delete;
  domain& operator=(const domain&) = delete;

  std::byte* base() const noexcept { return base_; }
  std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  std::size_t reserved() const noexcept { return reserved_; }
  persist_mode mode() const noexcept { return mode_; }
  const std::string& path() const noexcept { return path_; }
  bool read_only() const noexcept { return read_only_; }

  // Extends the file to new_size and maps the new part right after the old one: nothing moves.
  // The extension is durable (fsync of the file's size) before this returns.
  void grow(std::size_t new_size);

  // Starts writing back [p, p + n); returns at once. Ranges may be unaligned.
  void flush(const void* p, std::size_t n) noexcept {
    if (tracking_.load(std::memory_order_relaxed)) [[unlikely]] mark_written(p, n);
    switch (mode_) {
      case persist_mode::cache_line: flush_lines(p, n); return;
      case persist_mode::byte: count_flush(0); return;
      default: flush_slow(p, n); return;
    }
  }
  // Waits until every range this thread flushed is persistent.
  void drain() noexcept {
    if (mode_ == persist_mode::cache_line || mode_ == persist_mode::byte) {
      __builtin_ia32_sfence();
      count_drain();
      return;
    }
    drain_slow();
  }
  void persist(const void* p, std::size_t n) noexcept {
    flush(p, n);
    drain();
  }
  // Orders this thread's earlier flushes before its later ones; free where ordered().
  void barrier() noexcept {
    if (journal_ != nullptr) return;
    drain();
  }
  // True where flushes become persistent in the order they happen (page mode).
  bool ordered() const noexcept { return journal_ != nullptr; }
  // A ticket covers every flush made (by any thread) before it was taken; sync(ticket) returns
  // once they are all persistent. In modes other than page every drained flush is persistent:
  // tickets are 0 and always durable.
  std::uint64_t ticket() const noexcept;
  bool durable(std::uint64_t ticket) const noexcept;
  void sync(std::uint64_t ticket) noexcept;
  // page mode: makes the file itself hold everything drained and empties the journal.
  void checkpoint() noexcept;
  // The same for a pool being made: a failure throws io_error (the caller removes the file)
  // instead of ending the process.
  void checkpoint_or_throw();
  journal_stats journal_figures() const noexcept;

  // Write tracking, to copy a mapped pool while it changes: copy it, then again the pages written
  // meanwhile, until a last pass with its writers held off. While tracking is on, every flush marks
  // the pages (4 KiB) it covers: every store to the pool is flushed to become persistent (or, in
  // byte mode, passed to flush all the same), so the marks cover every change made through the
  // mapping. take_written() returns the marked pages as byte ranges [offset, offset + length),
  // merged, in order, and unmarks them: a page marked during the call is returned by this call or
  // the next one. A store is covered from the first flush that follows it, and the thread that
  // reads a returned range sees it (the marks are release/acquire).
  // REQUIRES for track_writes(true): no other thread stores into the pool during the call (its
  // callers hold their writers off), so that every store after it is marked. take_written(): any
  // thread, while tracking is on.
  void track_writes(bool on);
  std::vector<std::pair<std::size_t, std::size_t>> take_written();

 private:
  void flush_lines(const void* p, std::size_t n) noexcept;
  void flush_slow(const void* p, std::size_t n) noexcept;
  void drain_slow() noexcept;
  void count_flush(std::size_t lines) noexcept;
  void count_drain() noexcept;
  void mark_written(const void* p, std::size_t n) noexcept;
  void map_range(std::size_t from, std::size_t to, bool shared);
  void map_apply_range(std::size_t from, std::size_t to);

  struct impl;
  std::unique_ptr<impl> impl_;
  void* journal_ = nullptr;  // impl_->journal.get() in page mode: the inline paths test it
  std::byte* base_ = nullptr;
  std::atomic<std::size_t> size_{0};  // grows under the caller's lock; read by any thread
  std::size_t reserved_ = 0;
  persist_mode mode_ = persist_mode::page;
  detail::flush_insn insn_ = detail::flush_insn::clflush;
  std::string path_;
  int fd_ = -1;
  std::uint64_t id_ = 0;
  sim::simulator* sim_ = nullptr;
  bool read_only_ = false;
  std::shared_ptr<file_ops> files_;
  bool grow_failed_ = false;  // an fsync of a growth failed: the file's size is unknown
  // Write tracking: a bit per 4 KiB page of the reserved range, allocated on first use and kept
  // until the domain goes (a flush racing a track_writes(false) may still mark it).
  std::atomic<bool> tracking_{false};
  std::unique_ptr<std::atomic<std::uint64_t>[]> written_;
  std::size_t written_words_ = 0;
};

}  // namespace media
}  // namespace pobj
