// Pool open time with many live objects: pobj versus libpmemobj, in one run.
//
//   open_bench [OBJECTS]        (default 10,000,000 objects of 64 bytes)
//
// Populates a pool of each kind with OBJECTS 64-byte objects in a linked list, closes it, then
// opens it five times and reports the median time to open and to reach the first object. Run
// through bench/run_core.sh for the persistence settings (cache_line emulation on /dev/shm).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <libpmemobj.h>
#include <pobj/pobj.hpp>

#include "bench_util.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

struct node {
  std::uint64_t next;
  std::uint64_t value;
  std::uint64_t pad[6];
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void bench_pobj(std::size_t objects) {
  std::string path = bench::pool_path("open-pobj");
  pobj::pool_options o;
  o.size = objects * 80 + 256 * pobj::MiB;
  o.max_size = o.size * 2;
  auto t0 = clock_type::now();
  {
    pobj::pool p = pobj::pool::create(path, o);
    std::uint64_t* head;
    {
      pobj::transaction tx(p);
      pobj::allocation a = tx.alloc(8);
      head = static_cast<std::uint64_t*>(a.pointer);
      *head = 0;
      p.set_root("head", a.offset);
    }
    // Publish in batches: each node points at the previous one; one link per batch.
    constexpr std::size_t batch = 1000;
    std::vector<pobj::reservation> rs(batch);
    for (std::size_t done = 0; done < objects;) {
      std::size_t n = std::min(batch, objects - done);
      std::uint64_t prev = *head;
      for (std::size_t k = 0; k < n; ++k) {
        rs[k] = p.heap().reserve(sizeof(node));
        auto* nd = static_cast<node*>(rs[k].pointer);
        nd->next = prev;
        nd->value = done + k;
        prev = rs[k].offset;
      }
      pobj::publish_link l{head, prev};
      pobj::publish(p, std::span<pobj::reservation>(rs.data(), n), std::span<const pobj::publish_link>(&l, 1));
      done += n;
    }
    fmt::print("pobj: populated {} objects in {:.1f} s (mode {}); {} MiB in use\n", objects, ms_since(t0) / 1000,
               pobj::to_string(p.mode()), p.heap().stats().bytes_used >> 20);
  }
  std::vector<double> open_ms, first_ms;
  for (int i = 0; i < 5; ++i) {
    auto t = clock_type::now();
    pobj::pool p = pobj::pool::open(path, o);
    open_ms.push_back(ms_since(t));
    auto* head = p.at<std::uint64_t>(p.root("head"));
    auto* first = p.at<node>(*head);
    if (first->value != objects - 1) throw std::runtime_error(fmt::format("pobj: wrong first object {}", first->value));
    // The first allocation after opening touches the allocator's lazily built state.
    pobj::reservation r = p.heap().reserve(64);
    p.heap().cancel(r);
    first_ms.push_back(ms_since(t));
  }
  fmt::print("pobj:      open {:8.2f} ms   open + first read + first allocation {:8.2f} ms  (median of 5)\n",
             median(open_ms), median(first_ms));
  std::filesystem::remove(path);
}

// POBJ_BENCH_KEEP=DIR keeps the populated libpmemobj pool in DIR and reuses it on the next run
// (libpmemobj takes 10-20 s to populate 10M objects here; much longer when its pool is nearly full).
void bench_pmemobj(std::size_t objects) {
  const char* keep = std::getenv("POBJ_BENCH_KEEP");
  std::string path = keep != nullptr ? fmt::format("{}/open-pmemobj-{}.pool", keep, objects)
                                     : bench::pool_path("open-pmemobj");
  auto t0 = clock_type::now();
  if (keep == nullptr || !std::filesystem::exists(path)) {
    PMEMobjpool* pop = pmemobj_create(path.c_str(), "open", objects * 160 + 256 * pobj::MiB, 0644);
    if (pop == nullptr) {
      fmt::print("pmemobj_create: {}\n", pmemobj_errormsg());
      return;
    }
    PMEMoid root = pmemobj_root(pop, sizeof(std::uint64_t));
    auto* head = static_cast<std::uint64_t*>(pmemobj_direct(root));
    for (std::size_t i = 0; i < objects; ++i) {
      PMEMoid oid;
      if (pmemobj_alloc(pop, &oid, sizeof(node), 0, nullptr, nullptr) != 0) {
        fmt::print("pmemobj_alloc failed after {} objects: {}\n", i, pmemobj_errormsg());
        pmemobj_close(pop);
        return;
      }
      auto* nd = static_cast<node*>(pmemobj_direct(oid));
      nd->next = *head;
      nd->value = i;
      pmemobj_persist(pop, nd, 16);
      *head = oid.off;
      pmemobj_persist(pop, head, 8);
    }
    fmt::print("libpmemobj: populated {} objects in {:.1f} s\n", objects, ms_since(t0) / 1000);
    std::fflush(stdout);
    pmemobj_close(pop);
  }
  std::vector<double> open_ms, first_ms;
  for (int i = 0; i < 5; ++i) {
    auto t = clock_type::now();
    PMEMobjpool* pop = pmemobj_open(path.c_str(), "open");
    if (pop == nullptr) {
      fmt::print("pmemobj_open: {}\n", pmemobj_errormsg());
      return;
    }
    open_ms.push_back(ms_since(t));
    PMEMoid root = pmemobj_root(pop, sizeof(std::uint64_t));
    auto* head = static_cast<std::uint64_t*>(pmemobj_direct(root));
    auto* first = static_cast<node*>(pmemobj_direct(PMEMoid{root.pool_uuid_lo, *head}));
    if (first->value != objects - 1) {
      throw std::runtime_error(fmt::format("libpmemobj: wrong first object {}", first->value));
    }
    pobj_action act;
    PMEMoid r = pmemobj_reserve(pop, &act, 64, 0);
    (void)r;
    pmemobj_cancel(pop, &act, 1);
    first_ms.push_back(ms_since(t));
    pmemobj_close(pop);
  }
  fmt::print("libpmemobj: open {:8.2f} ms   open + first read + first allocation {:8.2f} ms  (median of 5)\n",
             median(open_ms), median(first_ms));
  std::filesystem::remove(path);
}

}  // namespace

int main(int argc, char** argv) try {
  std::size_t objects = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 10'000'000;
  bench_pobj(objects);
  bench_pmemobj(objects);
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "open_bench: {}\n", e.what());
  return 1;
}
