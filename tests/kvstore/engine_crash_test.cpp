// The command engine under the crash simulator: batches of mixed commands, each batch one
// failure-atomic block as the server runs it (group commit), crashed at every fence of a short
// workload and at seeded random fences of a long one. After each recovery the keyspace (values
// and times to live) must equal what a reference run held after the acknowledged batches, or
// after the one in flight too (ONCE's stored replies included: a reply is stored exactly when its
// command's effect is); the expiry index must agree with the entries; the heap check must find no
// leak. Built with pobj-gen (POBJ_TEST_USER_OBJECTS), the batches also make, call, rename and
// delete users' objects (tests/codegen/inputs/ledger.hpp), which own strings and a map.
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/testing/crash_harness.hpp>

#include "engine.hpp"
#include "test_util.hpp"
#if POBJ_TEST_USER_OBJECTS
#include "ledger.pobj.hpp"
#endif

namespace {

using command = std::vector<std::string>;
using batch = std::vector<command>;
using keyspace = std::map<std::string, std::pair<std::string, std::int64_t>>;  // key -> (value, expiry)

constexpr std::int64_t now = 1'700'000'000'000;

batch random_batch(std::mt19937_64& rng, int size) {
  batch b;
  auto key = [&] { return "k" + std::to_string(rng() % 24); };
  for (int i = 0; i < size; ++i) {
    const std::string v(rng() % 3 == 0 ? 40 + rng() % 300 : rng() % 12, static_cast<char>('a' + rng() % 26));
    switch (rng() % 28) {
      case 0: b.push_back({"SET", key(), v}); break;
      case 1: b.push_back({"SET", key(), v, "PX", std::to_string(1000 + rng() % 100000)}); break;
      case 2: b.push_back({"DEL", key(), key()}); break;
      case 3: b.push_back({"INCRBY", "n" + std::to_string(rng() % 3), std::to_string(rng() % 100)}); break;
      case 4: b.push_back({"APPEND", key(), v}); break;
      case 5: b.push_back({"MSET", key(), v, key(), v + "!"}); break;
      case 6: b.push_back({"EXPIRE", key(), std::to_string(1 + rng() % 1000)}); break;
      case 7: b.push_back({"RENAME", key(), key()}); break;
      case 8: b.push_back({"HSET", "h" + std::to_string(rng() % 4), "f" + std::to_string(rng() % 6), v}); break;
      case 9: b.push_back({"HDEL", "h" + std::to_string(rng() % 4), "f" + std::to_string(rng() % 6)}); break;
      case 10: b.push_back({"DEL", "h" + std::to_string(rng() % 4)}); break;
      case 11: b.push_back({"SADD", "s" + std::to_string(rng() % 3), v, "m" + std::to_string(rng() % 5)}); break;
      case 12: b.push_back({"SREM", "s" + std::to_string(rng() % 3), "m" + std::to_string(rng() % 5)}); break;
      case 13: b.push_back({rng() % 2 ? "LPUSH" : "RPUSH", "l" + std::to_string(rng() % 3), v, v + "."}); break;
      case 14: b.push_back({rng() % 2 ? "LPOP" : "RPOP", "l" + std::to_string(rng() % 3)}); break;
      case 15: b.push_back({"LREM", "l" + std::to_string(rng() % 3), "0", v}); break;
      case 16: b.push_back({"ZADD", "z" + std::to_string(rng() % 3), std::to_string(rng() % 50), "m" + std::to_string(rng() % 6)}); break;
      case 17: b.push_back({"ZREM", "z" + std::to_string(rng() % 3), "m" + std::to_string(rng() % 6)}); break;
      // Exactly-once requests (the stored reply commits with the effect) and coordination objects.
      case 19: b.push_back({"ONCE", "r" + std::to_string(rng() % 10), "INCRBY", "n0", std::to_string(rng() % 9)}); break;
      case 20: b.push_back({"CAS", key(), v, v + "+"}); break;
      case 21: b.push_back({rng() % 3 ? "LATCH.COUNTDOWN" : "LATCH.CREATE", "o" + std::to_string(rng() % 2), "3"});
        if (b.back()[0] == "LATCH.COUNTDOWN") b.back().pop_back();
        break;
      case 22:
        switch (rng() % 3) {
          case 0: b.push_back({"SEM.CREATE", "q0", "2"}); break;
          case 1: b.push_back({"SEM.RELEASE", "q0"}); break;
          default: b.push_back({"SEM.ACQUIRE", "q0", "LEASE", "5000", "DEADLINE", "1"}); break;
        }
        break;
      case 23:
        if (rng() % 2) b.push_back({"FUTURE.SET", "f" + std::to_string(rng() % 2), v});
        else b.push_back({"ONCE", "b" + std::to_string(rng() % 5), "BARRIER.AWAIT", "b0", "1"});
        break;
#if POBJ_TEST_USER_OBJECTS
      case 18:
      case 24:
      case 25:
      case 26:
      case 27: {  // users' objects: made, called (strings and a map change inside), moved, deleted
        const std::string u = "u" + std::to_string(rng() % 3);
        switch (rng() % 14) {
          case 0:
          case 1: b.push_back({"OBJ.NEW", u, "ledger::account"}); break;
          case 2:
          case 3:
          case 4: b.push_back({"OBJ.CALL", u, "deposit", std::to_string(rng() % 500)}); break;
          case 5:
          case 6: b.push_back({"OBJ.CALL", u, "withdraw", std::to_string(rng() % 200), "payee" + std::to_string(rng() % 4)}); break;
          case 7: b.push_back({"OBJ.CALL", u, "rename", v}); break;
          case 8: b.push_back({"RENAME", u, "u" + std::to_string(rng() % 3)}); break;
          case 9: b.push_back({"PEXPIRE", u, std::to_string(rng() % 2 ? -1 : 100000)}); break;  // -1: expired at once
          case 10: b.push_back({"SET", u, v}); break;
          case 11: b.push_back({"OBJ.CALL", u, "fail_after", "7"}); break;  // changes, throws: undone
          case 12: b.push_back({"ONCE", "r" + std::to_string(rng() % 10), "OBJ.CALL", u, "deposit", "3"}); break;
          default: b.push_back({"DEL", u}); break;
        }
        break;
      }
#endif
      default: b.push_back({"PERSIST", key()}); break;
    }
  }
  return b;
}

// As the server runs a batch: one block; a command that throws (a user's method that refuses)
// rolls the block back, and the batch runs again without it (the server then runs it alone, in a
// block of its own, where it throws again and changes nothing).
void run_batch(pobj::kv::engine& e, pobj::pool& p, const batch& b) {
  pobj::kv::session s;
  s.authenticated = true;
  std::string out;
  pobj::kv::reply_writer w(out, 2);
  batch rest = b;
  for (;;) {
    std::size_t at = 0;
    try {
      pobj::run_tx(p, [&](pobj::transaction& tx) {
        for (at = 0; at < rest.size(); ++at) {
          std::vector<std::string_view> argv(rest[at].begin(), rest[at].end());
          e.execute(s, argv, w, tx, now);
        }
      });
      return;
    } catch (const std::exception&) {
      e.db().reload();
      rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(at));
    }
  }
}

