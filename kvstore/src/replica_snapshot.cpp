// kvstore/replica_snapshot: pool snapshots between the members of a group (replica.hpp, "Pool
// snapshots"; docs/replication.md, "Snapshots of the pool").
//
// The leader's side: raft asks to send member M a snapshot (M needs entries compacted away). The
// pool is copied into `<pool>.snapshot-out-<index>-<n>` beside it while the group keeps serving:
// the pool tracks the pages written from then on (media::domain::track_writes); a thread copies
// the pool's data extents, then, pass after pass, the pages written meanwhile, until a pass copies
// little; the server thread then takes the last pass between two entries (every committed entry
// applied, the raft thread's writes held off), the only pause, and the copy holds the pool as of
// that entry. A thread per member then streams the copy in chunks of 1 MiB over the
// transport, at most 16 unacknowledged, and finally a `done` frame with the copy's index, term and
// members. The member acknowledges each chunk and the done frame; then raft is told the snapshot
// was delivered, and it probes the member from there. No acknowledgement for 10 s, or a member
// missing chunks: raft is told it failed, and asks again later (a new copy).
//
// The member's side: chunks are written into `<pool>.snapshot-in` (a new transfer replaces an
// unfinished one). Once the done frame finds every chunk, the server thread installs it: raft and
// the transport stop (the hard state is final: no vote after it), the member's own pool is closed
// (consistent on its media), the copy is opened and made this member's (log_store::adopt: its
// identity, its term and vote, an empty log after the copy's index, applied there), renamed over
// the pool, and the process executes itself again with the same arguments. A crash before the
// rename leaves the old pool; after it, the new one.
//
// Frames (kind 2, leader to member): [u8 0][u64 id][u64 seq][u64 offset][data] a chunk;
// [u8 1][u64 id][u64 chunks][u64 file size][u64 index][u64 term][u32 n][members, n bytes:
// log_store::encode_members]
// done. Kind 3, member to leader: [u64 id][u64 seq], seq ~0 for done received whole, ~1 for done
// with chunks missing.
//
// Thread safety: snap_mu_ guards the transfers' state; snapshot_prep_ is the server thread's (the
// copying thread owns its prep's fields until it sets `ready`); the last pass and the install run
// on the server thread. Crash consistency: above.
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "log.hpp"
#include "log_store.hpp"
#include "records.hpp"
#include "replica.hpp"
#include "transport.hpp"

namespace pobj::kv {

namespace {
constexpr std::uint8_t kind_snapshot = 2;
constexpr std::uint8_t kind_snapshot_ack = 3;
constexpr std::uint8_t frame_chunk = 0, frame_done = 1;
constexpr std::uint64_t ack_done = ~std::uint64_t{0}, ack_missing = ~std::uint64_t{1};
constexpr std::size_t chunk_bytes = 1 << 20;
constexpr std::int64_t silent_ms = 2000;  // a member not heard from for this long gets no copy
constexpr std::size_t window = 16;
// Copying the pool while the group serves: passes over what was written meanwhile, until one
// copies less than this (or after this many); the last pass, paused, copies what that one left.
constexpr int max_copy_passes = 8;
constexpr std::uint64_t small_pass_bytes = 4 << 20;
constexpr auto ack_timeout = std::chrono::seconds(10);

std::int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void write_all(int fd, const void* data, std::size_t n, std::uint64_t at, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error(fmt::format("cannot write '{}': {}", path, std::strerror(errno)));
    p += w;
    at += static_cast<std::uint64_t>(w);
    n -= static_cast<std::size_t>(w);
  }
}
// The parts of the file `fd` (of `size` bytes) that hold data, in order: extents the file system
// allocated and wrote, as FIEMAP lists them after writing the file back (an extent allocated but
// never written, as posix_fallocate leaves a pool's unused space on ext4 or xfs, is no data),
// else, where FIEMAP is not supported (tmpfs), what SEEK_DATA finds.
std::vector<std::pair<std::uint64_t, std::uint64_t>> data_extents(int fd, std::uint64_t size) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  auto add = [&](std::uint64_t at, std::uint64_t len) {
    if (at >= size) return;
    len = std::min(len, size - at);
    if (!out.empty() && out.back().first + out.back().second == at) out.back().second += len;
    else out.emplace_back(at, len);
  };
  constexpr unsigned batch = 256;
  std::vector<char> buf(sizeof(fiemap) + batch * sizeof(fiemap_extent));
  auto* fm = reinterpret_cast<fiemap*>(buf.data());
  std::uint64_t at = 0;
  bool fiemap_works = true;
  for (bool first = true; at < size;) {
    std::memset(buf.data(), 0, buf.size());
    fm->fm_start = at;
    fm->fm_length = size - at;
    fm->fm_flags = first ? FIEMAP_FLAG_SYNC : 0;
    fm->fm_extent_count = batch;
    if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0) {
      fiemap_works = false;
      break;
    }
    first = false;
    if (fm->fm_mapped_extents == 0) break;
    bool last = false;
    for (unsigned i = 0; i < fm->fm_mapped_extents; ++i) {
      const fiemap_extent& e = fm->fm_extents[i];
      if ((e.fe_flags & FIEMAP_EXTENT_UNWRITTEN) == 0) add(e.fe_logical, e.fe_length);
      at = e.fe_logical + e.fe_length;
      last |= (e.fe_flags & FIEMAP_EXTENT_LAST) != 0;
    }
    if (last) break;
  }
  if (fiemap_works) return out;
  out.clear();
  for (at = 0; at < size;) {
    const off_t data = ::lseek(fd, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) break;  // ENXIO: no data after `at`
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(size);
    add(static_cast<std::uint64_t>(data), static_cast<std::uint64_t>(hole) - static_cast<std::uint64_t>(data));
    at = static_cast<std::uint64_t>(hole);
  }
  return out;
}

}  // namespace

