// pobj/testing/faulty_files: a media::file_ops that fails the calls a test chooses (pobj's twin of
// LevelDB's fault-injecting Env). Pass it as pool_options::files; then every file operation on the
// pool, its journal and their directory goes through it.
//
// A failed fdatasync behaves as Linux's does: the writes made on that file since its last good
// fdatasync are lost (put back to what they replaced), and the next fdatasync succeeds without
// them. A rule fails calls of one operation, from its `from`-th call (counting from 1, on files whose
// path contains `path_part`) for `count` calls: with `error` (errno: EIO, ENOSPC, ...), or, as a
// short write, by writing half the bytes and returning that count. The counts of calls and of
// failures tell a test how many calls a workload makes and how many it saw fail.
//
// from_spec() reads rules from text, for a process a test starts (pobj-kv's POBJ_KV_TEST_FAULTS):
//   op:ERROR:from:count[:path_part][,...]    op: open pwrite pread fdatasync fsync ftruncate
//                                            fallocate rename unlink; ERROR: EIO ENOSPC EROFS
//                                            EDQUOT or `short`
//   delay_fdatasync_us:N                     every fdatasync waits N microseconds first
//
// Thread safety: every member may be called from any thread (one internal mutex).
// Crash consistency: not applicable (a test device; it changes no file on its own).
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <pobj/media.hpp>

namespace pobj::testing {

class faulty_files final : public media::file_ops {
 public:
  enum class op : int { open, close, pread, pwrite, fdatasync, fsync, ftruncate, fallocate, rename, unlink, count };
  struct rule {
    op what = op::fdatasync;
    std::uint64_t from = 1;   // the first call that fails (1: the next one)
    std::uint64_t count = 1;  // how many calls fail
    int error = EIO;          // errno; 0 with short_write
    bool short_write = false;
    std::string path_part;    // only calls on files whose path contains this (empty: any file)
  };

  void add(const rule& r) {
    std::lock_guard lock(mu_);
    rules_.push_back(r);
  }
  void clear() {
    std::lock_guard lock(mu_);
    rules_.clear();
  }
  void delay_fdatasync(std::chrono::microseconds d) {
    std::lock_guard lock(mu_);
    delay_ = d;
  }
  // Calls made of `o` (on files matching `path_part`, counted per rule only); failures injected.
  std::uint64_t calls(op o) const {
    std::lock_guard lock(mu_);
    return calls_[static_cast<int>(o)];
  }
  std::uint64_t failures() const {
    std::lock_guard lock(mu_);
    return failures_;
  }
  // Power fails now: every file's writes since its last good fdatasync are put back to what they
  // replaced, as a machine that lost power would find them (the page cache is gone).
  void lose_unsynced() {
    std::vector<int> fds;
    {
      std::lock_guard lock(mu_);
      for (const auto& [fd, writes] : unsynced_) fds.push_back(fd);
    }
    for (int fd : fds) forget_unsynced(fd, false);
  }
  // Failed fdatasyncs that dropped the writes made since the fd's last good one.
  std::uint64_t dropped() const {
    std::lock_guard lock(mu_);
    return dropped_;
  }
  // Calls of `o` on files whose path contains `part` so far, counted while a rule names that
  // operation and part (a rule with count 0 counts without failing anything).
  std::uint64_t calls_on(op o, const std::string& part) const {
    std::lock_guard lock(mu_);
    auto it = per_part_.find(key(o, part));
    return it == per_part_.end() ? 0 : it->second;
  }

  static op parse_op(std::string_view s) {
    static constexpr std::string_view names[] = {"open", "close", "pread", "pwrite", "fdatasync",
                                                 "fsync", "ftruncate", "fallocate", "rename", "unlink"};
    for (int i = 0; i < static_cast<int>(op::count); ++i) {
      if (names[i] == s) return static_cast<op>(i);
    }
    throw std::invalid_argument("faulty_files: unknown operation '" + std::string(s) + "'");
  }

  static std::shared_ptr<faulty_files> from_spec(std::string_view spec) {
    auto f = std::make_shared<faulty_files>();
    while (!spec.empty()) {
      const std::size_t comma = spec.find(',');
      std::string_view item = spec.substr(0, comma);
      spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
      std::vector<std::string_view> parts;
      while (true) {
        const std::size_t colon = item.find(':');
        parts.push_back(item.substr(0, colon));
        if (colon == std::string_view::npos) break;
        item = item.substr(colon + 1);
      }
      if (parts.size() == 2 && parts[0] == "delay_fdatasync_us") {
        f->delay_fdatasync(std::chrono::microseconds(std::stoll(std::string(parts[1]))));
        continue;
      }
      if (parts.size() != 4 && parts.size() != 5) {
        throw std::invalid_argument("faulty_files: a rule is op:ERROR:from:count[:path_part]");
      }
      rule r;
      r.what = parse_op(parts[0]);
      if (parts[1] == "short") {
        r.short_write = true;
        r.error = 0;
      } else if (parts[1] == "EIO") {
        r.error = EIO;
      } else if (parts[1] == "ENOSPC") {
        r.error = ENOSPC;
      } else if (parts[1] == "EROFS") {
        r.error = EROFS;
      } else if (parts[1] == "EDQUOT") {
        r.error = EDQUOT;
      } else {
        throw std::invalid_argument("faulty_files: unknown error '" + std::string(parts[1]) + "'");
      }
      r.from = std::stoull(std::string(parts[2]));
      r.count = std::stoull(std::string(parts[3]));
      if (parts.size() == 5) r.path_part = std::string(parts[4]);
      f->add(r);
    }
    return f;
  }

