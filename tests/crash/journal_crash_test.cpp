// Page mode's crash model: a power failure leaves the pool file as of its last checkpoint plus a
// prefix of the journal's records (pobj/src/media/journal.hpp). This test runs a workload with the
// journal never applied to the file (as if power failed after every sync) and records small
// enough that blocks span many of them, then recovers from every prefix of the journal: the
// pool opens, its heap checks clean, the map holds exactly the state after some number of
// operations no smaller than the number acknowledged (synced) by then, and a bank of accounts
// changed by blocks that also allocate and free keeps its total.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/hash_map.hpp>
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

#include "test_util.hpp"

namespace {

using map_type = pobj::hash_map<std::uint64_t, pobj::bytes>;

struct bank {
  std::int64_t accounts[16];
  std::uint64_t transfers;
  pobj::offset_t nodes;  // a list with one node per transfer, the oldest freed every third one
  map_type map;
};

struct node {
  pobj::offset_t next;
  std::uint64_t transfer;
};

struct step {
  bool erase;
  std::uint64_t key;
  std::string value;
};

pobj::pool_options page_options() {
  pobj::pool_options o;
  o.mode = pobj::persist_mode::page;
  o.size = 4 * pobj::MiB;
  o.lanes = 2;
  o.lane_log_size = 16 * pobj::KiB;
  o.journal_size = 16 * pobj::MiB;
  return o;
}

// Record boundaries of a journal file: the offsets of its records, in order.
std::vector<std::size_t> record_offsets(const std::vector<char>& j) {
  std::uint64_t pos;
  std::memcpy(&pos, j.data() + 48, 8);  // journal_header::pos
  std::vector<std::size_t> out;
  while (pos + 32 <= j.size()) {
    std::uint32_t magic;
    std::uint64_t bytes;
    std::memcpy(&magic, j.data() + pos, 4);
    std::memcpy(&bytes, j.data() + pos + 16, 8);
    if (magic != 0x4345524a) break;
    out.push_back(pos);
    pos += (32 + bytes + 4095) / 4096 * 4096;
  }
  return out;
}

void transfer(pobj::pool& p, bank& b, std::uint64_t i) {
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    const int from = static_cast<int>(i % 16), to = static_cast<int>((i * 7 + 3) % 16);
    tx.snapshot({{&b.accounts[from], 8}, {&b.accounts[to], 8}, {&b.transfers, 8}, {&b.nodes, 8}});
    b.accounts[from] -= static_cast<std::int64_t>(i);
    b.accounts[to] += static_cast<std::int64_t>(i);
    pobj::allocation a = tx.alloc(sizeof(node) + 200);  // a few lines, so records split it
    std::memset(a.pointer, static_cast<int>(i), sizeof(node) + 200);
    *static_cast<node*>(a.pointer) = node{b.nodes, i};
    b.nodes = a.offset;
    ++b.transfers;
    if (i % 3 == 2) {  // free the second node, so blocks free as well as allocate
      auto* head = p.at<node>(b.nodes);
      if (head->next != 0) {
        pobj::offset_t victim = head->next;
        tx.snapshot(&head->next, 8);
        head->next = p.at<node>(victim)->next;
        tx.free(victim);
      }
    }
  });
}

}  // namespace

