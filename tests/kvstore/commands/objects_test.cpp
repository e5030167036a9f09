// kvstore's CAS and the coordination objects (commands/objects.cpp, commands/semaphores.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;
using kv_test::run_retry;

TEST_CASE("CAS and the coordination objects reply as documented", "[kvstore][objects]") {
  harness h;
  CHECK(h.run({"SET", "a", "1"}) == "+OK\r\n");
  CHECK(h.run({"CAS", "a", "1", "2"}) == ":1\r\n");
  CHECK(h.run({"CAS", "a", "1", "3"}) == ":0\r\n");
  CHECK(h.run({"CAS", "absent", "", "3"}) == ":0\r\n");
  // A barrier of one never waits; of two, the first caller parks with its call to run again.
  CHECK(h.run({"BARRIER.AWAIT", "solo", "1"}) == ":0\r\n");
  CHECK(h.run({"TYPE", "solo"}) == "+object\r\n");
  CHECK(h.eng.take_ready() == std::vector<std::string>{"solo"});
  pobj::kv::session other;
  other.authenticated = true;
  other.id = 2;
  CHECK(h.run({"BARRIER.AWAIT", "b", "2"}).empty());
  REQUIRE(h.s.blocked.active);
  CHECK(h.s.blocked.keys == std::vector<std::string>{"b"});
  CHECK(h.s.blocked.retry.at(0) == "BARRIER.AWAIT");
  CHECK(h.run({"BARRIER.WAITING", "b"}) == ":1\r\n");
  CHECK(h.run(other, {"BARRIER.AWAIT", "b", "2"}) == ":1\r\n");
  CHECK(h.eng.take_ready() == std::vector<std::string>{"b"});
  CHECK(run_retry(h, h.s) == ":0\r\n");
  CHECK(h.run({"BARRIER.WAITING", "b"}) == ":0\r\n");
  CHECK(h.run({"BARRIER.AWAIT", "b", "3"}) == "-ERR the barrier at this key has 2 parties\r\n");
  CHECK(h.run({"LATCH.COUNT", "b"}).rfind("-WRONGTYPE", 0) == 0);
  // A waiter whose deadline has passed withdraws and gets nil.
  CHECK(h.run({"BARRIER.AWAIT", "b", "2", "ID", "late", "DEADLINE", "1"}) == "$-1\r\n");
  CHECK(h.run({"BARRIER.WAITING", "b"}) == ":0\r\n");
  // Latch.
  CHECK(h.run({"LATCH.CREATE", "l", "2"}) == ":1\r\n");
  CHECK(h.run({"LATCH.CREATE", "l", "5"}) == ":0\r\n");
  CHECK(h.run({"LATCH.AWAIT", "l"}).empty());
  h.s.blocked = {};
  CHECK(h.run({"LATCH.COUNTDOWN", "l"}) == ":1\r\n");
  CHECK(h.run({"LATCH.COUNTDOWN", "l"}) == ":0\r\n");
  CHECK(h.run({"LATCH.COUNTDOWN", "l"}) == ":0\r\n");
  CHECK(h.run({"LATCH.AWAIT", "l"}) == ":1\r\n");
  CHECK(h.run({"LATCH.COUNTDOWN", "nolatch"}) == "-ERR no such latch\r\n");
  // Semaphore with a lease that runs out.
  CHECK(h.run({"SEM.CREATE", "s", "1"}) == ":1\r\n");
  CHECK(h.run({"SEM.ACQUIRE", "s", "LEASE", "100"}) == "$7\r\nlease:1\r\n");
  CHECK(h.run({"SEM.AVAILABLE", "s"}) == ":0\r\n");
  CHECK(h.run({"SEM.ACQUIRE", "s", "TIMEOUT", "1000"}).empty());
  CHECK(h.s.blocked.deadline_ms == h.now + 100);  // it wakes when the lease runs out
  h.now += 100;
  CHECK(run_retry(h, h.s) == "+OK\r\n");
  CHECK(h.run({"SEM.RELEASE", "s", "LEASE", "lease:1"}) == ":0\r\n");  // ran out already
  CHECK(h.run({"SEM.RELEASE", "s"}) == ":1\r\n");
  CHECK(h.run({"SEM.ACQUIRE", "s", "PERMITS", "0"}) == "-ERR permits must be positive\r\n");
  CHECK(h.run({"SEM.ACQUIRE", "nosem"}) == "-ERR no such semaphore\r\n");
  // Future.
  CHECK(h.run({"FUTURE.GET", "f"}).empty());
  h.s.blocked = {};
  CHECK(h.run({"FUTURE.SET", "f", "v"}) == ":1\r\n");
  CHECK(h.run({"FUTURE.SET", "f", "w"}) == ":0\r\n");
  CHECK(h.run({"FUTURE.GET", "f"}) == "$1\r\nv\r\n");
}

TEST_CASE("barrier arrivals: ids name calls, and an absent caller's time runs out", "[kvstore][objects]") {
  harness h;
  pobj::kv::session other;
  other.authenticated = true;
  other.id = 2;
  // Regression: a caller passing the same ID every round got its last round's index back at once.
  CHECK(h.run({"BARRIER.AWAIT", "b", "2", "ID", "w"}).empty());
  CHECK(h.run(other, {"BARRIER.AWAIT", "b", "2", "ID", "v"}) == ":1\r\n");
  CHECK(run_retry(h, h.s) == ":0\r\n");
  h.s.blocked = {};
  CHECK(h.run({"BARRIER.AWAIT", "b", "2", "ID", "w"}).empty());  // the next round: it waits
  CHECK(h.s.blocked.active);
  h.s.blocked = {};
  // Regression: an arrival whose caller went away (its connection closed while parked) stayed for
  // ever, its TIMEOUT never enforced. The next call takes it back once its time has run out.
  CHECK(h.run({"BARRIER.AWAIT", "c", "2", "TIMEOUT", "50"}).empty());
  h.s.blocked = {};  // the connection is gone: its retry never runs
  CHECK(h.run({"BARRIER.WAITING", "c"}) == ":1\r\n");
  h.now += 50;
  CHECK(h.run({"BARRIER.WAITING", "c"}) == ":0\r\n");
  CHECK(h.run(other, {"BARRIER.AWAIT", "c", "2"}).empty());  // not completed by the stale arrival
  // Regression: ONCE inside MULTI stored the nil a blocking call replies there.
  pobj::kv::session m;
  m.authenticated = true;
  m.id = 3;
  CHECK(h.run(m, {"MULTI"}) == "+OK\r\n");
  CHECK(h.run(m, {"ONCE", "x", "BARRIER.AWAIT", "d", "2"}) == "+QUEUED\r\n");
  CHECK(h.run(m, {"EXEC"}) == "*1\r\n-ERR ONCE cannot run 'barrier.await' inside MULTI\r\n");
  CHECK(h.eng.db().stored_reply("x") == std::nullopt);
}
