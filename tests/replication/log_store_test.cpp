// replication/log_store: the Raft log and state in a pool.
#include <catch2/catch.hpp>
#include <pobj/pobj.hpp>

#include "log_store.hpp"
#include "test_util.hpp"

using pobj::repl::entry_type;
using pobj::repl::log_entry;
using pobj::repl::log_store;
using pobj::repl::ready;

namespace {

ready entries(std::uint64_t from, std::uint64_t to, std::uint64_t term, const std::string& tag = "e") {
  ready rd;
  for (std::uint64_t i = from; i <= to; ++i) rd.entries.push_back({i, term, entry_type::normal, tag + std::to_string(i)});
  return rd;
}

void save(pobj::pool& p, log_store& s, const ready& rd) {
  pobj::run_tx(p, [&](pobj::transaction& tx) { s.save(tx, rd); });
}

}  // namespace

TEST_CASE("a founding member's log starts with one conf change per founder, committed", "[replication]") {
  pobj_test::scratch_path path("raftlog");
  auto p = pobj::pool::create(path, pobj_test::small_options());
  log_store s(p);
  CHECK_FALSE(s.initialized());
  const std::vector<std::uint64_t> voters{1, 2, 3};
  s.bootstrap({"g", 2}, voters);
  CHECK(s.initialized());
  CHECK(*s.identity() == pobj::repl::member_identity{"g", 2});
  const auto st = s.load();
  CHECK(st.snapshot.index == 0);
  CHECK(st.hard == pobj::repl::hard_state{1, 0, 3});
  CHECK(st.applied == 0);
  REQUIRE(st.entries.size() == 3);
  for (std::uint64_t i = 1; i <= 3; ++i)
    CHECK(st.entries[i - 1] ==
          log_entry{i, 1, entry_type::conf_change, pobj::repl::conf_change_data(pobj::repl::conf_op::add_voter, i)});
  CHECK(s.members().voters.empty());  // nothing applied yet
  // A second bootstrap (or join) of the same pool is refused, naming what it holds.
  CHECK_THROWS_WITH(s.bootstrap({"h", 1}, voters), Catch::Contains("already holds member 2 of group 'g'"));
  CHECK_THROWS_WITH(s.join({"g", 4}), Catch::Contains("already holds member 2"));
  CHECK_THROWS_WITH(log_store(p).bootstrap({"g", 0}, voters), Catch::Contains("must not be 0"));
}

TEST_CASE("entries a new leader sends replace the log's unmatched tail, and survive a reopen", "[replication]") {
  pobj_test::scratch_path path("raftlog");
  {
    auto p = pobj::pool::create(path, pobj_test::small_options());
    log_store s(p);
    s.bootstrap({"g", 1}, std::vector<std::uint64_t>{1, 2, 3});
    save(p, s, entries(4, 10, 2, "old"));
    CHECK(s.last_index() == 10);
    // A leader of term 3 overwrites from index 6: 7..10 of term 2 must go, even those it does not resend.
    ready rd = entries(6, 7, 3, "new");
    rd.hard = pobj::repl::hard_state{3, 2, 5};
    save(p, s, rd);
    CHECK(s.last_index() == 7);
    CHECK(s.size() == 7);
    CHECK(s.entry(5)->data == "old5");
    CHECK(s.entry(6)->data == "new6");
    CHECK(s.entry(6)->term == 3);
    CHECK_FALSE(s.entry(8));
    pobj::run_tx(p, [&](pobj::transaction& tx) { s.set_applied(tx, 5); });
  }
  auto p = pobj::pool::open(path, pobj_test::small_options());
  log_store s(p);
  const auto st = s.load();
  CHECK(st.hard == pobj::repl::hard_state{3, 2, 5});
  CHECK(st.applied == 5);
  REQUIRE(st.entries.size() == 7);
  CHECK(st.entries[3] == log_entry{4, 2, entry_type::normal, "old4"});
  CHECK(st.entries.back() == log_entry{7, 3, entry_type::normal, "new7"});
}

