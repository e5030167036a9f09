// kvstore's the keyspace commands, times to live and glob patterns (commands/keys.cpp, commands/args.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;

TEST_CASE("times to live: set, read, kept, cleared, and expired at the batch's time", "[kvstore][keys]") {
  harness h;
  CHECK(h.run({"SET", "k", "v", "EX", "10"}) == "+OK\r\n");
  CHECK(h.run({"TTL", "k"}) == ":10\r\n");
  CHECK(h.run({"PTTL", "k"}) == ":10000\r\n");
  h.now += 4000;
  CHECK(h.run({"TTL", "k"}) == ":6\r\n");
  CHECK(h.run({"APPEND", "k", "w"}) == ":2\r\n");  // keeps the time to live
  CHECK(h.run({"TTL", "k"}) == ":6\r\n");
  CHECK(h.run({"SET", "k", "x", "KEEPTTL"}) == "+OK\r\n");
  CHECK(h.run({"TTL", "k"}) == ":6\r\n");
  CHECK(h.run({"SET", "k", "y"}) == "+OK\r\n");  // a plain SET clears it
  CHECK(h.run({"TTL", "k"}) == ":-1\r\n");
  CHECK(h.run({"TTL", "nope"}) == ":-2\r\n");
  CHECK(h.run({"PEXPIRE", "k", "1500"}) == ":1\r\n");
  CHECK(h.run({"EXPIRE", "k", "100", "LT"}) == ":0\r\n");
  CHECK(h.run({"EXPIRE", "k", "100", "GT"}) == ":1\r\n");
  CHECK(h.run({"EXPIRE", "k", "5", "NX"}) == ":0\r\n");
  CHECK(h.run({"PERSIST", "k"}) == ":1\r\n");
  CHECK(h.run({"PERSIST", "k"}) == ":0\r\n");
  CHECK(h.run({"EXPIREAT", "k", std::to_string(h.now / 1000 + 2)}) == ":1\r\n");
  CHECK(h.run({"DBSIZE"}) == ":1\r\n");
  h.now += 2000;
  CHECK(h.run({"GET", "k"}) == "$-1\r\n");  // expired: gone, lazily
  CHECK(h.run({"DBSIZE"}) == ":0\r\n");
  CHECK(h.run({"SET", "gone", "v"}) == "+OK\r\n");
  CHECK(h.run({"EXPIRE", "gone", "-1"}) == ":1\r\n");  // a time in the past deletes
  CHECK(h.run({"EXISTS", "gone"}) == ":0\r\n");
  // Active expiry: the index gives the due keys, oldest first.
  CHECK(h.run({"SETEX", "a", "1", "x"}) == "+OK\r\n");
  CHECK(h.run({"PSETEX", "b", "500", "x"}) == "+OK\r\n");
  CHECK(h.run({"SET", "c", "x", "PX", "5000"}) == "+OK\r\n");
  h.now += 1000;
  std::size_t removed = pobj::run_tx(h.pool, [&](pobj::transaction& tx) { return h.eng.db().expire_some(tx, h.now, 10); });
  CHECK(removed == 2);
  CHECK(h.run({"DBSIZE"}) == ":1\r\n");
  CHECK(h.eng.db().volatile_keys() == 1);
}

TEST_CASE("keys, scans, renames and deletes", "[kvstore][keys]") {
  harness h;
  for (int i = 0; i < 300; ++i) h.run({"SET", "key:" + std::to_string(i), "v"});
  CHECK(h.run({"SET", "other", "v"}) == "+OK\r\n");
  CHECK(h.run({"TYPE", "other"}) == "+string\r\n");
  CHECK(h.run({"TYPE", "none"}) == "+none\r\n");
  CHECK(h.run({"KEYS", "oth?r"}) == "*1\r\n$5\r\nother\r\n");
  const std::string two = h.run({"KEYS", "key:1[0-1]"});  // in hash order, as Redis's: any order
  CHECK((two == "*2\r\n$6\r\nkey:10\r\n$6\r\nkey:11\r\n" || two == "*2\r\n$6\r\nkey:11\r\n$6\r\nkey:10\r\n"));
  // SCAN returns every key once over a whole walk (nothing changes meanwhile).
  int calls = 0;
  const std::set<std::string> seen = h.walk({"SCAN"}, {"MATCH", "key:*", "COUNT", "50"}, &calls);
  CHECK(seen.size() == 300);
  CHECK(calls > 1);
  CHECK(h.run({"SCAN", "x"}) == "-ERR invalid cursor\r\n");
  CHECK(h.run({"RENAME", "nope", "x"}) == "-ERR no such key\r\n");
  CHECK(h.run({"EXPIRE", "other", "100"}) == ":1\r\n");
  CHECK(h.run({"RENAME", "other", "renamed"}) == "+OK\r\n");
  CHECK(h.run({"TTL", "renamed"}) == ":100\r\n");
  CHECK(h.run({"DEL", "renamed", "key:1", "nope"}) == ":2\r\n");
  CHECK(h.run({"UNLINK", "key:2"}) == ":1\r\n");
  CHECK(h.run({"DBSIZE"}) == ":298\r\n");
  CHECK(h.run({"FLUSHDB"}) == "+OK\r\n");
  CHECK(h.run({"DBSIZE"}) == ":0\r\n");
  CHECK(h.pool.heap().check().ok());
}

TEST_CASE("glob patterns as Redis matches them", "[kvstore][keys]") {
  using pobj::kv::glob_match;
  CHECK(glob_match("*", ""));
  CHECK(glob_match("h?llo", "hello"));
  CHECK_FALSE(glob_match("h?llo", "hllo"));
  CHECK(glob_match("h*llo", "heeeello"));
  CHECK(glob_match("h[ae]llo", "hallo"));
  CHECK_FALSE(glob_match("h[^e]llo", "hello"));
  CHECK(glob_match("h[a-b]llo", "hbllo"));
  CHECK(glob_match("h[b-a]llo", "hallo"));  // a reversed range
  CHECK(glob_match("h\\*llo", "h*llo"));
  CHECK_FALSE(glob_match("h\\*llo", "hello"));
  CHECK(glob_match("a*b*c", "aXXbYYc"));
  CHECK_FALSE(glob_match("a*b*c", "aXXbYY"));
  CHECK(glob_match("**x", "abx"));
  CHECK(glob_match("[abc", "b"));  // an unclosed class runs to the end of the pattern
}
