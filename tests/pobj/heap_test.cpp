#include <pobj/heap.hpp>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <pobj/transaction.hpp>

#include "pool/pool_impl.hpp"

#include "test_util.hpp"

using namespace pobj;
using pobj_test::scratch_path;

namespace {
// A root object with slots that hold references.
struct holder {
  std::uint64_t slots[64];
};

holder* make_holder(pool& p) {
  transaction tx(p);
  allocation a = tx.alloc(sizeof(holder));
  std::memset(a.pointer, 0, sizeof(holder));
  p.set_root("holder", a.offset);
  return static_cast<holder*>(a.pointer);
}
}  // namespace

TEST_CASE("reservations change nothing persistent until published", "[heap]") {
  scratch_path path("reserve");
  offset_t published = 0, abandoned = 0;
  {
    pool p = pool::create(path, pobj_test::small_options());
    holder* h = make_holder(p);
    auto used = p.heap().stats().bytes_used;
    reservation r = p.heap().reserve(64, 7);
    reservation lost = p.heap().reserve(64, 7);
    abandoned = lost.offset;
    CHECK(r.size >= 64);
    CHECK_FALSE(p.heap().is_allocated(r.offset));
    CHECK(p.heap().stats().bytes_used == used);
    std::memset(r.pointer, 0xab, 64);
    published = r.offset;
    publish(p, r, &h->slots[0]);
    CHECK_FALSE(r);  // consumed
    CHECK(h->slots[0] == published);
    CHECK(p.heap().is_allocated(published));
    CHECK(p.heap().type_of(published) == 7);
    CHECK_FALSE(p.heap().is_allocated(abandoned));
    // `lost` is never published nor cancelled: the process "dies" holding it.
  }
  pool p = pool::open(path, pobj_test::small_options());
  CHECK(p.heap().is_allocated(published));
  CHECK(*p.at<std::uint8_t>(published + 63) == 0xab);
  CHECK_FALSE(p.heap().is_allocated(abandoned));
  CHECK(p.heap().check().ok());
}

TEST_CASE("every size class and extents allocate, free and report their sizes", "[heap]") {
  scratch_path path("sizes");
  pool p = pool::create(path, pobj_test::small_options());
  holder* h = make_holder(p);
  std::vector<std::size_t> sizes{1, 8, 16, 17, 64, 100, 128, 129, 1000, 4096, 5000, 65536, 65537, 300000, 1 << 20};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    transaction tx(p);
    allocation a = tx.alloc(sizes[i], static_cast<std::uint16_t>(i + 1));
    std::memset(a.pointer, static_cast<int>(i), sizes[i]);
    tx.set(h->slots[i], a.offset);
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    offset_t o = h->slots[i];
    INFO("size " << sizes[i]);
    CHECK(p.heap().is_allocated(o));
    CHECK(p.heap().usable_size(o) >= sizes[i]);
    // Up to 64 KiB a size class wastes under 25%; beyond, extents round up to 256 KiB chunks.
    std::size_t bound = sizes[i] <= heap::max_small_size ? std::max<std::size_t>(16, sizes[i] * 5 / 4 + 16)
                                                         : (sizes[i] + heap::chunk_size - 1) / heap::chunk_size * heap::chunk_size;
    CHECK(p.heap().usable_size(o) <= bound);
    CHECK(p.heap().type_of(o) == i + 1);
    CHECK(*p.at<std::uint8_t>(o + sizes[i] - 1) == i);
  }
  auto stats = p.heap().stats();
  CHECK(stats.extents == 3);
  CHECK(stats.bytes_used >= 1500000);
  CHECK(p.heap().check().ok());
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    transaction tx(p);
    tx.free(h->slots[i]);
    tx.set(h->slots[i], std::uint64_t{0});
  }
  auto after = p.heap().stats();
  CHECK(after.extents == 0);
  CHECK(after.bytes_used == p.heap().usable_size(p.root("holder")));
  CHECK(p.heap().check().ok());
  CHECK_THROWS_AS(p.heap().free(12345), error);
}

