// kvstore's sorted set commands (commands/zsets.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;

TEST_CASE("sorted set commands reply as Redis does", "[kvstore][zsets]") {
  harness h;
  CHECK(h.run({"ZADD", "z", "1", "a", "2", "b", "-1.5", "c"}) == ":3\r\n");
  CHECK(h.run({"ZADD", "z", "CH", "3", "a", "9", "d"}) == ":2\r\n");
  CHECK(h.run({"ZADD", "z", "NX", "XX", "1", "a"}) == "-ERR XX and NX options at the same time are not compatible\r\n");
  CHECK(h.run({"ZADD", "z", "x", "a"}) == "-ERR value is not a valid float\r\n");
  CHECK(h.run({"ZADD", "z", "GT", "1", "a"}) == ":0\r\n");  // 1 < 3: kept
  CHECK(h.run({"ZSCORE", "z", "a"}) == "$1\r\n3\r\n");
  CHECK(h.run({"ZADD", "z", "INCR", "0.5", "a"}) == "$3\r\n3.5\r\n");
  CHECK(h.run({"ZINCRBY", "z", "-10", "d"}) == "$2\r\n-1\r\n");
  CHECK(h.run({"ZCARD", "z"}) == ":4\r\n");
  // c -1.5, d -1, b 2, a 3.5
  CHECK(h.run({"ZRANGE", "z", "0", "-1"}) == "*4\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\nb\r\n$1\r\na\r\n");
  CHECK(h.run({"ZREVRANGE", "z", "0", "1", "WITHSCORES"}) == "*4\r\n$1\r\na\r\n$3\r\n3.5\r\n$1\r\nb\r\n$1\r\n2\r\n");
  CHECK(h.run({"ZRANK", "z", "b"}) == ":2\r\n");
  CHECK(h.run({"ZRANK", "z", "nope"}) == "$-1\r\n");
  CHECK(h.run({"ZRANGEBYSCORE", "z", "-1", "(3.5"}) == "*2\r\n$1\r\nd\r\n$1\r\nb\r\n");
  CHECK(h.run({"ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "2"}) == "*2\r\n$1\r\nd\r\n$1\r\nb\r\n");
  CHECK(h.run({"ZRANGEBYSCORE", "z", "x", "1"}) == "-ERR min or max is not a float\r\n");
  CHECK(h.run({"TYPE", "z"}) == "+zset\r\n");
  CHECK(h.run({"HGET", "z", "a"}) == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  CHECK(h.run({"RENAME", "z", "z2"}) == "+OK\r\n");
  CHECK(h.run({"ZRANGE", "z2", "0", "0"}) == "*1\r\n$1\r\nc\r\n");
  CHECK(h.run({"ZREM", "z2", "a", "b", "nope"}) == ":2\r\n");
  CHECK(h.run({"ZSCAN", "z2", "0", "MATCH", "c"}) == "*2\r\n$1\r\n0\r\n*2\r\n$1\r\nc\r\n$4\r\n-1.5\r\n");
  CHECK(h.run({"ZREM", "z2", "c", "d"}) == ":2\r\n");
  CHECK(h.run({"EXISTS", "z2"}) == ":0\r\n");
  h.s.protocol = 3;
  CHECK(h.run({"ZADD", "r3", "1", "m"}) == ":1\r\n");
  CHECK(h.run({"ZSCORE", "r3", "m"}) == ",1\r\n");
  // INFO's per-type counts come from the owning maps' sizes.
  h.run({"SET", "s1", "v"});
  h.run({"HSET", "h1", "f", "v"});
  h.run({"SADD", "st1", "m"});
  h.run({"RPUSH", "l1", "x"});
  const std::string info = h.run({"INFO", "memory"});
  CHECK(info.find("keys_string:1\r\nkeys_hash:1\r\nkeys_list:1\r\nkeys_set:1\r\nkeys_zset:1\r\n") != std::string::npos);
  CHECK(h.run({"ZRANGE", "r3", "0", "-1", "WITHSCORES"}) == "*1\r\n*2\r\n$1\r\nm\r\n,1\r\n");
  CHECK(h.pool.heap().check().ok());
}
