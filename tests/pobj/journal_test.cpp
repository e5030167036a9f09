// Page mode's journal (pobj/src/media/journal.hpp): what reaches the file and when, recovery after a
// power failure, group commit across threads, deferred commits, and the journal file's life
// beside its pool. Crashes at every prefix of the journal: tests/crash/journal_crash_test.cpp.
#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

#include "test_util.hpp"

using namespace pobj;

namespace {

pool_options page_options() {
  pool_options o = pobj_test::small_options();
  o.mode = persist_mode::page;
  o.journal_size = 4 * MiB;
  return o;
}

struct counters {
  std::uint64_t n[8];
};

offset_t make_counters(pool& p) {
  offset_t off = 0;
  run_tx(p, [&](transaction& tx) {
    allocation a = tx.alloc(sizeof(counters));
    std::memset(a.pointer, 0, sizeof(counters));
    p.set_root("counters", a.offset);
    off = a.offset;
  });
  return off;
}

// A new page-mode pool holding counters, closed cleanly; returns where the counters are.
offset_t pool_with_counters(const std::string& path) {
  pool p = pool::create(path, page_options());
  return make_counters(p);
}

// Page mode that never writes the pool file after open: as if power failed after every sync.
pool_options power_fails() {
  pool_options o = page_options();
  o.journal_apply = false;
  return o;
}

void bump(pool& p, counters& c, int i) {
  run_tx(p, [&](transaction& tx) {
    tx.snapshot(&c.n[i], 8);
    ++c.n[i];
  });
}

}  // namespace

TEST_CASE("page mode keeps stores out of the file until a sync, then journals them first", "[journal]") {
  pobj_test::scratch_path path("journal-order");
  pool p = pool::create(path, page_options());
  CHECK(p.mode() == persist_mode::page);
  CHECK(p.media().ordered());
  CHECK(std::filesystem::exists(path.str() + ".journal"));
  auto& c = *p.at<counters>(make_counters(p));
  const offset_t at = p.offset_of(&c.n[0]);
  auto file_word = [&] {
    std::vector<char> f = pobj_test::read_file(path);
    std::uint64_t v;
    std::memcpy(&v, f.data() + at, 8);
    return v;
  };
  // A store that nobody flushes never reaches the file: the mapping is private.
  c.n[1] = 77;
  const auto before = p.media().journal_figures();
  bump(p, c, 0);
  const auto after = p.media().journal_figures();
  CHECK(after.syncs == before.syncs + 1);  // one fdatasync for the whole block
  CHECK(file_word() == 1);                 // applied once the record is durable
  std::vector<char> f = pobj_test::read_file(path);
  std::uint64_t n1;
  std::memcpy(&n1, f.data() + at + 8, 8);
  CHECK(n1 == 0);
  c.n[1] = 0;
}

TEST_CASE("a block that logs many ranges waits for the disk once", "[journal]") {
  pobj_test::scratch_path path("journal-once");
  pool p = pool::create(path, page_options());
  auto& c = *p.at<counters>(make_counters(p));
  const auto before = p.media().journal_figures();
  run_tx(p, [&](transaction& tx) {
    for (int i = 0; i < 8; ++i) {  // eight snapshot calls: eight fences in cache_line mode
      tx.snapshot(&c.n[i], 8);
      c.n[i] = 10 + static_cast<std::uint64_t>(i);
    }
  });
  CHECK(p.media().journal_figures().syncs == before.syncs + 1);
}

TEST_CASE("page mode recovers committed blocks that never reached the file", "[journal]") {
  pobj_test::scratch_path path("journal-recover");
  const offset_t off = pool_with_counters(path);
  {
    pool p = pool::open(path, power_fails());  // the file never sees the blocks
    auto& c = *p.at<counters>(off);
    for (int i = 0; i < 50; ++i) bump(p, c, i % 8);
  }
  pool p = pool::open(path, page_options());
  CHECK(p.recovery().journal_records >= 50);
  auto& c = *p.at<counters>(off);
  std::uint64_t total = 0;
  for (auto v : c.n) total += v;
  CHECK(total == 50);
  CHECK(p.heap().check().ok());
  p.close();
  // A clean close checkpoints: nothing to replay the next time.
  pool again = pool::open(path, page_options());
  CHECK(again.recovery().journal_records == 0);
}

TEST_CASE("a deferred commit is atomic at once and durable after its ticket syncs", "[journal]") {
  pobj_test::scratch_path path("journal-deferred");
  const offset_t off = pool_with_counters(path);
  {
    pool p = pool::open(path, power_fails());
    auto& c = *p.at<counters>(off);
    transaction tx(p);
    tx.snapshot(&c.n[0], 8);
    c.n[0] = 5;
    const auto syncs = p.media().journal_figures().syncs;
    std::uint64_t ticket = tx.commit_deferred();
    CHECK(p.media().journal_figures().syncs == syncs);  // nothing waited for the disk
    CHECK_FALSE(p.media().durable(ticket));
    p.media().sync(ticket);
    CHECK(p.media().durable(ticket));
    CHECK(p.media().journal_figures().syncs == syncs + 1);
  }
  pool p = pool::open(path, page_options());
  CHECK(p.at<counters>(off)->n[0] == 5);
}

