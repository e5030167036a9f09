// kvstore/src/engine and the command families, without a network: each command runs in a block
// of its own against a pool, at a time the test chooses, and its raw RESP reply is checked
// against Redis's.
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine.hpp"
#include "test_util.hpp"

namespace {

struct harness {
  pobj_test::scratch_path path{"kv-engine"};
  pobj::pool pool = pobj::pool::create(path, pobj_test::small_options());
  pobj::kv::config cfg;
  pobj::kv::engine eng{pool, cfg};
  pobj::kv::session s;
  std::int64_t now = 1'700'000'000'000;  // ms since the epoch

  harness() { s.authenticated = true; }

  std::string run(std::initializer_list<std::string_view> args) { return run(s, args); }

  // A whole SCAN-style walk (cursor from 0 back to 0): the elements of the replies, which must
  // hold one string per element (no values). `calls` counts the commands.
  std::set<std::string> walk(std::vector<std::string> before, std::vector<std::string> after, int* calls = nullptr) {
    std::set<std::string> seen;
    std::string cursor = "0";
    int n = 0;
    do {
      std::vector<std::string> args = before;
      args.push_back(cursor);
      args.insert(args.end(), after.begin(), after.end());
      std::string r;
      {
        pobj::kv::reply_writer w(r, s.protocol);
        std::vector<std::string_view> argv(args.begin(), args.end());
        pobj::transaction tx(pool);
        eng.execute(s, argv, w, tx, now);
        tx.commit();
      }
      // *2\r\n$<n>\r\n<cursor>\r\n*<k>\r\n($<n>\r\n<element>\r\n)*
      std::size_t at = r.find("\r\n", 4) + 2;
      const std::size_t end = r.find("\r\n", at);
      cursor = r.substr(at, end - at);
      at = r.find("\r\n", end + 2) + 2;
      while (at < r.size()) {
        const std::size_t line = r.find("\r\n", at);
        const std::size_t len = std::stoul(r.substr(at + 1, line - at - 1));
        seen.insert(r.substr(line + 2, len));
        at = line + 2 + len + 2;
      }
      ++n;
    } while (cursor != "0" && n < 100000);
    if (calls != nullptr) *calls = n;
    return seen;
  }
  std::string run(pobj::kv::session& who, std::initializer_list<std::string_view> args) {
    std::string out;
    pobj::kv::reply_writer w(out, who.protocol);
    std::vector<std::string_view> argv(args);
    pobj::transaction tx(pool);
    eng.execute(who, argv, w, tx, now);
    tx.commit();
    return out;
  }
};

}  // namespace

TEST_CASE("string commands reply as Redis does", "[kvstore][strings]") {
  harness h;
  CHECK(h.run({"GET", "k"}) == "$-1\r\n");
  CHECK(h.run({"SET", "k", "v"}) == "+OK\r\n");
  CHECK(h.run({"get", "k"}) == "$1\r\nv\r\n");
  CHECK(h.run({"SET", "k", "w", "NX"}) == "$-1\r\n");
  CHECK(h.run({"SET", "k", "w", "XX", "GET"}) == "$1\r\nv\r\n");
  CHECK(h.run({"SET", "other", "x", "XX"}) == "$-1\r\n");
  CHECK(h.run({"SET", "k", "w", "NX", "XX"}) == "-ERR syntax error\r\n");
  CHECK(h.run({"SET", "k", "w", "EX", "0"}) == "-ERR invalid expire time in 'set' command\r\n");
  CHECK(h.run({"SET", "k", "w", "EX", "x"}) == "-ERR value is not an integer or out of range\r\n");
  CHECK(h.run({"SETNX", "k", "z"}) == ":0\r\n");
  CHECK(h.run({"SETNX", "n", "z"}) == ":1\r\n");
  CHECK(h.run({"MSET", "a", "1", "b", "2"}) == "+OK\r\n");
  CHECK(h.run({"MSET", "a", "1", "b"}) == "-ERR wrong number of arguments for 'mset' command\r\n");
  CHECK(h.run({"MGET", "a", "nope", "b"}) == "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n");
  CHECK(h.run({"MSETNX", "a", "9", "c", "3"}) == ":0\r\n");
  CHECK(h.run({"EXISTS", "c"}) == ":0\r\n");
  CHECK(h.run({"APPEND", "a", "23"}) == ":3\r\n");
  CHECK(h.run({"STRLEN", "a"}) == ":3\r\n");
  CHECK(h.run({"INCR", "a"}) == ":124\r\n");
  CHECK(h.run({"DECRBY", "a", "24"}) == ":100\r\n");
  CHECK(h.run({"INCR", "k"}) == "-ERR value is not an integer or out of range\r\n");
  CHECK(h.run({"SET", "big", "9223372036854775807"}) == "+OK\r\n");
  CHECK(h.run({"INCR", "big"}) == "-ERR increment or decrement would overflow\r\n");
  CHECK(h.run({"SET", "f", "10.50"}) == "+OK\r\n");
  CHECK(h.run({"INCRBYFLOAT", "f", "0.1"}) == "$4\r\n10.6\r\n");
  CHECK(h.run({"INCRBYFLOAT", "f", "x"}) == "-ERR value is not a valid float\r\n");
  CHECK(h.run({"SET", "s", "Hello World"}) == "+OK\r\n");
  CHECK(h.run({"GETRANGE", "s", "0", "4"}) == "$5\r\nHello\r\n");
  CHECK(h.run({"GETRANGE", "s", "-5", "-1"}) == "$5\r\nWorld\r\n");
  CHECK(h.run({"GETRANGE", "s", "5", "2"}) == "$0\r\n\r\n");
  CHECK(h.run({"SETRANGE", "s", "6", "Redis"}) == ":11\r\n");
  CHECK(h.run({"GET", "s"}) == "$11\r\nHello Redis\r\n");
  CHECK(h.run({"SETRANGE", "pad", "3", "x"}) == ":4\r\n");
  CHECK(h.run({"GET", "pad"}) == std::string("$4\r\n\0\0\0x\r\n", 10));
  CHECK(h.run({"SETRANGE", "s", "-1", "x"}) == "-ERR offset is out of range\r\n");
  CHECK(h.run({"GETSET", "s", "new"}) == "$11\r\nHello Redis\r\n");
  CHECK(h.run({"GETDEL", "s"}) == "$3\r\nnew\r\n");
  CHECK(h.run({"GET", "s"}) == "$-1\r\n");
  CHECK(h.run({"GET"}) == "-ERR wrong number of arguments for 'get' command\r\n");
  CHECK(h.run({"NOSUCH", "x"}) == "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n");
}

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