// A copy of the pool, shared by the transfers that send it; its file goes with the last of them.
struct replica::snapshot_copy {
  std::string path;
  std::uint64_t file_size = 0, index = 0, term = 0;
  pobj::repl::conf_state members;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> chunks;  // offset, length
  ~snapshot_copy() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

// A copy being taken while the group serves (the server thread's): a thread copies the pool and
// then, pass after pass, what was written meanwhile; the server thread takes the last pass between
// two entries.
struct replica::snapshot_prep {
  std::shared_ptr<snapshot_copy> copy;   // its path; the rest once the last pass is taken
  std::vector<std::uint64_t> members;    // for whom
  int out = -1;                          // the copy's file
  std::int64_t t0 = 0;                   // steady us
  std::uint64_t ticket = 0;              // page mode: the file holds what was written before this
  std::thread thread;
  std::atomic<bool> ready{false}, cancel{false};
  // The copying thread's until `ready`, then the server thread's.
  std::string error;
  std::uint64_t bytes = 0, recopied = 0, passes = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> written;  // ranges of the copy written
  ~snapshot_prep() {
    if (out >= 0) ::close(out);
  }
};

struct replica::snapshot_out {
  std::uint64_t to = 0, id = 0;
  std::shared_ptr<snapshot_copy> copy;
  std::vector<bool> acked;    // GUARDED_BY(snap_mu_)
  std::size_t acked_count = 0;  // GUARDED_BY(snap_mu_)
  std::uint64_t done_ack = 0;   // GUARDED_BY(snap_mu_): 0, ack_done or ack_missing
  std::int64_t last_ack_us = 0;  // GUARDED_BY(snap_mu_)
  bool finished = false;        // GUARDED_BY(snap_mu_)
  std::thread thread;
};

struct replica::snapshot_in {
  std::uint64_t id = 0, from = 0;
  int fd = -1;
  std::set<std::uint64_t> seqs;
  std::uint64_t index = 0, term = 0;
  pobj::repl::conf_state members;
  ~snapshot_in() {
    if (fd >= 0) ::close(fd);
  }
};

void replica::remove_snapshot_files() {
  // What a crash or a stop left: unfinished copies, sent or received.
  const std::string dir = pool_path_.substr(0, pool_path_.rfind('/') + 1);
  const std::string base = pool_path_.substr(pool_path_.rfind('/') + 1);
  ::unlink((pool_path_ + ".snapshot-in").c_str());
  ::unlink((pool_path_ + ".snapshot-in.journal").c_str());
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir.empty() ? "." : dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(base + ".snapshot-out-", 0) == 0) std::filesystem::remove(e.path(), ec);
  }
}

