#include "media/journal.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <pobj/error.hpp>

#include "common/checksum.hpp"

namespace pobj::media::detail {

namespace {

// The file's first 4 KiB; docs/format/journal.md. Rewritten only by a checkpoint or recovery,
// after the pool file is durable.
constexpr char journal_magic[8] = {'P', 'O', 'B', 'J', 'J', 'R', 'N', 'L'};
constexpr std::uint32_t journal_version = 1;
constexpr std::uint64_t block = 4096;
struct journal_header {
  char magic[8];
  std::uint32_t version;
  std::uint32_t reserved;
  std::uint8_t identity[16];
  std::uint64_t capacity;  // bytes of the file
  std::uint64_t seq;       // the first record recovery replays has this sequence number
  std::uint64_t pos;       // and starts here
  std::uint64_t checksum;  // over the bytes before it
};
static_assert(sizeof(journal_header) == 64);

// A record starts on a 4 KiB boundary: its header, then `pieces` pieces of
// [u64 pool offset][u64 length][length bytes], `bytes` bytes in all.
constexpr std::uint32_t record_magic = 0x4345524a;  // "JREC"
struct record_header {
  std::uint32_t magic;
  std::uint32_t pieces;
  std::uint64_t seq;
  std::uint64_t bytes;
  std::uint64_t checksum;  // over seq, bytes, pieces and the pieces
};
static_assert(sizeof(record_header) == 32);
constexpr std::size_t piece_header = 16;

std::uint64_t header_sum(const journal_header& h) {
  ::pobj::detail::checksum64 c;
  c.add(&h, offsetof(journal_header, checksum));
  return c.value();
}

// Over the journal's identity too: a record another pool's journal left behind never validates.
std::uint64_t record_sum(const std::array<std::uint8_t, 16>& identity, std::uint64_t seq, std::uint64_t bytes,
                         std::uint32_t pieces, const std::byte* payload) {
  ::pobj::detail::checksum64 c;
  c.add(identity.data(), identity.size());
  c.add_u64(seq);
  c.add_u64(bytes);
  c.add_u64(pieces);
  c.add(payload, bytes);
  return c.value();
}

std::string errno_text() { return std::strerror(errno); }

// False at the end of the file (a short read); a read error throws io_error, which must never be
// taken for the torn end of the journal (recovery would then drop the records after it).
bool read_all(file_ops& files, int fd, void* to, std::size_t n, std::uint64_t at) {
  auto* p = static_cast<char*>(to);
  while (n > 0) {
    const long got = files.pread(fd, p, n, static_cast<std::int64_t>(at));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw error(errc::io_error, fmt::format("pobj: cannot read the journal: {}", errno_text()));
    if (got == 0) return false;
    p += got;
    n -= static_cast<std::size_t>(got);
    at += static_cast<std::uint64_t>(got);
  }
  return true;
}

bool write_all(file_ops& files, int fd, const void* from, std::size_t n, std::uint64_t at) {
  auto* p = static_cast<const char*>(from);
  while (n > 0) {
    const long put = files.pwrite(fd, p, n, static_cast<std::int64_t>(at));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    p += put;
    n -= static_cast<std::size_t>(put);
    at += static_cast<std::uint64_t>(put);
  }
  return true;
}

journal_header make_header(const std::array<std::uint8_t, 16>& identity, std::uint64_t capacity, std::uint64_t seq,
                           std::uint64_t pos) {
  journal_header h{};
  std::memcpy(h.magic, journal_magic, sizeof(h.magic));
  h.version = journal_version;
  std::memcpy(h.identity, identity.data(), 16);
  h.capacity = capacity;
  h.seq = seq;
  h.pos = pos;
  h.checksum = header_sum(h);
  return h;
}

void sync_dir(file_ops& files, const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  int fd = files.open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0 || files.fsync(fd) != 0) {
    const int e = errno;
    if (fd >= 0) files.close(fd);
    throw error(errc::io_error, fmt::format("pobj: cannot make the journal '{}' durable in its directory: {}", path,
                                            std::strerror(e)));
  }
  files.close(fd);
}

// Reads and checks the header of an open journal. Throws corrupt if it is damaged.
journal_header read_header(file_ops& files, int fd, const std::string& path) {
  journal_header h{};
  struct stat st {};
  if (fstat(fd, &st) != 0) throw error(errc::io_error, fmt::format("pobj: cannot stat '{}': {}", path, errno_text()));
  if (!read_all(files, fd, &h, sizeof(h), 0) || std::memcmp(h.magic, journal_magic, sizeof(h.magic)) != 0 ||
      h.checksum != header_sum(h)) {
    throw error(errc::corrupt, fmt::format("pobj: the journal '{}' has a damaged header", path));
  }
  if (h.version != journal_version) {
    throw error(errc::version_mismatch,
                fmt::format("pobj: the journal '{}' has version {}; this library reads version {}", path, h.version,
                            journal_version));
  }
  if (h.capacity != static_cast<std::uint64_t>(st.st_size) || h.capacity < 2 * block || h.pos < block ||
      h.pos > h.capacity || h.pos % block != 0) {
    throw error(errc::corrupt, fmt::format("pobj: the journal '{}' has an inconsistent header", path));
  }
  return h;
}

}  // namespace

