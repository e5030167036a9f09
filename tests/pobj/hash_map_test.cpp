// pobj::hash_map: the operations, growth through splits, persistence across reopening, no leak,
// byte-string keys, and concurrent use checked for linearizability (also under TSan).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>

#include "types/containers_impl.hpp"
#include "pool/pool_impl.hpp"
#include "history.hpp"
#include "test_util.hpp"

namespace {

using bytes_map = pobj::hash_map<std::uint64_t, pobj::bytes>;

bytes_map root_map(pobj::pool& p) {
  if (pobj::offset_t off = p.root("map"); off != 0) return bytes_map{off};
  return pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto m = pobj::make_hash_map<std::uint64_t, pobj::bytes>(tx);
    p.set_root("map", m.offset);
    return m;
  });
}

std::string value_for(std::uint64_t k, int version = 0) {
  return std::string(static_cast<std::size_t>(k % 200), static_cast<char>('a' + k % 26)) + std::to_string(version);
}

}  // namespace

TEST_CASE("hash_map inserts, finds, replaces and erases, and grows by splitting", "[hash_map]") {
  pobj_test::scratch_path path("hmap");
  constexpr std::uint64_t n = 5000;
  std::size_t used_before = 0;
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, root_map(p));
    used_before = p.heap().stats().bytes_used;
    for (std::uint64_t k = 0; k < n; ++k) CHECK(m.insert(k, value_for(k)));
    CHECK_FALSE(m.insert(7, "ignored"));  // present: unchanged
    CHECK(*m.find(7) == value_for(7));
    CHECK_FALSE(m.insert_or_assign(7, value_for(7, 1)));  // replaced
    CHECK(*m.find(7) == value_for(7, 1));
    CHECK(m.erase(8));
    CHECK_FALSE(m.erase(8));
    CHECK_FALSE(m.find(8));
    CHECK(m.size() == n - 1);
    CHECK(p.heap().check().ok());
  }
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, root_map(p));
  CHECK(m.size() == n - 1);
  for (std::uint64_t k = 0; k < n; ++k) {
    auto v = m.find(k);
    if (k == 8) {
      CHECK_FALSE(v);
    } else {
      REQUIRE(v);
      CHECK(*v == value_for(k, k == 7 ? 1 : 0));
    }
  }
  std::uint64_t seen = 0;
  m.for_each([&](std::uint64_t k, const std::string& v) {
    ++seen;
    CHECK(v == value_for(k, k == 7 ? 1 : 0));
  });
  CHECK(seen == n - 1);
  CHECK(p.heap().check().ok());
  (void)used_before;
}

TEST_CASE("destroying a hash_map frees every block it had", "[hash_map]") {
  pobj_test::scratch_path path("hmap-destroy");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  const std::size_t used_before = p.heap().stats().bytes_used;
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, root_map(p));
  for (std::uint64_t k = 0; k < 300; ++k) m.insert(k, value_for(k));  // a few splits
  CHECK(p.heap().stats().bytes_used > used_before);
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::destroy(tx, root_map(p));
    p.remove_root("map");
  });
  CHECK(p.heap().stats().bytes_used == used_before);
  CHECK(p.heap().check().ok());
}

TEST_CASE("hash_map keys and values may be any byte strings", "[hash_map]") {
  pobj_test::scratch_path path("hmap-bytes");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto handle = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_hash_map<pobj::bytes, pobj::bytes>(tx); });
  p.set_root("m", handle.offset);
  pobj::hash_map_ref<pobj::bytes, pobj::bytes> m(p, handle);
  const std::string binary("a\0b\0c", 5), long_key(3000, 'k');
  CHECK(m.insert("", "empty key"));
  CHECK(m.insert(binary, ""));
  CHECK(m.insert(long_key, std::string(10000, 'v')));
  CHECK(*m.find("") == "empty key");
  CHECK(m.find(binary)->empty());
  CHECK(m.find(long_key)->size() == 10000);
  CHECK_FALSE(m.find(std::string("a\0b\0d", 5)));
  CHECK(m.size() == 3);
  using ref_type = pobj::hash_map_ref<pobj::bytes, pobj::bytes>;
  const pobj::hash_map<pobj::bytes, pobj::bytes> not_a_map{p.root("m") + 8};
  CHECK_THROWS_AS(ref_type(p, not_a_map), pobj::error);
}

