// Ordered maps and queues side by side in one run, pmemkv's shape (8-byte keys, 100-byte
// values): pobj's ordered_map and queue, volatile baselines (std::map and std::deque behind a
// mutex), and libpmemobj equivalents written against its C API (a transactional skip list and a
// transactional linked-list queue, each operation one transaction, behind a mutex). Insert,
// lookup, update, erase, a 100-entry range scan; queue push + pop. 1 and 2 threads. Run through
// bench/run_tree.sh (cache_line emulation on /dev/shm).
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>

#include <benchmark/benchmark.h>
#include <libpmemobj.h>
#include <pobj/pobj.hpp>

#include "../pobj/bench_util.hpp"
#include "types_bench.hpp"

namespace {

using namespace types_bench;

// ---- pobj

struct pobj_world {
  std::string path = bench::pool_path("tree");
  pobj::pool pool;
  pobj::ordered_map<std::uint64_t, pobj::bytes> map;
  pobj::queue<pobj::bytes> queue;
  pobj_world() {
    pobj::pool_options o;
    o.size = 256 * pobj::MiB;
    o.max_size = 32 * pobj::GiB;
    pool = pobj::pool::create(path, o);
    pobj::run_tx(pool, [&](pobj::transaction& tx) {
      map = pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx);
      queue = pobj::make_queue<pobj::bytes>(tx);
    });
    pool.set_root("map", map.offset);
    pool.set_root("queue", queue.offset);
    pobj::ordered_map_ref<std::uint64_t, pobj::bytes> m(pool, map);
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

// ---- volatile

struct volatile_world {
  std::shared_mutex mu;
  std::map<std::uint64_t, std::string> map;
  std::mutex qmu;
  std::deque<std::string> queue;
  volatile_world() {
    for (std::uint64_t i = 0; i < preload; ++i) map.emplace(key_of(i), value);
  }
};
volatile_world& V() {
  static volatile_world w;
  return w;
}

// ---- libpmemobj: a transactional skip list (the ordered map) and a linked-list queue

constexpr int levels = 20;
struct sl_node {
  std::uint64_t key;
  char value[value_size];
  PMEMoid next[levels];
};
struct q_node {
  PMEMoid next;
  char value[value_size];
};
struct pm_root {
  PMEMoid head;  // the skip list's head node (key unused)
  PMEMoid q_head, q_tail;
};

struct pmemobj_world {
  std::string path = bench::pool_path("tree-pmemobj");
  PMEMobjpool* pop = nullptr;
  PMEMoid root_oid = OID_NULL;
  pm_root* root = nullptr;
  std::shared_mutex mu;  // the skip list: writers exclusive, readers shared
  std::mutex qmu;
  std::mt19937_64 level_rng{5};
  pmemobj_world() {
    pop = pmemobj_create(path.c_str(), "tree", std::max<std::size_t>(preload * 600, std::size_t{1} << 30), 0644);
    if (pop == nullptr) throw std::runtime_error(std::string("pmemobj_create: ") + pmemobj_errormsg());
    root_oid = pmemobj_root(pop, sizeof(pm_root));
    root = static_cast<pm_root*>(pmemobj_direct(root_oid));
    TX_BEGIN(pop) {
      pmemobj_tx_add_range(root_oid, 0, sizeof(pm_root));
      root->head = pmemobj_tx_zalloc(sizeof(sl_node), 1);
    }
    TX_END
    for (std::uint64_t i = 0; i < preload; ++i) put(key_of(i));
  }
  ~pmemobj_world() {
    pmemobj_close(pop);
    std::filesystem::remove(path);
  }
  // One transaction around fn: the setjmp of TX_BEGIN lives in this function, whose only local
  // is fn (the callers' locals are reached through it, so none can be clobbered).
  template <class F>
  void in_tx(F&& fn) {
    TX_BEGIN(pop) { fn(); }
    TX_END
  }
  static sl_node* at(PMEMoid o) { return static_cast<sl_node*>(pmemobj_direct(o)); }
  // The predecessors of key at each level.
  void find_preds(std::uint64_t key, PMEMoid* preds) {
    PMEMoid x = root->head;
    for (int l = levels - 1; l >= 0; --l) {
      while (!OID_IS_NULL(at(x)->next[l]) && at(at(x)->next[l])->key < key) x = at(x)->next[l];
      preds[l] = x;
    }
  }
  sl_node* find(std::uint64_t key) {
    PMEMoid preds[levels];
    find_preds(key, preds);
    PMEMoid n = at(preds[0])->next[0];
    return !OID_IS_NULL(n) && at(n)->key == key ? at(n) : nullptr;
  }
  void put(std::uint64_t key) {
    std::unique_lock lock(mu);
    PMEMoid preds[levels];
    find_preds(key, preds);
    PMEMoid n = at(preds[0])->next[0];
    if (!OID_IS_NULL(n) && at(n)->key == key) {
      sl_node* node = at(n);
      in_tx([&] {
        pmemobj_tx_add_range_direct(node->value, value_size);
        std::memcpy(node->value, value.data(), value_size);
      });
      return;
    }
    int height = 1;
    while (height < levels && level_rng() % 4 == 0) ++height;
    in_tx([&] {
      PMEMoid fresh = pmemobj_tx_alloc(sizeof(sl_node), 2);
      sl_node* node = at(fresh);
      node->key = key;
      std::memcpy(node->value, value.data(), value_size);
      for (int l = 0; l < levels; ++l) node->next[l] = l < height ? at(preds[l])->next[l] : OID_NULL;
      for (int l = 0; l < height; ++l) {
        pmemobj_tx_add_range_direct(&at(preds[l])->next[l], sizeof(PMEMoid));
        at(preds[l])->next[l] = fresh;
      }
    });
  }
  void erase(std::uint64_t key) {
    std::unique_lock lock(mu);
    PMEMoid preds[levels];
    find_preds(key, preds);
    PMEMoid n = at(preds[0])->next[0];
    if (OID_IS_NULL(n) || at(n)->key != key) return;
    in_tx([&] {
      for (int l = 0; l < levels && OID_EQUALS(at(preds[l])->next[l], n); ++l) {
        pmemobj_tx_add_range_direct(&at(preds[l])->next[l], sizeof(PMEMoid));
        at(preds[l])->next[l] = at(n)->next[l];
      }
      pmemobj_tx_free(n);
    });
  }
  void push() {
    std::lock_guard lock(qmu);
    in_tx([&] {
      PMEMoid fresh = pmemobj_tx_alloc(sizeof(q_node), 3);
      auto* node = static_cast<q_node*>(pmemobj_direct(fresh));
      node->next = OID_NULL;
      std::memcpy(node->value, value.data(), value_size);
      pmemobj_tx_add_range_direct(&root->q_head, 2 * sizeof(PMEMoid));
      if (OID_IS_NULL(root->q_tail)) {
        root->q_head = fresh;
      } else {
        auto* tail = static_cast<q_node*>(pmemobj_direct(root->q_tail));
        pmemobj_tx_add_range_direct(&tail->next, sizeof(PMEMoid));
        tail->next = fresh;
      }
      root->q_tail = fresh;
    });
  }
  std::string pop_front() {
    std::lock_guard lock(qmu);
    std::string out;
    if (OID_IS_NULL(root->q_head)) return out;
    PMEMoid victim = root->q_head;
    auto* node = static_cast<q_node*>(pmemobj_direct(victim));
    out.assign(node->value, value_size);
    in_tx([&] {
      pmemobj_tx_add_range_direct(&root->q_head, 2 * sizeof(PMEMoid));
      root->q_head = node->next;
      if (OID_IS_NULL(root->q_head)) root->q_tail = OID_NULL;
      pmemobj_tx_free(victim);
    });
    return out;
  }
};
pmemobj_world& M() {
  static pmemobj_world w;
  return w;
}

using pobj_ref = pobj::ordered_map_ref<std::uint64_t, pobj::bytes>;

void tree_insert_pobj(benchmark::State& s) {
  pobj_ref m(P().pool, P().map);
  insert_then_erase(s, [&](std::uint64_t k) { m.insert(k, value); }, [&](std::uint64_t k) { m.erase(k); }, false);
}
void tree_insert_volatile(benchmark::State& s) {
  auto& w = V();
  insert_then_erase(
      s, [&](std::uint64_t k) { std::unique_lock l(w.mu); w.map.emplace(k, value); },
      [&](std::uint64_t k) { std::unique_lock l(w.mu); w.map.erase(k); }, false);
}
void tree_insert_pmemobj(benchmark::State& s) {
  auto& w = M();
  insert_then_erase(s, [&](std::uint64_t k) { w.put(k); }, [&](std::uint64_t k) { w.erase(k); }, false);
}
void tree_erase_pobj(benchmark::State& s) {
  pobj_ref m(P().pool, P().map);
  insert_then_erase(s, [&](std::uint64_t k) { m.insert(k, value); }, [&](std::uint64_t k) { m.erase(k); }, true);
}
void tree_erase_volatile(benchmark::State& s) {
  auto& w = V();
  insert_then_erase(
      s, [&](std::uint64_t k) { std::unique_lock l(w.mu); w.map.emplace(k, value); },
      [&](std::uint64_t k) { std::unique_lock l(w.mu); w.map.erase(k); }, true);
}
void tree_erase_pmemobj(benchmark::State& s) {
  auto& w = M();
  insert_then_erase(s, [&](std::uint64_t k) { w.put(k); }, [&](std::uint64_t k) { w.erase(k); }, true);
}

void tree_lookup_pobj(benchmark::State& s) {
  pobj_ref m(P().pool, P().map);
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) benchmark::DoNotOptimize(m.find(key_of(rng() % preload)));
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void tree_lookup_volatile(benchmark::State& s) {
  auto& w = V();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) {
    std::string copy;
    {
      std::shared_lock l(w.mu);
      copy = w.map.find(key_of(rng() % preload))->second;
    }
    benchmark::DoNotOptimize(copy);
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void tree_lookup_pmemobj(benchmark::State& s) {
  auto& w = M();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) {
    std::string copy;
    {
      std::shared_lock l(w.mu);
      copy.assign(w.find(key_of(rng() % preload))->value, value_size);
    }
    benchmark::DoNotOptimize(copy);
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

void tree_update_pobj(benchmark::State& s) {
  pobj_ref m(P().pool, P().map);
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) m.insert_or_assign(key_of(rng() % preload), value);
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void tree_update_volatile(benchmark::State& s) {
  auto& w = V();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) {
    std::unique_lock l(w.mu);
    w.map[key_of(rng() % preload)] = value;
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void tree_update_pmemobj(benchmark::State& s) {
  auto& w = M();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) w.put(key_of(rng() % preload));
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

// A range scan: the 100 entries from a random key on, copied out.
constexpr int scan_length = 100;
void tree_scan100_pobj(benchmark::State& s) {
  pobj_ref m(P().pool, P().map);
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) {
    int n = 0;
    m.scan({.from = rng()}, [&](std::uint64_t, const std::string& v) {
      benchmark::DoNotOptimize(v);
      return ++n < scan_length;
    });
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void tree_scan100_volatile(benchmark::State& s) {
  auto& w = V();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) {
    std::shared_lock l(w.mu);
    auto it = w.map.lower_bound(rng());
    for (int n = 0; n < scan_length && it != w.map.end(); ++n, ++it) {
      std::string copy = it->second;
      benchmark::DoNotOptimize(copy);
    }
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}
void tree_scan100_pmemobj(benchmark::State& s) {
  auto& w = M();
  std::mt19937_64 rng(static_cast<std::uint64_t>(s.thread_index()) + 1);
  for (auto _ : s) {
    std::shared_lock l(w.mu);
    PMEMoid preds[levels];
    w.find_preds(rng(), preds);
    PMEMoid n = pmemobj_world::at(preds[0])->next[0];
    for (int i = 0; i < scan_length && !OID_IS_NULL(n); ++i, n = pmemobj_world::at(n)->next[0]) {
      std::string copy(pmemobj_world::at(n)->value, value_size);
      benchmark::DoNotOptimize(copy);
    }
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

// Queues: a push then a pop (two durable operations) per iteration.
void queue_push_pop_pobj(benchmark::State& s) {
  pobj::queue_ref<pobj::bytes> q(P().pool, P().queue);
  for (auto _ : s) {
    q.push(value);
    benchmark::DoNotOptimize(q.try_pop());
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations() * 2));
}
void queue_push_pop_volatile(benchmark::State& s) {
  auto& w = V();
  for (auto _ : s) {
    {
      std::lock_guard l(w.qmu);
      w.queue.push_back(value);
    }
    std::string out;
    {
      std::lock_guard l(w.qmu);
      out = std::move(w.queue.front());
      w.queue.pop_front();
    }
    benchmark::DoNotOptimize(out);
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations() * 2));
}
void queue_push_pop_pmemobj(benchmark::State& s) {
  auto& w = M();
  for (auto _ : s) {
    w.push();
    benchmark::DoNotOptimize(w.pop_front());
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations() * 2));
}

}  // namespace

#define TYPES_BENCH(name) BENCHMARK(name)->Threads(1)->Threads(2)->UseRealTime()
TYPES_BENCH(tree_insert_volatile);
TYPES_BENCH(tree_insert_pobj);
TYPES_BENCH(tree_insert_pmemobj);
TYPES_BENCH(tree_lookup_volatile);
TYPES_BENCH(tree_lookup_pobj);
TYPES_BENCH(tree_lookup_pmemobj);
TYPES_BENCH(tree_update_volatile);
TYPES_BENCH(tree_update_pobj);
TYPES_BENCH(tree_update_pmemobj);
TYPES_BENCH(tree_erase_volatile);
TYPES_BENCH(tree_erase_pobj);
TYPES_BENCH(tree_erase_pmemobj);
TYPES_BENCH(tree_scan100_volatile);
TYPES_BENCH(tree_scan100_pobj);
TYPES_BENCH(tree_scan100_pmemobj);
TYPES_BENCH(queue_push_pop_volatile);
TYPES_BENCH(queue_push_pop_pobj);
TYPES_BENCH(queue_push_pop_pmemobj);

BENCHMARK_MAIN();
