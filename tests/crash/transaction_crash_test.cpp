// Failure-atomic blocks under the crash simulator: every block is all or nothing, including
// nested blocks, blocks aborted by exceptions, and blocks that allocate and free.
#include <cstdlib>

#include <catch2/catch.hpp>

#include "workloads.hpp"

using namespace crash_workloads;

TEST_CASE("bank transfers are all or nothing at every fence", "[crash][tx]") {
  auto result = pobj::testing::run(bank_test(24, 11));
  INFO(result.summary());
  CHECK(result.fences > 40);
  CHECK(result.points == result.fences);  // exhaustive
  REQUIRE(result.ok());
}

TEST_CASE("a long mixed bank workload survives seeded random crashes", "[crash][tx]") {
  // POBJ_CRASH_LONG_OPS lengthens the workload for the long run (docs/crash-testing.md).
  const char* ops = std::getenv("POBJ_CRASH_LONG_OPS");
  auto result = pobj::testing::run(bank_test(ops != nullptr ? std::strtoull(ops, nullptr, 0) : 400, 12));
  INFO(result.summary());
  CHECK(result.fences > 400);
  REQUIRE(result.ok());
}