std::string journal_path(const std::string& pool_path) { return pool_path + ".journal"; }

std::uint64_t recover_journal(int pool_fd, const std::string& pool_path, const std::array<std::uint8_t, 16>& identity,
                              std::vector<journal_piece>* pieces, file_ops& files) {
  const std::string path = journal_path(pool_path);
  int fd = files.open(path.c_str(), (pieces != nullptr ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    throw error(errc::io_error, fmt::format("pobj: cannot open the journal '{}': {}", path, errno_text()));
  }
  struct closer {
    file_ops& files;
    int fd;
    ~closer() { files.close(fd); }
  } close_it{files, fd};
  journal_header h = read_header(files, fd, path);
  // A journal left by another pool at this path (the pool file was replaced) says nothing about
  // this one; the domain starts it again.
  if (std::memcmp(h.identity, identity.data(), 16) != 0) return 0;
  struct stat st {};
  if (fstat(pool_fd, &st) != 0) {
    throw error(errc::io_error, fmt::format("pobj: cannot stat '{}': {}", pool_path, errno_text()));
  }
  const auto pool_size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t seq = h.seq, pos = h.pos, replayed = 0;
  std::vector<std::byte> payload;
  while (pos + sizeof(record_header) <= h.capacity) {
    record_header r{};
    if (!read_all(files, fd, &r, sizeof(r), pos)) break;
    if (r.magic != record_magic || r.seq != seq || r.bytes > h.capacity - pos - sizeof(r)) break;
    payload.resize(r.bytes);
    if (!read_all(files, fd, payload.data(), r.bytes, pos + sizeof(r))) break;
    if (record_sum(identity, r.seq, r.bytes, r.pieces, payload.data()) != r.checksum) break;  // torn: the end
    // A record that validates is one this library wrote: pieces outside it or the pool mean damage.
    std::size_t at = 0;
    for (std::uint32_t i = 0; i < r.pieces; ++i) {
      std::uint64_t off = 0, len = 0;
      if (at + piece_header > r.bytes) at = SIZE_MAX;
      if (at != SIZE_MAX) {
        std::memcpy(&off, payload.data() + at, 8);
        std::memcpy(&len, payload.data() + at + 8, 8);
      }
      if (at == SIZE_MAX || len > r.bytes - at - piece_header || off > pool_size || len > pool_size - off) {
        throw error(errc::corrupt, fmt::format("pobj: record {} of the journal '{}' has a piece outside the "
                                               "record or the pool",
                                               r.seq, path));
      }
      if (pieces != nullptr) {
        const std::byte* from = payload.data() + at + piece_header;
        pieces->push_back(journal_piece{off, std::vector<std::byte>(from, from + len)});
      } else if (!write_all(files, pool_fd, payload.data() + at + piece_header, len, off)) {
        throw error(errc::io_error, fmt::format("pobj: cannot replay the journal into '{}': {}", pool_path, errno_text()));
      }
      at += piece_header + len;
    }
    ++replayed;
    ++seq;
    pos += (sizeof(r) + r.bytes + block - 1) / block * block;
  }
  if (pieces != nullptr) return replayed;  // read-only: both files stay as they are
  if (replayed > 0 && files.fdatasync(pool_fd) != 0) {
    throw error(errc::io_error, fmt::format("pobj: fdatasync of '{}' failed: {}", pool_path, errno_text()));
  }
  if (replayed > 0 || h.pos != block) {
    journal_header fresh = make_header(identity, h.capacity, seq, block);
    if (!write_all(files, fd, &fresh, sizeof(fresh), 0) || files.fdatasync(fd) != 0) {
      throw error(errc::io_error, fmt::format("pobj: cannot reset the journal '{}': {}", path, errno_text()));
    }
  }
  return replayed;
}

journal::journal(int pool_fd, std::byte* apply_base, const std::string& pool_path,
                 const std::array<std::uint8_t, 16>& identity, const journal_options& options)
    : files_(options.files != nullptr ? options.files : system_files()), pool_fd_(pool_fd), apply_base_(apply_base), path_(journal_path(pool_path)), identity_(identity),
      apply_(options.apply) {
  fd_ = files_->open(path_.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd_ < 0 && errno != ENOENT) {
    throw error(errc::io_error, fmt::format("pobj: cannot open the journal '{}': {}", path_, errno_text()));
  }
  try {
    if (fd_ >= 0) {
      journal_header h = read_header(*files_, fd_, path_);
      capacity_ = h.capacity;
      if (std::memcmp(h.identity, identity.data(), 16) != 0) {
        // Another pool's: recovery did not replay it, and nothing in it concerns this pool.
        journal_header fresh = make_header(identity, capacity_, 0, block);
        if (!write_all(*files_, fd_, &fresh, sizeof(fresh), 0) || files_->fdatasync(fd_) != 0) {
          throw error(errc::io_error, fmt::format("pobj: cannot reset the journal '{}': {}", path_, errno_text()));
        }
        h = fresh;
      }
      seq_ = h.seq;
      pos_ = h.pos;
    } else {
      // A new journal is written out in full (zeros), so that its records overwrite allocated
      // blocks and an fdatasync need not commit file-system metadata; it gets its name only
      // once complete.
      capacity_ = std::max<std::uint64_t>(options.capacity / block * block, 64 * block);
      const std::string tmp = path_ + ".tmp";
      int fd = files_->open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) {
        throw error(errc::io_error, fmt::format("pobj: cannot create the journal '{}': {}", tmp, errno_text()));
      }
      std::vector<std::byte> zeros(std::min<std::uint64_t>(capacity_, 1 << 20));
      bool ok = true;
      for (std::uint64_t at = 0; ok && at < capacity_; at += zeros.size()) {
        ok = write_all(*files_, fd, zeros.data(), std::min<std::uint64_t>(zeros.size(), capacity_ - at), at);
      }
      journal_header h = make_header(identity, capacity_, 0, block);
      ok = ok && write_all(*files_, fd, &h, sizeof(h), 0) && files_->fdatasync(fd) == 0 && files_->rename(tmp.c_str(), path_.c_str()) == 0;
      if (!ok) {
        int e = errno;
        files_->close(fd);
        files_->unlink(tmp.c_str());
        throw error(e == ENOSPC ? errc::out_of_space : errc::io_error,
                    fmt::format("pobj: cannot create the journal '{}': {}", path_, std::strerror(e)));
      }
      sync_dir(*files_, path_);
      fd_ = fd;
      seq_ = 0;
      pos_ = block;
    }
  } catch (...) {
    if (fd_ >= 0) files_->close(fd_);
    throw;
  }
  // One record must fit in a lap with room to spare.
  const std::size_t most = static_cast<std::size_t>(capacity_ - 2 * block);
  record_limit_ = options.record_limit != 0 ? std::min(options.record_limit, most) : most / 4;
  record_limit_ = std::max<std::size_t>(record_limit_, 256);
  pending_.resize(sizeof(record_header));
  spare_.reserve(sizeof(record_header));
}

