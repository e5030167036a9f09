// The bank example under the crash simulator: a mix of TPC-B deposits and transfers (a refused
// one among them), crashed at every fence, and at every crash point the recovered bank passes the
// example's own audit (the money adds up, the history replays to every balance) and holds exactly
// the completed transactions, plus the one in flight if it committed.
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/testing/crash_harness.hpp>

#include "bank_ops.hpp"

namespace {

struct operation {
  bool transfer;
  std::uint32_t a, b, teller;
  std::int64_t amount;
};

std::vector<operation> operations(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<operation> ops;
  for (std::size_t i = 0; i < n; ++i) {
    operation op{rng() % 2 == 0, static_cast<std::uint32_t>(rng() % 16), static_cast<std::uint32_t>(rng() % 16),
                 static_cast<std::uint32_t>(rng() % 4), static_cast<std::int64_t>(rng() % 150) - 50};
    if (op.a == op.b) op.b = (op.a + 1) % 16;
    if (op.transfer && op.amount < 0) op.amount = -op.amount;
    ops.push_back(op);
  }
  ops[n / 2] = {true, 0, 1, 0, 1000000};  // overdraws: refused, rolled back, not counted
  return ops;
}

bank::scale small_bank() {
  bank::scale s;
  s.branches = 2;
  s.tellers_per_branch = 2;
  s.accounts = 16;
  s.initial_balance = 100;
  return s;
}

}  // namespace

TEST_CASE("the bank's money adds up at every crash point", "[crash][examples]") {
  const auto ops = operations(16, 5);
  pobj::testing::crash_test t;
  t.name = "bank example";
  t.options.size = 16 * pobj::MiB;
  t.options.lanes = 4;
  t.setup = [](pobj::pool& p) { bank::open_or_create(p, small_bank()); };
  t.workload = [ops](pobj::testing::crash_context& ctx) {
    auto b = *pobj::root<bank::bank>(ctx.pool(), "bank");
    for (const auto& op : ops) {
      ctx.begin_op();
      try {
        if (op.transfer) {
          b.transfer(op.a, op.b, op.amount, op.teller);
        } else {
          b.deposit(op.a, op.teller, op.amount);
        }
      } catch (const std::runtime_error&) {
      }
      ctx.end_op();
    }
  };
  t.verify = [ops](pobj::pool& p, const pobj::testing::crash_point& pt) {
    auto b = *pobj::root<bank::bank>(p, "bank");
    auto report = bank::audit(b);
    pobj::testing::expect(report.ok(), "audit: {}", report.problem);
    // Refused transfers (those that would overdraw) never count: a model in DRAM says which.
    auto applied = [&](std::size_t completed) {
      std::vector<std::int64_t> balance(16, small_bank().initial_balance);
      std::uint64_t n = 0;
      for (std::size_t i = 0; i < completed; ++i) {
        const operation& op = ops[i];
        if (op.transfer && balance[op.a] < op.amount) continue;
        balance[op.a] += op.transfer ? -op.amount : op.amount;
        if (op.transfer) balance[op.b] += op.amount;
        ++n;
      }
      return n;
    };
    const std::uint64_t done = applied(pt.ops_completed);
    const std::uint64_t with_next = applied(std::min(pt.ops_completed + 1, ops.size()));
    pobj::testing::expect(b.transactions() == done || (pt.op_in_flight && b.transactions() == with_next),
                          "{} transactions after {} completed operations{}", b.transactions(), pt.ops_completed,
                          pt.op_in_flight ? " and one in flight" : "");
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.fences > 40);
  CHECK(result.points == result.fences);  // every fence
  REQUIRE(result.ok());
}
