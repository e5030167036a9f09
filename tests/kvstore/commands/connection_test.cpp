// kvstore's connection commands, authentication and RESP3 (commands/connection.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;

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
