#include <pobj/pool.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/checksum.hpp"
#include "common/sync.hpp"
#include "pool/pool_impl.hpp"

namespace pobj {

using namespace detail;

namespace {

// Open pools by id, so that a thread's exit can give its cached blocks back to a pool that is
// still open, and ignore one that closed.
mutex registry_mu;
std::unordered_map<std::uint64_t, pool_impl*>& registry() {
  static auto* r = new std::unordered_map<std::uint64_t, pool_impl*>();
  return *r;
}
std::atomic<std::uint64_t> next_pool_id{1};

// Thread-local objects die before static ones: a pool closed by a static destructor at exit may
// call local() after this thread's contexts are gone. These flags need no destruction.
thread_local bool tl_contexts_alive = false;
thread_local bool tl_contexts_destroyed = false;

struct thread_contexts {
  std::vector<thread_context> list;
  thread_contexts() { tl_contexts_alive = true; }
  ~thread_contexts() {
    tl_contexts_alive = false;
    tl_contexts_destroyed = true;
    lock_guard lock(registry_mu);
    for (auto& ctx : list) {
      auto it = registry().find(ctx.pool_id);
      if (it != registry().end() && ctx.cache != nullptr) release_thread_cache(*it->second, *ctx.cache);
    }
  }
};
thread_local thread_contexts tl_contexts;

struct layout {
  std::uint64_t lanes_offset;
  std::uint64_t heap_offset;
  std::uint64_t min_size;
};

layout compute_layout(std::uint64_t lanes, std::uint64_t log_size) {
  layout l;
  l.lanes_offset = align_up(roots_offset + root_entries * sizeof(root_entry), page_size);
  l.heap_offset = align_up(l.lanes_offset + lanes * 2 * log_size, chunk_size);
  l.min_size = l.heap_offset + 9 * chunk_size;  // zone 0's table and eight chunks
  return l;
}

void validate_options(const pool_options& o) {
  if (o.lanes < 1 || o.lanes > 1024) {
    throw error(errc::invalid_argument, fmt::format("pobj: lanes must be 1 to 1024, not {}", o.lanes));
  }
  if (o.lane_log_size < 4096 || o.lane_log_size > 64 * MiB || o.lane_log_size % line_size != 0) {
    throw error(errc::invalid_argument,
                fmt::format("pobj: lane_log_size must be a multiple of 64 from 4 KiB to 64 MiB, not {}",
                            o.lane_log_size));
  }
}

std::string errno_text() { return std::strerror(errno); }

std::uint64_t header_checksum(const pool_header& h) { return checksum(&h, offsetof(pool_header, checksum)); }

int lock_file(int fd, const std::string& path, bool shared = false) {
  if (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK) {
      throw error(errc::locked, fmt::format("pobj: pool '{}' is already open (another process or handle "
                                            "holds its lock); close it first",
                                            path));
    }
    throw error(errc::io_error, fmt::format("pobj: cannot lock '{}': {}", path, std::strerror(e)));
  }
  return fd;
}

}  // namespace

std::uint64_t detail::new_pool_id() noexcept { return next_pool_id.fetch_add(1); }

void detail::register_pool(pool_impl& p) {
  lock_guard lock(registry_mu);
  registry().emplace(p.id, &p);
}

void detail::unregister_pool(pool_impl& p) noexcept {
  lock_guard lock(registry_mu);
  registry().erase(p.id);
}

thread_context& pool_impl::local() {
  if (!tl_contexts_alive && !tl_contexts_destroyed) (void)tl_contexts.list.size();  // constructs it
  if (!tl_contexts_alive) {
    // After this thread's contexts are gone: a fresh context each call, owning nothing.
    thread_local thread_context late{};
    late = thread_context{id, nullptr, nullptr};
    return late;
  }
  for (auto& ctx : tl_contexts.list) {
    if (ctx.pool_id == id) return ctx;
  }
  // Forget contexts of pools that have closed.
  {
    lock_guard lock(registry_mu);
    std::erase_if(tl_contexts.list, [](const thread_context& c) { return !registry().contains(c.pool_id); });
  }
  tl_contexts.list.push_back(thread_context{id, nullptr, nullptr});
  return tl_contexts.list.back();
}

