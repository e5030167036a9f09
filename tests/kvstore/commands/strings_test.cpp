// kvstore's STRINGS: SET, GET, INCR and the rest (commands/strings.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;

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