keyspace contents(pobj::kv::store& db) {
  keyspace k;
  for (std::uint64_t cursor = 0;;) {
    cursor = db.scan(cursor, now, [&](std::string_view key, const pobj::kv::entry& e) {
      std::string value = e.payload;
      if (e.type == pobj::kv::value_type::zset) {  // its order, and its scores
        db.zorder(key).for_each([&](std::string o) { value += "|" + o; });
        std::map<std::string, std::string> scores;
        db.fields(key).for_each([&](std::string m, std::string s) { scores.emplace(std::move(m), std::move(s)); });
        for (const auto& [m, s] : scores) value += "|" + m + "=" + s;
      } else if (e.type == pobj::kv::value_type::list) {  // its elements, in order
        db.elements(key).for_each([&](std::int64_t, std::string v) { value += "|" + v; });
#if POBJ_TEST_USER_OBJECTS
      } else if (e.type == pobj::kv::value_type::instance) {  // the object's fields and its map
        auto a = pobj::deref(db.pool(), pobj::ref<ledger::account>(*db.object(key)));
        value += fmt::format("{}|{}|{}", a.balance(), a.operations(), a.owner());
        if (a.by_payee().offset != 0) {
          std::map<std::string, std::int64_t> paid;
          a.by_payee_ref().for_each([&](std::string payee, std::int64_t n) { paid.emplace(std::move(payee), n); });
          for (const auto& [payee, n] : paid) value += fmt::format("|{}={}", payee, n);
        }
#endif
      } else if (e.type != pobj::kv::value_type::string && e.type != pobj::kv::value_type::object) {  // fields, members
        std::map<std::string, std::string> fields;
        (e.type == pobj::kv::value_type::set ? db.members(key) : db.fields(key))
            .for_each([&](std::string f, std::string v) { fields.emplace(std::move(f), std::move(v)); });
        for (const auto& [f, v] : fields) value += "|" + f + "=" + v;
      }
      k.emplace(std::string(key), std::make_pair(value, e.expires_ms));
    });
    if (cursor == 0) break;
  }
  for (const char* prefix : {"r", "b"}) {  // ONCE's stored replies
    for (int i = 0; i < 10; ++i) {
      const std::string id = prefix + std::to_string(i);
      if (auto r = db.stored_reply(id)) k.emplace("#reply:" + id, std::make_pair(*r, 0));
    }
  }
  return k;
}