TEST_CASE("concurrent hash_map histories are linearizable", "[hash_map][threads]") {
  // Four threads write unique values to four keys and read them back (tests/pobj/history.hpp).
  pobj_test::scratch_path path("hmap-lin");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::hash_map_ref<std::uint64_t, std::uint64_t> m(p, pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto h = pobj::make_hash_map<std::uint64_t, std::uint64_t>(tx);
    p.set_root("m", h.offset);
    return h;
  }));
  const auto history = pobj_test::record_register_history(
      4, 400, 4, [&](std::uint64_t k, std::uint64_t v) { m.insert_or_assign(k, v); },
      [&](std::uint64_t k, int) { return m.find(k).value_or(0); });
  CHECK(pobj_test::register_violations(history) == 0);
  CHECK(m.size() <= 4);
}

TEST_CASE("hash_map memory overhead per entry, beyond key and value bytes", "[hash_map]") {
  // pmemkv's benchmark shape: 8-byte keys, 100-byte values. docs/types.md states the figure.
  pobj_test::scratch_path path("hmap-memory");
  pobj::pool_options o = pobj_test::small_options();
  o.size = 64 * pobj::MiB;
  pobj::pool p = pobj::pool::create(path, o);
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, root_map(p));
  const std::size_t before = p.heap().stats().bytes_used;
  constexpr std::uint64_t n = 100000;
  const std::string v(100, 'x');
  for (std::uint64_t k = 0; k < n; ++k) m.insert(k * 0x9e3779b97f4a7c15ULL, v);
  const double overhead = static_cast<double>(p.heap().stats().bytes_used - before - n * (8 + 100)) / n;
  INFO("overhead per entry: " << overhead << " bytes");
  CHECK(overhead <= 32);
}

