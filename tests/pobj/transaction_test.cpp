#include <pobj/transaction.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include <catch2/catch.hpp>
#include <pobj/media.hpp>

#include "test_util.hpp"

using namespace pobj;
using pobj_test::scratch_path;

namespace {
struct account_table {
  std::uint64_t balance[16];
  std::uint64_t link;
};

account_table* make_table(pool& p) {
  transaction tx(p);
  allocation a = tx.alloc(sizeof(account_table));
  auto* t = static_cast<account_table*>(a.pointer);
  for (auto& b : t->balance) b = 100;
  t->link = 0;
  p.set_root("accounts", a.offset);
  return t;
}

std::uint64_t fences() { return media::thread_counters().drains; }
}  // namespace

TEST_CASE("a committed block survives reopening", "[tx]") {
  scratch_path path("commit");
  {
    pool p = pool::create(path, pobj_test::small_options());
    auto* t = make_table(p);
    transaction tx(p);
    tx.set(t->balance[0], std::uint64_t{50});
    tx.set(t->balance[1], std::uint64_t{150});
  }
  pool p = pool::open(path, pobj_test::small_options());
  auto* t = p.at<account_table>(p.root("accounts"));
  CHECK(t->balance[0] == 50);
  CHECK(t->balance[1] == 150);
}

TEST_CASE("an exception aborts the block and propagates", "[tx]") {
  scratch_path path("abort");
  pool p = pool::create(path, pobj_test::small_options());
  auto* t = make_table(p);
  auto used = p.heap().stats().bytes_used;
  offset_t freed = 0;
  {
    transaction tx(p);
    freed = tx.alloc(64).offset;
    tx.set(t->link, freed);
  }
  CHECK_THROWS_WITH(run_tx(p,
                           [&](transaction& tx) {
                             tx.set(t->balance[0], std::uint64_t{1});
                             tx.snapshot(&t->balance[1], 16);
                             t->balance[1] = 2;
                             t->balance[2] = 3;
                             tx.alloc(1000);
                             tx.free(freed);
                             tx.set(t->link, std::uint64_t{0});
                             throw std::runtime_error("boom");
                           }),
                    "boom");
  CHECK(t->balance[0] == 100);
  CHECK(t->balance[1] == 100);
  CHECK(t->balance[2] == 100);
  CHECK(t->link == freed);
  CHECK(p.heap().is_allocated(freed));
  CHECK(p.heap().stats().bytes_used == used + 64);
  CHECK(p.heap().check().ok());
}

TEST_CASE("nested scopes flatten; an inner abort aborts the whole block", "[tx]") {
  scratch_path path("nested");
  pool p = pool::create(path, pobj_test::small_options());
  auto* t = make_table(p);
  SECTION("inner scopes commit with the outer one") {
    {
      transaction outer(p);
      outer.set(t->balance[0], std::uint64_t{1});
      {
        transaction inner(p);
        inner.set(t->balance[1], std::uint64_t{2});
        CHECK(transaction::active(p));
      }
      CHECK_THROWS_AS(outer.snapshot(nullptr, 8), error);  // outside the pool: rejected, the block lives on
      outer.set(t->balance[2], std::uint64_t{3});
    }
    CHECK(t->balance[0] == 1);
    CHECK(t->balance[1] == 2);
    CHECK(t->balance[2] == 3);
    CHECK_FALSE(transaction::active(p));
  }
  SECTION("an exception caught between the scopes still aborts everything") {
    {
      transaction outer(p);
      outer.set(t->balance[0], std::uint64_t{1});
      try {
        transaction inner(p);
        inner.set(t->balance[1], std::uint64_t{2});
        throw std::runtime_error("inner");
      } catch (const std::runtime_error&) {
      }
      CHECK(t->balance[0] == 100);  // rolled back at once
      try {
        outer.set(t->balance[2], std::uint64_t{3});
        FAIL("used an aborted block");
      } catch (const error& e) {
        CHECK(e.code() == errc::transaction_aborted);
      }
    }
    CHECK(t->balance[1] == 100);
    CHECK(t->balance[2] == 100);
    // The thread can open a new block afterwards.
    run_tx(p, [&](transaction& tx) { tx.set(t->balance[3], std::uint64_t{4}); });
    CHECK(t->balance[3] == 4);
  }
  SECTION("explicit commit and abort") {
    transaction tx(p);
    tx.set(t->balance[0], std::uint64_t{7});
    tx.commit();
    CHECK(t->balance[0] == 7);
    transaction tx2(p);
    tx2.set(t->balance[0], std::uint64_t{8});
    tx2.abort();
    CHECK(t->balance[0] == 7);
  }
}

