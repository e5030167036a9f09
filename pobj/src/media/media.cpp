#include <pobj/media.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include <cpuid.h>
#include <fcntl.h>
#include <libpmem2.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>
#include <pobj/error.hpp>
#include <pobj/sim.hpp>

#include "media/journal.hpp"

namespace pobj {

namespace {

// libpmem2 (1.12) makes a reservation by mapping its size plus an alignment of up to 1 GiB and
// unmaps only the aligned part when the reservation is deleted, so every reservation deleted
// leaks the rest of that address space: a process that opened and closed pools a hundred
// thousand times ran out of it. Deleted reservations are therefore kept and reused by later
// pools of the same reserved size (a reservation with no mappings is blank address space).
struct reservation_cache {
  std::mutex mu;
  std::vector<std::pair<std::size_t, pmem2_vm_reservation*>> idle;
};
reservation_cache& reservations() {
  static auto* cache = new reservation_cache;  // never destroyed: pools may close during exit
  return *cache;
}
constexpr std::size_t max_idle_reservations = 16;

int take_reservation(pmem2_vm_reservation** r, std::size_t size) {
  {
    std::lock_guard lock(reservations().mu);
    auto& idle = reservations().idle;
    for (auto it = idle.begin(); it != idle.end(); ++it) {
      if (it->first == size) {
        *r = it->second;
        idle.erase(it);
        return 0;
      }
    }
  }
  return pmem2_vm_reservation_new(r, nullptr, size);
}

void give_back_reservation(pmem2_vm_reservation** r, std::size_t size) {
  {
    std::lock_guard lock(reservations().mu);
    if (reservations().idle.size() < max_idle_reservations) {
      reservations().idle.emplace_back(size, *r);
      *r = nullptr;
      return;
    }
  }
  pmem2_vm_reservation_delete(r);
}

}  // namespace

std::string_view to_string(persist_mode mode) noexcept {
  switch (mode) {
    case persist_mode::auto_detect: return "auto";
    case persist_mode::byte: return "byte";
    case persist_mode::cache_line: return "cache_line";
    case persist_mode::page: return "page";
    case persist_mode::sim: return "sim";
  }
  return "unknown";
}

persist_mode parse_persist_mode(std::string_view text) {
  if (text == "auto") return persist_mode::auto_detect;
  if (text == "byte") return persist_mode::byte;
  if (text == "cache_line") return persist_mode::cache_line;
  if (text == "page") return persist_mode::page;
  if (text == "sim") return persist_mode::sim;
  throw error(errc::invalid_argument,
              fmt::format("pobj: unknown persistence mode '{}' (expected auto, byte, cache_line, "
                          "page or sim)",
                          text));
}

namespace media {

namespace {

thread_local counters tl_counters;

std::atomic<std::uint64_t> next_domain_id{1};

std::string pmem2_message() {
  const char* m = pmem2_errormsg();
  return m != nullptr && *m != '\0' ? std::string(m) : std::string("unknown libpmem2 error");
}

}  // namespace

counters thread_counters() noexcept { return tl_counters; }

int file_ops::open(const char* path, int flags, unsigned mode) { return ::open(path, flags, static_cast<mode_t>(mode)); }
int file_ops::close(int fd) { return ::close(fd); }
long file_ops::pread(int fd, void* to, std::size_t n, std::int64_t at) { return ::pread(fd, to, n, static_cast<off_t>(at)); }
long file_ops::pwrite(int fd, const void* from, std::size_t n, std::int64_t at) {
  return ::pwrite(fd, from, n, static_cast<off_t>(at));
}
int file_ops::fdatasync(int fd) { return ::fdatasync(fd); }
int file_ops::fsync(int fd) { return ::fsync(fd); }
int file_ops::ftruncate(int fd, std::int64_t size) { return ::ftruncate(fd, static_cast<off_t>(size)); }
int file_ops::fallocate(int fd, std::int64_t at, std::int64_t n) {
  return ::posix_fallocate(fd, static_cast<off_t>(at), static_cast<off_t>(n));
}
int file_ops::rename(const char* from, const char* to) { return ::rename(from, to); }
int file_ops::unlink(const char* path) { return ::unlink(path); }

const std::shared_ptr<file_ops>& system_files() {
  static const auto* files = new std::shared_ptr<file_ops>(std::make_shared<file_ops>());
  return *files;
}

void sync_directory_of(const std::string& path, persist_mode mode, file_ops& files) {
  if (mode == persist_mode::sim) return;
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  int fd = files.open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0 || files.fsync(fd) != 0) {
    int e = errno;
    if (fd >= 0) files.close(fd);
    throw error(errc::io_error, fmt::format("pobj: cannot make the directory entry of '{}' durable: {}", path,
                                            std::strerror(e)));
  }
  files.close(fd);
}

namespace detail {
flush_insn detect_flush_insn() noexcept {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) != 0) {
    if ((ebx & (1u << 24)) != 0) return flush_insn::clwb;
    if ((ebx & (1u << 23)) != 0) return flush_insn::clflushopt;
  }
  return flush_insn::clflush;
}
}  // namespace detail

