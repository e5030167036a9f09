// kvstore's MULTI, EXEC and WATCH (commands/transactions.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;

TEST_CASE("MULTI/EXEC queues and runs atomically; WATCH fails EXEC after a change", "[kvstore][transactions]") {
  harness h;
  CHECK(h.run({"MULTI"}) == "+OK\r\n");
  CHECK(h.run({"SET", "a", "1"}) == "+QUEUED\r\n");
  CHECK(h.run({"INCR", "a"}) == "+QUEUED\r\n");
  CHECK(h.run({"MULTI"}) == "-ERR MULTI calls can not be nested\r\n");
  CHECK(h.run({"EXEC"}) == "*2\r\n+OK\r\n:2\r\n");
  CHECK(h.run({"EXEC"}) == "-ERR EXEC without MULTI\r\n");
  // A command refused when queued aborts the transaction.
  h.run({"MULTI"});
  CHECK(h.run({"GET"}) == "-ERR wrong number of arguments for 'get' command\r\n");
  CHECK(h.run({"EXEC"}) == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  // WATCH: another client's write makes EXEC reply null.
  pobj::kv::session other;
  other.authenticated = true;
  CHECK(h.run({"WATCH", "a"}) == "+OK\r\n");
  h.run({"MULTI"});
  h.run({"INCR", "a"});
  CHECK(h.run(other, {"SET", "a", "10"}) == "+OK\r\n");
  CHECK(h.run({"EXEC"}) == "*-1\r\n");
  CHECK(h.run({"GET", "a"}) == "$2\r\n10\r\n");
  // DISCARD drops the queue.
  h.run({"MULTI"});
  h.run({"SET", "a", "x"});
  CHECK(h.run({"DISCARD"}) == "+OK\r\n");
  CHECK(h.run({"GET", "a"}) == "$2\r\n10\r\n");
}