std::size_t pool::minimum_size(const pool_options& options) {
  validate_options(options);
  return compute_layout(options.lanes, options.lane_log_size).min_size;
}

std::uint64_t detail::create_file(pool_impl& p) {
  const std::string& path = p.path;
  const pool_options& options = p.options;
  media::file_ops& files = p.files();
  validate_options(options);
  if (options.read_only) {
    throw error(errc::invalid_argument, fmt::format("pobj: cannot create '{}' read-only", path));
  }
  layout l = compute_layout(options.lanes, options.lane_log_size);
  if (options.size < l.min_size) {
    throw error(errc::too_small, fmt::format("pobj: cannot create '{}' with {} bytes: the minimum for {} lanes "
                                             "of {} bytes is {} bytes",
                                             path, options.size, options.lanes, options.lane_log_size, l.min_size));
  }
  std::uint64_t size = align_up(options.size - l.heap_offset, chunk_size) + l.heap_offset;
  if (options.max_size < size) {
    throw error(errc::invalid_argument,
                fmt::format("pobj: max_size {} is below the initial size {}", options.max_size, size));
  }
  int fd = files.open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) {
      throw error(errc::already_exists, fmt::format("pobj: cannot create '{}': the file exists", path));
    }
    throw error(errno == ENOENT ? errc::not_found : errc::io_error,
                fmt::format("pobj: cannot create '{}': {}", path, errno_text()));
  }
  p.fd = lock_file(fd, path);  // closed by ~pool_impl on any error below
  // A journal left at this path belongs to a pool that no longer exists.
  try {
    media::domain::remove_journal(path, files);
  } catch (const error&) {
    files.unlink(path.c_str());
    throw;
  }
  int rc = files.fallocate(p.fd, 0, static_cast<std::int64_t>(size));
  if (rc == EOPNOTSUPP || rc == EINVAL) rc = files.ftruncate(p.fd, static_cast<std::int64_t>(size)) == 0 ? 0 : errno;
  if (rc != 0) {
    files.unlink(path.c_str());
    throw error(rc == ENOSPC ? errc::out_of_space : errc::io_error,
                fmt::format("pobj: cannot size '{}' to {} bytes: {}", path, size, std::strerror(rc)));
  }
  pool_header& h = p.header;
  std::memcpy(h.magic, pool_magic, sizeof(h.magic));
  h.format_major = format_major;
  h.format_minor = format_minor;
  std::random_device rd;
  for (auto& b : h.uuid) b = static_cast<std::uint8_t>(rd());
  h.uuid[6] = static_cast<std::uint8_t>((h.uuid[6] & 0x0f) | 0x40);  // RFC 4122 version 4
  h.uuid[8] = static_cast<std::uint8_t>((h.uuid[8] & 0x3f) | 0x80);
  h.create_time_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  h.superblock_offset = superblock_offset;
  h.roots_offset = roots_offset;
  h.root_entries = root_entries;
  h.lanes_offset = l.lanes_offset;
  h.lane_count = options.lanes;
  h.lane_log_size = options.lane_log_size;
  h.heap_offset = l.heap_offset;
  h.chunk_size = chunk_size;
  h.zone_chunks = zone_chunks;
  h.min_size = l.min_size;
  h.checksum = header_checksum(h);
  return size;
}

