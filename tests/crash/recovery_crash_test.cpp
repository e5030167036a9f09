// Recovery itself, crashed at every one of its fences: a crash during recovery is recoverable.
#include <catch2/catch.hpp>

#include "workloads.hpp"

using namespace crash_workloads;

TEST_CASE("a crash during recovery is itself recovered", "[crash][recovery]") {
  auto test = bank_test(30, 21);
  test.name = "bank, crashing recovery";
  test.random_images = 3;
  test.recovery_points = 40;
  auto result = pobj::testing::run(test);
  INFO(result.summary());
  CHECK(result.recoveries_crashed >= 10);  // recoveries that had blocks to roll back or forward
  CHECK(result.recovery_images > 3 * result.recoveries_crashed);
  REQUIRE(result.ok());
}

TEST_CASE("opening a pool after a crash rolls back or forward, then reopens clean", "[crash][recovery]") {
  // Crash in the middle of a block (newest image: every store reached the medium, none fenced),
  // then check that recovery reports what it did and that a second open has nothing left to do.
  auto test = bank_test(10, 22);
  std::uint32_t rolled = 0;
  test.name = "bank, recovery report";
  test.recovery_points = 0;
  auto verify = test.verify;
  test.verify = [&, verify](pool& p, const crash_point& pt) {
    verify(p, pt);
    rolled += p.recovery().blocks_rolled_back + p.recovery().blocks_rolled_forward;
    std::string path = p.path();
    p.close();
    p = pool::open(path, crash_options());
    expect(p.recovery().blocks_rolled_back + p.recovery().blocks_rolled_forward == 0,
           "a second open recovered again");
  };
  auto result = pobj::testing::run(test);
  INFO(result.summary());
  REQUIRE(result.ok());
  CHECK(rolled > 0);
}
