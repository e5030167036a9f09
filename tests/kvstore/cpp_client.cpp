// The C++ client (kvstore/client) against a running pobj-kv, driven by cpp_client_test.py:
//   cpp_client PORT objects      threads sharing barriers, latches, semaphores, futures, counters
//   cpp_client PORT count N RUN  N exactly-once increments of RUN:count (the driver kills and
//                                restarts the server meanwhile); prints their total
// Exits 0 when every check holds; prints what failed otherwise.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <pobjkv/client.hpp>

namespace {

int failures = 0;
std::mutex out_mu;

void check(bool ok, const std::string& what) {
  if (ok) return;
  std::lock_guard lock(out_mu);
  std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  ++failures;
}

void objects(pobjkv::options o) {
  using namespace std::chrono_literals;
  pobjkv::client kv(o);
  const std::string run = std::to_string(std::random_device{}());
  // A barrier for 8 threads, three generations: each generation's indices are 0..7.
  {
    constexpr int parties = 8, rounds = 3;
    std::vector<std::vector<std::int64_t>> got(rounds);
    std::mutex mu;
    std::vector<std::thread> ts;
    for (int t = 0; t < parties; ++t) {
      ts.emplace_back([&] {
        pobjkv::client mine(o);
        auto b = mine.barrier(run + ":barrier", parties);
        for (int r = 0; r < rounds; ++r) {
          auto i = b.await();
          std::lock_guard lock(mu);
          got[static_cast<std::size_t>(r)].push_back(i.value_or(-1));
        }
      });
    }
    for (auto& t : ts) t.join();
    for (int r = 0; r < rounds; ++r) {
      std::set<std::int64_t> s(got[static_cast<std::size_t>(r)].begin(), got[static_cast<std::size_t>(r)].end());
      check(s.size() == parties && *s.begin() == 0 && *s.rbegin() == parties - 1, "barrier indices, round " + std::to_string(r));
    }
    check(!kv.barrier(run + ":lonely", 2).await(100ms).has_value(), "barrier timeout");
  }
  // Latch: four waiters, four count-downs.
  {
    auto latch = kv.latch(run + ":latch");
    check(latch.create(4), "latch create");
    check(!latch.create(4), "latch create twice");
    std::atomic<int> released{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&] {
        pobjkv::client mine(o);
        if (mine.latch(run + ":latch").await(20s)) ++released;
      });
    }
    std::this_thread::sleep_for(50ms);
    for (int t = 0; t < 4; ++t) latch.count_down();
    for (auto& t : ts) t.join();
    check(released == 4, "latch released its waiters");
    check(latch.count() == 0, "latch count");
  }
  // Semaphore of 2 permits, 8 threads: never more than 2 inside; none lost.
  {
    auto sem = kv.semaphore_at(run + ":sem");
    check(sem.create(2), "semaphore create");
    std::atomic<int> inside{0}, peak{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
      ts.emplace_back([&] {
        pobjkv::client mine(o);
        auto s = mine.semaphore_at(run + ":sem");
        for (int i = 0; i < 10; ++i) {
          s.acquire();
          const int now = ++inside;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          std::this_thread::sleep_for(1ms);
          --inside;
          s.release();
        }
      });
    }
    for (auto& t : ts) t.join();
    check(peak <= 2 && peak >= 1, "semaphore bounded concurrency, peak " + std::to_string(peak.load()));
    check(sem.available() == 2, "semaphore permits all back");
    auto lease = sem.acquire_leased(200ms, 2);
    check(lease.has_value(), "leased acquire");
    check(!sem.acquire(1, 50ms), "acquire times out while leased");
    check(sem.acquire(1, 5s), "acquire after the lease ran out");
    check(sem.release_lease(*lease) == 0, "an expired lease gives nothing back");
    sem.release();
  }
  // Futures.
  {
    auto f = kv.future_at<std::int64_t>(run + ":future");
    std::optional<std::int64_t> seen;
    std::thread getter([&] {
      pobjkv::client mine(o);
      seen = mine.future_at<std::int64_t>(run + ":future").get(20s);
    });
    std::this_thread::sleep_for(50ms);
    check(f.set(42), "future set");
    check(!f.set(43), "future set once");
    getter.join();
    check(seen == 42, "future get");
    check(!kv.future_at<std::string>(run + ":never").get(50ms).has_value(), "future timeout");
  }
  // Counters, CAS, maps, lists, queues.
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
      ts.emplace_back([&] {
        pobjkv::client mine(o);
        auto c = mine.atomic_long_at(run + ":counter");
        for (int i = 0; i < 200; ++i) c.increment_and_get();
      });
    }
    for (auto& t : ts) t.join();
    check(kv.atomic_long_at(run + ":counter").get() == 1600, "counter");
    auto c = kv.atomic_long_at(run + ":counter");
    check(c.compare_and_set(1600, 7), "CAS");
    check(!c.compare_and_set(1600, 8), "CAS mismatch");
    auto r = kv.atomic_ref_at(run + ":ref");
    check(r.compare_and_set(std::nullopt, "a") && r.get() == "a", "atomic_ref");
    auto m = kv.map_at(run + ":map");
    m.put("f", "v");
    check(m.get("f") == "v" && m.size() == 1 && m.items().size() == 1, "map");
    auto q = kv.queue_at(run + ":queue");
    q.put("1");
    q.put("2");
    check(q.poll() == "1" && q.poll() == "2" && !q.poll(), "queue");
    auto l = kv.list_at(run + ":list");
    l.push_back("x");
    check(l.range() == std::vector<std::string>{"x"}, "list");
    try {
      kv.call({"LATCH.COUNTDOWN", run + ":nolatch"});
      check(false, "an error reply throws");
    } catch (const pobjkv::server_error& e) {
      check(std::string(e.what()).find("no such latch") != std::string::npos, "error text");
    }
  }
}