detail::opened_file detail::open_file(pool_impl& p) {
  const std::string& path = p.path;
  const pool_options& options = p.options;
  media::file_ops& files = p.files();
  int fd = files.open(path.c_str(), (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
  if (fd < 0) {
    throw error(errno == ENOENT ? errc::not_found : errc::io_error,
                fmt::format("pobj: cannot open pool '{}': {}", path, errno_text()));
  }
  lock_file(fd, path, options.read_only);
  p.fd = fd;  // closed by ~pool_impl on any error below
  struct stat st {};
  if (fstat(fd, &st) != 0) throw error(errc::io_error, fmt::format("pobj: cannot stat '{}': {}", path, errno_text()));
  auto file_size = static_cast<std::uint64_t>(st.st_size);
  pool_header& h = p.header;
  std::memset(&h, 0, sizeof(h));
  const long got = files.pread(fd, &h, sizeof(h), 0);
  if (got < 0) throw error(errc::io_error, fmt::format("pobj: cannot read '{}': {}", path, errno_text()));
  if (got < static_cast<ssize_t>(sizeof(h.magic)) || std::memcmp(h.magic, pool_magic, sizeof(h.magic)) != 0) {
    throw error(errc::not_a_pool,
                fmt::format("pobj: '{}' is not a pobj pool (no pool magic at its start{})", path,
                            file_size == 0 ? "; the file is empty" : ""));
  }
  if (got < static_cast<ssize_t>(sizeof(h))) {
    throw error(errc::truncated, fmt::format("pobj: pool '{}' is truncated: {} bytes, less than its {}-byte header",
                                             path, file_size, sizeof(h)));
  }
  if (h.checksum != header_checksum(h)) {
    throw error(errc::corrupt, fmt::format("pobj: pool '{}' has a corrupt header (checksum mismatch)", path));
  }
  if (h.format_major < oldest_format_major || h.format_major > format_major) {
    throw error(errc::version_mismatch,
                fmt::format("pobj: pool '{}' has format version {}.{}; this library reads versions {}.x to {}.x", path,
                            h.format_major, h.format_minor, oldest_format_major, format_major));
  }
  layout l = compute_layout(h.lane_count, h.lane_log_size);
  // The header never changes after create; everything else may have newer bytes in the journal.
  std::array<std::uint8_t, 16> identity{};
  std::memcpy(identity.data(), h.uuid, 16);
  opened_file out;  // read-only: the journal's pieces, for the mapping
  out.journal_records = media::domain::recover(fd, path, identity, options.read_only ? &out.pieces : nullptr, files);
  if (out.journal_records > 0 && fstat(fd, &st) == 0) file_size = static_cast<std::uint64_t>(st.st_size);
  if (h.chunk_size != chunk_size || h.zone_chunks != zone_chunks || h.superblock_offset != superblock_offset ||
      h.roots_offset != roots_offset || h.root_entries != root_entries || h.lanes_offset != l.lanes_offset ||
      h.heap_offset != l.heap_offset || h.min_size != l.min_size || h.lane_count < 1 || h.lane_count > 1024 ||
      h.lane_log_size % line_size != 0 || h.lane_log_size < 4096 || h.lane_log_size > 64 * MiB) {
    throw error(errc::corrupt, fmt::format("pobj: pool '{}' has an inconsistent area layout in its header", path));
  }
  std::uint64_t size = 0;
  if (file_size < superblock_offset + 8 ||
      files.pread(fd, &size, sizeof(size), static_cast<std::int64_t>(superblock_offset)) != static_cast<long>(sizeof(size))) {
    throw error(errc::truncated, fmt::format("pobj: pool '{}' is truncated: {} bytes", path, file_size));
  }
  for (const auto& piece : out.pieces) {  // read-only: the size as the journal left it
    const std::uint64_t end = piece.offset + piece.bytes.size();
    for (std::uint64_t at = std::max<std::uint64_t>(piece.offset, superblock_offset); at < end && at < superblock_offset + 8; ++at) {
      reinterpret_cast<std::byte*>(&size)[at - superblock_offset] = piece.bytes[at - piece.offset];
    }
  }
  // Offsets in a pool are 48 bits: a larger size is damage, not a file cut short.
  constexpr std::uint64_t largest_pool = std::uint64_t{1} << 48;
  if (size < h.min_size || size > largest_pool || (size - h.heap_offset) % chunk_size != 0) {
    throw error(errc::corrupt,
                fmt::format("pobj: pool '{}' has a corrupt superblock: it records a size of {} bytes, which {}", path,
                            size,
                            size < h.min_size      ? fmt::format("is below the pool's minimum of {}", h.min_size)
                            : size > largest_pool ? std::string("is more than any pool can have (2^48 bytes)")
                                                  : std::string("does not end on a chunk boundary")));
  }
  if (file_size < size) {
    throw error(errc::truncated,
                fmt::format("pobj: pool '{}' is truncated: the file has {} bytes, the pool needs {}", path, file_size, size));
  }
  out.size = size;
  return out;
}

void detail::map_pool(pool_impl& p, std::uint64_t size, bool fresh, const std::vector<media::journal_piece>& pieces) {
  const pool_options& options = p.options;
  media::domain::options dopts;
  dopts.mode = options.mode;
  dopts.reserve = std::max<std::uint64_t>(options.max_size, size);
  dopts.simulator = options.simulator;
  std::memcpy(dopts.identity.data(), p.header.uuid, 16);
  dopts.journal_size = options.journal_size != 0 ? options.journal_size
                                                 : std::clamp<std::size_t>(size / 8, 1 * MiB, 64 * MiB);
  dopts.journal_record_limit = options.journal_record_limit;
  dopts.journal_apply = options.journal_apply;
  dopts.read_only = options.read_only;
  dopts.files = options.files;
  p.domain = std::make_unique<media::domain>(p.fd, p.path, size, dopts);
  for (const auto& piece : pieces) {  // a read-only open: the journal's bytes, on the private mapping
    if (piece.offset >= size) continue;
    std::memcpy(p.domain->base() + piece.offset, piece.bytes.data(),
                std::min<std::uint64_t>(piece.bytes.size(), size - piece.offset));
  }
  p.super = p.at<superblock>(superblock_offset);
  p.roots = p.at<root_entry>(p.header.roots_offset);
  if (fresh) {
    // Everything but the header and superblock reads as zero in a new file: empty roots, empty
    // logs, a zone table of free chunks. The header is written last: it makes the file a pool.
    p.super->size.store(size, std::memory_order_relaxed);
    p.super->gen_lease.store(1, std::memory_order_relaxed);
    p.super->boot_count.store(0, std::memory_order_relaxed);
    p.persist(p.super, 64);
    std::memcpy(p.at<pool_header>(0), &p.header, sizeof(pool_header));
    p.persist(p.at<pool_header>(0), sizeof(pool_header));
    // In page mode the header is in the journal now; open() reads it from the file first.
    p.domain->checkpoint_or_throw();
    media::sync_directory_of(p.path, p.domain->mode(), p.files());
  }
}

void detail::count_boot(pool_impl& p) {
  std::uint64_t boots = p.super->boot_count.load(std::memory_order_relaxed) + 1;
  p.super->boot_count.store(boots, std::memory_order_relaxed);
  p.persist(&p.super->boot_count, 8);
  p.report.boot_count = boots;
}

bool pool::remove(const std::string& path) {
  const bool existed = ::unlink(path.c_str()) == 0;  // no pool is open: the system's file operations
  if (!existed && errno != ENOENT) {
    throw error(errc::io_error, fmt::format("pobj: cannot remove '{}': {}", path, errno_text()));
  }
  media::domain::remove_journal(path);
  return existed;
}

pool::pool() noexcept = default;
pool::pool(std::unique_ptr<detail::pool_impl> impl) noexcept : impl_(std::move(impl)), base_(impl_->base()) {}
pool::pool(pool&&) noexcept = default;
pool& pool::operator=(pool&&) noexcept = default;
pool::~pool() = default;

std::uint64_t pool::instance_id() const noexcept { return impl_->id; }
std::size_t pool::size() const noexcept { return impl_->super->size.load(std::memory_order_acquire); }
std::size_t pool::max_size() const noexcept { return impl_->domain->reserved(); }
persist_mode pool::mode() const noexcept { return impl_->domain->mode(); }
const std::string& pool::path() const noexcept { return impl_->path; }
std::array<std::uint8_t, 16> pool::uuid() const noexcept {
  std::array<std::uint8_t, 16> u{};
  std::memcpy(u.data(), impl_->header.uuid, 16);
  return u;
}
const recovery_report& pool::recovery() const noexcept { return impl_->report; }
media::domain& pool::media() const noexcept { return *impl_->domain; }
bool pool::deferred_durability() const noexcept { return impl_->domain->ordered(); }
bool pool::durable(std::uint64_t ticket) const noexcept { return impl_->domain->durable(ticket); }
void pool::sync(std::uint64_t ticket) const noexcept { impl_->domain->sync(ticket); }
int pool::durability_failure() const noexcept { return impl_->domain->failure(); }
media::domain::journal_stats pool::journal_figures() const noexcept { return impl_->domain->journal_figures(); }
pobj::heap& pool::heap() const noexcept { return *impl_->heap_handle; }
bool pool::contains(const void* p, std::size_t n) const noexcept {
  auto* b = static_cast<const std::byte*>(p);
  return b >= base() && b + n <= base() + impl_->domain->size();
}

}  // namespace pobj