TEST_CASE("outside page mode a deferred commit is durable when it returns", "[journal]") {
  pobj_test::scratch_path path("journal-byte");
  pool p = pool::create(path, pobj_test::small_options());
  CHECK_FALSE(p.media().ordered());
  auto& c = *p.at<counters>(make_counters(p));
  transaction tx(p);
  tx.snapshot(&c.n[0], 8);
  c.n[0] = 5;
  CHECK(p.media().durable(tx.commit_deferred()));
  CHECK_FALSE(std::filesystem::exists(path.str() + ".journal"));
}

TEST_CASE("threads committing in page mode share fdatasyncs and lose nothing", "[journal][threads]") {
  pobj_test::scratch_path path("journal-threads");
  offset_t off;
  constexpr int threads = 4, each = 150;
  std::uint64_t syncs = 0;
  {
    pool p = pool::create(path, page_options());
    off = make_counters(p);
    auto& c = *p.at<counters>(off);
    const auto before = p.media().journal_figures().syncs;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < each; ++i) bump(p, c, t);
      });
    }
    for (auto& t : ts) t.join();
    syncs = p.media().journal_figures().syncs - before;
  }
  INFO(syncs << " fdatasyncs for " << threads * each << " blocks");
  pool p = pool::open(path, page_options());
  auto& c = *p.at<counters>(off);
  for (int t = 0; t < threads; ++t) CHECK(c.n[t] == each);
}

TEST_CASE("a pool's journal lives and dies with it", "[journal]") {
  pobj_test::scratch_path path("journal-life");
  const std::string journal = path.str() + ".journal";
  offset_t off;
  {
    pool p = pool::create(path, page_options());
    off = make_counters(p);
    bump(p, *p.at<counters>(off), 0);
  }
  CHECK(std::filesystem::exists(journal));
  // Another pool's journal at this path (the pool file was replaced) is ignored, then reset.
  pobj_test::scratch_path other("journal-other");
  {
    pool q = pool::create(other, power_fails());
    auto& c = *q.at<counters>(make_counters(q));
    for (int i = 0; i < 5; ++i) bump(q, c, 0);
  }
  std::filesystem::copy_file(other.str() + ".journal", journal, std::filesystem::copy_options::overwrite_existing);
  {
    pool p = pool::open(path, page_options());
    CHECK(p.recovery().journal_records == 0);
    CHECK(p.at<counters>(off)->n[0] == 1);
  }
  // A damaged header is refused with a clear error, not ignored.
  {
    std::vector<char> j = pobj_test::read_file(journal);
    j[3] ^= 1;
    pobj_test::write_file(journal, j);
    try {
      pool::open(path, page_options());
      FAIL("opened");
    } catch (const error& e) {
      CHECK(e.code() == errc::corrupt);
      CHECK(std::string(e.what()).find("journal") != std::string::npos);
    }
  }
  CHECK(pool::remove(path));
  CHECK_FALSE(std::filesystem::exists(path.str()));
  CHECK_FALSE(std::filesystem::exists(journal));
  CHECK_FALSE(pool::remove(path));
  // create() discards a journal left at its path.
  pobj_test::write_file(journal, std::vector<char>(100, 'x'));
  pool p = pool::create(path, page_options());
  CHECK(p.recovery().journal_records == 0);
}

TEST_CASE("a journal much smaller than the data written checkpoints and keeps going", "[journal]") {
  pobj_test::scratch_path path("journal-laps");
  pool_options o = page_options();
  o.journal_size = 256 * KiB;
  offset_t off;
  {
    pool p = pool::create(path, o);
    off = make_counters(p);
    auto& c = *p.at<counters>(off);
    for (int i = 0; i < 200; ++i) bump(p, c, i % 8);  // each record takes a 4 KiB block
    CHECK(p.media().journal_figures().checkpoints >= 2);
    // One flush larger than a record's limit is split across records.
    run_tx(p, [&](transaction& tx) {
      allocation a = tx.alloc(200 * KiB);
      std::memset(a.pointer, 0x3c, 200 * KiB);
      p.set_root("big", a.offset);
    });
  }
  pool p = pool::open(path, o);
  std::uint64_t total = 0;
  for (auto v : p.at<counters>(off)->n) total += v;
  CHECK(total == 200);
  auto* big = p.at<unsigned char>(p.root("big"));
  CHECK(big[0] == 0x3c);
  CHECK(big[200 * KiB - 1] == 0x3c);
}
