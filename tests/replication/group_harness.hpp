// tests/replication/group_harness: Raft members in one process, each with its own pool, joined by
// an in-memory network whose links the test can cut (a partition) or make lossy.
//
// A member's state machine is a map from log index to the entry's data, written in the block
// that records the applied index (what pobj-kv's engine will do with a batch): after any run, every
// member's map must be a prefix of the same sequence, and no index may be applied twice.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <pobj/pobj.hpp>

#include "log_store.hpp"
#include "raft_node.hpp"
#include "test_util.hpp"

namespace repl_test {

using namespace std::chrono_literals;

class network;

struct member {
  std::uint64_t id;
  std::string path;
  pobj::pool pool;
  std::unique_ptr<pobj::repl::log_store> log;
  pobj::ordered_map<std::uint64_t, pobj::bytes> applied_map{};
  std::unique_ptr<pobj::repl::node> raft;
  network* net = nullptr;

  mutable std::mutex mu;
  std::uint64_t leader = 0;
  pobj::repl::role state = pobj::repl::role::follower;
  std::uint64_t term = 0;
  std::uint64_t applied = 0;
  std::vector<pobj::repl::read_state> reads;
  std::vector<std::string> errors;  // invariant violations seen by the handler
  std::optional<pobj::repl::node_status> status;

  pobj::ordered_map_ref<std::uint64_t, pobj::bytes> sm() { return {pool, applied_map}; }
  void handle(pobj::repl::ready& rd);
};

class network {
 public:
  // Every message from `from` to `to` passes through here; `cut` links drop everything, and
  // `loss` percent of the rest is dropped at random.
  // Where messages go instead of the in-memory links (a real transport), if set.
  std::function<void(std::uint64_t from, const pobj::repl::outgoing_message&)> route;

  void send(std::uint64_t from, const pobj::repl::outgoing_message& m) {
    if (route) return route(from, m);
    member* to = nullptr;
    {
      std::lock_guard lock(mu_);
      if (cut_.count({from, m.to}) || cut_.count({m.to, from})) return;
      if (loss_ > 0 && std::uniform_int_distribution<int>(0, 99)(rng_) < loss_) return;
      auto it = members_.find(m.to);
      if (it == members_.end()) return;
      to = it->second;
      if (to->raft) to->raft->step(m.bytes);  // under the lock: a member is not replaced meanwhile
    }
  }
  void attach(member* m) {
    std::lock_guard lock(mu_);
    members_[m->id] = m;
    m->net = this;
  }
  void detach(std::uint64_t id) {
    std::lock_guard lock(mu_);
    members_.erase(id);
  }
  // Cuts every link between `id` and the others (or heals them).
  void isolate(std::uint64_t id, const std::vector<std::uint64_t>& all, bool on) {
    std::lock_guard lock(mu_);
    for (std::uint64_t o : all)
      if (o != id) {
        if (on) cut_.insert({id, o});
        else cut_.erase({id, o});
      }
  }
  void heal() {
    std::lock_guard lock(mu_);
    cut_.clear();
    loss_ = 0;
  }
  void set_loss(int percent) {
    std::lock_guard lock(mu_);
    loss_ = percent;
  }

