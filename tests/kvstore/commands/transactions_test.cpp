// kvstore's MULTI, EXEC and WATCH (commands/transactions.cpp), through the engine without a network (engine_fixture.hpp).
#include <chrono>
#include <thread>

#include <pobj/testing/faulty_files.hpp>

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

TEST_CASE("while the journal fails, writes get MISCONF and an EXEC with a write is refused whole",
          "[kvstore][transactions][faults]") {
  using pobj::testing::faulty_files;
  pobj_test::scratch_path path("kv-misconf");
  auto files = std::make_shared<faulty_files>();
  pobj::pool_options o = pobj_test::small_options();
  o.mode = pobj::persist_mode::page;
  o.files = files;
  pobj::pool pool = pobj::pool::create(path, o);
  pobj::kv::config cfg;
  pobj::kv::engine eng{pool, cfg};
  pobj::kv::session s, other;  // s queues a transaction; other writes meanwhile
  s.authenticated = other.authenticated = true;
  const std::int64_t now = 1'700'000'000'000;
  auto run_as = [&](pobj::kv::session& who, std::initializer_list<std::string_view> args,
                    std::uint64_t* ticket = nullptr) {
    std::string out;
    pobj::kv::reply_writer w(out, who.protocol);
    std::vector<std::string_view> argv(args);
    pobj::transaction tx(pool);
    eng.execute(who, argv, w, tx, now);
    const std::uint64_t t = tx.commit_deferred();  // never waits for the failing disk
    if (ticket != nullptr) *ticket = t;
    return out;
  };
  auto run = [&](std::initializer_list<std::string_view> args) { return run_as(s, args); };
  CHECK(run({"MULTI"}) == "+OK\r\n");
  CHECK(run({"SET", "a", "1"}) == "+QUEUED\r\n");
  CHECK(run({"GET", "b"}) == "+QUEUED\r\n");
  // The next ten journal fdatasyncs fail (a second and more of retries, with backoff).
  files->add({faulty_files::op::fdatasync, 1, 0, 0, false, ".journal"});
  files->add({faulty_files::op::fdatasync, files->calls_on(faulty_files::op::fdatasync, ".journal") + 1, 10, EIO,
              false, ".journal"});
  std::uint64_t ticket = 0;
  CHECK(run_as(other, {"SET", "b", "2"}, &ticket) == "+OK\r\n");  // its reply waits for this ticket
  std::thread syncer([&] { pool.sync(ticket); });
  for (int i = 0; i < 2000 && pool.durability_failure() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(pool.durability_failure() == EIO);
  CHECK(run({"EXEC"}).rfind("-EXECABORT Transaction discarded because of: MISCONF", 0) == 0);
  CHECK(run_as(other, {"SET", "c", "3"}).rfind("-MISCONF pobj-kv cannot make writes durable", 0) == 0);
  CHECK(run_as(other, {"GET", "b"}) == "$1\r\n2\r\n");  // reads go on
  syncer.join();
  CHECK(pool.durable(ticket));
  CHECK(pool.durability_failure() == 0);
  CHECK(run({"GET", "a"}) == "$-1\r\n");  // nothing of the refused EXEC happened
  CHECK(run({"SET", "c", "3"}) == "+OK\r\n");  // the disk is back: writes are accepted
}
