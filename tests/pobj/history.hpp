// Histories recorded from concurrent runs, and the linearizability checks over them, shared by
// the tests of the concurrent types.
#pragma once

#include <algorithm>
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

namespace pobj_test {

// An operation placed on a line by the only order the object's sequential specification allows:
// `key` orders it, and operations of equal key commute (reads of one state).
struct keyed_event {
  std::int64_t key;
  std::int64_t start, end;
};

// A history whose sequential order is forced by what the operations returned is linearizable if
// and only if that order respects real time: no operation that ended before another began comes
// after it. Counts the pairs that break this.
inline std::size_t real_time_violations(std::vector<keyed_event> all) {
  std::sort(all.begin(), all.end(), [](const keyed_event& a, const keyed_event& b) { return a.end < b.end; });
  std::size_t violations = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    for (std::size_t j = 0; j < all.size() && all[j].end < all[i].start; ++j) {
      if (all[j].key > all[i].key) ++violations;
    }
  }
  return violations;
}

// A 64-bit counter from 0 that every add increments by one: an add that returned a (the value
// before it) is the (a+1)-th add, key 2a + 1; a load that returned r sees the state after r adds,
// key 2r. The adds must also have returned 0 .. n-1, each once (no add lost or counted twice).
struct counter_event {
  bool add;
  std::uint64_t value;  // what the operation returned
  std::int64_t start, end;
};

inline std::size_t counter_violations(const std::vector<counter_event>& all) {
  std::vector<std::size_t> returned;
  std::vector<keyed_event> keyed;
  for (const auto& e : all) {
    if (e.add) returned.push_back(e.value);
    keyed.push_back({static_cast<std::int64_t>(e.add ? 2 * e.value + 1 : 2 * e.value), e.start, e.end});
  }
  std::sort(returned.begin(), returned.end());
  std::size_t violations = 0;
  for (std::size_t i = 0; i < returned.size(); ++i) violations += returned[i] != i;
  for (const auto& e : all) violations += !e.add && e.value > returned.size();  // a load of adds never made
  return violations + real_time_violations(std::move(keyed));
}

// A word (0 at first) changed by exchanges and compare-exchanges to values no two writes share, and
// read by loads and failed compare-exchanges. Each write names the value it replaced, so the writes
// form one chain from 0 (two writes that replaced one value, or a write that replaced a value never
// written, break it): the i-th write of the chain has key 2i - 1, a read of the value it wrote 2i.
struct swap_event {
  bool write;
  std::uint64_t before;  // writes: the value replaced; reads: the value read
  std::uint64_t after;   // writes: the value written
  std::int64_t start, end;
};

inline std::size_t swap_violations(const std::vector<swap_event>& all) {
  std::map<std::uint64_t, const swap_event*> replacing;  // value -> the write that replaced it
  std::size_t violations = 0;
  for (const auto& e : all) {
    if (e.write && !replacing.emplace(e.before, &e).second) ++violations;  // replaced twice
  }
  std::map<std::uint64_t, std::int64_t> state{{0, 0}};  // value -> its place in the chain
  std::map<const swap_event*, std::int64_t> position;
  std::uint64_t v = 0;
  for (std::int64_t i = 1;; ++i) {
    const auto it = replacing.find(v);
    if (it == replacing.end()) break;
    v = it->second->after;
    if (!state.emplace(v, i).second) return violations + 1;  // a cycle: a value written twice
    position[it->second] = i;
  }
  std::vector<keyed_event> keyed;
  for (const auto& e : all) {
    if (e.write) {
      const auto p = position.find(&e);
      if (p == position.end()) {
        ++violations;  // replaced a value that no chain from 0 reaches
        continue;
      }
      keyed.push_back({2 * p->second - 1, e.start, e.end});
    } else {
      const auto s = state.find(e.before);
      if (s == state.end()) {
        ++violations;  // read a value never written
        continue;
      }
      keyed.push_back({2 * s->second, e.start, e.end});
    }
  }
  return violations + real_time_violations(std::move(keyed));
}

}  // namespace pobj_test
