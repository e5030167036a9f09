// Hash maps side by side in one run, pmemkv's shape (8-byte keys, 100-byte values): pobj's
// hash_map, a volatile baseline (std::unordered_map behind a mutex), and a transactional chained
// hash map written against libpmemobj's C API (the baseline the durable-types issue names).
// insert, lookup, update, erase; 1 and 2 threads. Run through bench/run_types.sh (cache_line
// emulation on /dev/shm, as bench/run_core.sh).
#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <benchmark/benchmark.h>
#include <libpmemobj.h>
#include <pobj/pobj.hpp>

#include "../pobj/bench_util.hpp"
#include "types_bench.hpp"

namespace {

using namespace types_bench;

// ---- pobj

struct pobj_world {
  std::string path = bench::pool_path("types");
  pobj::pool pool;
  pobj::hash_map<std::uint64_t, pobj::bytes> map;
  pobj_world() {
    pobj::pool_options o;
    o.size = 256 * pobj::MiB;
    o.max_size = 32 * pobj::GiB;
    pool = pobj::pool::create(path, o);
    map = pobj::run_tx(pool, [&](pobj::transaction& tx) { return pobj::make_hash_map<std::uint64_t, pobj::bytes>(tx); });
    pool.set_root("map", map.offset);
    pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(pool, map);
    for (std::uint64_t i = 0; i < preload; ++i) m.insert(key_of(i), value);
  }
  ~pobj_world() {
    pool.close();
    std::filesystem::remove(path);
  }
};
pobj_world& P() {
  static pobj_world w;
  return w;
}

// ---- volatile baseline

struct volatile_world {
  std::mutex mu;
  std::unordered_map<std::uint64_t, std::string> map;
  volatile_world() {
    for (std::uint64_t i = 0; i < preload; ++i) map.emplace(key_of(i), value);
  }
};
volatile_world& V() {
  static volatile_world w;
  return w;
}

// ---- libpmemobj: a chained hash map, each operation one transaction, striped locks

struct pm_node {
  PMEMoid next;
  std::uint64_t key;
  char value[value_size];
};
struct pm_root {
  PMEMoid buckets;  // an array of PMEMoid heads
  std::uint64_t bucket_count;
};

struct pmemobj_world {
  static constexpr std::size_t stripes = 1024;
  std::string path = bench::pool_path("types-pmemobj");
  PMEMobjpool* pop = nullptr;
  PMEMoid root_oid = OID_NULL;
  pm_root* root = nullptr;
  PMEMoid* heads = nullptr;
  std::uint64_t bucket_count = 0;
  std::array<std::mutex, stripes> locks;
  pmemobj_world() {
    pop = pmemobj_create(path.c_str(), "types", std::max<std::size_t>(preload * 400, std::size_t{1} << 30), 0644);
    if (pop == nullptr) throw std::runtime_error(std::string("pmemobj_create: ") + pmemobj_errormsg());
    root_oid = pmemobj_root(pop, sizeof(pm_root));
    root = static_cast<pm_root*>(pmemobj_direct(root_oid));  // members: TX_BEGIN is a setjmp
    bucket_count = std::uint64_t{1} << 21;  // fixed: sized for the preload plus the inserts
    TX_BEGIN(pop) {
      pmemobj_tx_add_range(root_oid, 0, sizeof(pm_root));
      root->buckets = pmemobj_tx_zalloc(bucket_count * sizeof(PMEMoid), 1);
      root->bucket_count = bucket_count;
    }
    TX_END
    heads = static_cast<PMEMoid*>(pmemobj_direct(root->buckets));
    for (std::uint64_t i = 0; i < preload; ++i) put(key_of(i));
  }
  ~pmemobj_world() {
    pmemobj_close(pop);
    std::filesystem::remove(path);
  }
  std::size_t bucket(std::uint64_t k) const noexcept { return (k >> 7) % bucket_count; }
  std::mutex& lock_of(std::uint64_t k) noexcept { return locks[bucket(k) % stripes]; }
  pm_node* find(std::uint64_t k) {
    for (PMEMoid n = heads[bucket(k)]; !OID_IS_NULL(n);) {
      auto* node = static_cast<pm_node*>(pmemobj_direct(n));
      if (node->key == k) return node;
      n = node->next;
    }
    return nullptr;
  }
  void put(std::uint64_t k) {
    std::lock_guard lock(lock_of(k));
    PMEMoid* head = &heads[bucket(k)];
    if (pm_node* n = find(k)) {
      TX_BEGIN(pop) {
        pmemobj_tx_add_range_direct(n->value, value_size);
        std::memcpy(n->value, value.data(), value_size);
      }
      TX_END
      return;
    }
    TX_BEGIN(pop) {
      PMEMoid fresh = pmemobj_tx_alloc(sizeof(pm_node), 2);
      auto* node = static_cast<pm_node*>(pmemobj_direct(fresh));
      node->next = *head;
      node->key = k;
      std::memcpy(node->value, value.data(), value_size);
      pmemobj_tx_add_range_direct(head, sizeof(PMEMoid));
      *head = fresh;
    }
    TX_END
  }
  bool erase(std::uint64_t k) {
    std::lock_guard lock(lock_of(k));
    PMEMoid* link = &heads[bucket(k)];
    while (!OID_IS_NULL(*link)) {
      auto* node = static_cast<pm_node*>(pmemobj_direct(*link));
      if (node->key == k) {
        PMEMoid victim = *link;
        TX_BEGIN(pop) {
          pmemobj_tx_add_range_direct(link, sizeof(PMEMoid));
          *link = node->next;
          pmemobj_tx_free(victim);
        }
        TX_END
        return true;
      }
      link = &node->next;
    }
    return false;
  }
};
pmemobj_world& M() {
  static pmemobj_world w;
  return w;
}

void hash_insert_pobj(benchmark::State& s) {
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(P().pool, P().map);
  insert_then_erase(s, [&](std::uint64_t k) { m.insert(k, value); }, [&](std::uint64_t k) { m.erase(k); }, false);
}
void hash_insert_volatile(benchmark::State& s) {
  auto& w = V();
  insert_then_erase(
      s, [&](std::uint64_t k) { std::lock_guard l(w.mu); w.map.emplace(k, value); },
      [&](std::uint64_t k) { std::lock_guard l(w.mu); w.map.erase(k); }, false);
}
void hash_insert_pmemobj(benchmark::State& s) {
  auto& w = M();
  insert_then_erase(s, [&](std::uint64_t k) { w.put(k); }, [&](std::uint64_t k) { w.erase(k); }, false);
}
void hash_erase_pobj(benchmark::State& s) {
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(P().pool, P().map);
  insert_then_erase(s, [&](std::uint64_t k) { m.insert(k, value); }, [&](std::uint64_t k) { m.erase(k); }, true);
}
void hash_erase_volatile(benchmark::State& s) {
  auto& w = V();
  insert_then_erase(
      s, [&](std::uint64_t k) { std::lock_guard l(w.mu); w.map.emplace(k, value); },
      [&](std::uint64_t k) { std::lock_guard l(w.mu); w.map.erase(k); }, true);
}
void hash_erase_pmemobj(benchmark::State& s) {
  auto& w = M();
  insert_then_erase(s, [&](std::uint64_t k) { w.put(k); }, [&](std::uint64_t k) { w.erase(k); }, true);
}

// Lookups and updates of random preloaded keys.
void hash_lookup_pobj(benchmark::State& s) {
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(P().pool, P().map);
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) benchmark::DoNotOptimize(m.find(key_of(rng() % preload)));
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void hash_lookup_volatile(benchmark::State& s) {
  auto& w = V();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) {
    std::string copy;
    {
      std::lock_guard l(w.mu);
      copy = w.map.find(key_of(rng() % preload))->second;  // a copy out, as pobj's find returns
    }
    benchmark::DoNotOptimize(copy);
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void hash_lookup_pmemobj(benchmark::State& s) {
  auto& w = M();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) {
    const std::uint64_t k = key_of(rng() % preload);
    std::string copy;
    {
      std::lock_guard lock(w.lock_of(k));
      copy.assign(w.find(k)->value, value_size);
    }
    benchmark::DoNotOptimize(copy);
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void hash_update_pobj(benchmark::State& s) {
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(P().pool, P().map);
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) m.insert_or_assign(key_of(rng() % preload), value);
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void hash_update_volatile(benchmark::State& s) {
  auto& w = V();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) {
    std::lock_guard l(w.mu);
    w.map[key_of(rng() % preload)] = value;
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void hash_update_pmemobj(benchmark::State& s) {
  auto& w = M();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) w.put(key_of(rng() % preload));
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

}  // namespace

#define TYPES_BENCH(name) BENCHMARK(name)->Threads(1)->Threads(2)->UseRealTime()
TYPES_BENCH(hash_insert_volatile);
TYPES_BENCH(hash_insert_pobj);
TYPES_BENCH(hash_insert_pmemobj);
TYPES_BENCH(hash_lookup_volatile);
TYPES_BENCH(hash_lookup_pobj);
TYPES_BENCH(hash_lookup_pmemobj);
TYPES_BENCH(hash_update_volatile);
TYPES_BENCH(hash_update_pobj);
TYPES_BENCH(hash_update_pmemobj);
TYPES_BENCH(hash_erase_volatile);
TYPES_BENCH(hash_erase_pobj);
TYPES_BENCH(hash_erase_pmemobj);

BENCHMARK_MAIN();