// The keyspace after each prefix of the batches, from a run that never crashes.
std::vector<keyspace> reference(const std::vector<batch>& batches) {
  pobj_test::scratch_path path("kv-reference");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::kv::config cfg;
  pobj::kv::engine e(p, cfg);
  std::vector<keyspace> after{contents(e.db())};
  for (const batch& b : batches) {
    run_batch(e, p, b);
    after.push_back(contents(e.db()));
  }
  return after;
}

pobj::testing::crash_test engine_test(const std::string& name, std::vector<batch> batches) {
  auto expected = std::make_shared<std::vector<keyspace>>(reference(batches));
  pobj::testing::crash_test t;
  t.name = name;
  t.options.size = 16 * pobj::MiB;
  t.options.lanes = 2;
  t.setup = [](pobj::pool& p) { pobj::kv::store db(p); };
  t.workload = [batches](pobj::testing::crash_context& ctx) {
    pobj::kv::config cfg;
    pobj::kv::engine e(ctx.pool(), cfg);
    for (const batch& b : batches) {
      ctx.begin_op();
      run_batch(e, ctx.pool(), b);
      ctx.end_op();
    }
  };
  t.verify = [expected](pobj::pool& p, const pobj::testing::crash_point& pt) {
    pobj::kv::store db(p);
    const keyspace got = contents(db);
    const keyspace& done = (*expected)[pt.ops_completed];
    const bool next_ok = pt.op_in_flight && pt.ops_completed + 1 < expected->size() &&
                         got == (*expected)[pt.ops_completed + 1];
    pobj::testing::expect(got == done || next_ok, "{} keys after {} batches{}; expected {}", got.size(),
                          pt.ops_completed, pt.op_in_flight ? " and one in flight" : "", done.size());
    std::uint64_t timed = 0;
    for (const auto& [k, v] : got) timed += v.second != 0 ? 1 : 0;
    pobj::testing::expect(db.volatile_keys() == timed, "the expiry index holds {} keys, the entries {}",
                          db.volatile_keys(), timed);
  };
  return t;
}

}  // namespace

TEST_CASE("batches of commands are atomic and durable at every fence", "[crash][kvstore]") {
  std::mt19937_64 rng(5);
  std::vector<batch> batches;
  for (int i = 0; i < 6; ++i) batches.push_back(random_batch(rng, 5));
  auto result = pobj::testing::run(engine_test("command batches", batches));
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}

TEST_CASE("a long command workload survives seeded random crashes", "[crash][kvstore]") {
  std::mt19937_64 rng(11);
  const char* n = std::getenv("POBJ_CRASH_LONG_OPS");
  const std::size_t count = n != nullptr ? std::strtoull(n, nullptr, 0) / 10 : 60;
  std::vector<batch> batches;
  for (std::size_t i = 0; i < count; ++i) batches.push_back(random_batch(rng, 1 + static_cast<int>(rng() % 16)));
  auto t = engine_test("long command workload", batches);
  t.exhaustive_limit = 0;
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.fences > 400);
  REQUIRE(result.ok());
}