struct domain::impl {
  pmem2_vm_reservation* reservation = nullptr;
  std::vector<pmem2_map*> maps;
  pmem2_granularity detected = PMEM2_GRANULARITY_PAGE;
  // page mode: a shared mapping of the file, through which the journal applies its records
  // (reserved for the whole growth range, mapped as the file grows), and the journal.
  std::byte* apply_base = nullptr;
  std::unique_ptr<detail::journal> journal;
};

domain::domain(int fd, std::string path, std::size_t size, const options& opts)
    : impl_(std::make_unique<impl>()), path_(std::move(path)), fd_(fd), id_(next_domain_id.fetch_add(1)) {
  persist_mode wanted = opts.mode;
  // The environment overrides the open option, except a request for the crash simulator: a test
  // that set one up must not silently run without it.
  if (const char* env = std::getenv("POBJ_PERSIST_MODE");
      env != nullptr && *env != '\0' && opts.mode != persist_mode::sim) {
    wanted = parse_persist_mode(env);
  }
  read_only_ = opts.read_only;
  files_ = opts.files != nullptr ? opts.files : system_files();
  if (read_only_) wanted = persist_mode::byte;  // whatever the environment asks: see options::read_only
  if (wanted == persist_mode::sim && !opts.simulator) {
    throw error(errc::invalid_argument, "pobj: sim mode needs pool_options::simulator");
  }
  reserved_ = std::max(opts.reserve, size);
  reserved_ = (reserved_ + 4095) / 4096 * 4096;
  if (take_reservation(&impl_->reservation, reserved_) != 0) {
    throw error(errc::io_error, fmt::format("pobj: cannot reserve {} bytes of address space for '{}': {}",
                                            reserved_, path_, pmem2_message()));
  }
  base_ = static_cast<std::byte*>(pmem2_vm_reservation_get_address(impl_->reservation));
  try {
    if (read_only_) {
      mode_ = persist_mode::byte;  // fences only; the private mapping keeps every store in memory
      map_range(0, size, false);
    } else if (wanted == persist_mode::auto_detect) {
      map_range(0, size, true);
      mode_ = impl_->detected == PMEM2_GRANULARITY_BYTE         ? persist_mode::byte
              : impl_->detected == PMEM2_GRANULARITY_CACHE_LINE ? persist_mode::cache_line
                                                                : persist_mode::page;
      if (mode_ == persist_mode::page) {  // mapped again, privately
        for (auto it = impl_->maps.rbegin(); it != impl_->maps.rend(); ++it) pmem2_map_delete(&*it);
        impl_->maps.clear();
        map_range(0, size, false);
      }
    } else {
      mode_ = wanted;
      map_range(0, size, mode_ != persist_mode::page);
    }
    if (mode_ == persist_mode::page) {
      void* r = mmap(nullptr, reserved_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (r == MAP_FAILED) {
        throw error(errc::io_error, fmt::format("pobj: cannot reserve {} bytes of address space for '{}': {}",
                                                reserved_, path_, std::strerror(errno)));
      }
      impl_->apply_base = static_cast<std::byte*>(r);
      map_apply_range(0, size);
      detail::journal_options jo;
      jo.capacity = opts.journal_size;
      jo.record_limit = opts.journal_record_limit;
      jo.apply = opts.journal_apply;
      jo.files = files_;
      impl_->journal = std::make_unique<detail::journal>(fd_, impl_->apply_base, path_, opts.identity, jo);
      journal_ = impl_->journal.get();
    }
  } catch (...) {
    if (impl_->apply_base != nullptr) munmap(impl_->apply_base, reserved_);
    for (auto it = impl_->maps.rbegin(); it != impl_->maps.rend(); ++it) pmem2_map_delete(&*it);
    give_back_reservation(&impl_->reservation, reserved_);
    throw;
  }
  size_.store(size, std::memory_order_release);
  insn_ = detail::detect_flush_insn();
  if (mode_ == persist_mode::sim) {
    sim_ = opts.simulator.get();
    sim_->attach(base_, size);
  }
}

domain::~domain() {
  if (!impl_) return;
  if (sim_ != nullptr) {
    sim_->detach();
    sim_ = nullptr;
  }
  // The journal syncs what is pending and checkpoints while everything is still mapped.
  journal_ = nullptr;
  impl_->journal.reset();
  if (impl_->apply_base != nullptr) munmap(impl_->apply_base, reserved_);
  for (auto it = impl_->maps.rbegin(); it != impl_->maps.rend(); ++it) pmem2_map_delete(&*it);
  impl_->maps.clear();
  if (impl_->reservation != nullptr) give_back_reservation(&impl_->reservation, reserved_);
  impl_.reset();
}

void domain::map_range(std::size_t from, std::size_t to, bool shared) {
  pmem2_source* src = nullptr;
  pmem2_config* cfg = nullptr;
  pmem2_map* map = nullptr;
  auto fail = [&](const char* what) {
    std::string msg = fmt::format("pobj: cannot map '{}' [{}, {}): {}: {}", path_, from, to, what,
                                  pmem2_message());
    if (cfg != nullptr) pmem2_config_delete(&cfg);
    if (src != nullptr) pmem2_source_delete(&src);
    throw error(errc::io_error, msg);
  };
  if (pmem2_source_from_fd(&src, fd_) != 0) fail("source");
  if (pmem2_config_new(&cfg) != 0) fail("config");
  if (pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE) != 0) fail("granularity");
  if (pmem2_config_set_offset(cfg, from) != 0) fail("offset");
  if (pmem2_config_set_length(cfg, to - from) != 0) fail("length");
  if (pmem2_config_set_sharing(cfg, shared ? PMEM2_SHARED : PMEM2_PRIVATE) != 0) fail("sharing");
  if (pmem2_config_set_vm_reservation(cfg, impl_->reservation, from) != 0) fail("reservation");
  if (pmem2_map_new(&map, cfg, src) != 0) fail("map");
  impl_->detected = pmem2_map_get_store_granularity(map);
  impl_->maps.push_back(map);
  pmem2_config_delete(&cfg);
  pmem2_source_delete(&src);
}

