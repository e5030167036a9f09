// kvstore's hash commands (commands/hashes.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;

TEST_CASE("hash commands reply as Redis does; a hash's fields go with its key", "[kvstore][hashes]") {
  harness h;
  CHECK(h.run({"HSET", "h", "a", "1", "b", "2"}) == ":2\r\n");
  CHECK(h.run({"HSET", "h", "a", "10", "c", "3"}) == ":1\r\n");
  CHECK(h.run({"HSET", "h", "a"}) == "-ERR wrong number of arguments for 'hset' command\r\n");
  CHECK(h.run({"HMSET", "h", "d", "4"}) == "+OK\r\n");
  CHECK(h.run({"HGET", "h", "a"}) == "$2\r\n10\r\n");
  CHECK(h.run({"HGET", "h", "zz"}) == "$-1\r\n");
  CHECK(h.run({"HMGET", "h", "b", "zz"}) == "*2\r\n$1\r\n2\r\n$-1\r\n");
  CHECK(h.run({"HLEN", "h"}) == ":4\r\n");
  CHECK(h.run({"HEXISTS", "h", "c"}) == ":1\r\n");
  CHECK(h.run({"HSTRLEN", "h", "a"}) == ":2\r\n");
  CHECK(h.run({"HSETNX", "h", "a", "x"}) == ":0\r\n");
  CHECK(h.run({"HINCRBY", "h", "a", "5"}) == ":15\r\n");
  CHECK(h.run({"HINCRBYFLOAT", "h", "f", "1.5"}) == "$3\r\n1.5\r\n");
  CHECK(h.run({"HSET", "h", "s", "x"}) == ":1\r\n");
  CHECK(h.run({"HINCRBY", "h", "s", "1"}) == "-ERR hash value is not an integer\r\n");
  CHECK(h.run({"TYPE", "h"}) == "+hash\r\n");
  CHECK(h.run({"GET", "h"}) == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  CHECK(h.run({"SET", "str", "v"}) == "+OK\r\n");
  CHECK(h.run({"HGET", "str", "a"}) == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  const std::string all = h.run({"HGETALL", "h"});
  CHECK(all.starts_with("*12\r\n"));  // 6 fields, flat in RESP2
  CHECK(h.run({"HDEL", "h", "a", "b", "zz"}) == ":2\r\n");
  CHECK(h.run({"HKEYS", "h"}).starts_with("*4\r\n"));
  // Times to live and renames keep the fields.
  CHECK(h.run({"EXPIRE", "h", "100"}) == ":1\r\n");
  CHECK(h.run({"RENAME", "h", "h2"}) == "+OK\r\n");
  CHECK(h.run({"TTL", "h2"}) == ":100\r\n");
  CHECK(h.run({"HGET", "h2", "c"}) == "$1\r\n3\r\n");
  CHECK(h.run({"EXISTS", "h"}) == ":0\r\n");
  // The last field's removal removes the key; a SET over a hash replaces it.
  CHECK(h.run({"HSET", "one", "f", "v"}) == ":1\r\n");
  CHECK(h.run({"HDEL", "one", "f"}) == ":1\r\n");
  CHECK(h.run({"EXISTS", "one"}) == ":0\r\n");
  CHECK(h.run({"SET", "h2", "plain"}) == "+OK\r\n");
  CHECK(h.run({"GET", "h2"}) == "$5\r\nplain\r\n");
  // A large hash is freed whole when its key goes (in steps after the block), nothing leaks.
  for (int i = 0; i < 3000; ++i) h.run({"HSET", "big", "field:" + std::to_string(i), std::string(50, 'v')});
  CHECK(h.run({"HLEN", "big"}) == ":3000\r\n");
  const std::set<std::string> fields = h.walk({"HSCAN", "big"}, {"COUNT", "100", "NOVALUES"});
  CHECK(fields.size() == 3000);
  const std::size_t used = h.pool.heap().stats().bytes_used;
  CHECK(h.run({"DEL", "big"}) == ":1\r\n");
  CHECK(h.pool.heap().stats().bytes_used < used - 3000 * 50);
  CHECK(pobj::reclaim_pending(h.pool) == 0);
  CHECK(h.pool.heap().check().ok());
  CHECK(h.run({"HSET", "x", "f", "v"}) == ":1\r\n");
  CHECK(h.run({"FLUSHALL"}) == "+OK\r\n");
  CHECK(h.run({"DBSIZE"}) == ":0\r\n");
  CHECK(h.pool.heap().check().ok());
}
