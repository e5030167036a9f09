// replication/raft_node: a group of members in one process over an in-memory network, on etcd's
// raft library: elections, the same log applied everywhere, a partitioned leader replaced,
// ReadIndex, restarts from the pool, and a member added at run time.
#include <catch2/catch.hpp>

#include "group_harness.hpp"

using namespace repl_test;
using pobj::repl::role;

namespace {

// Proposes "tag-i" for i in [0, n) at the leader, waiting for each to be applied there (so a
// proposal dropped during an election is proposed again).
void write(group& g, const std::string& tag, int n) {
  int done = 0;
  while (done < n) {
    const std::uint64_t l = g.wait_leader();
    REQUIRE(l != 0);
    member& m = g.at(l);
    const std::string data = tag + "-" + std::to_string(done);
    m.raft->propose(data);
    const bool ok = eventually([&] {
      std::lock_guard lock(m.mu);
      return m.sm().find(m.applied)  // cheap check first: something applied
             && [&] {
                  bool seen = false;
                  m.sm().reverse_scan({}, [&](std::uint64_t, const std::string& d) {
                    if (d == data) seen = true;
                    return !seen;
                  });
                  return seen;
                }();
    }, 2s);
    if (ok) ++done;
  }
}

}  // namespace

TEST_CASE("a three-member group elects one leader and applies the same entries in the same order",
          "[replication][raft]") {
  group g(3);
  const std::uint64_t l = g.wait_leader();
  REQUIRE(l != 0);
  write(g, "a", 200);
  const std::uint64_t last = g.applied(g.at(l));
  REQUIRE(eventually([&] { return g.all_applied(last); }));
  const auto seq = group::sequence(g.at(1));
  CHECK(seq.size() == 200);
  CHECK(group::sequence(g.at(2)) == seq);
  CHECK(group::sequence(g.at(3)) == seq);
  // Each member's log holds what it applied, and its hard state commits it.
  for (auto& m : g.members) {
    CHECK(m->log->applied() >= last);
    CHECK(m->log->hard().commit >= last);
    CHECK(m->log->last_index() >= last);
  }
  g.check_no_errors();
}

TEST_CASE("a partitioned leader is replaced, and catches up when the partition heals", "[replication][raft]") {
  group g(3);
  const std::uint64_t old = g.wait_leader();
  REQUIRE(old != 0);
  write(g, "before", 20);
  std::uint64_t old_term = 0;
  {
    std::lock_guard lock(g.at(old).mu);
    old_term = g.at(old).term;
  }
  g.net.isolate(old, g.ids, true);
  // A proposal at the isolated leader never commits: it cannot reach a majority (and with
  // CheckQuorum it steps down).
  g.at(old).raft->propose("lost");
  std::set<std::uint64_t> rest;
  for (auto id : g.ids)
    if (id != old) rest.insert(id);
  const std::uint64_t now = g.wait_leader(rest);
  REQUIRE(now != 0);
  CHECK(now != old);
  {
    std::lock_guard lock(g.at(now).mu);
    CHECK(g.at(now).term > old_term);
  }
  REQUIRE(eventually([&] {
    std::lock_guard lock(g.at(old).mu);
    return g.at(old).state != role::leader;
  }));
  // Writes go on at the new leader.
  int done = 0;
  while (done < 20) {
    g.at(now).raft->propose("after-" + std::to_string(done));
    ++done;
  }
  const auto settled = [&](member& m) {
    const auto s = group::sequence(m);
    return s.size() == 40;
  };
  REQUIRE(eventually([&] { return settled(g.at(now)); }));
  g.net.isolate(old, g.ids, false);
  REQUIRE(eventually([&] { return settled(g.at(old)); }, 15s));
  const auto seq = group::sequence(g.at(now));
  for (auto& m : g.members) CHECK(group::sequence(*m) == seq);
  CHECK(std::find(seq.begin(), seq.end(), "lost") == seq.end());
  g.check_no_errors();
}

TEST_CASE("a read index from a follower covers every write acknowledged before it", "[replication][raft]") {
  group g(3);
  const std::uint64_t l = g.wait_leader();
  REQUIRE(l != 0);
  write(g, "w", 30);
  const std::uint64_t acked = g.applied(g.at(l));
  member& f = g.at(l == 1 ? 2 : 1);
  f.raft->read_index("ctx-1");
  std::uint64_t index = 0;
  REQUIRE(eventually([&] {
    std::lock_guard lock(f.mu);
    for (auto& r : f.reads)
      if (r.context == "ctx-1") index = r.index;
    return index != 0;
  }));
  CHECK(index >= acked);
  // Isolated, a follower gets no read index (it could be stale).
  g.net.isolate(f.id, g.ids, true);
  f.raft->read_index("ctx-2");
  std::this_thread::sleep_for(300ms);
  {
    std::lock_guard lock(f.mu);
    for (auto& r : f.reads) CHECK(r.context != "ctx-2");
  }
  g.check_no_errors();
}

TEST_CASE("members restarted from their pools keep their log, apply nothing twice and go on", "[replication][raft]") {
  group g(3);
  REQUIRE(g.wait_leader() != 0);
  write(g, "first", 50);
  for (auto& m : g.members) g.stop(*m);
  // Reopen every pool: the replicas start from what the pools hold.
  for (auto& m : g.members) {
    const std::uint64_t id = m->id;
    const std::string path = m->path;
    const std::uint64_t applied = m->log->applied();
    m.reset();
    m = start_member(g.net, id, path, g.ids);
    CHECK(m->log->applied() == applied);
  }
  REQUIRE(g.wait_leader() != 0);
  write(g, "second", 50);
  const std::uint64_t l = g.wait_leader();
  REQUIRE(eventually([&] { return g.all_applied(g.applied(g.at(l))); }));
  const auto seq = group::sequence(g.at(l));
  CHECK(seq.size() == 100);
  for (auto& m : g.members) CHECK(group::sequence(*m) == seq);
  g.check_no_errors();
}

TEST_CASE("a member added at run time catches up from the log, and a removed one stops counting",
          "[replication][raft]") {
  group g(3);
  const std::uint64_t l = g.wait_leader();
  REQUIRE(l != 0);
  write(g, "x", 30);
  pobj_test::scratch_path p4("raftnode");
  g.ids.push_back(4);
  g.members.push_back(start_member(g.net, 4, p4, {}, /*join=*/true));
  g.at(l).raft->propose_conf_change(pobj::repl::conf_op::add_voter, 4);
  REQUIRE(eventually([&] { return group::sequence(g.at(4)).size() == 30; }, 15s));
  CHECK(group::sequence(g.at(4)) == group::sequence(g.at(l)));
  REQUIRE(eventually([&] { return g.at(4).log->members().voters.size() == 4; }));
  // Remove a follower other than the new one; the three left still commit.
  std::uint64_t gone = 0;
  for (auto id : {1, 2, 3})
    if (static_cast<std::uint64_t>(id) != l) gone = static_cast<std::uint64_t>(id);
  g.at(l).raft->propose_conf_change(pobj::repl::conf_op::remove, gone);
  REQUIRE(eventually([&] { return g.at(l).log->members().voters.size() == 3; }));
  g.stop(g.at(gone));
  write(g, "y", 10);
  CHECK(group::sequence(g.at(4)).size() >= 30);
  REQUIRE(eventually([&] { return group::sequence(g.at(4)).size() == 40; }));
  g.check_no_errors();
}
