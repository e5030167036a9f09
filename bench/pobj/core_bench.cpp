// pobj core operations side by side with libpmemobj (PMDK 1.12) and a volatile baseline, in one
// run, on pools in the same place with the same persistence cost. Run through bench/run_core.sh,
// which sets PMEM2_FORCE_GRANULARITY=CACHE_LINE (pobj's auto mode then flushes lines with clwb)
// and PMEM_IS_PMEM_FORCE=1 (libpmemobj then does the same), so both pay what persistent memory
// costs. The counter `fences` is pobj's drains per operation.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include <benchmark/benchmark.h>
#include <libpmemobj.h>
#include <pobj/pobj.hpp>

#include "bench_util.hpp"

namespace {

// POBJ_BENCH_POOL_MB shrinks the pools for the CI smoke run.
const std::size_t pool_bytes = [] {
  const char* mb = std::getenv("POBJ_BENCH_POOL_MB");
  return (mb != nullptr ? std::strtoull(mb, nullptr, 0) : 2048) << 20;
}();
constexpr std::size_t slot_count = 1 << 16;

struct alignas(64) line_words {
  std::uint64_t w[8];
};
struct root_object {
  line_words lines[4];            // four fields on four lines
  std::uint64_t slots[2][slot_count];  // per-thread link slots
};

struct pobj_fixture {
  std::string path = bench::pool_path("pobj");
  pobj::pool pool;
  root_object* root = nullptr;
  pobj_fixture() {
    pobj::pool_options o;
    o.size = pool_bytes;
    o.max_size = pool_bytes * 2;
    pool = pobj::pool::create(path, o);
    pobj::transaction tx(pool);
    pobj::allocation a = tx.alloc(sizeof(root_object));
    std::memset(a.pointer, 0, sizeof(root_object));
    root = static_cast<root_object*>(a.pointer);
    pool.set_root("bench", a.offset);
  }
  ~pobj_fixture() {
    pool.close();
    std::filesystem::remove(path);
  }
};

struct pmemobj_fixture {
  std::string path = bench::pool_path("pmemobj");
  PMEMobjpool* pop = nullptr;
  root_object* root = nullptr;
  PMEMoid root_oid{};
  pmemobj_fixture() {
    pop = pmemobj_create(path.c_str(), "bench", pool_bytes, 0644);
    if (pop == nullptr) throw std::runtime_error(std::string("pmemobj_create: ") + pmemobj_errormsg());
    root_oid = pmemobj_root(pop, sizeof(root_object));
    root = static_cast<root_object*>(pmemobj_direct(root_oid));
  }
  ~pmemobj_fixture() {
    pmemobj_close(pop);
    std::filesystem::remove(path);
  }
};

// Created on first use, closed and removed at exit (the pools are large files on /dev/shm).
pobj_fixture& P() {
  static pobj_fixture f;
  return f;
}
pmemobj_fixture& M() {
  static pmemobj_fixture f;
  return f;
}

// pobj's fences and written-back lines per operation (this thread's counts).
struct fence_meter {
  pobj::media::counters start = pobj::media::thread_counters();
  void report(benchmark::State& state) const {
    auto now = pobj::media::thread_counters();
    auto per = [&](std::uint64_t v) { return static_cast<double>(v) / static_cast<double>(state.iterations()); };
    state.counters["fences"] = benchmark::Counter(per(now.drains - start.drains), benchmark::Counter::kAvgThreads);
    state.counters["lines"] = benchmark::Counter(per(now.lines - start.lines), benchmark::Counter::kAvgThreads);
    state.SetItemsProcessed(state.iterations());
  }
};

// ---- the raw floor: store + write-back + fence of one new line each time ----------------------

// The floor benchmarks write a new line each time, cycling over a region of this many lines.
std::size_t region_lines() { return std::min<std::size_t>(64 << 20, pool_bytes / 8) / 64; }

void raw_floor_pobj_media(benchmark::State& state) {
  auto& f = P();
  static auto* region = [] {
    pobj::transaction tx(P().pool);
    return static_cast<line_words*>(tx.alloc(region_lines() * 64).pointer);
  }();
  std::size_t i = 0;
  fence_meter meter;
  for (auto _ : state) {
    line_words& l = region[i++ % region_lines()];
    l.w[0] = i;
    f.pool.media().persist(&l, 8);
  }
  meter.report(state);
  state.SetLabel(std::string(pobj::to_string(f.pool.mode())));
}
BENCHMARK(raw_floor_pobj_media);

void raw_floor_pmemobj_persist(benchmark::State& state) {
  auto& f = M();
  static auto* region = [] {
    PMEMoid oid;
    if (pmemobj_alloc(M().pop, &oid, region_lines() * 64, 0, nullptr, nullptr) != 0) {
      throw std::runtime_error(std::string("pmemobj_alloc: ") + pmemobj_errormsg());
    }
    return static_cast<line_words*>(pmemobj_direct(oid));
  }();
  std::size_t i = 0;
  for (auto _ : state) {
    line_words& l = region[i++ % region_lines()];
    l.w[0] = i;
    pmemobj_persist(f.pop, &l, 8);
  }
}
BENCHMARK(raw_floor_pmemobj_persist);

// The floor of any durable update that must order two things (a log record, then the data): one
// line written back and fenced, then two lines written back under a second fence. Raw
// instructions through pobj/media, no pobj logic.
void raw_two_fences_pobj_media(benchmark::State& state) {
  auto& f = P();
  static auto* lines = [] {
    pobj::transaction tx(P().pool);
    return static_cast<line_words*>(tx.alloc(3 * 64).pointer);
  }();
  fence_meter meter;
  std::uint64_t i = 0;
  for (auto _ : state) {
    line_words& log = lines[i & 1];
    log.w[0] = ++i;
    f.pool.media().persist(&log, 8);
    lines[2].w[0] = i;
    log.w[7] = i;
    f.pool.media().flush(&lines[2], 8);
    f.pool.media().flush(&log.w[7], 8);
    f.pool.media().drain();
  }
  meter.report(state);
}
BENCHMARK(raw_two_fences_pobj_media);

// ---- a transaction updating one 8-byte field ---------------------------------------------------

void tx_one_field_volatile(benchmark::State& state) {
  static line_words dram[4];
  std::mutex mu;
  for (auto _ : state) {
    std::lock_guard lock(mu);
    dram[0].w[0]++;
    benchmark::DoNotOptimize(dram);
  }
}
BENCHMARK(tx_one_field_volatile);

void tx_one_field_pobj(benchmark::State& state) {
  auto& f = P();
  fence_meter meter;
  for (auto _ : state) {
    pobj::transaction tx(f.pool);
    tx.set(f.root->lines[0].w[0], f.root->lines[0].w[0] + 1);
  }
  meter.report(state);
}
BENCHMARK(tx_one_field_pobj);

void tx_one_field_pmemobj(benchmark::State& state) {
  auto& f = M();
  for (auto _ : state) {
    pmemobj_tx_begin(f.pop, nullptr, TX_PARAM_NONE);
    pmemobj_tx_add_range_direct(&f.root->lines[0].w[0], 8);
    f.root->lines[0].w[0]++;
    pmemobj_tx_commit();
    pmemobj_tx_end();
  }
}
BENCHMARK(tx_one_field_pmemobj);

// ---- a transaction updating four fields on four lines ------------------------------------------

void tx_four_lines_pobj_batched(benchmark::State& state) {
  auto& f = P();
  auto& l = f.root->lines;
  fence_meter meter;
  for (auto _ : state) {
    pobj::transaction tx(f.pool);
    tx.snapshot({{&l[0].w[1], 8}, {&l[1].w[1], 8}, {&l[2].w[1], 8}, {&l[3].w[1], 8}});
    for (auto& line : l) line.w[1]++;
  }
  meter.report(state);
}
BENCHMARK(tx_four_lines_pobj_batched);

void tx_four_lines_pobj_one_by_one(benchmark::State& state) {
  auto& f = P();
  auto& l = f.root->lines;
  fence_meter meter;
  for (auto _ : state) {
    pobj::transaction tx(f.pool);
    for (auto& line : l) tx.set(line.w[2], line.w[2] + 1);
  }
  meter.report(state);
}
BENCHMARK(tx_four_lines_pobj_one_by_one);

void tx_four_lines_pmemobj(benchmark::State& state) {
  auto& f = M();
  auto& l = f.root->lines;
  for (auto _ : state) {
    pmemobj_tx_begin(f.pop, nullptr, TX_PARAM_NONE);
    for (auto& line : l) {
      pmemobj_tx_add_range_direct(&line.w[1], 8);
      line.w[1]++;
    }
    pmemobj_tx_commit();
    pmemobj_tx_end();
  }
}
BENCHMARK(tx_four_lines_pmemobj);

// ---- alloc + free of 64 bytes (each durable, the reference held in the pool) -------------------

void alloc_free_64_volatile(benchmark::State& state) {
  for (auto _ : state) {
    void* p = std::malloc(64);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
BENCHMARK(alloc_free_64_volatile);

void alloc_free_64_pobj(benchmark::State& state) {
  auto& f = P();
  std::uint64_t& slot = f.root->slots[0][0];
  fence_meter meter;
  for (auto _ : state) {
    pobj::reservation r = f.pool.heap().reserve(64);
    pobj::publish(f.pool, r, &slot);  // allocation and link: one durable step
    pobj::transaction tx(f.pool);     // free and unlink: one durable step
    tx.free(slot);
    tx.set(slot, std::uint64_t{0});
  }
  meter.report(state);
}
BENCHMARK(alloc_free_64_pobj);

void alloc_free_64_pmemobj(benchmark::State& state) {
  auto& f = M();
  auto* oid = reinterpret_cast<PMEMoid*>(&f.root->slots[0][0]);
  for (auto _ : state) {
    pmemobj_alloc(f.pop, oid, 64, 0, nullptr, nullptr);  // writes *oid durably
    pmemobj_free(oid);                                   // frees and zeroes *oid durably
  }
}
BENCHMARK(alloc_free_64_pmemobj);

// ---- allocate, fill and link a fresh 64-byte object --------------------------------------------

void fill(void* p, std::uint64_t v) {
  auto* w = static_cast<std::uint64_t*>(p);
  for (int k = 0; k < 8; ++k) w[k] = v + static_cast<std::uint64_t>(k);
}

void alloc_fill_link_volatile(benchmark::State& state) {
  static std::vector<void*> kept;
  std::mutex mu;
  std::size_t i = 0;
  for (auto _ : state) {
    void* p = std::malloc(64);
    fill(p, i);
    std::lock_guard lock(mu);
    kept.push_back(p);
    ++i;
  }
  for (void* p : kept) std::free(p);
  kept.clear();
}
BENCHMARK(alloc_fill_link_volatile);

void alloc_fill_link_pobj(benchmark::State& state) {
  auto& f = P();
  auto* my = f.root->slots[static_cast<std::size_t>(state.thread_index())];
  std::size_t i = 0;
  fence_meter meter;
  for (auto _ : state) {
    pobj::reservation r = f.pool.heap().reserve(64);
    fill(r.pointer, i);
    pobj::publish(f.pool, r, &my[i++ % slot_count]);
  }
  meter.report(state);
}
BENCHMARK(alloc_fill_link_pobj)->Threads(1)->Threads(2)->UseRealTime();

void alloc_fill_link_pmemobj(benchmark::State& state) {
  auto& f = M();
  auto* my = f.root->slots[static_cast<std::size_t>(state.thread_index())];
  std::size_t i = 0;
  for (auto _ : state) {
    pobj_action act[2];
    PMEMoid oid = pmemobj_reserve(f.pop, &act[0], 64, 0);
    void* p = pmemobj_direct(oid);
    fill(p, i);
    pmemobj_persist(f.pop, p, 64);  // the contents must be persistent before they are published
    pmemobj_set_value(f.pop, &act[1], &my[i++ % slot_count], oid.off);
    pmemobj_publish(f.pop, act, 2);
  }
}
BENCHMARK(alloc_fill_link_pmemobj)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
