// kvstore's ONCE (commands/once.cpp), through the engine without a network (engine_fixture.hpp).
#include "../engine_fixture.hpp"

using kv_test::harness;
using kv_test::run_retry;

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
