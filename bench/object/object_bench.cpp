// Persistent objects through pobj-gen proxies, side by side in one run with a plain struct in DRAM,
// a plain pointer into the same mapping, and libpmemobj where it has an equivalent: field reads
// and writes, the J-NVM paper's raw-access benchmark (sequential and random reads and writes of
// 256-byte objects), object creation, and dereference of references. Run through
// bench/run_object.sh (cache_line emulation on /dev/shm, as bench/run_core.sh).
//
// Each benchmark's argument is the access order: 0 sequential (allocation order), 1 random.
// Items are objects; bytes_per_second counts the 256 bytes of an object where a whole object is
// read or written.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>
#include <libpmemobj.h>
#include <pobj/pobj.hpp>

#include "../pobj/bench_util.hpp"
#include "objects.pobj.hpp"

namespace {

using objbench::node;
using objbench::obj256;

// POBJ_BENCH_OBJECTS shrinks the working set for the CI smoke run.
const std::size_t object_count = [] {
  const char* n = std::getenv("POBJ_BENCH_OBJECTS");
  return n != nullptr ? std::strtoull(n, nullptr, 0) : std::size_t{1} << 20;
}();

struct pm_node {
  PMEMoid next;
  std::int64_t value;
};

// Everything the benchmarks share, made once: the same objects reached three ways.
struct world {
  std::string path = bench::pool_path("object");
  std::string pm_path = bench::pool_path("object-pmemobj");
  pobj::pool pool;
  PMEMobjpool* pop = nullptr;
  std::vector<pobj::ref<obj256>> refs;  // pobj objects, in allocation order
  std::vector<obj256*> mapped;          // the same objects, as plain pointers into the mapping
  std::vector<obj256*> dram;            // DRAM objects, allocated one by one
  std::vector<std::unique_ptr<obj256>> dram_owner;
  std::vector<std::uint32_t> order[2];  // 0 sequential, 1 random
  pobj::ref<node> list;                 // N nodes, linked in random order
  node* dram_list = nullptr;
  std::vector<std::unique_ptr<node>> dram_nodes;
  PMEMoid pm_list = OID_NULL;

