// Histories recorded from concurrent runs, and the linearizability checks over them, shared by
// the tests of the concurrent types.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <thread>
#include <vector>

namespace pobj_test {

// Operation intervals, in steady-clock ticks since the clock was made.
class history_clock {
 public:
  std::int64_t now() const { return (std::chrono::steady_clock::now() - t0_).count(); }

 private:
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// One operation on a map used as a set of registers.
struct register_event {
  bool write;
  std::uint64_t key, value;  // reads: 0 if absent
  std::int64_t start, end;
};

// `threads` workers each run `ops` operations on keys 0 .. keys - 1: half writes of unique
// nonzero values (write(key, value)), half reads (read(key, i), which returns 0 if absent).
template <class Write, class Read>
std::vector<register_event> record_register_history(int threads, int ops, std::uint64_t keys, Write write, Read read) {
  history_clock clock;
  std::vector<std::vector<register_event>> logs(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 1);
      for (int i = 0; i < ops; ++i) {
        const std::uint64_t key = rng() % keys;
        register_event e{rng() % 2 == 0, key, 0, clock.now(), 0};
        if (e.write) {
          e.value = static_cast<std::uint64_t>(t + 1) << 32 | static_cast<std::uint64_t>(i + 1);
          write(key, e.value);
        } else {
          e.value = read(key, i);
        }
        e.end = clock.now();
        logs[static_cast<std::size_t>(t)].push_back(e);
      }
    });
  }
  for (auto& w : workers) w.join();
  std::vector<register_event> all;
  for (auto& l : logs) all.insert(all.end(), l.begin(), l.end());
  return all;
}

// Reads that no linearization explains: one that returns a value written only after it ended,
// or one that misses a write of its key that finished before it began and after the write it
// returns (or after nothing, if it saw the key absent).
inline std::size_t register_violations(const std::vector<register_event>& all) {
  std::map<std::uint64_t, const register_event*> writes;
  for (const auto& e : all) {
    if (e.write) writes[e.value] = &e;
  }
  std::size_t violations = 0;
  for (const auto& r : all) {
    if (r.write) continue;
    const register_event* w = r.value != 0 ? writes.at(r.value) : nullptr;
    if (w != nullptr && w->start > r.end) ++violations;
    for (const auto& o : all) {
      if (!o.write || o.key != r.key || &o == w) continue;
      if (o.end < r.start && (w == nullptr || o.start > w->end)) ++violations;
    }
  }
  return violations;
}

}  // namespace pobj_test
