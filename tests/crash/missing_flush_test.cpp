// Linked against pobj built with POBJ_FAULT_SKIP_UNDO_FLUSH: undo records are never written
// back, so an in-place store can reach the medium before the record that could undo it. The
// crash tests must notice. If this test fails, the crash simulator has gone blind.
#include <algorithm>

#include <catch2/catch.hpp>

#include "workloads.hpp"

using namespace crash_workloads;

TEST_CASE("the crash tests catch a missing flush", "[crash][fault]") {
  auto result = pobj::testing::run(bank_test(24, 11));
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE_FALSE(result.ok());
  // Caught for the right reason: a torn transfer, not some unrelated failure.
  bool torn = std::any_of(result.failures.begin(), result.failures.end(), [](const std::string& f) {
    return f.find("total balance") != std::string::npos || f.find("balances match neither") != std::string::npos;
  });
  CHECK(torn);
  WARN("caught, as it should be: " << result.failures.front());
}
