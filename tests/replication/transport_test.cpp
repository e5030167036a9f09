// replication/transport: frames over libfabric's tcp;ofi_rxm on loopback: delivered intact,
// refused when of another group, corrupted or from an older incarnation, never held up by a dead
// peer, and carrying a Raft group.
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "group_harness.hpp"
#include "transport.hpp"

using namespace repl_test;
using pobj::repl::peer_address;
using pobj::repl::transport;
using pobj::repl::transport_options;

namespace {

struct inbox {
  std::mutex mu;
  std::vector<std::tuple<std::uint64_t, std::uint8_t, std::string>> got;
  transport::receive_handler handler() {
    return [this](std::uint64_t from, std::uint8_t kind, std::string_view p) {
      std::lock_guard lock(mu);
      got.emplace_back(from, kind, std::string(p));
    };
  }
  std::size_t size() {
    std::lock_guard lock(mu);
    return got.size();
  }
};

transport_options options(std::uint64_t self, std::uint64_t group = 42, std::uint64_t incarnation = 1) {
  transport_options o;
  o.group = group;
  o.self = self;
  o.incarnation = incarnation;
  o.port = 0;
  o.receive_buffers = 8;
  return o;
}

peer_address at(std::uint64_t id, const transport& t) { return {id, "127.0.0.1", t.port()}; }

}  // namespace

TEST_CASE("frames cross between two members intact, in both directions", "[replication][transport]") {
  inbox ia, ib;
  transport a(options(1), ia.handler()), b(options(2), ib.handler());
  CHECK(a.provider() == "tcp;ofi_rxm");
  REQUIRE(a.port() != 0);
  a.add_peer(at(2, b));
  b.add_peer(at(1, a));
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + i / 4096 % 26);
  REQUIRE(a.send(2, 3, "hello"));
  REQUIRE(a.send(2, 4, big));
  REQUIRE(b.send(1, 5, "back"));
  REQUIRE(eventually([&] { return ib.size() == 2 && ia.size() == 1; }));
  std::lock_guard lock(ib.mu);
  std::map<std::uint8_t, std::string> by_kind;
  for (auto& [from, kind, p] : ib.got) {
    CHECK(from == 1);
    by_kind[kind] = p;
  }
  CHECK(by_kind[3] == "hello");
  CHECK(by_kind[4] == big);
  CHECK(std::get<2>(ia.got[0]) == "back");
  CHECK(a.stats().sent >= 2);
  // Too large for the receiver's buffers: refused at the sender.
  CHECK_FALSE(a.send(2, 3, std::string((4 << 20) + 1, 'y')));
  // An unknown peer: refused.
  CHECK_FALSE(a.send(9, 3, "nobody"));
}

TEST_CASE("frames of another group or engine, corrupted ones and those of an older incarnation are refused",
          "[replication][transport]") {
  inbox ia;
  transport a(options(1), ia.handler());
  {
    inbox io;
    transport other(options(2, /*group=*/43), io.handler());
    other.add_peer(at(1, a));
    REQUIRE(other.send(1, 3, "wrong group"));
    REQUIRE(eventually([&] { return a.stats().refused_group >= 1; }));
  }
  {
    // A member that would apply entries differently (another engine fingerprint): refused, and
    // who it was is kept for the operator's log.
    inbox ie;
    auto o = options(2);
    o.engine = 0xfeed;
    transport other_engine(o, ie.handler());
    other_engine.add_peer(at(1, a));
    REQUIRE(other_engine.send(1, 3, "another engine"));
    REQUIRE(eventually([&] { return a.stats().refused_engine >= 1; }));
    CHECK(a.stats().engine_refused_from == 2);
    CHECK(a.stats().engine_refused_value == 0xfeed);
  }
  {
    inbox ic;
    auto o = options(2);
    o.fault_hook = [](std::uint64_t, std::uint8_t) { return pobj::repl::fault{false, false, true, {}}; };
    transport corrupting(o, ic.handler());
    corrupting.add_peer(at(1, a));
    REQUIRE(corrupting.send(1, 3, std::string(100, 'c')));
    REQUIRE(eventually([&] { return a.stats().refused_checksum >= 1; }));
  }
  {
    inbox in5, in4;
    transport newer(options(3, 42, 5), in5.handler());
    newer.add_peer(at(1, a));
    REQUIRE(newer.send(1, 3, "from incarnation 5"));
    REQUIRE(eventually([&] { return ia.size() == 1; }));
    newer.close();
    transport older(options(3, 42, 4), in4.handler());
    older.add_peer(at(1, a));
    REQUIRE(older.send(1, 3, "from incarnation 4"));
    REQUIRE(eventually([&] { return a.stats().refused_stale >= 1; }));
  }
  CHECK(ia.size() == 1);  // only the good frame reached the handler
}