  world() {
    pobj::pool_options o;
    o.size = 64 * pobj::MiB;
    o.max_size = 16 * pobj::GiB;
    pool = pobj::pool::create(path, o);
    const std::size_t n = object_count;
    for (std::size_t i = 0; i < n; i += 1024) {
      pobj::run_tx(pool, [&](pobj::transaction& tx) {
        for (std::size_t j = i; j < std::min(n, i + 1024); ++j) {
          auto made = pobj::make<obj256>(tx);
          made.set_f3(tx, static_cast<std::int64_t>(j));
          refs.push_back(made.ref());
          mapped.push_back(const_cast<obj256*>(made.get()));
        }
      });
    }
    for (std::size_t i = 0; i < n; ++i) {
      dram_owner.push_back(std::make_unique<obj256>());
      dram_owner.back()->f3 = static_cast<std::int64_t>(i);
      dram.push_back(dram_owner.back().get());
    }
    order[0].resize(n);
    std::iota(order[0].begin(), order[0].end(), 0u);
    order[1] = order[0];
    std::shuffle(order[1].begin(), order[1].end(), std::mt19937_64(42));

    // Lists of n nodes in random order: pobj, DRAM and libpmemobj.
    pop = pmemobj_create(pm_path.c_str(), "objbench", std::max<std::size_t>(n * 512, std::size_t{1} << 30), 0644);
    if (pop == nullptr) throw std::runtime_error(std::string("pmemobj_create: ") + pmemobj_errormsg());
    std::vector<pobj::ref<node>> nodes(n);
    std::vector<PMEMoid> pm_nodes(n);
    dram_nodes.resize(n);
    for (std::size_t i = 0; i < n; i += 1024) {
      pobj::run_tx(pool, [&](pobj::transaction& tx) {
        for (std::size_t j = i; j < std::min(n, i + 1024); ++j) nodes[j] = pobj::make<node>(tx).ref();
      });
      for (std::size_t j = i; j < std::min(n, i + 1024); ++j) {
        if (pmemobj_zalloc(pop, &pm_nodes[j], sizeof(pm_node), 1) != 0) throw std::runtime_error("pmemobj_zalloc");
        dram_nodes[j] = std::make_unique<node>();
      }
    }
    std::vector<node*> dram_ptrs(n);
    for (std::size_t i = 0; i < n; ++i) dram_ptrs[i] = dram_nodes[i].get();
    for (std::size_t k = 0; k + 1 < n; ++k) {
      const std::uint32_t a = order[1][k], b = order[1][k + 1];
      pobj::deref(pool, nodes[a]).set_next(nodes[b]);
      static_cast<pm_node*>(pmemobj_direct(pm_nodes[a]))->next = pm_nodes[b];
      dram_ptrs[a]->next = pobj::ref<node>(reinterpret_cast<std::uint64_t>(dram_ptrs[b]));
    }
    pmemobj_persist(pop, pmemobj_direct(pm_nodes[0]), 1);  // (the whole pool is flushed at close anyway)
    list = nodes[order[1][0]];
    pm_list = pm_nodes[order[1][0]];
    dram_list = dram_ptrs[order[1][0]];
  }
  ~world() {
    pool.close();
    pmemobj_close(pop);
    std::filesystem::remove(path);
    std::filesystem::remove(pm_path);
  }
};

world& W() {
  static world w;
  return w;
}

// Runs op(index) once per iteration over the objects, in the order the argument names (0
// sequential, 1 random), and counts items, or `bytes` per item when it is not 0.
template <class Op>
void over_objects(benchmark::State& s, std::int64_t bytes, Op&& op) {
  const auto& ord = W().order[s.range(0)];
  std::size_t i = 0;
  for (auto _ : s) {
    op(ord[i]);
    if (++i == ord.size()) i = 0;
  }
  if (bytes != 0) {
    s.SetBytesProcessed(static_cast<std::int64_t>(s.iterations()) * bytes);
  } else {
    s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
  }
}

std::int64_t sum_fields(const obj256* o) { return o->f0 + o->f1 + o->f2 + o->f3 + o->f4 + o->f5 + o->f6 + o->f7 + o->f8 + o->f9 + o->f10 + o->f11 + o->f12 + o->f13 + o->f14 + o->f15 + o->f16 + o->f17 + o->f18 + o->f19 + o->f20 + o->f21 + o->f22 + o->f23 + o->f24 + o->f25 + o->f26 + o->f27 + o->f28 + o->f29 + o->f30 + o->f31; }
std::int64_t sum_fields(const pobj::proxy<obj256>& o) { return o.f0() + o.f1() + o.f2() + o.f3() + o.f4() + o.f5() + o.f6() + o.f7() + o.f8() + o.f9() + o.f10() + o.f11() + o.f12() + o.f13() + o.f14() + o.f15() + o.f16() + o.f17() + o.f18() + o.f19() + o.f20() + o.f21() + o.f22() + o.f23() + o.f24() + o.f25() + o.f26() + o.f27() + o.f28() + o.f29() + o.f30() + o.f31(); }

// ---- reads (every value read feeds `total`, so no load is optimized away)

void read_field_dram(benchmark::State& s) {
  auto& w = W();
  std::int64_t total = 0;
  over_objects(s, 0, [&](std::uint32_t k) { total += w.dram[k]->f3; });
  benchmark::DoNotOptimize(total);
}

void read_field_mapped(benchmark::State& s) {
  auto& w = W();
  std::int64_t total = 0;
  over_objects(s, 0, [&](std::uint32_t k) { total += w.mapped[k]->f3; });
  benchmark::DoNotOptimize(total);
}

void read_field_proxy(benchmark::State& s) {
  auto& w = W();
  std::int64_t total = 0;
  over_objects(s, 0, [&](std::uint32_t k) { total += pobj::deref(w.pool, w.refs[k]).f3(); });
  benchmark::DoNotOptimize(total);
}

void read_object_dram(benchmark::State& s) {
  auto& w = W();
  std::int64_t total = 0;
  over_objects(s, 256, [&](std::uint32_t k) { total += sum_fields(w.dram[k]); });
  benchmark::DoNotOptimize(total);
}

void read_object_mapped(benchmark::State& s) {
  auto& w = W();
  std::int64_t total = 0;
  over_objects(s, 256, [&](std::uint32_t k) { total += sum_fields(w.mapped[k]); });
  benchmark::DoNotOptimize(total);
}

void read_object_proxy(benchmark::State& s) {
  auto& w = W();
  std::int64_t total = 0;
  over_objects(s, 256, [&](std::uint32_t k) { total += sum_fields(pobj::deref(w.pool, w.refs[k])); });
  benchmark::DoNotOptimize(total);
}

// ---- writes: one field durably, and a whole object

void write_field_dram(benchmark::State& s) {
  auto& w = W();
  std::int64_t v = 0;
  over_objects(s, 0, [&](std::uint32_t k) {
    w.dram[k]->f3 = ++v;
    benchmark::ClobberMemory();
  });
}

// What a durable one-field write amounts to, by hand: a store, a flush of its line, a fence.
void write_field_store_flush_fence(benchmark::State& s) {
  auto& w = W();
  auto& media = w.pool.media();
  std::int64_t v = 0;
  over_objects(s, 0, [&](std::uint32_t k) {
    obj256* o = w.mapped[k];
    o->f3 = ++v;
    media.flush(&o->f3, 8);
    media.drain();
  });
}

void write_field_proxy(benchmark::State& s) {
  auto& w = W();
  std::int64_t v = 0;
  over_objects(s, 0, [&](std::uint32_t k) { pobj::deref(w.pool, w.refs[k]).set_f3(++v); });  // durable on return
}

// A whole object by hand: 256 bytes stored, four lines flushed, one fence (not failure-atomic).
void write_object_store_flush_fence(benchmark::State& s) {
  auto& w = W();
  auto& media = w.pool.media();
  obj256 value{};
  over_objects(s, 256, [&](std::uint32_t k) {
    obj256* o = w.mapped[k];
    ++value.f0;
    std::memcpy(o, &value, sizeof(value));
    media.flush(o, sizeof(*o));
    media.drain();
  });
}

// A whole object through its proxy, failure-atomically: one block, all fields assigned at once.
void write_object_proxy_block(benchmark::State& s) {
  auto& w = W();
  obj256 value{};
  over_objects(s, 256, [&](std::uint32_t k) {
    ++value.f0;
    pobj::run_tx(w.pool, [&](pobj::transaction& tx) { pobj::deref(w.pool, w.refs[k]).assign(tx, value); });
  });
}

// The same with libpmemobj: a transaction that snapshots the object and copies into it.
void write_object_pmemobj_tx(benchmark::State& s) {
  auto& w = W();
  static std::vector<PMEMoid> objects = [&] {
    std::vector<PMEMoid> v(std::min<std::size_t>(w.refs.size(), 1 << 16));
    for (auto& oid : v) {
      if (pmemobj_zalloc(w.pop, &oid, sizeof(obj256), 2) != 0) throw std::runtime_error("pmemobj_zalloc");
    }
    return v;
  }();
  obj256 value{};
  over_objects(s, 256, [&](std::uint32_t k) {
    ++value.f0;
    PMEMoid oid = objects[k % objects.size()];
    TX_BEGIN(w.pop) {
      pmemobj_tx_add_range(oid, 0, sizeof(obj256));
      std::memcpy(pmemobj_direct(oid), &value, sizeof(value));
    }
    TX_END
  });
}

// ---- creation (objects are left allocated; the pools are large)

void create_dram(benchmark::State& s) {
  std::vector<std::unique_ptr<obj256>> made;
  made.reserve(1 << 20);
  for (auto _ : s) {
    made.push_back(std::make_unique<obj256>());
    if (made.size() == made.capacity()) made.clear();
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

void create_pobj(benchmark::State& s) {
  auto& w = W();
  for (auto _ : s) {
    pobj::run_tx(w.pool, [&](pobj::transaction& tx) { benchmark::DoNotOptimize(pobj::make<obj256>(tx).ref()); });
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

void create_pmemobj(benchmark::State& s) {
  auto& w = W();
  for (auto _ : s) {
    TX_BEGIN(w.pop) { benchmark::DoNotOptimize(pmemobj_tx_zalloc(sizeof(obj256), 3)); }
    TX_END
  }
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

// ---- dereference: a walk down a list of N nodes linked in random order

void deref_dram(benchmark::State& s) {
  auto& w = W();
  const node* at = w.dram_list;
  for (auto _ : s) {
    at = reinterpret_cast<const node*>(at->next.offset);
    if (at == nullptr) at = w.dram_list;
  }
  benchmark::DoNotOptimize(at);
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

void deref_mapped(benchmark::State& s) {  // by hand: base + offset + header
  auto& w = W();
  std::byte* base = w.pool.base();
  const node* first = reinterpret_cast<const node*>(base + w.list.offset + pobj::object_header_size);
  const node* at = first;
  for (auto _ : s) {
    at = at->next ? reinterpret_cast<const node*>(base + at->next.offset + pobj::object_header_size) : first;
  }
  benchmark::DoNotOptimize(at);
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

void deref_proxy(benchmark::State& s) {
  auto& w = W();
  pobj::ref<node> at = w.list;
  for (auto _ : s) {
    at = pobj::deref(w.pool, at).next();
    if (!at) at = w.list;
  }
  benchmark::DoNotOptimize(at);
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

void deref_pmemobj(benchmark::State& s) {
  auto& w = W();
  PMEMoid at = w.pm_list;
  for (auto _ : s) {
    at = static_cast<const pm_node*>(pmemobj_direct(at))->next;
    if (OID_IS_NULL(at)) at = w.pm_list;
  }
  benchmark::DoNotOptimize(at);
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()));
}

}  // namespace

BENCHMARK(read_field_dram)->Arg(0)->Arg(1);
BENCHMARK(read_field_mapped)->Arg(0)->Arg(1);
BENCHMARK(read_field_proxy)->Arg(0)->Arg(1);
BENCHMARK(read_object_dram)->Arg(0)->Arg(1);
BENCHMARK(read_object_mapped)->Arg(0)->Arg(1);
BENCHMARK(read_object_proxy)->Arg(0)->Arg(1);
BENCHMARK(write_field_dram)->Arg(0)->Arg(1);
BENCHMARK(write_field_store_flush_fence)->Arg(0)->Arg(1);
BENCHMARK(write_field_proxy)->Arg(0)->Arg(1);
BENCHMARK(write_object_store_flush_fence)->Arg(0)->Arg(1);
BENCHMARK(write_object_proxy_block)->Arg(0)->Arg(1);
BENCHMARK(write_object_pmemobj_tx)->Arg(0)->Arg(1);
BENCHMARK(create_dram);
BENCHMARK(create_pobj);
BENCHMARK(create_pmemobj);
BENCHMARK(deref_dram);
BENCHMARK(deref_mapped);
BENCHMARK(deref_proxy);
BENCHMARK(deref_pmemobj);

BENCHMARK_MAIN();
