// The write-ahead journal of `page` mode (docs/persistence.md, docs/format/journal.md).
//
// In page mode the pool is mapped privately: stores never reach the file on their own, so the
// kernel cannot write a change back before the log entry that undoes it. Every flush() copies
// its bytes into the journal's pending record, in the order the flushes happen across all
// threads; a sync writes the pending record to `<pool>.journal` with one fdatasync and then
// applies it to the pool file (through a shared mapping, which the kernel writes back at will).
// Once a lap of the journal is used up, a checkpoint makes the pool file durable and the journal
// starts again from its beginning.
//
// What a crash leaves is the pool file as of its last checkpoint plus the valid prefix of the
// journal's records, replayed in order at the next open: every flush up to some point, in flush
// order, with the bytes each range had when it was flushed. So a flush is ordered before every
// later one without any fence: barrier() costs nothing, and only durability (drain, sync) waits
// for the disk. Many threads' drains share one fdatasync (group commit).
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include <pobj/media.hpp>

namespace pobj::media::detail {

struct journal_options {
  std::size_t capacity = 0;      // bytes of the journal file (a new journal); an existing one keeps its size
  std::size_t record_limit = 0;  // sync once this many bytes are pending; 0: a quarter of the capacity
  bool apply = true;             // tests: false never writes the pool file (power lost after every sync)
  std::shared_ptr<file_ops> files;  // every file operation (null: system_files())
};

struct journal_stats {
  std::uint64_t syncs = 0;        // records written, each with one fdatasync
  std::uint64_t bytes = 0;        // bytes of records written
  std::uint64_t checkpoints = 0;  // fdatasyncs of the pool file
  std::uint64_t failed_writes = 0;  // record writes or fdatasyncs that failed (each retried whole)
};

class journal {
 public:
  // Opens (or creates) `<pool_path>.journal`. apply_base maps the pool file shared.
  journal(int pool_fd, std::byte* apply_base, const std::string& pool_path,
          const std::array<std::uint8_t, 16>& identity, const journal_options& options);
  ~journal();  // syncs what is pending and checkpoints, so the next open replays nothing
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  // Records [offset, offset + n) with the bytes at p.
  void append(std::uint64_t offset, const void* p, std::size_t n) noexcept;
  // A ticket covers every append made before it was taken.
  std::uint64_t ticket() const noexcept { return appended_.load(std::memory_order_acquire); }
  bool durable(std::uint64_t ticket) const noexcept { return durable_.load(std::memory_order_acquire) >= ticket; }
  // Returns once every append the ticket covers is durable.
  void sync(std::uint64_t ticket) noexcept;
  // Syncs, then makes the pool file durable and empties the journal.
  void checkpoint() noexcept;
  // The same, but a failure to make the pool file durable throws io_error instead of ending the
  // process: for a pool being made, which the caller then removes.
  void checkpoint_or_throw();
  journal_stats stats() const noexcept;
  // The error number of the record write now being retried, or 0 (domain::failure()).
  int failure() const noexcept { return failure_.load(std::memory_order_acquire); }

 private:
  void lead(std::unique_lock<std::mutex>& lock) noexcept;  // REQUIRES lock held, !syncing_
  void write_record(std::vector<std::byte>& record, std::uint32_t pieces) noexcept;
  void checkpoint_io() noexcept;
  int checkpoint_io_status() noexcept;  // 0, or the errno of the failed call (nothing changed then)
  int checkpoint_step() noexcept;       // checkpoint() and checkpoint_or_throw()
  [[noreturn]] void fail(const char* what) const noexcept;

  std::shared_ptr<file_ops> files_;
  int pool_fd_;
  int fd_ = -1;
  std::byte* apply_base_;
  std::string path_;
  std::array<std::uint8_t, 16> identity_;
  std::uint64_t capacity_ = 0;
  std::size_t record_limit_ = 0;
  bool apply_ = true;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::byte> pending_;  // record header space, then pieces
  std::uint32_t pieces_ = 0;
  std::size_t last_piece_ = 0;      // where the last piece's header is in pending_
  std::uint64_t last_end_ = 0;      // the pool offset where the last piece ends
  bool syncing_ = false;
  std::atomic<std::uint64_t> appended_{0};
  std::atomic<std::uint64_t> durable_{0};
  journal_stats stats_;
  std::atomic<int> failure_{0};
  bool abandoned_ = false;  // checkpoint_or_throw failed: the pool is being removed

  // Owned by the thread that leads a sync (one at a time).
  std::vector<std::byte> spare_;
  std::uint64_t seq_ = 0;  // of the next record
  std::uint64_t pos_ = 0;  // where the next record goes
};

std::string journal_path(const std::string& pool_path);

// What domain::recover does (media.hpp).
std::uint64_t recover_journal(int pool_fd, const std::string& pool_path, const std::array<std::uint8_t, 16>& identity,
                              std::vector<journal_piece>* pieces, file_ops& files);

}  // namespace pobj::media::detail