void domain::map_apply_range(std::size_t from, std::size_t to) {
  void* at = mmap(impl_->apply_base + from, to - from, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd_,
                  static_cast<off_t>(from));
  if (at == MAP_FAILED) {
    throw error(errc::io_error, fmt::format("pobj: cannot map '{}' [{}, {}) for the journal: {}", path_, from, to,
                                            std::strerror(errno)));
  }
}

void domain::grow(std::size_t new_size) {
  const std::size_t old_size = size_.load(std::memory_order_relaxed);
  if (new_size <= old_size) return;
  if (read_only_) {
    throw error(errc::invalid_argument,
                fmt::format("pobj: pool '{}' is open read-only and cannot grow to {} bytes", path_, new_size));
  }
  if (new_size > reserved_) {
    throw error(errc::out_of_space, fmt::format("pobj: pool '{}' cannot grow to {} bytes: its maximum is {}",
                                                path_, new_size, reserved_));
  }
  if (grow_failed_) {
    // A retried fsync could report success for an extension whose metadata the failed one lost
    // (fsyncgate): the size of the file is unknown until the pool is opened again.
    throw error(errc::io_error, fmt::format("pobj: pool '{}' cannot grow: an earlier fsync of its growth failed; "
                                            "open the pool again to retry",
                                            path_));
  }
  int rc = files_->fallocate(fd_, static_cast<std::int64_t>(old_size), static_cast<std::int64_t>(new_size - old_size));
  if (rc == EOPNOTSUPP || rc == EINVAL) {
    rc = files_->ftruncate(fd_, static_cast<std::int64_t>(new_size)) == 0 ? 0 : errno;
  }
  if (rc != 0) {
    throw error(rc == ENOSPC ? errc::out_of_space : errc::io_error,
                fmt::format("pobj: cannot extend '{}' to {} bytes: {}", path_, new_size, std::strerror(rc)));
  }
  if (mode_ != persist_mode::sim && files_->fsync(fd_) != 0) {
    const int e = errno;
    grow_failed_ = true;
    throw error(errc::io_error, fmt::format("pobj: fsync of '{}' failed: {}", path_, std::strerror(e)));
  }
  map_range(old_size, new_size, mode_ != persist_mode::page);
  if (mode_ == persist_mode::page) map_apply_range(old_size, new_size);
  size_.store(new_size, std::memory_order_release);
  if (sim_ != nullptr) sim_->grow(new_size);
}

void domain::count_flush(std::size_t lines) noexcept {
  ++tl_counters.flushes;
  tl_counters.lines += lines;
}
void domain::count_drain() noexcept { ++tl_counters.drains; }

constexpr std::size_t page_bytes = 4096;  // write tracking's unit

void domain::mark_written(const void* p, std::size_t n) noexcept {
  if (n == 0) return;
  const auto off = static_cast<std::size_t>(static_cast<const std::byte*>(p) - base_);
  if (off >= reserved_) return;  // (not the pool's: nothing of it to copy)
  const std::size_t first = off / page_bytes, last = (std::min(off + n, reserved_) - 1) / page_bytes;
  for (std::size_t page = first; page <= last;) {
    // One fetch_or per word: the bits of [page, last] within it.
    const std::size_t word = page / 64, lo = page % 64, hi = std::min<std::size_t>(63, lo + (last - page));
    const std::uint64_t bits = (hi == 63 ? ~std::uint64_t{0} : (std::uint64_t{1} << (hi + 1)) - 1) & ~((std::uint64_t{1} << lo) - 1);
    written_[word].fetch_or(bits, std::memory_order_release);  // (release: the stores before it come with it)
    page += hi - lo + 1;
  }
}