TEST_CASE("fences per operation are as documented", "[tx][fences]") {
  scratch_path path("fences");
  pool p = pool::create(path, pobj_test::small_options());
  auto* t = make_table(p);
  run_tx(p, [&](transaction& tx) { tx.set(t->balance[15], std::uint64_t{0}); });  // warm up

  auto f0 = fences();
  run_tx(p, [&](transaction& tx) { tx.set(t->balance[0], std::uint64_t{1}); });
  CHECK(fences() - f0 == 2);

  f0 = fences();
  run_tx(p, [&](transaction& tx) {
    tx.snapshot({{&t->balance[0], 8}, {&t->balance[8], 8}, {&t->link, 8}, {&t->balance[4], 8}});
    t->balance[0] = t->balance[8] = t->link = t->balance[4] = 2;
  });
  CHECK(fences() - f0 == 2);

  reservation r = p.heap().reserve(64);
  std::memset(r.pointer, 0, 64);
  f0 = fences();
  publish(p, r, &t->link);
  CHECK(fences() - f0 == 2);

  f0 = fences();
  run_tx(p, [&](transaction& tx) {
    allocation a = tx.alloc(64);
    std::memset(a.pointer, 1, 64);
    tx.free(t->link);
    tx.set(t->link, a.offset);
  });
  CHECK(fences() - f0 == 2);

  f0 = fences();
  run_tx(p, [&](transaction&) {});
  CHECK(fences() - f0 == 0);

  f0 = fences();
  run_tx(p, [&](transaction& tx) {
    for (int i = 0; i < 4; ++i) tx.set(t->balance[4 * i], std::uint64_t{5});
  });
  CHECK(fences() - f0 == 5);  // four sets, one commit

  f0 = fences();
  offset_t lonely = run_tx(p, [&](transaction& tx) { return tx.alloc(64).offset; });
  CHECK(fences() - f0 == 2);  // an allocation with no snapshot after it: +1 before the commit

  f0 = fences();
  reservation unused = p.heap().reserve(64);
  p.heap().cancel(unused);
  CHECK(fences() - f0 == 0);

  f0 = fences();
  p.heap().free(lonely);
  CHECK(fences() - f0 == 2);  // the block above left its log invalidation pending: +1
  offset_t other = run_tx(p, [&](transaction& tx) { return tx.alloc(64).offset; });
  p.durable_store(&t->balance[10], 0);  // settles what that block left pending
  f0 = fences();
  p.heap().free(other);
  CHECK(fences() - f0 == 1);

  run_tx(p, [&](transaction& tx) { tx.set(t->balance[11], std::uint64_t{11}); });
  f0 = fences();
  p.durable_store(&t->balance[9], 9);
  CHECK(fences() - f0 == 2);  // a block committed just before: its log is made stale first
  f0 = fences();
  p.durable_store(&t->balance[9], 10);
  CHECK(fences() - f0 == 1);
}

TEST_CASE("objects allocated in a block are written in place, never logged", "[tx]") {
  scratch_path path("fresh");
  auto o = pobj_test::small_options();
  o.lane_log_size = 4096;
  pool p = pool::create(path, o);
  auto* t = make_table(p);
  run_tx(p, [&](transaction& tx) {
    allocation a = tx.alloc(64 * KiB);
    tx.snapshot(a.pointer, 64 * KiB);  // inside a fresh object: free, and it does not fill the log
    std::memset(a.pointer, 9, 64 * KiB);
    tx.set(t->link, a.offset);
  });
  CHECK(*p.at<std::uint8_t>(t->link + 1000) == 9);

  SECTION("a block that outgrows its log aborts with a clear error") {
    std::vector<std::uint64_t> big;
    try {
      run_tx(p, [&](transaction& tx) {
        allocation a = tx.alloc(8 * KiB);
        std::memset(a.pointer, 0, 8 * KiB);
        tx.set(t->balance[0], std::uint64_t{1});
        tx.snapshot(a.pointer, 8);
        tx.snapshot(p.at<std::byte>(t->link), 4000);
        FAIL("fit");
      });
    } catch (const error& e) {
      CHECK(e.code() == errc::transaction_too_large);
    }
    CHECK(t->balance[0] == 100);
    CHECK(p.heap().check().ok());
  }
}