TEST_CASE("the fault hook duplicates, delays and so reorders frames", "[replication][transport]") {
  inbox ib;
  std::atomic<int> n{0};
  auto oa = options(1);
  oa.fault_hook = [&](std::uint64_t, std::uint8_t) {
    switch (n++) {
      case 0: return pobj::repl::fault{false, true, false, {}};    // duplicated
      case 1: return pobj::repl::fault{false, false, false, 300ms};  // held back
      case 2: return pobj::repl::fault{true, false, false, {}};    // dropped
      default: return pobj::repl::fault{};
    }
  };
  n = -100;  // the hello frame and anything before the test's own frames pass untouched
  transport b(options(2), ib.handler());
  transport a(oa, {});
  a.add_peer(at(2, b));
  n = 0;
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(a.send(2, 3, "twice"));
  REQUIRE(a.send(2, 3, "late"));
  REQUIRE(a.send(2, 3, "lost"));
  REQUIRE(a.send(2, 3, "prompt"));
  REQUIRE(eventually([&] { return ib.size() == 4; }));
  const auto took = std::chrono::steady_clock::now() - start;
  std::lock_guard lock(ib.mu);
  std::vector<std::string> order;
  for (auto& g : ib.got) order.push_back(std::get<2>(g));
  // The held-back frame comes last; the duplicate's place beside "prompt" is not promised (a
  // loaded machine's completions may land either way: seen once in a full test run).
  REQUIRE(order.size() == 4);
  CHECK(order.back() == "late");
  CHECK(std::count(order.begin(), order.end(), std::string("twice")) == 2);
  CHECK(std::count(order.begin(), order.end(), std::string("prompt")) == 1);
  CHECK(took >= 300ms);
  CHECK(a.stats().dropped_fault == 1);
}

TEST_CASE("a dead peer holds up nothing: its queue fills and drops, others are served", "[replication][transport]") {
  inbox ia, ic;
  // Member 2's address is a port nobody listens on.
  transport probe(options(9), {});
  const std::uint16_t dead_port = probe.port();
  probe.close();
  auto oa = options(1);
  oa.max_queued = 32;
  transport a(oa, ia.handler()), c(options(3), ic.handler());
  a.add_peer({2, "127.0.0.1", dead_port});
  a.add_peer(at(3, c));
  int refused = 0;
  std::chrono::nanoseconds slowest{0};
  for (int i = 0; i < 1000; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!a.send(2, 3, "to the dead")) ++refused;
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
    // Member 3's queue (32 frames) drains while member 2's stays full: a refused send to 3 is
    // tried again, a bounded number of times.
    for (int tries = 0; tries < 1000 && !a.send(3, 3, std::to_string(i)); ++tries) std::this_thread::sleep_for(1ms);
  }
  CHECK(slowest < 100ms);  // a send never waits for its peer
  CHECK(refused >= 1000 - 32);
  CHECK(a.stats().dropped_full >= static_cast<std::uint64_t>(refused));
  CHECK(eventually([&] { return ic.size() == 1000; }));
  // The dead peer is tried again after growing pauses (up to 100 ms), not on every pass: each
  // try is a connection attempt (regression: tried every millisecond, ~900 connects a second,
  // two spinning threads on a 2-core machine, and a group with a member down wrote 10x slower).
  const std::uint64_t before = a.stats().send_retries;
  std::this_thread::sleep_for(1s);
  const std::uint64_t tries = a.stats().send_retries - before;
  INFO("tries at the dead peer in 1 s: " << tries);
  CHECK(tries <= 30);
}

TEST_CASE("a three-member raft group over libfabric elects and replicates", "[replication][transport][raft]") {
  network net;
  std::vector<std::unique_ptr<member>> members;
  std::vector<std::unique_ptr<transport>> links;
  const std::vector<std::uint64_t> ids{1, 2, 3};
  std::mutex mu;
  std::map<std::uint64_t, member*> by_id;
  for (std::uint64_t id : ids) {
    links.push_back(std::make_unique<transport>(options(id), [&, id](std::uint64_t, std::uint8_t, std::string_view p) {
      std::lock_guard lock(mu);
      if (auto it = by_id.find(id); it != by_id.end() && it->second->raft) it->second->raft->step(p);
    }));
  }
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      if (i != j) links[i]->add_peer(at(ids[j], *links[j]));
  net.route = [&](std::uint64_t from, const pobj::repl::outgoing_message& m) { links[from - 1]->send(m.to, 1, m.bytes); };
  std::vector<pobj_test::scratch_path> p;
  for (int i = 0; i < 3; ++i) p.emplace_back("raftfab");
  for (std::size_t i = 0; i < 3; ++i) {
    auto m = start_member(net, ids[i], p[i], ids);
    std::lock_guard lock(mu);
    by_id[ids[i]] = m.get();
    members.push_back(std::move(m));
  }
  std::uint64_t leader = 0;
  REQUIRE(eventually([&] {
    for (auto& m : members) {
      std::lock_guard lock(m->mu);
      if (m->state == pobj::repl::role::leader) leader = m->id;
    }
    return leader != 0;
  }, 15s));
  for (int i = 0; i < 100; ++i) members[leader - 1]->raft->propose("v" + std::to_string(i));
  REQUIRE(eventually([&] {
    for (auto& m : members) {
      std::size_t n = 0;
      m->sm().for_each([&](std::uint64_t, const std::string&) { ++n; });
      if (n < 100) return false;
    }
    return true;
  }, 15s));
  std::vector<std::string> first;
  members[0]->sm().for_each([&](std::uint64_t, const std::string& d) { first.push_back(d); });
  for (auto& m : members) {
    std::vector<std::string> seq;
    m->sm().for_each([&](std::uint64_t, const std::string& d) { seq.push_back(d); });
    CHECK(seq == first);
  }
  {
    std::lock_guard lock(mu);
    by_id.clear();
  }
  for (auto& m : members) {
    net.detach(m->id);
    m->raft->stop();
  }
  for (auto& l : links) l->close();
}