void domain::track_writes(bool on) {
  if (on && written_ == nullptr) {
    written_words_ = (reserved_ / page_bytes + 63) / 64;
    written_ = std::make_unique<std::atomic<std::uint64_t>[]>(written_words_);
  }
  if (on)
    for (std::size_t i = 0; i < written_words_; ++i) written_[i].store(0, std::memory_order_relaxed);
  tracking_.store(on, std::memory_order_release);
}

std::vector<std::pair<std::size_t, std::size_t>> domain::take_written() {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  if (written_ == nullptr) return ranges;
  for (std::size_t i = 0; i < written_words_; ++i) {
    if (written_[i].load(std::memory_order_relaxed) == 0) continue;
    std::uint64_t bits = written_[i].exchange(0, std::memory_order_acquire);
    while (bits != 0) {
      const auto b = static_cast<std::size_t>(__builtin_ctzll(bits));
      bits &= bits - 1;
      const std::size_t at = (i * 64 + b) * page_bytes;
      if (!ranges.empty() && ranges.back().first + ranges.back().second == at)
        ranges.back().second += page_bytes;
      else
        ranges.emplace_back(at, page_bytes);
    }
  }
  return ranges;
}

void domain::flush_lines(const void* p, std::size_t n) noexcept {
  auto start = reinterpret_cast<std::uintptr_t>(p) & ~(cache_line_size - 1);
  auto end = reinterpret_cast<std::uintptr_t>(p) + n;
  std::size_t lines = 0;
  switch (insn_) {
    case detail::flush_insn::clwb:
      for (auto a = start; a < end; a += cache_line_size, ++lines) {
        asm volatile("clwb %0" : "+m"(*reinterpret_cast<volatile char*>(a)));
      }
      break;
    case detail::flush_insn::clflushopt:
      for (auto a = start; a < end; a += cache_line_size, ++lines) {
        asm volatile("clflushopt %0" : "+m"(*reinterpret_cast<volatile char*>(a)));
      }
      break;
    case detail::flush_insn::clflush:
      for (auto a = start; a < end; a += cache_line_size, ++lines) {
        asm volatile("clflush %0" : "+m"(*reinterpret_cast<volatile char*>(a)));
      }
      break;
  }
  count_flush(lines);
}

void domain::flush_slow(const void* p, std::size_t n) noexcept {
  if (n == 0) return;
  count_flush((n + cache_line_size - 1) / cache_line_size);
  if (mode_ == persist_mode::sim) {
    sim_->flush(p, n);
    return;
  }
  impl_->journal->append(static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - base_), p, n);
}

void domain::drain_slow() noexcept {
  count_drain();
  if (mode_ == persist_mode::sim) {
    sim_->fence();
    return;
  }
  impl_->journal->sync(impl_->journal->ticket());
}

std::uint64_t domain::recover(int fd, const std::string& path, const std::array<std::uint8_t, 16>& identity,
                              std::vector<journal_piece>* pieces, file_ops& files) {
  return detail::recover_journal(fd, path, identity, pieces, files);
}

void domain::remove_journal(const std::string& path, file_ops& files) {
  if (files.unlink(detail::journal_path(path).c_str()) != 0 && errno != ENOENT) {
    throw error(errc::io_error, fmt::format("pobj: cannot remove the journal of '{}': {}", path, std::strerror(errno)));
  }
}

int domain::failure() const noexcept { return journal_ != nullptr ? impl_->journal->failure() : 0; }

std::uint64_t domain::ticket() const noexcept { return journal_ != nullptr ? impl_->journal->ticket() : 0; }
bool domain::durable(std::uint64_t ticket) const noexcept {
  return journal_ == nullptr || impl_->journal->durable(ticket);
}
void domain::sync(std::uint64_t ticket) noexcept {
  if (journal_ != nullptr) impl_->journal->sync(ticket);
}
void domain::checkpoint_or_throw() {
  if (journal_ != nullptr) impl_->journal->checkpoint_or_throw();
}

void domain::checkpoint() noexcept {
  if (journal_ != nullptr) impl_->journal->checkpoint();
}
domain::journal_stats domain::journal_figures() const noexcept {
  if (journal_ == nullptr) return {};
  detail::journal_stats j = impl_->journal->stats();
  return {j.syncs, j.bytes, j.checkpoints, j.failed_writes};
}

}  // namespace media
}  // namespace pobj