 private:
  std::mutex mu_;
  std::map<std::uint64_t, member*> members_;
  std::set<std::pair<std::uint64_t, std::uint64_t>> cut_;
  int loss_ = 0;
  std::mt19937 rng_{7};
};

inline void member::handle(pobj::repl::ready& rd) {
  // 1. persist; 2. send; 3. apply, each entry with its index in one block.
  // A snapshot here only ever stands for a new group's first index (nothing applied in it yet): the
  // state machine is then empty, and the snapshot's index counts as applied.
  if (rd.hard || rd.snapshot || !rd.entries.empty())
    pobj::run_tx(pool, [&](pobj::transaction& tx) {
      log->save(tx, rd);
      if (rd.snapshot) log->set_applied(tx, rd.snapshot->index);
    });
  for (const auto& m : rd.messages) {
    net->send(id, m);
    // A snapshot message must be reported once delivered (or lost), or raft waits for it for ever.
    if (m.type == pobj::repl::msg_snapshot) raft->report_snapshot(m.to, true);
  }
  for (const auto& e : rd.committed) {
    pobj::run_tx(pool, [&](pobj::transaction& tx) {
      if (e.index <= log->applied()) {
        std::lock_guard lock(mu);
        errors.push_back("entry " + std::to_string(e.index) + " delivered again after it was applied");
        return;
      }
      if (e.type == pobj::repl::entry_type::normal && !e.data.empty()) {
        if (!sm().insert(tx, e.index, e.data)) {
          std::lock_guard lock(mu);
          errors.push_back("entry " + std::to_string(e.index) + " applied twice");
        }
      }
      for (const auto& [index, conf] : rd.conf_changes)
        if (index == e.index) log->set_members(tx, index, conf);
      log->set_applied(tx, e.index);
    });
  }
  std::lock_guard lock(mu);
  if (rd.soft) {
    leader = rd.soft->first;
    state = rd.soft->second;
  }
  if (rd.hard) term = rd.hard->term;
  if (!rd.committed.empty()) applied = rd.committed.back().index;
  for (auto& r : rd.reads) reads.push_back(std::move(r));
  if (rd.status) status = std::move(rd.status);
}

inline pobj::repl::node_options fast_options(std::uint64_t id) {
  pobj::repl::node_options o;
  o.id = id;
  o.tick = 10ms;
  o.election_ticks = 10;
  o.heartbeat_ticks = 1;
  return o;
}

// Opens (or makes) the member's pool and starts its replica; `voters` bootstraps a new pool.
inline std::unique_ptr<member> start_member(network& net, std::uint64_t id, const std::string& path,
                                            const std::vector<std::uint64_t>& voters, bool join = false) {
  auto m = std::make_unique<member>();
  m->id = id;
  m->path = path;
  pobj::pool_options po = pobj_test::small_options();
  po.mode = pobj::persist_mode::cache_line;
  m->pool = std::filesystem::exists(path) ? pobj::pool::open(path, po) : pobj::pool::create(path, po);
  m->log = std::make_unique<pobj::repl::log_store>(m->pool);
  if (!m->log->initialized()) {
    if (join) m->log->join({"test", id});
    else m->log->bootstrap({"test", id}, voters);
  }
  if (const pobj::offset_t r = m->pool.root("test.sm"); r != 0) {
    m->applied_map = {r};
  } else {
    pobj::run_tx(m->pool, [&](pobj::transaction& tx) {
      m->applied_map = pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx);
      m->pool.set_root("test.sm", m->applied_map.offset);
    });
  }
  m->applied = m->log->applied();
  net.attach(m.get());
  member* raw = m.get();
  // REPL_TEST_LOG=1 prints raft's own log lines (info and above).
  pobj::repl::node::log_handler log;
  if (const char* v = std::getenv("REPL_TEST_LOG"); v && *v == '1')
    log = [id](int level, std::string_view line) {
      if (level >= 1) std::fprintf(stderr, "[%llu] %.*s\n", static_cast<unsigned long long>(id),
                                   static_cast<int>(line.size()), line.data());
    };
  m->raft = std::make_unique<pobj::repl::node>(fast_options(id), m->log->load(),
                                               [raw](pobj::repl::ready& rd) { raw->handle(rd); }, log);
  return m;
}

// Waits (bounded) until pred() holds; returns whether it did.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// A group of n members (ids 1..n), each on its own scratch pool.
struct group {
  network net;
  std::vector<pobj_test::scratch_path> paths;
  std::vector<std::unique_ptr<member>> members;
  std::vector<std::uint64_t> ids;

  explicit group(int n) {
    for (int i = 1; i <= n; ++i) {
      ids.push_back(static_cast<std::uint64_t>(i));
      paths.emplace_back("raftnode");
    }
    for (int i = 0; i < n; ++i) members.push_back(start_member(net, ids[i], paths[i], ids));
  }
  ~group() {
    for (auto& m : members) stop(*m);
  }
  void stop(member& m) {
    net.detach(m.id);
    if (m.raft) m.raft->stop();
    m.raft.reset();
  }
  member& at(std::uint64_t id) { return *members[id - 1]; }
  // The member every running member agrees leads (0 if they do not agree, or none leads).
  std::uint64_t leader(const std::set<std::uint64_t>& among = {}) {
    std::uint64_t l = 0;
    for (auto& m : members) {
      if (!m->raft || (!among.empty() && !among.count(m->id))) continue;
      std::lock_guard lock(m->mu);
      if (m->leader == 0 || (l != 0 && m->leader != l)) return 0;
      l = m->leader;
    }
    if (l == 0 || (!among.empty() && !among.count(l))) return 0;
    std::lock_guard lock(at(l).mu);
    return at(l).state == pobj::repl::role::leader ? l : 0;
  }
  std::uint64_t wait_leader(const std::set<std::uint64_t>& among = {}) {
    std::uint64_t l = 0;
    eventually([&] { return (l = leader(among)) != 0; }, 15s);
    return l;
  }
  // Every applied entry's data, in index order.
  static std::vector<std::string> sequence(member& m) {
    std::vector<std::string> v;
    m.sm().for_each([&](std::uint64_t, const std::string& d) { v.push_back(d); });
    return v;
  }
  bool all_applied(std::uint64_t index) {
    for (auto& m : members) {
      std::lock_guard lock(m->mu);
      if (m->raft && m->applied < index) return false;
    }
    return true;
  }
  std::uint64_t applied(member& m) {
    std::lock_guard lock(m.mu);
    return m.applied;
  }
  void check_no_errors() {
    for (auto& m : members) {
      std::lock_guard lock(m->mu);
      INFO("member " << m->id);
      CHECK(m->errors.empty());
      for (auto& e : m->errors) WARN(e);
    }
  }
};

}  // namespace repl_test