TEST_CASE("connection commands, authentication and RESP3", "[kvstore][connection]") {
  harness h;
  h.cfg.requirepass = "secret";
  pobj::kv::session c;
  CHECK(h.run(c, {"GET", "a"}) == "-NOAUTH Authentication required.\r\n");
  CHECK(h.run(c, {"AUTH", "wrong"}) == "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  CHECK(h.run(c, {"AUTH", "secret"}) == "+OK\r\n");
  CHECK(h.run(c, {"PING"}) == "+PONG\r\n");
  CHECK(h.run(c, {"PING", "hi"}) == "$2\r\nhi\r\n");
  CHECK(h.run(c, {"ECHO", "x"}) == "$1\r\nx\r\n");
  CHECK(h.run(c, {"SELECT", "0"}) == "+OK\r\n");
  CHECK(h.run(c, {"SELECT", "1"}) == "-ERR DB index is out of range\r\n");
  CHECK(h.run(c, {"CLIENT", "SETNAME", "worker 1"}) ==
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
  CHECK(h.run(c, {"CLIENT", "SETNAME", "worker-1"}) == "+OK\r\n");
  CHECK(h.run(c, {"CLIENT", "GETNAME"}) == "$8\r\nworker-1\r\n");
  CHECK(h.run(c, {"HELLO", "4"}) == "-NOPROTO unsupported protocol version\r\n");
  const std::string hello = h.run(c, {"HELLO", "3"});
  CHECK(hello.starts_with("%7\r\n$6\r\nserver\r\n$7\r\npobj-kv\r\n"));
  CHECK(c.protocol == 3);
  CHECK(h.run(c, {"GET", "missing"}) == "_\r\n");
  CHECK(h.run(c, {"CONFIG", "GET", "port"}) == "%1\r\n$4\r\nport\r\n$4\r\n7379\r\n");
  CHECK(h.run(c, {"CONFIG", "SET", "port", "1"}).starts_with("-ERR CONFIG SET failed"));
  CHECK(h.run(c, {"CONFIG", "SET", "hz", "20"}) == "+OK\r\n");
  CHECK(h.cfg.hz == 20);
  CHECK(h.run(c, {"COMMAND", "COUNT"}).starts_with(":"));
  CHECK(h.run(c, {"QUIT"}) == "+OK\r\n");
  CHECK(c.close_after_reply);
}

TEST_CASE("the keyspace survives reopening, times to live included", "[kvstore][store]") {
  pobj_test::scratch_path path("kv-reopen");
  pobj::kv::config cfg;
  pobj::kv::session s;
  s.authenticated = true;
  auto run = [&](pobj::kv::engine& e, pobj::pool& p, std::initializer_list<std::string_view> args, std::int64_t now) {
    std::string out;
    pobj::kv::reply_writer w(out, 2);
    std::vector<std::string_view> argv(args);
    pobj::run_tx(p, [&](pobj::transaction& tx) { e.execute(s, argv, w, tx, now); });
    return out;
  };
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    pobj::kv::engine e(p, cfg);
    run(e, p, {"SET", "k", "v"}, 1000);
    run(e, p, {"SET", "t", "v", "PX", "5000"}, 1000);
  }
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  pobj::kv::engine e(p, cfg);
  CHECK(run(e, p, {"GET", "k"}, 2000) == "$1\r\nv\r\n");
  CHECK(run(e, p, {"PTTL", "t"}, 2000) == ":4000\r\n");
  CHECK(run(e, p, {"GET", "t"}, 6000) == "$-1\r\n");
  CHECK(p.heap().check().ok());
}

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

TEST_CASE("review fixes: Redis's answers where the first version differed", "[kvstore][regression]") {
  harness h;
  // SHUTDOWN ABORT with no shutdown under way; SHUTDOWN refused inside MULTI, failing EXEC.
  CHECK(h.run({"SHUTDOWN", "ABORT"}) == "-ERR No shutdown in progress.\r\n");
  h.run({"MULTI"});
  CHECK(h.run({"SHUTDOWN"}) == "-ERR Command not allowed inside a transaction\r\n");
  CHECK(h.run({"EXEC"}) == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  // INCRBYFLOAT stores what Redis stores (long double, %.17Lf, trailing zeros trimmed).
  CHECK(h.run({"INCRBYFLOAT", "f1", "0.00001"}) == "$7\r\n0.00001\r\n");
  CHECK(h.run({"INCRBYFLOAT", "f2", "1e20"}) == "$21\r\n100000000000000000000\r\n");
  CHECK(h.run({"SET", "f3", "0.1"}) == "+OK\r\n");
  CHECK(h.run({"INCRBYFLOAT", "f3", "0.2"}) == "$3\r\n0.3\r\n");
  CHECK(h.run({"HINCRBYFLOAT", "hf", "x", "0.1"}) == "$3\r\n0.1\r\n");
  // SETRANGE at an offset that would overflow: the size error, no undefined behaviour.
  CHECK(h.run({"SETRANGE", "s", "9223372036854775807", "x"}) ==
        "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n");
  // HELLO SETNAME checks the name as CLIENT SETNAME does.
  CHECK(h.run({"HELLO", "2", "SETNAME", "bad name"}) ==
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
  // A watched key whose time to live ends before EXEC fails the EXEC, accessed or not.
  CHECK(h.run({"SET", "w", "v", "PX", "100"}) == "+OK\r\n");
  CHECK(h.run({"WATCH", "w"}) == "+OK\r\n");
  h.now += 300;
  h.run({"MULTI"});
  h.run({"SET", "w", "x"});
  CHECK(h.run({"EXEC"}) == "*-1\r\n");
  // A watched key that another client's read finds expired (and removes) fails the EXEC too.
  pobj::kv::session other;
  other.authenticated = true;
  CHECK(h.run({"SET", "w2", "v", "PX", "100"}) == "+OK\r\n");
  CHECK(h.run({"WATCH", "w2"}) == "+OK\r\n");
  h.now += 300;
  CHECK(h.run(other, {"GET", "w2"}) == "$-1\r\n");
  h.run({"MULTI"});
  CHECK(h.run({"EXEC"}) == "*-1\r\n");
  // Glob patterns with many stars are matched in polynomial time (this took minutes before).
  CHECK(h.run({"SET", std::string(40, 'a'), "v"}) == "+OK\r\n");
  CHECK(h.run({"KEYS", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"}) == "*0\r\n");
  CHECK(h.run({"KEYS", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a"}).starts_with("*1\r\n"));
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

namespace {
// Runs a parked session's retry command (what the server does when its key is signalled).
std::string run_retry(harness& h, pobj::kv::session& who) {
  REQUIRE(who.blocked.active);
  std::vector<std::string> retry = who.blocked.retry;
  who.blocked = pobj::kv::session::blocking{};
  std::string out;
  pobj::kv::reply_writer w(out, who.protocol);
  std::vector<std::string_view> argv(retry.begin(), retry.end());
  pobj::transaction tx(h.pool);
  h.eng.execute(who, argv, w, tx, h.now);
  tx.commit();
  return out;
}
}  // namespace

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

TEST_CASE("ONCE applies a command once per request id and replies the first reply", "[kvstore][once]") {
  harness h;
  CHECK(h.run({"ONCE", "r1", "INCR", "c"}) == ":1\r\n");
  CHECK(h.run({"ONCE", "r1", "INCR", "c"}) == ":1\r\n");
  CHECK(h.run({"GET", "c"}) == "$1\r\n1\r\n");
  CHECK(h.run({"ONCE", "r2", "INCR", "c"}) == ":2\r\n");
  CHECK(h.eng.db().stored_replies() == 2);
  // The reply is stored in the command's block: a block that rolls back stores nothing.
  {
    std::string out;
    pobj::kv::reply_writer w(out, 2);
    std::vector<std::string_view> argv{"ONCE", "r3", "INCR", "c"};
    pobj::transaction tx(h.pool);
    h.eng.execute(h.s, argv, w, tx, h.now);
    CHECK(out == ":3\r\n");
    tx.abort();
  }
  h.eng.db().reload();
  CHECK(h.run({"ONCE", "r3", "INCR", "c"}) == ":3\r\n");
  CHECK(h.run({"GET", "c"}) == "$1\r\n3\r\n");
  // A blocking call stores its reply when it replies; its retry is a ONCE again.
  CHECK(h.run({"ONCE", "w", "FUTURE.GET", "fut"}).empty());
  CHECK(h.s.blocked.retry.at(0) == "ONCE");
  CHECK(h.s.blocked.retry.at(1) == "w");
  CHECK(h.run({"FUTURE.SET", "fut", "x"}) == ":1\r\n");
  CHECK(run_retry(h, h.s) == "$1\r\nx\r\n");
  CHECK(h.run({"ONCE", "w", "FUTURE.GET", "fut"}) == "$1\r\nx\r\n");
  // Replies are kept reply-ttl at least and twice that at most: two generations, rotated.
  const std::int64_t ttl = h.cfg.reply_ttl_s * 1000;
  auto rotate = [&] {
    pobj::transaction tx(h.pool);
    const bool did = h.eng.db().rotate_replies(tx, h.now, ttl);
    tx.commit();
    return did;
  };
  CHECK_FALSE(rotate());  // the current generation gets its start time
  h.now += ttl;
  CHECK(rotate());        // r1, r2, r3, w: now in the previous generation, still kept
  CHECK(h.run({"ONCE", "r1", "INCR", "c"}) == ":1\r\n");
  CHECK(h.eng.db().stored_replies() == 4);
  CHECK(h.run({"ONCE", "r4", "INCR", "c"}) == ":4\r\n");
  h.now += ttl - 1;
  CHECK_FALSE(rotate());
  h.now += 1;
  CHECK(rotate());        // the first generation is gone; r4 is kept
  CHECK(h.eng.db().stored_replies() == 1);
  CHECK(h.run({"ONCE", "r1", "INCR", "c"}) == ":5\r\n");  // gone: a new request
  CHECK(h.run({"ONCE", "r4", "INCR", "c"}) == ":4\r\n");
  CHECK(h.run({"ONCE", std::string_view("\0x", 2), "INCR", "c"}).rfind("-ERR request ids", 0) == 0);
  // A request id names one command: reused for another, or retried in another protocol, it is
  // refused rather than answered with a reply that does not fit.
  CHECK(h.run({"ONCE", "r4", "DECR", "c"}) == "-ERR this request id was used for another command\r\n");
  CHECK(h.run({"ONCE", "r4", "incr", "c"}) == ":4\r\n");
  h.s.protocol = 3;
  CHECK(h.run({"ONCE", "r4", "INCR", "c"}) == "-ERR the reply to this request was sent in RESP2; retry with HELLO 2\r\n");
  h.s.protocol = 2;
  // What ONCE refuses.
  CHECK(h.run({"ONCE", "m", "MULTI"}) == "-ERR ONCE cannot run 'multi'\r\n");
  CHECK(h.run({"ONCE", "m", "BLPOP", "q", "0"}) == "-ERR ONCE cannot run 'blpop'\r\n");
  CHECK(h.run({"ONCE", "m", "ONCE", "n", "INCR", "c"}) == "-ERR ONCE cannot run 'once'\r\n");
  CHECK(h.run({"ONCE", "m"}) == "-ERR wrong number of arguments for 'once' command\r\n");
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

TEST_CASE("a rolled-back reply rotation leaves the store usable after reload", "[kvstore][once]") {
  // Regression: active expiry's block could fail after rotate_replies had moved the store's
  // handles to a new generation; the server now reloads them, as after any rolled-back block.
  harness h;
  CHECK(h.run({"ONCE", "a", "INCR", "c"}) == ":1\r\n");
  {
    pobj::transaction tx(h.pool);
    h.eng.db().rotate_replies(tx, h.now, 1);  // gives the generation its start time
    tx.commit();
  }
  h.now += 10;
  {
    pobj::transaction tx(h.pool);
    CHECK(h.eng.db().rotate_replies(tx, h.now, 1));
    tx.abort();
  }
  h.eng.db().reload();
  CHECK(h.run({"ONCE", "a", "INCR", "c"}) == ":1\r\n");
  CHECK(h.run({"ONCE", "b", "INCR", "c"}) == ":2\r\n");
  CHECK(h.eng.db().stored_replies() == 2);
  CHECK(h.pool.heap().check().ok());
}