TEST_CASE("compaction drops applied entries only, and the snapshot moves to the last one dropped", "[replication]") {
  pobj_test::scratch_path path("raftlog");
  auto p = pobj::pool::create(path, pobj_test::small_options());
  log_store s(p);
  s.bootstrap({"g", 1}, std::vector<std::uint64_t>{1});
  save(p, s, entries(2, 20, 1));
  pobj::repl::conf_state one;
  one.encoded = "members-after-1";
  one.voters = {1};
  pobj::repl::conf_state two = one;
  two.encoded = "members-after-9";
  two.voters = {1, 2};
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    s.set_members(tx, 1, one);
    s.set_members(tx, 9, two);
    s.set_applied(tx, 12);
  });
  std::uint64_t dropped = 0;
  pobj::run_tx(p, [&](pobj::transaction& tx) { dropped = s.compact(tx, 15); });  // capped at applied
  CHECK(dropped == 12);
  CHECK(s.first_index() == 13);
  CHECK(s.snapshot().index == 12);
  CHECK(s.snapshot().term == 1);
  // The snapshot names the members as of its index; those are still known after compaction.
  CHECK(s.snapshot().conf == "members-after-9");
  CHECK(s.members().voters == std::vector<std::uint64_t>{1, 2});
  CHECK(s.members_at(5).encoded == "");  // before the snapshot: no longer known
  CHECK(s.last_index() == 20);
  const auto st = s.load();
  REQUIRE(st.entries.size() == 8);
  CHECK(st.entries.front().index == 13);
  // Compacting again where nothing is held drops nothing.
  pobj::run_tx(p, [&](pobj::transaction& tx) { dropped = s.compact(tx, 5); });
  CHECK(dropped == 0);
}

TEST_CASE("a snapshot received replaces the whole log", "[replication]") {
  pobj_test::scratch_path path("raftlog");
  auto p = pobj::pool::create(path, pobj_test::small_options());
  log_store s(p);
  s.join({"g", 4});
  save(p, s, entries(1, 3, 1));
  ready rd;
  rd.snapshot = pobj::repl::snapshot_meta{50, 4, "members-at-50"};
  save(p, s, rd);
  CHECK(s.size() == 0);
  CHECK(s.first_index() == 51);
  CHECK(s.last_index() == 50);
  CHECK(s.load().snapshot.term == 4);
  CHECK(s.load().snapshot.conf == "members-at-50");
}

TEST_CASE("a copy of another member's pool is adopted: identity, hard state, empty log, applied at its index",
          "[replication]") {
  pobj_test::scratch_path path("raftlog");
  auto p = pobj::pool::create(path, pobj_test::small_options());
  log_store s(p);
  const std::vector<std::uint64_t> voters{1, 2, 3};
  s.bootstrap({"g", 1}, voters);  // the leader's pool, as copied
  save(p, s, entries(4, 40, 2));
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    s.set_applied(tx, 30);
    s.set_client_address(tx, 1, "10.0.0.1:7379");
    s.set_raft_address(tx, 4, "10.0.0.4:7604");
  });
  pobj::repl::conf_state members{"enc", {1, 2, 4}, {}};
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    s.adopt(tx, {"g", 4}, pobj::repl::hard_state{7, 2, 30}, {30, 2, members.encoded}, members);
  });
  for (int reopened = 0; reopened < 2; ++reopened) {
    log_store t(p);
    CHECK(*t.identity() == pobj::repl::member_identity{"g", 4});
    const auto st = t.load();
    CHECK(st.hard == pobj::repl::hard_state{7, 2, 30});
    CHECK(st.applied == 30);
    CHECK(st.snapshot.index == 30);
    CHECK(st.snapshot.term == 2);
    CHECK(st.entries.empty());  // the copied log's entries were the leader's, not this member's
    CHECK(t.first_index() == 31);
    CHECK(t.members().voters == std::vector<std::uint64_t>{1, 2, 4});
    CHECK(t.client_addresses().at(1) == "10.0.0.1:7379");  // routing kept
    CHECK(t.raft_addresses().at(4) == "10.0.0.4:7604");
    p.close();
    p = pobj::pool::open(path, pobj_test::small_options());
  }
  // A copy of another group's pool is refused.
  log_store u(p);
  CHECK_THROWS_WITH(pobj::run_tx(p, [&](pobj::transaction& tx) {
                      u.adopt(tx, {"other", 4}, pobj::repl::hard_state{7, 0, 30}, {30, 2, members.encoded}, members);
                    }),
                    Catch::Contains("is a copy of group 'g'"));
}