journal::~journal() {
  sync(ticket());
  {
    std::unique_lock lock(mu_);
    while (syncing_) cv_.wait(lock);
  }
  if (apply_ && pos_ != block && !abandoned_) checkpoint_io();
  files_->close(fd_);
}

void journal::fail(const char* what) const noexcept {
  // A checkpoint that cannot make the pool file durable: after a failed fdatasync the file's
  // pages may be lost while reading as written, and no retry can tell. The journal still holds
  // every record since the last checkpoint (its header was not advanced), so the process stops
  // here and the next open replays them into the file.
  fmt::print(stderr, "pobj: {} of the journal '{}' failed: {}\n", what, path_, errno_text());
  std::abort();
}

void journal::append(std::uint64_t offset, const void* p, std::size_t n) noexcept {
  if (n == 0) return;
  auto* from = static_cast<const std::byte*>(p);
  std::unique_lock lock(mu_);
  while (n > 0) {
    // Room for at least a piece header and some bytes; else the pending record goes out first.
    const std::size_t used = pending_.size() - sizeof(record_header);
    const bool extend = pieces_ > 0 && offset == last_end_;
    const std::size_t overhead = extend ? 0 : piece_header;
    if (used + overhead + std::min<std::size_t>(n, 64) > record_limit_) {
      if (syncing_) {
        cv_.wait(lock);
      } else {
        lead(lock);
      }
      continue;
    }
    const std::size_t take = std::min(n, record_limit_ - used - overhead);
    if (extend) {
      std::uint64_t len;
      std::memcpy(&len, pending_.data() + last_piece_ + 8, 8);
      len += take;
      std::memcpy(pending_.data() + last_piece_ + 8, &len, 8);
    } else {
      last_piece_ = pending_.size();
      std::uint64_t h[2] = {offset, take};
      pending_.resize(pending_.size() + piece_header);
      std::memcpy(pending_.data() + last_piece_, h, piece_header);
      ++pieces_;
    }
    pending_.insert(pending_.end(), from, from + take);
    offset += take;
    last_end_ = offset;
    from += take;
    n -= take;
  }
  appended_.fetch_add(1, std::memory_order_release);
}