TEST_CASE("blocks on several threads run concurrently", "[tx][threads]") {
  scratch_path path("threads");
  pool p = pool::create(path, pobj_test::small_options());
  auto* t = make_table(p);
  std::mutex mu[16];
  auto worker = [&](unsigned seed) {
    for (unsigned i = 0; i < 3000; ++i) {
      unsigned from = (seed * 7 + i * 13) % 16, to = (seed * 3 + i * 5 + 1) % 16;
      if (from == to) continue;
      std::scoped_lock lock(mu[from], mu[to]);
      transaction tx(p);
      tx.snapshot({{&t->balance[from], 8}, {&t->balance[to], 8}});
      t->balance[from] -= 1;
      t->balance[to] += 1;
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < 4; ++i) threads.emplace_back(worker, i);
  for (auto& th : threads) th.join();
  std::uint64_t total = 0;
  for (auto b : t->balance) total += b;
  CHECK(total == 1600);
}

TEST_CASE("a block whose undo records fill most of its log still commits", "[tx][regression]") {
  // The commit used to count the space reserved for redo records twice and fail (in a noexcept
  // destructor: terminate).
  scratch_path path("redo-reserve");
  auto o = pobj_test::small_options();
  o.lane_log_size = 4096;
  pool p = pool::create(path, o);
  offset_t obj = run_tx(p, [&](transaction& tx) {
    allocation a = tx.alloc(2000);
    std::memset(a.pointer, 1, 2000);
    p.set_root("obj", a.offset);
    return a.offset;
  });
  auto* bytes = p.at<std::uint8_t>(obj);
  run_tx(p, [&](transaction& tx) {
    for (int i = 0; i < 3; ++i) {
      tx.snapshot(bytes + i * 500, 500);
      std::memset(bytes + i * 500, 2, 500);
    }
  });
  CHECK(bytes[1499] == 2);
}

TEST_CASE("a scope that committed or aborted refuses further use", "[tx][regression]") {
  scratch_path path("after-end");
  pool p = pool::create(path, pobj_test::small_options());
  auto* t = make_table(p);
  transaction tx(p);
  tx.set(t->balance[0], std::uint64_t{1});
  tx.commit();
  try {
    tx.set(t->balance[1], std::uint64_t{2});
    FAIL("used after commit");
  } catch (const error& e) {
    CHECK(e.code() == errc::transaction_aborted);
  }
  CHECK(t->balance[1] == 100);
}

TEST_CASE("metadata cannot be logged or stored into, and a pool cannot close inside a block", "[tx][regression]") {
  scratch_path path("metadata");
  pool p = pool::create(path, pobj_test::small_options());
  {
    transaction tx(p);
    CHECK_THROWS_AS(tx.snapshot(p.base(), 64), error);       // the header
    CHECK_THROWS_AS(tx.snapshot(p.base() + 4096, 8), error); // the superblock
    CHECK_THROWS_AS(p.close(), error);
  }
  CHECK_THROWS_AS(p.durable_store(reinterpret_cast<std::uint64_t*>(p.base() + 4096), 1), error);
  CHECK(p.is_open());
}

TEST_CASE("a root slot emptied by an open block is not reused by another", "[tx][roots][threads][regression]") {
  scratch_path path("roots-race");
  pool p = pool::create(path, pobj_test::small_options());
  offset_t a = run_tx(p, [&](transaction& tx) { return tx.alloc(64).offset; });
  offset_t b = run_tx(p, [&](transaction& tx) { return tx.alloc(64).offset; });
  p.set_root("a", a);
  try {
    run_tx(p, [&](transaction&) {
      p.remove_root("a");                                  // empties a slot inside a block ...
      std::thread([&] { p.set_root("b", b); }).join();     // ... another thread commits a root ...
      throw std::runtime_error("roll back");               // ... and the block rolls back
    });
  } catch (const std::runtime_error&) {
  }
  CHECK(p.root("a") == a);
  CHECK(p.root("b") == b);  // not overwritten by the rollback of "a"
}

TEST_CASE("roots set while another thread waits for a lane do not deadlock", "[tx][roots][threads][regression]") {
  scratch_path path("roots-lock");
  auto o = pobj_test::small_options();
  o.lanes = 1;  // a thread waiting for the only lane must not hold the directory's lock
  pool p = pool::create(path, o);
  offset_t a = run_tx(p, [&](transaction& tx) { return tx.alloc(64).offset; });
  std::atomic<bool> started{false};
  std::thread other;
  run_tx(p, [&](transaction&) {
    other = std::thread([&] {
      started = true;
      p.set_root("other", a);
    });
    while (!started) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p.set_root("mine", a);
  });
  other.join();
  CHECK(p.root("mine") == a);
  CHECK(p.root("other") == a);
}

TEST_CASE("a block says whether it changed anything", "[tx]") {
  for (const persist_mode mode : {persist_mode::cache_line, persist_mode::page}) {
    scratch_path path("changed");
    auto o = pobj_test::small_options();
    o.mode = mode;
    pool p = pool::create(path, o);
    auto* t = make_table(p);
    {
      transaction tx(p);
      CHECK_FALSE(tx.changed());
      CHECK(t->balance[3] == 100);  // reads change nothing
      CHECK_FALSE(tx.changed());
      tx.set(t->balance[3], std::uint64_t{7});
      CHECK(tx.changed());
      tx.commit();
      CHECK_FALSE(tx.changed());  // ended
    }
    {
      transaction tx(p);
      tx.alloc(64);
      CHECK(tx.changed());
      tx.abort();
    }
    {
      transaction tx(p);
      tx.free(p.root("accounts"));
      CHECK(tx.changed());
      tx.abort();
    }
    transaction again(p);  // a new block on the same thread starts unchanged
    CHECK_FALSE(again.changed());
  }
}
