// replication/log_store under the crash simulator: a replica persisting Readies (entries that
// replace a tail, hard states) and applying committed entries each with its index, crashed at
// every fence. After recovery the log is contiguous, the hard state commits only entries held,
// and the state machine holds exactly the entries up to the applied index: none lost, none twice.
#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>
#include <pobj/testing/crash_harness.hpp>

#include "log_store.hpp"
#include "test_util.hpp"

using pobj::repl::entry_type;
using pobj::repl::log_store;
using pobj::testing::expect;

namespace {

using sm_map = pobj::ordered_map<std::uint64_t, pobj::bytes>;

pobj::ordered_map_ref<std::uint64_t, pobj::bytes> sm(pobj::pool& p) { return {p, sm_map{p.root("test.sm")}}; }

// The workload's steps: persist entries (2..9 of term 1), apply 2..5, persist 7..12 of term 2 (a
// new leader replacing 7..9), apply 6..10, compact to 8.
void workload(pobj::testing::crash_context& ctx) {
  pobj::pool& p = ctx.pool();
  log_store s(p);
  auto persist = [&](std::uint64_t from, std::uint64_t to, std::uint64_t term, std::uint64_t commit) {
    pobj::repl::ready rd;
    for (std::uint64_t i = from; i <= to; ++i)
      rd.entries.push_back({i, term, entry_type::normal, "t" + std::to_string(term) + "-" + std::to_string(i)});
    rd.hard = pobj::repl::hard_state{term, 1, commit};
    ctx.begin_op();
    pobj::run_tx(p, [&](pobj::transaction& tx) { s.save(tx, rd); });
    ctx.end_op();
  };
  auto apply = [&](std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t i = from; i <= to; ++i) {
      ctx.begin_op();
      pobj::run_tx(p, [&](pobj::transaction& tx) {
        sm(p).insert(tx, i, s.entry(i)->data);
        s.set_applied(tx, i);
      });
      ctx.end_op();
    }
  };
  persist(2, 9, 1, 5);
  apply(2, 5);
  persist(7, 12, 2, 10);
  apply(6, 10);
  ctx.begin_op();
  pobj::run_tx(p, [&](pobj::transaction& tx) { s.compact(tx, 8); });
  ctx.end_op();
}

void verify(pobj::pool& p, const pobj::testing::crash_point& pt) {
  log_store s(p);
  const auto st = s.load();
  // Contiguous after the snapshot, terms never falling.
  std::uint64_t expect_index = st.snapshot.index + 1, term = st.snapshot.term;
  for (const auto& e : st.entries) {
    expect(e.index == expect_index, "{}: entry {} where {} was expected", pt.describe(), e.index, expect_index);
    expect(e.term >= term, "{}: entry {} has term {} after term {}", pt.describe(), e.index, e.term, term);
    ++expect_index;
    term = e.term;
  }
  expect(st.hard.commit <= s.last_index(), "{}: commit {} past the last entry {}", pt.describe(), st.hard.commit,
         s.last_index());
  expect(st.applied <= st.hard.commit, "{}: applied {} past commit {}", pt.describe(), st.applied, st.hard.commit);
  // The state machine holds 2..applied exactly, each entry as the log that was committed said.
  std::uint64_t n = 0;
  sm(p).for_each([&](std::uint64_t i, const std::string& d) {
    ++n;
    expect(i >= 2 && i <= st.applied, "{}: entry {} applied but the applied index is {}", pt.describe(), i, st.applied);
    const std::string want = (i <= 6 ? "t1-" : "t2-") + std::to_string(i);
    expect(d == want, "{}: entry {} applied as '{}', not '{}'", pt.describe(), i, d, want);
  });
  expect(n == (st.applied >= 2 ? st.applied - 1 : 0), "{}: {} entries applied, applied index {}", pt.describe(), n,
         st.applied);
  // Entries 7..9 of term 1 never survive once the term-2 Ready is persisted.
  if (pt.ops_completed >= 6)
    for (const auto& e : st.entries)
      expect(e.index < 7 || e.term == 2, "{}: stale entry {} of term {}", pt.describe(), e.index, e.term);
}

}  // namespace

TEST_CASE("the raft log and the applied index are failure-atomic at every fence", "[replication][crash]") {
  pobj::testing::crash_test t;
  t.name = "raft log store";
  t.options = pobj_test::small_options();
  t.setup = [](pobj::pool& p) {
    log_store s(p);
    s.bootstrap({"g", 1}, std::vector<std::uint64_t>{1, 2, 3});
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      p.set_root("test.sm", pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx).offset);
    });
  };
  t.workload = workload;
  t.verify = verify;
  const auto result = pobj::testing::run(t);
  INFO(result.summary());
  for (const auto& f : result.failures) WARN(f);
  CHECK(result.ok());
  CHECK(result.points > 0);
}