void journal::lead(std::unique_lock<std::mutex>& lock) noexcept {
  syncing_ = true;
  const std::uint64_t upto = appended_.load(std::memory_order_relaxed);
  const std::uint32_t pieces = pieces_;
  spare_.resize(sizeof(record_header));
  pending_.swap(spare_);
  pieces_ = 0;
  lock.unlock();
  if (pieces > 0) write_record(spare_, pieces);
  lock.lock();
  if (pieces > 0) {
    ++stats_.syncs;
    stats_.bytes += spare_.size();
  }
  durable_.store(std::max(durable_.load(std::memory_order_relaxed), upto), std::memory_order_release);
  syncing_ = false;
  cv_.notify_all();
}

void journal::sync(std::uint64_t ticket) noexcept {
  if (durable(ticket)) return;
  std::unique_lock lock(mu_);
  while (!durable(ticket)) {
    if (syncing_) {
      cv_.wait(lock);
    } else {
      lead(lock);
    }
  }
}

void journal::write_record(std::vector<std::byte>& record, std::uint32_t pieces) noexcept {
  const std::uint64_t bytes = record.size() - sizeof(record_header);
  record_header h{record_magic, pieces, seq_, bytes, 0};
  h.checksum = record_sum(identity_, seq_, bytes, pieces, record.data() + sizeof(record_header));
  std::memcpy(record.data(), &h, sizeof(h));
  const std::size_t padded = (record.size() + block - 1) / block * block;
  if (pos_ + padded > capacity_) checkpoint_io();  // the lap is used up
  // Zero padding: the rest of the last block holds nothing a later reader could mistake.
  record.resize(padded);
  // A failed write or fdatasync is never followed by a bare fdatasync that is then believed: the
  // kernel may have dropped the failed pages and report the next fdatasync clean (PostgreSQL's
  // "fsyncgate"). The whole record is written again from this copy, then synced, until both
  // succeed; until then durable_ does not move past it, so nothing it holds is acknowledged.
  for (unsigned attempt = 0;; ++attempt) {
    errno = 0;
    if (write_all(*files_, fd_, record.data(), padded, pos_) && files_->fdatasync(fd_) == 0) break;
    const int e = errno != 0 ? errno : EIO;  // a write that stopped short without an errno: EIO
    {
      std::lock_guard lock(mu_);
      ++stats_.failed_writes;
    }
    if (failure_.exchange(e, std::memory_order_acq_rel) == 0) {
      fmt::print(stderr, "pobj: writing record {} of the journal '{}' failed: {}; writing it again until it succeeds\n",
                 seq_, path_, std::strerror(e));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<unsigned>(1000, 1u << std::min(attempt, 10u))));
  }
  if (failure_.exchange(0, std::memory_order_acq_rel) != 0) {
    fmt::print(stderr, "pobj: record {} of the journal '{}' is durable: the journal writes again\n", seq_, path_);
  }
  pos_ += padded;
  ++seq_;
  if (!apply_) return;
  for (std::size_t at = sizeof(record_header); at < sizeof(record_header) + bytes;) {
    std::uint64_t off, len;
    std::memcpy(&off, record.data() + at, 8);
    std::memcpy(&len, record.data() + at + 8, 8);
    std::memcpy(apply_base_ + off, record.data() + at + piece_header, len);
    at += piece_header + len;
  }
}