void replica::stop_snapshots() {
  stopping_ = true;
  if (snapshot_prep_) {  // (the server thread's: it is here, or gone)
    snapshot_prep_->cancel = true;
    if (snapshot_prep_->thread.joinable()) snapshot_prep_->thread.join();
    if (pobj::pool& pool = engine_->db().pool(); pool.is_open()) pool.media().track_writes(false);
    snapshot_prep_.reset();
  }
  std::vector<std::shared_ptr<snapshot_out>> all;
  {
    std::lock_guard lock(snap_mu_);
    snap_cv_.notify_all();
    all = snapshots_out_;
  }
  for (auto& t : all)  // (a sender takes snap_mu_ on its way out)
    if (t->thread.joinable()) t->thread.join();
}

void replica::want_snapshot(std::uint64_t member) {
  {
    std::lock_guard lock(snap_mu_);
    for (const auto& t : snapshots_out_)
      if (t->to == member && !t->finished) return;  // one at a time; raft waits for its report
    if (std::find(snapshot_wanted_.begin(), snapshot_wanted_.end(), member) == snapshot_wanted_.end())
      snapshot_wanted_.push_back(member);
  }
  signal();
}

void replica::take_snapshots() {
  std::vector<std::uint64_t> wanted;
  {
    std::lock_guard lock(snap_mu_);
    wanted.swap(snapshot_wanted_);
    const std::int64_t now = steady_us();
    for (auto it = wanted.begin(); it != wanted.end();) {  // backing off after a failure: later
      if (auto r = snapshot_retry_.find(*it); r != snapshot_retry_.end() && r->second.first > now) {
        snapshot_wanted_.push_back(*it);
        it = wanted.erase(it);
      } else {
        ++it;
      }
    }
    // Senders that finished are joined here (their threads cannot join themselves).
    for (auto it = snapshots_out_.begin(); it != snapshots_out_.end();) {
      if ((*it)->finished) {
        if ((*it)->thread.joinable()) (*it)->thread.join();
        it = snapshots_out_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (stopping_.load()) return;
  if (!wanted.empty() && !leader()) {
    for (std::uint64_t m : wanted) node_->report_snapshot(m, false);
    wanted.clear();
  }
  // A member not heard from lately is down or cut off: no copy for it. Raft tries it again each
  // heartbeat, and the copy is taken once it answers.
  for (auto it = wanted.begin(); it != wanted.end();) {
    if (const std::int64_t quiet = steady_us() / 1000 - heard_ms(*it); quiet > silent_ms) {
      log::verbose("replication: member {} needs a snapshot but was not heard from for {} ms: none yet", *it, quiet);
      node_->report_snapshot(*it, false);
      it = wanted.erase(it);
    } else {
      ++it;
    }
  }
  if (snapshot_prep_) {
    // A copy is being taken: these members get it too (it ends at a later entry than they asked
    // for, which is all they need).
    for (std::uint64_t m : wanted)
      if (std::find(snapshot_prep_->members.begin(), snapshot_prep_->members.end(), m) == snapshot_prep_->members.end())
        snapshot_prep_->members.push_back(m);
    if (snapshot_prep_->ready.load(std::memory_order_acquire)) finish_snapshot_copy();
    return;
  }
  if (!wanted.empty()) start_snapshot_copy(std::move(wanted));
}

void replica::start_snapshot_copy(std::vector<std::uint64_t> members) {
  auto prep = std::make_shared<snapshot_prep>();
  prep->members = std::move(members);
  prep->t0 = steady_us();
  prep->copy = std::make_shared<snapshot_copy>();
  pobj::pool& pool = engine_->db().pool();
  try {
    // A name of its own: an earlier copy, even of the same entry, may still be sending (its file
    // goes with its last sender).
    prep->copy->path = fmt::format("{}.snapshot-out-{}-{}", pool_path_, applied_.load(), ++snapshot_copies_);
    prep->out = ::open(prep->copy->path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
    if (prep->out < 0)
      throw std::runtime_error(fmt::format("cannot create '{}': {}", prep->copy->path, std::strerror(errno)));
    {
      // Every store from here on is marked (the server thread is here, and the raft thread's
      // writes wait for state_mu_): the passes copy again what changes under them.
      std::lock_guard state(state_mu_);
      pool.media().track_writes(true);
    }
    if (pool.deferred_durability()) {
      // Page mode: the pool file catches up with memory when the journal syncs. The first pass
      // finds the data by the file's extents: once this ticket is durable, the file has every
      // page written before tracking began (the rest are marked).
      transaction tx(pool);
      prep->ticket = tx.commit_deferred();
    }
  } catch (const std::exception& e) {
    pool.media().track_writes(false);
    log::warning("replication: cannot copy the pool for a snapshot: {}", e.what());
    for (std::uint64_t m : prep->members) node_->report_snapshot(m, false);
    return;
  }
  log::notice("replication: copying the pool for member(s) {} while the group serves (applied to entry {})",
              fmt::join(prep->members, ","), applied_.load());
  snapshot_prep* raw = prep.get();
  prep->thread = std::thread([this, raw] { copy_pool(*raw); });
  snapshot_prep_ = std::move(prep);
}

void replica::copy_pool(snapshot_prep& prep) {
  pobj::pool& pool = engine_->db().pool();
  const auto* base = reinterpret_cast<const char*>(pool.base());
  const std::string& path = prep.copy->path;
  auto stopped = [&] { return stopping_.load() || prep.cancel.load(); };
  int in = -1;
  try {
    if (pool.deferred_durability()) pool.sync(prep.ticket);
    // The first pass: the data extents of the pool file (mostly holes until used), read from
    // memory while the group writes to it.
    in = ::open(pool_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) throw std::runtime_error(fmt::format("cannot open '{}': {}", pool_path_, std::strerror(errno)));
    const std::uint64_t size = pool.size();  // (a part grown later is written, so marked)
    for (const auto& [from, len] : data_extents(in, size)) {
      prep.written.emplace_back(from, len);
      for (std::uint64_t off = from; off < from + len && !stopped(); off += chunk_bytes) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_bytes, from + len - off));
        write_all(prep.out, base + off, n, off, path);
        prep.bytes += n;
      }
    }
    ::close(in);
    in = -1;
    // Then what was written meanwhile, again and again while it shrinks: the last pass, with the
    // group paused, copies only what the last of these left.
    for (int pass = 0; pass < max_copy_passes && !stopped(); ++pass) {
      if (test_copy_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(test_copy_delay_ms_));
      std::uint64_t again = 0;
      for (const auto& [off, len] : pool.media().take_written()) {
        write_all(prep.out, base + off, len, off, path);
        prep.written.emplace_back(off, len);
        again += len;
      }
      prep.bytes += again;
      prep.recopied += again;
      ++prep.passes;
      if (again < small_pass_bytes) break;
    }
    if (stopped()) prep.error = "stopped";
  } catch (const std::exception& e) {
    if (in >= 0) ::close(in);
    prep.error = e.what();
  }
  prep.ready.store(true, std::memory_order_release);
  signal();  // the server thread takes the last pass
}

void replica::finish_snapshot_copy() {
  std::shared_ptr<snapshot_prep> prep = std::move(snapshot_prep_);
  if (prep->thread.joinable()) prep->thread.join();
  pobj::pool& pool = engine_->db().pool();
  std::shared_ptr<snapshot_copy> copy = prep->copy;
  const std::vector<std::uint64_t> wanted = prep->members;
  std::int64_t pause = 0;
  try {
    if (!prep->error.empty()) throw std::runtime_error(prep->error);
    if (!leader()) throw std::runtime_error("this member no longer leads");
    const auto* base = reinterpret_cast<const char*>(pool.base());
    // The last pass, between two entries: the server thread applied every committed one
    // (apply_committed), and the raft thread's writes wait for state_mu_. What was written since
    // the previous pass is copied from memory: the copy then holds what memory holds.
    std::lock_guard state(state_mu_);
    const std::int64_t t0 = steady_us();
    for (const auto& [off, len] : pool.media().take_written()) {
      write_all(prep->out, base + off, len, off, copy->path);
      prep->written.emplace_back(off, len);
      prep->bytes += len;
      prep->recopied += len;
    }
    pool.media().track_writes(false);
    copy->index = applied_.load();
    if (const auto e = log_->entry(copy->index)) copy->term = e->term;
    else copy->term = log_->snapshot().term;  // applied exactly to the compaction point
    copy->members = log_->members_at(copy->index);
    copy->file_size = pool.size();
    if (::ftruncate(prep->out, static_cast<off_t>(copy->file_size)) != 0)
      throw std::runtime_error(fmt::format("cannot size '{}': {}", copy->path, std::strerror(errno)));
    pause = steady_us() - t0;
    if (test_verify_copy_) verify_copy(prep->out, base, copy->file_size);  // (a test's: not counted in the pause)
  } catch (const std::exception& e) {
    pool.media().track_writes(false);
    log::warning("replication: cannot copy the pool for a snapshot: {}", e.what());
    for (std::uint64_t m : wanted) node_->report_snapshot(m, false);
    return;
  }
  // The chunks: what the passes wrote (merged), 1 MiB at most each.
  std::sort(prep->written.begin(), prep->written.end());
  std::uint64_t bytes = 0, next = 0;  // (next: the end of what is in chunks so far)
  for (auto [from, len] : prep->written) {
    std::uint64_t end = std::min(from + len, copy->file_size);
    from = std::max(from, next);
    for (std::uint64_t off = from; off < end; off += chunk_bytes) {
      const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_bytes, end - off));
      if (!copy->chunks.empty() && copy->chunks.back().first + copy->chunks.back().second == off &&
          copy->chunks.back().second + n <= chunk_bytes) {
        copy->chunks.back().second += n;  // (adjacent pages of the passes: one chunk)
      } else {
        copy->chunks.emplace_back(off, n);
      }
      bytes += n;
    }
    next = std::max(next, end);
  }
  const std::int64_t total = steady_us() - prep->t0;
  snapshot_pause_us_ = static_cast<std::uint64_t>(pause);
  snapshot_copy_bytes_ = bytes;
  snapshot_copy_ms_ = static_cast<std::uint64_t>(total / 1000);
  log::notice("replication: copied the pool at entry {} for member(s) {}: {} MiB of data in {} ms while the group "
              "served ({} MiB written meanwhile copied again in {} pass(es)); the group paused {} us for the last",
              copy->index, fmt::join(wanted, ","), bytes >> 20, total / 1000, prep->recopied >> 20, prep->passes + 1,
              pause);
  std::lock_guard lock(snap_mu_);
  for (std::uint64_t m : wanted) {
    auto t = std::make_shared<snapshot_out>();
    t->to = m;
    // Random: two leaders' copies at the same index for the same member (their pools differ in
    // bytes) must never pass for one transfer, whose chunks the member would mix.
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    do t->id = rng(); while (t->id == 0);
    t->copy = copy;
    t->acked.assign(copy->chunks.size(), false);
    t->last_ack_us = steady_us();
    t->thread = std::thread([this, t] { send_snapshot(t); });
    snapshots_out_.push_back(std::move(t));
  }
}

