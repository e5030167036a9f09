// Linked against pobj built with POBJ_FAULT_SKIP_UNDO_FLUSH: undo records are never written
// back, so an in-place store can reach the medium before the record that could undo it. The
// crash tests must notice. If this test fails, the crash simulator has gone blind.
#include <catch2/catch.hpp>

#include "workloads.hpp"

using namespace crash_workloads;

TEST_CASE("the crash tests catch a missing flush", "[crash][fault]") {
  auto result = pobj::testing::run(bank_test(24, 11));
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE_FALSE(result.ok());
  WARN("caught, as it should be: " << result.failures.front());
}