void journal::checkpoint_io() noexcept {
  if (!apply_) {
    fmt::print(stderr, "pobj: the journal '{}' is full and may not write the pool (a test's journal is too small)\n",
               path_);
    std::abort();
  }
  if (const int e = checkpoint_io_status(); e != 0) {
    errno = e;
    fail("checkpoint");
  }
}

// The pool file first (the shared mapping's pages included): then no record is needed again,
// and the journal's header starts the next lap. Returns 0, or the errno of the call that failed.
int journal::checkpoint_io_status() noexcept {
  errno = 0;
  if (files_->fdatasync(pool_fd_) != 0) return errno != 0 ? errno : EIO;
  journal_header h = make_header(identity_, capacity_, seq_, block);
  if (!write_all(*files_, fd_, &h, sizeof(h), 0) || files_->fdatasync(fd_) != 0) return errno != 0 ? errno : EIO;
  pos_ = block;
  std::lock_guard lock(mu_);
  ++stats_.checkpoints;
  return 0;
}

// Syncs what is pending, then checkpoints; returns 0 or the errno of the failed call.
int journal::checkpoint_step() noexcept {
  std::unique_lock lock(mu_);
  while (syncing_) cv_.wait(lock);
  lead(lock);
  if (!apply_) return 0;
  syncing_ = true;
  lock.unlock();
  const int e = checkpoint_io_status();
  lock.lock();
  syncing_ = false;
  cv_.notify_all();
  return e;
}

void journal::checkpoint_or_throw() {
  if (const int e = checkpoint_step(); e != 0) {
    abandoned_ = true;  // the pool being made is removed: no checkpoint at close (it would abort)
    throw error(errc::io_error, fmt::format("pobj: cannot make '{}' durable: {}", path_, std::strerror(e)));
  }
}

void journal::checkpoint() noexcept {
  if (const int e = checkpoint_step(); e != 0) {
    errno = e;
    fail("checkpoint");
  }
}

journal_stats journal::stats() const noexcept {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace pobj::media::detail