// A user's shared object (tests/codegen/inputs/ledger.hpp, loaded by the server): typed
// arguments sent as text, results read back, threads calling at once, each call once.
void ledger(const pobjkv::options& o) {
  pobjkv::client kv(o);
  const std::string run = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  auto acct = kv.object_at(run + ":acct", "ledger::account");
  check(acct.class_name() == "ledger::account", "class name");
  check(kv.object_at(run + ":acct", "ledger::account").call("deposit", 0).integer == 0, "made once");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      pobjkv::client mine(o);
      auto a = mine.object_at(run + ":acct");
      for (int i = 0; i < 50; ++i) a.call("deposit", std::int64_t{t + 1});
    });
  }
  for (auto& t : threads) t.join();
  check(acct.call("deposit", 0).integer == 50 * (1 + 2 + 3 + 4), "deposits from threads");
  check(acct.call("withdraw", 100, std::string("rent")).integer == 1, "withdraw with a string argument");
  check(acct.call("rename", "ada").text == "OK", "a void method replies OK");
  check(acct.call("summary").text == "ada: 400", "a string result");
  check(acct.call("sign", -5, true).integer == 1, "integer and bool arguments");
  check(acct.call_as(run + ":once", "deposit", 1).integer == 401, "a call with a request id");
  check(acct.call_as(run + ":once", "deposit", 1).integer == 401, "its retry answers the stored reply");
  auto s = kv.object_at(run + ":savings", "ledger::savings");
  check(std::stod(s.call("accrue", 0.25, 0.125f).text) == 0.125, "floating point arguments, exactly");
  check(acct.fields()->find("balance: 401") != std::string::npos, "fields");
  try {
    acct.call("deposit", "ten");
    check(false, "a bad argument throws");
  } catch (const pobjkv::server_error& e) {
    check(std::string(e.what()).find("is not an integer") != std::string::npos, "bad argument text");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: cpp_client PORT objects|ledger | cpp_client PORT count N RUN\n");
    return 2;
  }
  pobjkv::options o;
  o.port = std::atoi(argv[1]);
  const std::string mode = argv[2];
  if (mode == "objects") {
    objects(o);
  } else if (mode == "ledger") {
    ledger(o);
  } else if (mode == "count" && argc == 5) {
    pobjkv::client kv(o);
    const int n = std::atoi(argv[3]);
    const std::string run = argv[4];
    std::int64_t total = 0;
    for (int i = 0; i < n; ++i) {
      const int by = i % 5 + 1;
      kv.call({"INCRBY", run + ":count", std::to_string(by)});
      total += by;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::printf("%lld\n", static_cast<long long>(total));
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  if (failures == 0) std::fprintf(stderr, "ok\n");
  return failures == 0 ? 0 : 1;
}
