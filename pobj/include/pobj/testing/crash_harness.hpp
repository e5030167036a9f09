// pobj/testing/crash_harness: runs a workload against a pool in `sim` mode, crashes it at every
// fence (small workloads) or at seeded random fences (large ones), materialises crash images,
// reopens each one (which runs recovery), and checks the caller's invariants and the heap. It
// also crashes recovery itself, at every fence of the recovery of a sample of images.
//
// Workloads must be deterministic: the harness runs them more than once and expects the same
// fences each time. Every failure names the seed and fence that replay it:
//   POBJ_CRASH_SEED=<seed> POBJ_CRASH_FENCE=<fence> <test binary> <test name>
// Environment: POBJ_CRASH_SEED (base seed), POBJ_CRASH_POINTS (random crash points per
// workload), POBJ_CRASH_FENCE (crash only there), POBJ_CRASH_DIR (where images go; default
// /dev/shm), POBJ_CRASH_KEEP=1 (keep the images of a failing run).
//
// Thread safety: run() is not reentrant; verify callbacks run on the calling thread.
// Crash consistency: not applicable (a test tool).
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pobj/pool.hpp>
#include <pobj/sim.hpp>

namespace pobj::testing {

struct crash_point {
  std::uint64_t fence = 0;
  std::uint64_t seed = 0;
  sim::image_policy policy = sim::image_policy::random;
  std::size_t ops_completed = 0;  // operations whose end_op() ran before the crash
  bool op_in_flight = false;      // an operation had begun and had not ended
  bool during_recovery = false;   // the crash hit the recovery of an earlier crash image
  std::uint64_t recovery_fence = 0;
  std::string describe() const;
};

class crash_context {
 public:
  pobj::pool& pool() { return *pool_; }
  const std::string& path() const { return path_; }
  const pool_options& options() const { return options_; }
  // For workloads that create the pool themselves (crash_test::create_in_workload).
  pobj::pool& create();

  // Bracket each operation, so verify() knows which operations completed.
  void begin_op() { in_flight_ = true; }
  void end_op() {
    in_flight_ = false;
    ++completed_;
  }
  std::size_t ops_completed() const { return completed_; }
  bool op_in_flight() const { return in_flight_; }

  crash_context(std::string path, pool_options options) : path_(std::move(path)), options_(std::move(options)) {}
  void set_pool(pobj::pool* p) { pool_ = p; }
  pobj::pool owned;

 private:
  pobj::pool* pool_ = nullptr;
  std::string path_;
  pool_options options_;
  std::size_t completed_ = 0;
  bool in_flight_ = false;
};

struct crash_test {
  std::string name;
  pool_options options;             // sizes and lanes; the harness sets the mode
  bool create_in_workload = false;  // the workload calls ctx.create() itself
  std::function<void(pobj::pool&)> setup;                // the initial state; not crash-tested
  std::function<void(crash_context&)> workload;          // the operations under test
  std::function<void(pobj::pool&, const crash_point&)> verify;  // throws on a violated invariant
  // Open failures that are acceptable at a crash point (an interrupted create, say).
  std::function<bool(const pobj::error&, const crash_point&)> open_may_fail;
  bool check_heap = true;             // run heap().check() after verify: no leak, no corruption
  std::uint64_t seed = 1;
  std::size_t exhaustive_limit = 400; // crash at every fence if the workload has at most this many
  std::size_t random_points = 200;    // otherwise at this many seeded random fences
  std::size_t random_images = 2;      // random images per point, besides the oldest and newest
  std::size_t recovery_points = 6;    // recoveries (with blocks to roll back or forward) crashed at each fence
};

struct crash_result {
  std::uint64_t fences = 0;  // in one run of the workload
  std::size_t points = 0;
  std::size_t images = 0;
  std::size_t recoveries_crashed = 0;  // recoveries with work to do, crashed at each fence
  std::size_t recovery_images = 0;
  std::vector<std::string> failures;
  bool ok() const { return failures.empty(); }
  std::string summary() const;
};

crash_result run(const crash_test& test);

// Throws std::runtime_error with the formatted message when `condition` is false.
template <class... Args>
void expect(bool condition, fmt::format_string<Args...> format, Args&&... args) {
  if (!condition) throw std::runtime_error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace pobj::testing