  int open(const char* path, int flags, unsigned mode) override {
    if (const int e = inject(op::open, path); e != 0) return fail(e);
    const int fd = file_ops::open(path, flags, mode);
    if (fd >= 0) {
      std::lock_guard lock(mu_);
      paths_[fd] = path;
    }
    return fd;
  }
  int close(int fd) override {
    {
      std::lock_guard lock(mu_);
      paths_.erase(fd);
      unsynced_.erase(fd);  // the number may name another file next
    }
    return file_ops::close(fd);
  }
  long pread(int fd, void* to, std::size_t n, std::int64_t at) override {
    if (const int e = inject(op::pread, path_of(fd)); e != 0) return fail(e);
    return file_ops::pread(fd, to, n, at);
  }
  long pwrite(int fd, const void* from, std::size_t n, std::int64_t at) override {
    bool short_write = false;
    if (const int e = inject(op::pwrite, path_of(fd), &short_write); e != 0) return fail(e);
    if (short_write && n > 1) n /= 2;
    remember(fd, n, at);
    return file_ops::pwrite(fd, from, n, at);
  }
  int fdatasync(int fd) override {
    std::chrono::microseconds d;
    {
      std::lock_guard lock(mu_);
      d = delay_;
    }
    if (d.count() > 0) std::this_thread::sleep_for(d);
    if (const int e = inject(op::fdatasync, path_of(fd)); e != 0) {
      forget_unsynced(fd);
      return fail(e);
    }
    const int rc = file_ops::fdatasync(fd);
    if (rc == 0) {
      std::lock_guard lock(mu_);
      unsynced_.erase(fd);
    }
    return rc;
  }
  int fsync(int fd) override {
    if (const int e = inject(op::fsync, path_of(fd)); e != 0) return fail(e);
    return file_ops::fsync(fd);
  }
  int ftruncate(int fd, std::int64_t size) override {
    if (const int e = inject(op::ftruncate, path_of(fd)); e != 0) return fail(e);
    return file_ops::ftruncate(fd, size);
  }
  int fallocate(int fd, std::int64_t at, std::int64_t n) override {
    if (const int e = inject(op::fallocate, path_of(fd)); e != 0) return e;  // posix_fallocate's way
    return file_ops::fallocate(fd, at, n);
  }
  int rename(const char* from, const char* to) override {
    if (const int e = inject(op::rename, from); e != 0) return fail(e);
    return file_ops::rename(from, to);
  }
  int unlink(const char* path) override {
    if (const int e = inject(op::unlink, path); e != 0) return fail(e);
    return file_ops::unlink(path);
  }

 private:
  // Linux after a failed writeback (PostgreSQL's "fsyncgate"): the pages that did not reach the
  // disk are dropped or marked clean, so a later fdatasync reports success without them. Modelled
  // by remembering what each write since the fd's last good fdatasync replaced, and putting it
  // back when an fdatasync fails: whoever only retries the fdatasync has lost those writes.
  void remember(int fd, std::size_t n, std::int64_t at) {
    std::string before(n, '\0');
    const long got = file_ops::pread(fd, before.data(), n, at);
    before.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
    std::lock_guard lock(mu_);
    unsynced_[fd].push_back({at, std::move(before)});
  }
  void forget_unsynced(int fd, bool failed_sync = true) {
    std::vector<std::pair<std::int64_t, std::string>> undo;
    {
      std::lock_guard lock(mu_);
      auto it = unsynced_.find(fd);
      if (it == unsynced_.end()) return;
      undo = std::move(it->second);
      unsynced_.erase(it);
      if (failed_sync) ++dropped_;
    }
    for (auto u = undo.rbegin(); u != undo.rend(); ++u) {
      (void)file_ops::pwrite(fd, u->second.data(), u->second.size(), u->first);
    }
  }

  static int fail(int e) {
    errno = e;
    return -1;
  }
  static std::string key(op o, const std::string& part) { return std::to_string(static_cast<int>(o)) + ":" + part; }
  std::string path_of(int fd) const {
    std::lock_guard lock(mu_);
    auto it = paths_.find(fd);
    return it == paths_.end() ? std::string() : it->second;
  }
  // The errno to fail this call with (0: let it through); sets *short_write for a short write.
  int inject(op o, const std::string& path, bool* short_write = nullptr) {
    std::lock_guard lock(mu_);
    ++calls_[static_cast<int>(o)];
    // Each (operation, path_part) counter moves once per call, however many rules share it.
    std::vector<std::string> counted;
    auto count_of = [&](const std::string& part) {
      const std::string k = key(o, part);
      if (std::find(counted.begin(), counted.end(), k) == counted.end()) {
        counted.push_back(k);
        ++per_part_[k];
      }
      return per_part_[k];
    };
    int result = 0;
    for (const rule& r : rules_) {
      if (r.what != o || (!r.path_part.empty() && path.find(r.path_part) == std::string::npos)) continue;
      const std::uint64_t n = count_of(r.path_part);
      if (n < r.from || n >= r.from + r.count || result != 0) continue;
      if (r.short_write) {
        if (short_write != nullptr && !*short_write) {
          *short_write = true;
          ++failures_;
        }
        continue;
      }
      result = r.error;
      ++failures_;
    }
    return result;
  }

  mutable std::mutex mu_;
  std::vector<rule> rules_;
  std::chrono::microseconds delay_{0};
  std::uint64_t calls_[static_cast<int>(op::count)] = {};
  std::unordered_map<std::string, std::uint64_t> per_part_;
  std::unordered_map<int, std::string> paths_;
  std::uint64_t failures_ = 0;
  std::unordered_map<int, std::vector<std::pair<std::int64_t, std::string>>> unsynced_;
  std::uint64_t dropped_ = 0;
};

}  // namespace pobj::testing