TEST_CASE("no object is handed out twice, across threads", "[heap][threads]") {
  scratch_path path("unique");
  auto o = pobj_test::small_options();
  o.size = 32 * MiB;
  pool p = pool::create(path, o);
  holder* h = make_holder(p);
  std::mutex mu;
  std::set<offset_t> live;
  bool duplicate = false;
  auto worker = [&](int id) {
    std::vector<offset_t> mine;
    for (int round = 0; round < 2000; ++round) {
      if (mine.size() < 50 || round % 3 != 0) {
        transaction tx(p);
        allocation a = tx.alloc(48 + static_cast<std::size_t>(round % 5) * 16);
        std::memset(a.pointer, id, 48);
        mine.push_back(a.offset);
        std::lock_guard lock(mu);
        duplicate |= !live.insert(a.offset).second;
      } else {
        offset_t victim = mine[static_cast<std::size_t>(round) % mine.size()];
        mine.erase(std::find(mine.begin(), mine.end(), victim));
        {
          std::lock_guard lock(mu);
          live.erase(victim);
        }
        p.heap().free(victim);
      }
    }
    // Keep what is left reachable, one list per thread in the holder's slot.
    transaction tx(p);
    allocation list = tx.alloc(8 * (mine.size() + 1));
    auto* words = static_cast<std::uint64_t*>(list.pointer);
    words[0] = mine.size();
    std::copy(mine.begin(), mine.end(), words + 1);
    tx.set(h->slots[id], list.offset);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();
  CHECK_FALSE(duplicate);
  for (offset_t off : live) CHECK(p.heap().is_allocated(off));
  auto report = p.heap().check();
  CHECK(report.corrupt.empty());
  CHECK(report.unreachable.empty());
  CHECK(report.reachable_objects == live.size() + 4 + 1);
}

TEST_CASE("check finds unreachable objects and repair frees them", "[heap]") {
  scratch_path path("check");
  pool p = pool::create(path, pobj_test::small_options());
  holder* h = make_holder(p);
  offset_t orphan, child;
  {
    transaction tx(p);
    orphan = tx.alloc(256).offset;
    child = tx.alloc(32).offset;
    std::memset(p.at<void>(orphan), 0, 256);
    tx.set(h->slots[3], child);  // reachable through the holder, conservatively
  }
  auto report = p.heap().check();
  CHECK(report.corrupt.empty());
  REQUIRE(report.unreachable == std::vector<offset_t>{orphan});
  CHECK(report.reachable_objects == 2);

  SECTION("a precise tracer that ignores a slot makes its target unreachable") {
    {
      transaction tx(p);
      allocation a = tx.alloc(sizeof(holder), 42);
      std::memcpy(a.pointer, h, sizeof(holder));
      p.set_root("typed", a.offset);
    }
    p.heap().set_tracer(42, [](const void*, std::size_t, const reference_visitor&) {});
    auto r = p.heap().check();
    CHECK(r.reachable_objects == 3);  // holder, typed (no references followed), child via holder
  }
  auto repaired = p.heap().repair();
  CHECK(repaired.repaired >= 1);
  CHECK_FALSE(p.heap().is_allocated(orphan));
  CHECK(p.heap().is_allocated(child));
  CHECK(p.heap().check().ok());
}

TEST_CASE("stats count bytes per size class", "[heap]") {
  scratch_path path("stats");
  pool p = pool::create(path, pobj_test::small_options());
  holder* h = make_holder(p);
  run_tx(p, [&](transaction& tx) { tx.set(h->slots[10], tx.alloc(64).offset); });  // makes a run of 64s
  auto before = p.heap().stats();
  {
    transaction tx(p);
    for (int i = 0; i < 10; ++i) tx.set(h->slots[i], tx.alloc(64).offset);
  }
  auto after = p.heap().stats();
  CHECK(after.bytes_used - before.bytes_used == 640);
  CHECK(before.bytes_free - after.bytes_free == 640);
  auto it = std::find_if(after.classes.begin(), after.classes.end(), [](auto& c) { return c.block_size == 64; });
  REQUIRE(it != after.classes.end());
  CHECK(it->blocks_used == 11);
  CHECK(after.pool_size == p.size());
}

TEST_CASE("publishing a reservation twice or an empty one is rejected", "[heap][regression]") {
  scratch_path path("republish");
  pool p = pool::create(path, pobj_test::small_options());
  holder* h = make_holder(p);
  reservation r = p.heap().reserve(64);
  // A forged reservation for the same block (copies do not compile).
  reservation copy(r.offset, r.pointer, r.size, r.type, r.generation);
  std::memset(r.pointer, 0, 64);
  publish(p, r, &h->slots[0]);
  try {
    publish(p, copy, &h->slots[1]);  // the same block again: already allocated
    FAIL("published twice");
  } catch (const error& e) {
    CHECK(e.code() == errc::invalid_argument);
  }
  reservation empty;
  CHECK_THROWS_AS(publish(p, empty, &h->slots[2]), error);
  CHECK(h->slots[1] == 0);
  CHECK(p.heap().check().ok());
}

TEST_CASE("a block freed in a run not yet loaded is handed out once", "[heap][regression]") {
  // After reopening, runs are loaded lazily. A free into an unloaded run used to put the block in
  // the thread cache while loading the run later found it free too: two owners.
  scratch_path path("unloaded");
  std::vector<offset_t> objects;
  {
    pool p = pool::create(path, pobj_test::small_options());
    holder* h = make_holder(p);
    run_tx(p, [&](transaction& tx) {
      for (int i = 0; i < 40; ++i) tx.set(h->slots[i], tx.alloc(64).offset);
    });
  }
  pool p = pool::open(path, pobj_test::small_options());
  auto* h = p.at<holder>(p.root("holder"));
  run_tx(p, [&](transaction& tx) {
    tx.free(h->slots[0]);
    tx.set(h->slots[0], std::uint64_t{0});
  });
  std::set<offset_t> seen;
  for (int i = 1; i < 40; ++i) seen.insert(h->slots[i]);
  run_tx(p, [&](transaction& tx) {
    for (int i = 40; i < 64; ++i) {
      allocation a = tx.alloc(64);
      CHECK(seen.insert(a.offset).second);
      tx.set(h->slots[i], a.offset);
    }
  });
  CHECK(p.heap().check().ok());
}

TEST_CASE("a corrupt extent count is reported, never followed", "[heap][regression]") {
  scratch_path path("badextent");
  offset_t big;
  {
    pool p = pool::create(path, pobj_test::small_options());
    holder* h = make_holder(p);
    run_tx(p, [&](transaction& tx) { big = tx.alloc(300000).offset; tx.set(h->slots[0], big); });
  }
  {
    // Give the extent head an impossible length (its zone has 16383 data chunks).
    auto bytes = pobj_test::read_file(path);
    pool_options o = pobj_test::small_options();
    pool p = pool::open(path, o);
    std::uint64_t heap_off = p.impl().header.heap_offset;
    std::uint64_t chunk = (big - heap_off) / heap::chunk_size;
    auto* entry = p.at<std::uint64_t>(heap_off + chunk * 16);
    *entry = (*entry & 0xffffffffULL) | (std::uint64_t{70000} << 32);
    p.media().persist(entry, 8);
  }
  pool p = pool::open(path, pobj_test::small_options());
  CHECK_FALSE(p.heap().is_allocated(big));
  CHECK_THROWS_AS(p.heap().free(big), error);
  auto report = p.heap().check();
  CHECK_FALSE(report.corrupt.empty());
}

TEST_CASE("threads publish, hand over and free each other's objects", "[heap][threads]") {
  // Producers publish objects into a shared ring of slots; consumers on other threads unlink and
  // free them in blocks. Every block is freed by a thread that did not allocate it, so blocks
  // move between thread caches. At the end nothing leaks and nothing is allocated twice.
  scratch_path path("handover");
  auto o = pobj_test::small_options();
  o.size = 32 * MiB;
  pool p = pool::create(path, o);
  holder* h = make_holder(p);
  std::mutex slot_mu[64];
  std::atomic<int> published{0}, freed{0};
  constexpr int per_thread = 1500;
  auto producer = [&](int id) {
    for (int i = 0; i < per_thread; ++i) {
      std::size_t s = static_cast<std::size_t>((id * 7919 + i * 31) % 64);
      reservation r = p.heap().reserve(48 + static_cast<std::size_t>(i % 7) * 40);
      std::memset(r.pointer, id, 48);
      std::lock_guard lock(slot_mu[s]);
      if (h->slots[s] != 0) {  // occupied: publish elsewhere later, give this one back
        p.heap().cancel(r);
        continue;
      }
      publish(p, r, &h->slots[s]);
      ++published;
    }
  };
  auto consumer = [&](int id) {
    for (int i = 0; i < per_thread; ++i) {
      std::size_t s = static_cast<std::size_t>((id * 104729 + i * 17) % 64);
      std::lock_guard lock(slot_mu[s]);
      if (h->slots[s] == 0) continue;
      run_tx(p, [&](transaction& tx) {
        tx.free(h->slots[s]);
        tx.set(h->slots[s], std::uint64_t{0});
      });
      ++freed;
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(producer, 1);
  threads.emplace_back(consumer, 2);
  threads.emplace_back(producer, 3);
  threads.emplace_back(consumer, 4);
  for (auto& t : threads) t.join();
  std::set<offset_t> live;
  for (auto off : h->slots) {
    if (off == 0) continue;
    CHECK(live.insert(off).second);
    CHECK(p.heap().is_allocated(off));
  }
  CHECK(static_cast<std::size_t>(published - freed) == live.size());
  auto report = p.heap().check();
  CHECK(report.ok());
  CHECK(report.reachable_objects == live.size() + 1);
}