void replica::verify_copy(int fd, const char* base, std::uint64_t size) {
  std::vector<char> block(chunk_bytes);
  for (std::uint64_t at = 0; at < size; at += chunk_bytes) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_bytes, size - at));
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd, block.data() + got, n - got, static_cast<off_t>(at + got));
      if (r <= 0) throw std::runtime_error("cannot read the copy back");
      got += static_cast<std::size_t>(r);
    }
    if (std::memcmp(block.data(), base + at, n) != 0) {
      std::size_t i = 0;
      while (block[i] == base[at + i]) ++i;
      throw std::runtime_error(fmt::format("TEST: the copy differs from the pool at byte {}", at + i));
    }
  }
  log::notice("replication: TEST: the copy equals the pool ({} bytes)", size);
}

void replica::send_snapshot(std::shared_ptr<snapshot_out> t) {
  const std::int64_t t0 = steady_us();
  const snapshot_copy& copy = *t->copy;
  bool ok = false;
  std::string why;
  const int fd = ::open(copy.path.c_str(), O_RDONLY | O_CLOEXEC);
  std::string buf;
  auto stalled = [&] { return steady_us() - t->last_ack_us > std::chrono::microseconds(ack_timeout).count(); };
  try {
    if (fd < 0) throw std::runtime_error(fmt::format("cannot open '{}': {}", copy.path, std::strerror(errno)));
    for (std::size_t seq = 0; seq < copy.chunks.size(); ++seq) {
      {
        std::unique_lock lock(snap_mu_);
        while (!stopping_.load() && seq - t->acked_count >= window) {
          if (stalled()) throw std::runtime_error("no acknowledgement for 10 s");
          snap_cv_.wait_for(lock, std::chrono::milliseconds(100));
        }
      }
      if (stopping_.load()) throw std::runtime_error("the member stops");
      const auto [off, len] = copy.chunks[seq];
      pobj::repl::byte_writer w;
      w.u8(frame_chunk);
      w.u64(t->id);
      w.u64(seq);
      w.u64(off);
      buf = std::move(w).take();
      buf.resize(buf.size() + len);
      std::size_t got = 0;
      while (got < len) {
        const ssize_t r = ::pread(fd, buf.data() + buf.size() - len + got, len - got, static_cast<off_t>(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) throw std::runtime_error(fmt::format("cannot read '{}': {}", copy.path, std::strerror(errno)));
        got += static_cast<std::size_t>(r);
      }
      pobj::repl::transport* link = link_.load();
      while (link == nullptr || !link->send(t->to, kind_snapshot, buf)) {  // its queue is full: wait
        if (stopping_.load() || stalled()) throw std::runtime_error("the member's queue stays full");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        link = link_.load();
      }
    }
    // Every chunk acknowledged, then done (sent again each second until it is acknowledged).
    std::unique_lock lock(snap_mu_);
    while (!stopping_.load() && t->acked_count < copy.chunks.size()) {
      if (stalled()) throw std::runtime_error("no acknowledgement for 10 s");
      snap_cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    if (test_done_delay_ms_ > 0) {
      lock.unlock();
      const std::int64_t until = steady_us() + test_done_delay_ms_ * 1000;
      while (!stopping_.load() && steady_us() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      lock.lock();
    }
    pobj::repl::byte_writer w;
    w.u8(frame_done);
    w.u64(t->id);
    w.u64(copy.chunks.size());
    w.u64(copy.file_size);
    w.u64(copy.index);
    w.u64(copy.term);
    const std::string members = pobj::repl::log_store::encode_members(copy.members);
    w.u32(static_cast<std::uint32_t>(members.size()));
    w.bytes(members);
    const std::string done = std::move(w).take();
    const std::int64_t done_from = steady_us();
    while (!stopping_.load() && t->done_ack == 0) {
      if (steady_us() - done_from > std::chrono::microseconds(ack_timeout).count())
        throw std::runtime_error("the done frame was not acknowledged in 10 s");
      lock.unlock();
      if (pobj::repl::transport* link = link_.load()) link->send(t->to, kind_snapshot, done);
      lock.lock();
      snap_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return t->done_ack != 0 || stopping_.load(); });
    }
    if (t->done_ack == ack_missing) throw std::runtime_error("the member is missing chunks");
    ok = t->done_ack == ack_done;
    if (!ok) why = "the member stops";
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (fd >= 0) ::close(fd);
  const std::int64_t ms = (steady_us() - t0) / 1000;
  if (ok) {
    ++snapshots_sent_;
    snapshot_bytes_ += [&] {
      std::uint64_t b = 0;
      for (const auto& c : copy.chunks) b += c.second;
      return b;
    }();
    snapshot_transfer_ms_ = static_cast<std::uint64_t>(ms);
    log::notice("replication: member {} received the snapshot at entry {} in {} ms", t->to, copy.index, ms);
  } else {
    ++snapshots_failed_;
    log::warning("replication: the snapshot at entry {} for member {} failed after {} ms: {}", copy.index, t->to, ms,
                 why);
  }
  {
    std::lock_guard lock(snap_mu_);  // (before raft hears of it: it asks again at once)
    if (ok || steady_us() / 1000 - heard_ms(t->to) > silent_ms) {
      snapshot_retry_.erase(t->to);  // (it went silent: the next copy waits until it is heard from)
    } else {
      auto& [at, pause] = snapshot_retry_[t->to];
      pause = std::min<std::int64_t>(pause == 0 ? 10'000'000 : pause * 2, 160'000'000);
      at = steady_us() + pause;
    }
  }
  if (!stopping_.load())
    if (pobj::repl::node* n = raft_.load()) n->report_snapshot(t->to, ok);
  std::lock_guard lock(snap_mu_);
  t->copy.reset();  // the last sender of a copy removes its file
  t->finished = true;
}

void replica::on_snapshot_frame(std::uint64_t from, std::uint8_t kind, std::string_view payload) {
  try {
    pobj::repl::byte_reader r(payload);
    if (kind == kind_snapshot_ack) {
      const std::uint64_t id = r.u64(), seq = r.u64();
      std::lock_guard lock(snap_mu_);
      for (auto& t : snapshots_out_) {
        if (t->id != id || t->to != from || t->finished) continue;
        if (seq == ack_done || seq == ack_missing) {
          t->done_ack = seq;
        } else if (seq < t->acked.size() && !t->acked[seq]) {
          t->acked[seq] = true;
          ++t->acked_count;
        }
        t->last_ack_us = steady_us();
      }
      snap_cv_.notify_all();
      return;
    }
    const std::uint8_t type = r.u8();
    const std::uint64_t id = r.u64();
    pobj::repl::byte_writer ack;
    ack.u64(id);
    bool ready = false;  // the copy is whole: install it once its acknowledgement is queued
    {
      std::lock_guard lock(snap_mu_);
      if (install_ready_.load()) return;  // one is being installed
      const std::string path = pool_path_ + ".snapshot-in";
      if (type == frame_chunk) {
        const std::uint64_t seq = r.u64(), off = r.u64();
        const std::string_view data = r.take(r.left());
        if (!snapshot_in_ || snapshot_in_->id != id) {
          if (snapshot_in_) log::warning("replication: an unfinished snapshot from member {} is dropped", snapshot_in_->from);
          snapshot_in_.reset();
          auto in = std::make_shared<snapshot_in>();
          in->id = id;
          in->from = from;
          in->fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
          if (in->fd < 0) throw std::runtime_error(fmt::format("cannot create '{}': {}", path, std::strerror(errno)));
          log::notice("replication: receiving a snapshot of the pool from member {}", from);
          snapshot_in_ = std::move(in);
        }
        write_all(snapshot_in_->fd, data.data(), data.size(), off, path);
        snapshot_in_->seqs.insert(seq);
        ack.u64(seq);
      } else if (type == frame_done) {
        const std::uint64_t chunks = r.u64(), file_size = r.u64(), index = r.u64(), term = r.u64();
        pobj::repl::conf_state members = pobj::repl::log_store::decode_members(r.take(r.u32()));
        if (index <= applied_.load()) {
          ack.u64(ack_done);  // this member has it already (it caught up meanwhile)
        } else if (!snapshot_in_ || snapshot_in_->id != id || snapshot_in_->seqs.size() != chunks) {
          ack.u64(ack_missing);
        } else {
          // The copy holds the leader's data only (its unused space travels as holes): its
          // space is allocated here, as a pool's is when it is made or grows.
          int rc = ::posix_fallocate(snapshot_in_->fd, 0, static_cast<off_t>(file_size));
          if (rc == EOPNOTSUPP || rc == EINVAL) rc = ::ftruncate(snapshot_in_->fd, static_cast<off_t>(file_size)) == 0 ? 0 : errno;
          if (rc == 0 && ::fsync(snapshot_in_->fd) != 0) rc = errno;
          if (rc != 0) throw std::runtime_error(fmt::format("cannot write '{}': {}", path, std::strerror(rc)));
          snapshot_in_->index = index;
          snapshot_in_->term = term;
          snapshot_in_->members = std::move(members);
          ready = true;
          ack.u64(ack_done);
        }
      } else {
        return;
      }
    }
    if (pobj::repl::transport* link = link_.load()) link->send(from, kind_snapshot_ack, std::move(ack).take());
    if (ready) {
      install_ready_ = true;  // (frames are handled one at a time: none can slip in before this)
      signal();
    }
  } catch (const std::exception& e) {
    log::warning("replication: a snapshot frame from member {} is refused: {}", from, e.what());
  }
}

void replica::install_snapshot(const std::atomic<bool>& stop) {
  std::shared_ptr<snapshot_in> in;
  {
    std::lock_guard lock(snap_mu_);
    in = std::move(snapshot_in_);
  }
  const std::string incoming = pool_path_ + ".snapshot-in";
  // A copy is needed only if this member's log lacks its last entry. If the log holds it (a new
  // leader sent the entries meanwhile; a second copy arrived after the first was installed), the
  // log may reach past it, and those entries may count in the majority that committed them:
  // replacing the log would lose them (raft's own rule: a snapshot that matches the log leaves
  // the log alone). The same index and term mean the same entries up to there; another term at
  // that index is a branch that never committed. Entries below the applied index are committed.
  auto holds_copy = [&] {
    if (applied_.load() >= in->index) return true;
    const auto e = log_->entry(in->index);
    return e && e->term == in->term;
  };
  {
    std::lock_guard state(state_mu_);  // (the raft thread writes the log)
    if (holds_copy()) {
      log::notice("replication: the snapshot at entry {} from member {} is not needed: this member's log holds "
                  "that entry (applied {}, log to {})",
                  in->index, in->from, applied_.load(), log_->last_index());
      ::close(in->fd);
      in->fd = -1;
      ::unlink(incoming.c_str());
      install_ready_ = false;  // (snapshot frames are taken again)
      return;
    }
  }
  log::notice("replication: installing the snapshot of member {}'s pool at entry {} (this member had applied {}); "
              "the member restarts on it",
              in->from, in->index, applied_.load());
  try {
    // Nothing may vote or persist after the hard state is read: raft and the transport stop.
    // The sender counts the copy delivered once it hears the acknowledgement queued just before:
    // let it leave (else the sender learns of it only from this member's restarted self).
    if (!transport_->flush(in->from, std::chrono::milliseconds(500)))
      log::warning("replication: the snapshot's acknowledgement to member {} is still queued", in->from);
    stopping_ = true;
    snap_cv_.notify_all();
    node_->stop();
    link_ = nullptr;
    raft_ = nullptr;
    transport_->close();
    stop_snapshots();
    const pobj::repl::hard_state own = log_->hard();
    // Raft ran until it stopped just now: its log may have come to hold the copy's entry since
    // the check above. Then this member keeps its own pool (and restarts on it all the same).
    const bool keep_own = holds_copy();
    const std::uint64_t own_last = log_->last_index();
    pobj::pool& pool = engine_->db().pool();
    pobj::pool_options o;
    o.mode = pool.mode();
    o.max_size = pool.max_size();
    // The old pool closes consistent on its media (page mode: its journal checkpointed), so that
    // a crash before the rename below restarts on it, and one after finds no journal records
    // that could replay onto the copy.
    if (stop_pool_users_) stop_pool_users_();  // (page mode's syncer may be inside the pool)
    pool.close();
    ::close(in->fd);
    in->fd = -1;
    if (keep_own) {
      log::notice("replication: the snapshot at entry {} is not needed after all: this member's log holds that "
                  "entry now (applied {}, log to {}); the member restarts on its own pool",
                  in->index, applied_.load(), own_last);
      ::unlink(incoming.c_str());
      ::unlink((incoming + ".journal").c_str());
    } else {
      pobj::pool copy = pobj::pool::open(incoming, o);
      pobj::repl::log_store ls(copy);
      const auto id = ls.identity();
      if (!id || id->group != group_)
        throw std::runtime_error(fmt::format("the copy belongs to group '{}', not '{}'", id ? id->group : "none", group_));
      pobj::repl::hard_state h;
      h.term = std::max(own.term, in->term);
      h.vote = own.term >= in->term ? own.vote : 0;
      h.commit = in->index;
      pobj::run_tx(copy, [&](transaction& tx) {
        ls.adopt(tx, {group_, self_}, h, {in->index, in->term, in->members.encoded}, in->members);
      });
      copy.close();
      ::unlink((incoming + ".journal").c_str());  // closed clean: nothing in it is needed
      if (::rename(incoming.c_str(), pool_path_.c_str()) != 0)
        throw std::runtime_error(
            fmt::format("cannot rename '{}' to '{}': {}", incoming, pool_path_, std::strerror(errno)));
      const std::string dir =
          pool_path_.rfind('/') == std::string::npos ? "." : pool_path_.substr(0, pool_path_.rfind('/'));
      if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
        ::fsync(d);
        ::close(d);
      }
    }
  } catch (const std::exception& e) {
    log::warning("replication: cannot install the snapshot: {}; this member stops (restart it: it starts again "
                 "from its own pool if the copy did not replace it)",
                 e.what());
    std::abort();
  }
  // The same program, arguments and environment, on the installed pool.
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  const std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (std::size_t at = 0; at < cmdline.size();) {
    const std::size_t end = cmdline.find('\0', at);
    args.emplace_back(cmdline.substr(at, end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  log::notice("replication: snapshot installed at entry {}; restarting", in->index);
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);  // the listening sockets must not outlive the exec
  // SIGTERM and SIGINT stay blocked across the exec, pending if they came: the new image's main()
  // installs its handler and unblocks them, and then stops. Neither a stop asked before the exec
  // nor one during the new image's start is lost (nor met by a library's handler before main).
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  ::sigprocmask(SIG_BLOCK, &stops, nullptr);
  if (stop.load()) ::raise(SIGTERM);
  ::execv("/proc/self/exe", argv.data());
  ::sigprocmask(SIG_UNBLOCK, &stops, nullptr);
  log::warning("replication: cannot restart after installing the snapshot: {}; start this member again",
               std::strerror(errno));
  std::abort();
}

}  // namespace pobj::kv