TEST_CASE("hash_map under concurrent inserts, replacements, erases and reads stays consistent",
          "[hash_map][threads]") {
  // Values of varying lengths (nodes freed and reused, splits, backward shifts), each naming its
  // key: a reader that ever sees another key's value, or garbage, has read a torn state.
  pobj_test::scratch_path path("hmap-stress");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto handle = pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto h = pobj::make_hash_map<std::uint64_t, pobj::bytes>(tx);
    p.set_root("m", h.offset);
    return h;
  });
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, handle);
  auto value_of = [](std::uint64_t k, std::uint64_t r) { return std::to_string(k) + ":" + std::string(r % 50, 'x'); };
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 7);
      for (int i = 0; i < 1500; ++i) {
        const std::uint64_t k = rng() % 600;
        switch (rng() % 4) {
          case 0: m.insert_or_assign(k, value_of(k, rng())); break;
          case 1: m.erase(k); break;
          default: {
            auto v = m.find(k);
            if (v && v->substr(0, v->find(':')) != std::to_string(k)) ++bad;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
  std::uint64_t walked = 0;
  m.for_each([&](std::uint64_t k, const std::string& v) {
    ++walked;
    CHECK(v.substr(0, v.find(':')) == std::to_string(k));
  });
  CHECK(walked == m.size());
  CHECK(p.heap().check().ok());
  CHECK_THROWS_AS(pobj::run_tx(p, [&](pobj::transaction&) { m.erase(1); }), pobj::error);  // not inside a block
}

// Regression: size() summed the segments' counts without regard to writers in flight, so it could
// report an insert that had not committed (and that an abort or a crash would take back).
TEST_CASE("hash_map size() never counts an insert that has not committed", "[hash_map]") {
  pobj_test::scratch_path path("hmap-size");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, root_map(p));
  for (std::uint64_t k = 0; k < 10; ++k) m.insert(k, "v");
  // The only segment, and its stripe (the layout of pobj/src/types/hash_map.cpp).
  std::byte* base = p.base();
  std::uint64_t directory, segment;
  std::memcpy(&directory, base + p.root("map") + 8, 8);
  std::memcpy(&segment, base + directory + 8, 8);
  auto& stripe = p.impl().containers->stripe_of(segment);
  auto* count = reinterpret_cast<std::uint64_t*>(base + segment + 8);
  // Play a writer between its first store and its commit: stripe held, sequence odd, count raised.
  stripe.locked.store(true);
  stripe.seq.fetch_add(1);
  __atomic_store_n(count, std::uint64_t{11}, __ATOMIC_RELEASE);
  std::atomic<std::uint64_t> seen{0};
  std::thread reader([&] { seen = m.size(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // The writer aborts: its count is taken back.
  __atomic_store_n(count, std::uint64_t{10}, __ATOMIC_RELEASE);
  stripe.seq.fetch_add(1);
  stripe.locked.store(false);
  reader.join();
  CHECK(seen.load() == 10);
}

TEST_CASE("hash_map changes given the caller's block commit and roll back with it", "[hash_map]") {
  pobj_test::scratch_path path("hmap-join");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, root_map(p));
  for (std::uint64_t k = 0; k < 50; ++k) m.insert(k, value_for(k));
  const std::size_t used = p.heap().stats().bytes_used;
  // Rolled back: inserts (with splits), replacements and erases, all undone, nothing leaked.
  CHECK_THROWS_AS(pobj::run_tx(p,
                               [&](pobj::transaction& tx) {
                                 for (std::uint64_t k = 50; k < 250; ++k) CHECK(m.insert(tx, k, value_for(k)));
                                 CHECK_FALSE(m.insert_or_assign(tx, 7, value_for(7, 1)));
                                 CHECK(m.erase(tx, 8));
                                 CHECK(m.find(200) == value_for(200));  // visible at once to this thread
                                 CHECK_FALSE(m.contains(8));
                                 throw std::runtime_error("abort");
                               }),
                  std::runtime_error);
  CHECK(m.size() == 50);
  CHECK(m.find(7) == value_for(7));
  CHECK(m.contains(8));
  CHECK_FALSE(m.contains(200));
  CHECK(p.heap().stats().bytes_used == used);
  CHECK(p.heap().check().ok());
  // Committed: all of it, for fewer fences than a block per change would take.
  const std::uint64_t before = pobj::media::thread_counters().drains;
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    for (std::uint64_t k = 50; k < 250; ++k) m.insert(tx, k, value_for(k));
    m.insert_or_assign(tx, 7, value_for(7, 1));
    m.erase(tx, 8);
  });
  CHECK(pobj::media::thread_counters().drains - before < 2 * 202);
  CHECK(m.size() == 249);
  CHECK(m.find(7) == value_for(7, 1));
  CHECK_FALSE(m.contains(8));
  CHECK(p.heap().check().ok());
}

TEST_CASE("a hash_map scan from cursor 0 back to 0 sees every entry that stays, whatever splits meanwhile",
          "[hash_map]") {
  pobj_test::scratch_path path("hmap-scan");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, root_map(p));
  for (std::uint64_t k = 0; k < 1000; ++k) m.insert(k, value_for(k));
  std::map<std::uint64_t, int> seen;
  std::uint64_t cursor = 0, next_key = 1000;
  int calls = 0;
  do {
    cursor = m.scan(cursor, [&](std::uint64_t k, const std::string& v) {
      CHECK(v == value_for(k));
      ++seen[k];
    });
    for (int i = 0; i < 40; ++i, ++next_key) m.insert(next_key, value_for(next_key));  // splits as it goes
    ++calls;
  } while (cursor != 0 && calls < 100000);
  for (std::uint64_t k = 0; k < 1000; ++k) CHECK(seen.count(k) == 1);
  for (const auto& [k, n] : seen) CHECK(n == 1);  // ranges never overlap
  CHECK(calls > 8);
}

TEST_CASE("hash_map empty() agrees with size() through splits and erases", "[hash_map]") {
  pobj_test::scratch_path path("hmap-empty");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, root_map(p));
  CHECK(m.empty());
  for (std::uint64_t k = 0; k < 500; ++k) m.insert(k, value_for(k));  // many segments
  for (std::uint64_t k = 0; k < 499; ++k) {
    m.erase(k);
    REQUIRE_FALSE(m.empty());
  }
  m.erase(499);
  CHECK(m.empty());
  CHECK(m.size() == 0);
}
