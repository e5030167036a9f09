// Restart with a big map: a pool holding a hash_map, then one holding an ordered_map, of N entries
// (8-byte keys, 100-byte values) is closed and opened again; the time to open and to answer the
// first lookup is what a restarted server pays before serving. Nothing is rebuilt: the indexes
// are persistent.
//
//   map_open_bench [ENTRIES [hash|ordered]]      (default 10,000,000, both)
//
// Reports for each map the fill rate, then five reopenings: the median open time, the first
// lookup's time (a cold one: nothing of the map is in the cache after reopening, except what open
// touched), and a check of 1000 random keys. Exit status 1 if a key is missing or wrong. Run
// through bench/run_map_open.sh (cache_line emulation on /dev/shm).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pobj/pobj.hpp>

#include "../pobj/bench_util.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}
std::uint64_t key_of(std::uint64_t i) noexcept { return i * 0x9e3779b97f4a7c15ULL; }
std::string value_of(std::uint64_t i) {
  std::string v(100, 'v');
  std::memcpy(v.data(), &i, sizeof(i));
  return v;
}
// Fills a pool with one map of n entries, then reopens it five times; returns false if a key read
// back is missing or wrong.
template <class Map, class Ref>
bool restart(const char* name, std::uint64_t n, Map (*make)(pobj::transaction&)) {
  const std::string path = bench::pool_path("map-open");
  pobj::pool_options o;
  o.size = 256 * pobj::MiB;
  o.max_size = std::max<std::size_t>(n * 200, pobj::GiB);
  {
    pobj::pool p = pobj::pool::create(path, o);
    auto handle = pobj::run_tx(p, [&](pobj::transaction& tx) { return make(tx); });
    p.set_root("map", handle.offset);
    Ref m(p, handle);
    auto t0 = clock_type::now();
    for (std::uint64_t i = 0; i < n; ++i) {
      m.insert(key_of(i), value_of(i));
      if (n >= 1'000'000 && (i + 1) % 1'000'000 == 0) fmt::print(stderr, "  {}: filled {} M\n", name, (i + 1) / 1'000'000);
    }
    const double s = ms_since(t0) / 1000;
    fmt::print("pobj {}: {} entries filled in {:.1f} s ({:.0f} inserts/s), pool {:.2f} GiB, mode {}\n", name, n, s,
               static_cast<double>(n) / s, static_cast<double>(p.size()) / pobj::GiB, pobj::to_string(p.mode()));
  }
  std::vector<double> open_ms, first_us;
  bool ok = true;
  std::mt19937_64 rng(1);
  for (int round = 0; round < 5; ++round) {
    auto t0 = clock_type::now();
    pobj::pool p = pobj::pool::open(path, o);
    open_ms.push_back(ms_since(t0));
    const std::uint64_t probe = rng() % n;
    auto t1 = clock_type::now();
    Ref m(p, Map{p.root("map")});
    auto v = m.find(key_of(probe));
    first_us.push_back(ms_since(t1) * 1000);
    ok = ok && v && *v == value_of(probe);
    for (int i = 0; i < 1000; ++i) {
      const std::uint64_t k = rng() % n;
      auto w = m.find(key_of(k));
      ok = ok && w && *w == value_of(k);
    }
  }
  std::sort(open_ms.begin(), open_ms.end());
  std::sort(first_us.begin(), first_us.end());
  fmt::print("{} reopen (median of 5): open {:.3f} ms, first lookup {:.1f} us; {} keys checked: {}\n", name,
             open_ms[2], first_us[2], 5 * 1001, ok ? "all present and right" : "MISSING OR WRONG");
  std::filesystem::remove(path);
  return ok;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 10'000'000;
  const std::string only = argc > 2 ? argv[2] : "";
  bool ok = true;
  if (only.empty() || only == "hash") {
    using map = pobj::hash_map<std::uint64_t, pobj::bytes>;
    ok = restart<map, pobj::hash_map_ref<std::uint64_t, pobj::bytes>>(
             "hash_map", n, [](pobj::transaction& tx) { return pobj::make_hash_map<std::uint64_t, pobj::bytes>(tx); }) &&
         ok;
  }
  if (only.empty() || only == "ordered") {
    using map = pobj::ordered_map<std::uint64_t, pobj::bytes>;
    ok = restart<map, pobj::ordered_map_ref<std::uint64_t, pobj::bytes>>(
             "ordered_map", n,
             [](pobj::transaction& tx) { return pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx); }) &&
         ok;
  }
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  fmt::print(stderr, "map_open_bench: {}\n", e.what());
  return 1;
}
