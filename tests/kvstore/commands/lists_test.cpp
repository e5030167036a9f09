// kvstore's list commands (commands/lists.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;

TEST_CASE("list commands reply as Redis does", "[kvstore][lists]") {
  harness h;
  CHECK(h.run({"RPUSH", "l", "a", "b", "c"}) == ":3\r\n");
  CHECK(h.run({"LPUSH", "l", "z", "y"}) == ":5\r\n");  // y z a b c
  CHECK(h.run({"LRANGE", "l", "0", "-1"}) == "*5\r\n$1\r\ny\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
  CHECK(h.run({"LRANGE", "l", "-2", "100"}) == "*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
  CHECK(h.run({"LRANGE", "l", "3", "1"}) == "*0\r\n");
  CHECK(h.run({"LLEN", "l"}) == ":5\r\n");
  CHECK(h.run({"LINDEX", "l", "1"}) == "$1\r\nz\r\n");
  CHECK(h.run({"LINDEX", "l", "-1"}) == "$1\r\nc\r\n");
  CHECK(h.run({"LINDEX", "l", "9"}) == "$-1\r\n");
  CHECK(h.run({"LSET", "l", "0", "Y"}) == "+OK\r\n");
  CHECK(h.run({"LSET", "l", "9", "x"}) == "-ERR index out of range\r\n");
  CHECK(h.run({"LSET", "nope", "0", "x"}) == "-ERR no such key\r\n");
  CHECK(h.run({"LPOP", "l"}) == "$1\r\nY\r\n");
  CHECK(h.run({"RPOP", "l", "2"}) == "*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
  CHECK(h.run({"LPOP", "nope", "2"}) == "*-1\r\n");
  CHECK(h.run({"RPUSH", "r", "x", "a", "x", "b", "x"}) == ":5\r\n");
  CHECK(h.run({"LREM", "r", "-2", "x"}) == ":2\r\n");  // from the tail
  CHECK(h.run({"LRANGE", "r", "0", "-1"}) == "*3\r\n$1\r\nx\r\n$1\r\na\r\n$1\r\nb\r\n");
  CHECK(h.run({"LPUSH", "r", "front"}) == ":4\r\n");  // positions stay consecutive after LREM
  CHECK(h.run({"LINDEX", "r", "3"}) == "$1\r\nb\r\n");
  CHECK(h.run({"LPUSHX", "none", "x"}) == ":0\r\n");
  CHECK(h.run({"TYPE", "r"}) == "+list\r\n");
  CHECK(h.run({"GET", "r"}) == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  CHECK(h.run({"RENAME", "r", "r2"}) == "+OK\r\n");
  CHECK(h.run({"LRANGE", "r2", "0", "0"}) == "*1\r\n$5\r\nfront\r\n");
  CHECK(h.run({"LPOP", "l", "10"}) == "*2\r\n$1\r\nz\r\n$1\r\na\r\n");
  CHECK(h.run({"EXISTS", "l"}) == ":0\r\n");  // the last element's removal removes the key
  // BLPOP with something to pop pops; inside EXEC it never blocks.
  CHECK(h.run({"BLPOP", "empty", "r2", "0"}) == "*2\r\n$2\r\nr2\r\n$5\r\nfront\r\n");
  CHECK(h.run({"BLPOP", "r2", "-1"}) == "-ERR timeout is negative\r\n");
  h.run({"MULTI"});
  h.run({"BLPOP", "empty", "0"});
  CHECK(h.run({"EXEC"}) == "*1\r\n*-1\r\n");
  // With nothing to pop, outside EXEC: no reply, the session is parked for the server.
  CHECK(h.run({"BRPOP", "empty", "1.5"}).empty());
  CHECK(h.s.blocked.active);
  CHECK(h.s.blocked.deadline_ms == h.now + 1500);
  CHECK(h.pool.heap().check().ok());
}
