// Shared by the durable-types benchmarks (map_bench, tree_bench): pmemkv's shape (8-byte keys,
// 100-byte values), the preloaded key space, and the insert/erase batch loop.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

#include <benchmark/benchmark.h>

namespace types_bench {

constexpr std::size_t value_size = 100;
// POBJ_BENCH_KEYS shrinks the preloaded key space for the CI smoke run.
inline const std::uint64_t preload = [] {
  const char* n = std::getenv("POBJ_BENCH_KEYS");
  return n != nullptr ? std::strtoull(n, nullptr, 0) : std::uint64_t{1} << 20;
}();
inline const std::string value(value_size, 'v');

inline std::uint64_t key_of(std::uint64_t i) noexcept { return i * 0x9e3779b97f4a7c15ULL; }

// Fresh keys for inserts and erases: each thread has its own range, beyond the preload.
inline std::uint64_t fresh_key(const benchmark::State& s, std::uint64_t i) {
  return key_of(preload + (static_cast<std::uint64_t>(s.thread_index()) << 40) + i);
}

// Each timed batch inserts (or, with measure_erase, erases) 4096 fresh keys; the other half
// runs untimed.
template <class Insert, class Erase>
void insert_then_erase(benchmark::State& s, Insert&& insert, Erase&& erase, bool measure_erase) {
  std::uint64_t next = 0;
  for (auto _ : s) {
    s.PauseTiming();
    const std::uint64_t first = next;
    if (measure_erase) {
      for (std::uint64_t i = 0; i < 4096; ++i) insert(fresh_key(s, first + i));
    }
    s.ResumeTiming();
    for (std::uint64_t i = 0; i < 4096; ++i) {
      if (measure_erase) erase(fresh_key(s, first + i));
      else insert(fresh_key(s, first + i));
    }
    s.PauseTiming();
    if (!measure_erase) {
      for (std::uint64_t i = 0; i < 4096; ++i) erase(fresh_key(s, first + i));
    }
    next += 4096;
    s.ResumeTiming();
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations() * 4096));
}

}  // namespace types_bench
