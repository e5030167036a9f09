// kvstore's set commands (commands/sets.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;

TEST_CASE("set commands reply as Redis does", "[kvstore][sets]") {
  harness h;
  CHECK(h.run({"SADD", "s", "a", "b", "a"}) == ":2\r\n");
  CHECK(h.run({"SADD", "s", "b", "c"}) == ":1\r\n");
  CHECK(h.run({"SCARD", "s"}) == ":3\r\n");
  CHECK(h.run({"SISMEMBER", "s", "a"}) == ":1\r\n");
  CHECK(h.run({"SISMEMBER", "s", "z"}) == ":0\r\n");
  CHECK(h.run({"SMISMEMBER", "s", "a", "z"}) == "*2\r\n:1\r\n:0\r\n");
  CHECK(h.run({"SMEMBERS", "s"}).starts_with("*3\r\n"));
  CHECK(h.run({"TYPE", "s"}) == "+set\r\n");
  CHECK(h.run({"HGET", "s", "a"}) == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  CHECK(h.run({"SADD", "str"}) == "-ERR wrong number of arguments for 'sadd' command\r\n");
  CHECK(h.run({"SREM", "s", "a", "z"}) == ":1\r\n");
  CHECK(h.run({"SSCAN", "s", "0", "MATCH", "b"}) == "*2\r\n$1\r\n0\r\n*1\r\n$1\r\nb\r\n");
  CHECK(h.run({"RENAME", "s", "t"}) == "+OK\r\n");
  CHECK(h.run({"SCARD", "t"}) == ":2\r\n");
  CHECK(h.run({"SREM", "t", "b", "c"}) == ":2\r\n");
  CHECK(h.run({"EXISTS", "t"}) == ":0\r\n");
  CHECK(h.pool.heap().check().ok());
}