TEST_CASE("page mode recovers from every prefix of its journal", "[crash][journal]") {
  pobj_test::scratch_path path("journal-prefix");
  std::mt19937_64 rng(42);
  {
    pobj::pool p = pobj::pool::create(path, page_options());
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      pobj::allocation a = tx.alloc(sizeof(bank));
      std::memset(a.pointer, 0, sizeof(bank));
      static_cast<bank*>(a.pointer)->map = pobj::make_hash_map<std::uint64_t, pobj::bytes>(tx);
      p.set_root("bank", a.offset);
    });
  }
  const std::vector<char> base = pobj_test::read_file(path);

  // The workload, with the journal never applied: the file stays `base`.
  std::vector<step> steps;
  std::vector<std::uint64_t> synced_after;  // journal records written when op i had returned
  {
    pobj::pool_options o = page_options();
    o.journal_apply = false;
    o.journal_record_limit = 512;
    pobj::pool p = pobj::pool::open(path, o);
    auto& b = *p.at<bank>(p.root("bank"));
    pobj::hash_map_ref<std::uint64_t, pobj::bytes> m(p, b.map);
    for (std::uint64_t i = 0; i < 90; ++i) {
      step s{rng() % 4 == 0, rng() % 24, std::string(rng() % 300, static_cast<char>('a' + i % 26))};
      if (s.erase) {
        m.erase(s.key);
      } else {
        m.insert_or_assign(s.key, s.value);
      }
      transfer(p, b, i);
      steps.push_back(s);
      synced_after.push_back(p.media().journal_figures().syncs);
    }
  }
  const std::vector<char> journal = pobj_test::read_file(path.str() + ".journal");
  const std::vector<std::size_t> records = record_offsets(journal);
  INFO(records.size() << " records");
  REQUIRE(records.size() > 200);  // many per operation: crashes inside blocks

  // The map after each number of completed steps.
  std::vector<std::map<std::uint64_t, std::string>> states(1);
  for (const step& s : steps) {
    states.push_back(states.back());
    if (s.erase) states.back().erase(s.key);
    else states.back()[s.key] = s.value;
  }

  // Every prefix, or (where POBJ_CRASH_POINTS asks for fewer crash points, as the sanitizer builds
  // do) an evenly spread share of them, always including the ends.
  const char* points = std::getenv("POBJ_CRASH_POINTS");
  const std::size_t budget = points != nullptr ? 2 * std::strtoull(points, nullptr, 0) : records.size();
  const std::size_t step = std::max<std::size_t>(1, records.size() / std::max<std::size_t>(1, budget));
  std::vector<std::size_t> prefixes;
  for (std::size_t k = 0; k < records.size(); k += step) prefixes.push_back(k);
  prefixes.push_back(records.size());
  for (const std::size_t k : prefixes) {
    // The first k records survive; the rest never reached the disk.
    std::vector<char> j = journal;
    if (k < records.size()) std::fill(j.begin() + static_cast<std::ptrdiff_t>(records[k]), j.end(), 0);
    pobj_test::write_file(path, base);
    pobj_test::write_file(path.str() + ".journal", j);
    pobj::pool p = pobj::pool::open(path, page_options());
    INFO("prefix of " << k << " records");
    CHECK(p.recovery().journal_records == k);
    auto& b = *p.at<bank>(p.root("bank"));
    std::int64_t total = 0;
    for (auto a : b.accounts) total += a;
    CHECK(total == 0);
    // Acknowledged: every operation whose records were all synced within the first k.
    std::size_t acked = 0;
    while (acked < synced_after.size() && synced_after[acked] <= k) ++acked;
    CHECK(b.transfers >= acked);
    CHECK(b.transfers <= steps.size());
    std::map<std::uint64_t, std::string> got;
    pobj::hash_map_ref<std::uint64_t, pobj::bytes>(p, b.map).for_each(
        [&](std::uint64_t key, auto&& v) { got[key] = std::string(v); });
    bool matches = false;
    for (std::size_t n = acked; n < states.size() && !matches; ++n) matches = got == states[n];
    CHECK(matches);
    std::uint64_t listed = 0;
    for (pobj::offset_t n = b.nodes; n != 0; n = p.at<node>(n)->next) ++listed;
    CHECK(listed == b.transfers - (b.transfers / 3));
    pobj::check_report report = p.heap().check();
    CHECK(report.ok());
  }
}

TEST_CASE("a torn journal record ends recovery there", "[crash][journal]") {
  pobj_test::scratch_path path("journal-torn");
  { pobj::pool p = pobj::pool::create(path, page_options()); }
  const std::vector<char> base = pobj_test::read_file(path);
  {
    pobj::pool_options o = page_options();
    o.journal_apply = false;
    pobj::pool p = pobj::pool::open(path, o);
    for (int i = 0; i < 5; ++i) {
      pobj::run_tx(p, [&](pobj::transaction& tx) {
        pobj::allocation a = tx.alloc(64);
        std::memset(a.pointer, i, 64);
        p.set_root("r" + std::to_string(i), a.offset);
      });
    }
  }
  std::vector<char> j = pobj_test::read_file(path.str() + ".journal");
  const std::vector<std::size_t> records = record_offsets(j);
  REQUIRE(records.size() >= 6);
  // One byte of the fourth record's payload never made it: records 0-2 replay, no more.
  j[records[3] + 40] ^= 0x55;
  pobj_test::write_file(path, base);
  pobj_test::write_file(path.str() + ".journal", j);
  pobj::pool p = pobj::pool::open(path, page_options());
  CHECK(p.recovery().journal_records == 3);
  CHECK(p.heap().check().ok());
}
