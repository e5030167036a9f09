// replication: a three-member group in one process under faults (partitions of one member, 20%
// message loss, members stopped and restarted from their pools), with clients writing and reading
// registers through any member and recording every operation (invoke, ok, info). The history is
// judged by tests/replication/linearizability.py (the checker proven on known-bad histories); the
// test fails unless it says the history is linearizable.
//
// Writes: an entry "key=value" proposed at any member (etcd forwards it to the leader); ok once the
// client sees it applied there, else indeterminate. Reads: ReadIndex at any member, then the
// member's state once it has applied that index; a read without a read index in time is dropped
// (it changed nothing).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <shared_mutex>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "group_harness.hpp"

using namespace repl_test;

namespace {

struct history {
  std::mutex mu;
  std::vector<std::string> events;
  void add(int process, const char* type, const char* f, const std::string& key, const std::string& value) {
    std::lock_guard lock(mu);
    events.push_back(fmt::format(R"({{"process": {}, "type": "{}", "f": "{}", "key": "{}", "value": {}}})", process,
                                 type, f, key, value));
  }
};

// The value of `key` in a member's state machine: the last "key=value" entry applied.
std::string read_value(member& m, const std::string& key) {
  std::string found = "null";
  m.sm().reverse_scan({}, [&](std::uint64_t, const std::string& d) {
    if (d.compare(0, key.size() + 1, key + "=") == 0) {
      found = d.substr(key.size() + 1);
      return false;
    }
    return true;
  });
  return found;
}

}  // namespace

TEST_CASE("a group under partitions, loss and restarts stays linearizable", "[replication][raft][faults]") {
  group g(3);
  REQUIRE(g.wait_leader() != 0);
  std::vector<std::shared_mutex> locks(3);  // a client holds its member's; a restart takes it whole
  history hist;
  std::atomic<bool> done{false};
  std::atomic<int> oks{0}, infos{0}, reads{0};
  constexpr int clients = 4, ops_per_client = 60;

  auto client = [&](int p) {
    std::mt19937 rng(static_cast<unsigned>(p) * 7919u);
    for (int i = 0; i < ops_per_client; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 60));  // the run spans many faults
      const std::string key = rng() % 2 ? "a" : "b";
      const std::size_t at = rng() % 3;
      std::shared_lock lock(locks[at]);
      member& m = *g.members[at];
      if (!m.raft) continue;
      if (rng() % 2) {
        const std::string value = std::to_string(p * 1000 + i);
        const std::string entry = key + "=" + value;
        hist.add(p, "invoke", "write", key, value);
        m.raft->propose(entry);
        const bool seen = eventually([&] {
          bool found = false;
          m.sm().reverse_scan({}, [&](std::uint64_t, const std::string& d) {
            found = d == entry;
            return !found;
          });
          return found;
        }, 1500ms);
        hist.add(p, seen ? "ok" : "info", "write", key, value);
        (seen ? oks : infos)++;
      } else {
        const std::string ctx = fmt::format("r{}-{}", p, i);
        hist.add(p, "invoke", "read", key, "null");
        m.raft->read_index(ctx);
        std::uint64_t index = 0;
        const bool have = eventually([&] {
          std::lock_guard l(m.mu);
          for (auto& r : m.reads)
            if (r.context == ctx) index = r.index;
          return index != 0;
        }, 1500ms);
        if (have && eventually([&] { return g.applied(m) >= index; }, 1500ms)) {
          hist.add(p, "ok", "read", key, read_value(m, key) == "null" ? "null" : read_value(m, key));
          ++reads;
        } else {
          hist.add(p, "info", "read", key, "null");
        }
      }
    }
  };

  std::atomic<int> faults{0}, restarts{0};
  std::thread nemesis([&] {
    std::mt19937 rng(99);
    int round = 0;
    while (!done && round < 200) {
      ++round;
      std::this_thread::sleep_for(300ms);
      ++faults;
      switch (rng() % 4) {
        case 0: g.net.isolate(1 + rng() % 3, g.ids, true); break;
        case 1: g.net.set_loss(20); break;
        case 2: {
          const std::size_t i = rng() % 3;
          std::unique_lock lock(locks[i]);
          member& m = *g.members[i];
          const std::uint64_t id = m.id;
          const std::string path = m.path;
          g.stop(m);
          g.members[i].reset();
          g.members[i] = start_member(g.net, id, path, g.ids);
          ++restarts;
          break;
        }
        default: g.net.heal(); break;
      }
    }
  });
  std::vector<std::thread> threads;
  for (int p = 0; p < clients; ++p) threads.emplace_back(client, p);
  for (auto& t : threads) t.join();
  done = true;
  nemesis.join();
  g.net.heal();

  const std::string summary = fmt::format("{} faults ({} restarts); {} writes acknowledged, {} indeterminate, {} reads",
                                         faults.load(), restarts.load(), oks.load(), infos.load(), reads.load());
  std::fprintf(stderr, "%s\n", summary.c_str());
  INFO(summary);
  CHECK(oks > 0);
  CHECK(reads > 0);
  g.check_no_errors();

  const char* checker = std::getenv("LIN_CHECKER");
  if (checker == nullptr) {
    WARN("LIN_CHECKER is not set (meson sets it): the history is not checked");
    return;
  }
  pobj_test::scratch_path file("history");
  {
    std::ofstream out(file.str());
    for (auto& e : hist.events) out << e << "\n";
  }
  const int rc = std::system(fmt::format("/usr/bin/python3 {} {}", checker, file.str()).c_str());
  CHECK(rc == 0);
}
