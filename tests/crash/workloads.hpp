// Crash-test workloads shared by the crash suites (and by the missing-flush proof, which runs
// them against a deliberately broken library).
#pragma once

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include <pobj/heap.hpp>
#include <pobj/testing/crash_harness.hpp>
#include <pobj/transaction.hpp>

namespace crash_workloads {

using namespace pobj;
using pobj::testing::crash_context;
using pobj::testing::crash_point;
using pobj::testing::expect;

inline pool_options crash_options() {
  pool_options o;
  o.size = 0;  // set below: the smallest pool the options allow
  o.lanes = 2;
  o.lane_log_size = 8 * KiB;
  o.max_size = 64 * MiB;
  o.size = pool::minimum_size(o);
  return o;
}

// ---- bank: transfers between accounts, all-or-nothing, with nesting, aborts, allocs and frees.
// Accounts sit on separate cache lines, so a torn block shows up as a broken total.
constexpr std::size_t accounts = 6;
constexpr std::uint64_t initial = 1000;

struct bank {
  struct alignas(64) account {
    std::uint64_t balance;
    std::uint64_t transfers;
  } account[accounts];
  std::uint64_t receipt;  // the newest receipt object (allocated per transfer, the old one freed)
};

struct receipt {
  std::uint64_t op;
  std::uint64_t from, to, amount;
};

struct transfer {
  std::size_t from, to;
  std::uint64_t amount;
  int shape;  // 0 plain, 1 nested, 2 aborted by an exception, 3 with a receipt (alloc + free)
};

inline std::vector<transfer> bank_ops(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<transfer> ops;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t from = rng() % accounts, to = (from + 1 + rng() % (accounts - 1)) % accounts;
    ops.push_back({from, to, rng() % 50, static_cast<int>(rng() % 4)});
  }
  return ops;
}

// Account balances after the first k operations.
inline std::vector<std::uint64_t> bank_expected(const std::vector<transfer>& ops, std::size_t k) {
  std::vector<std::uint64_t> b(accounts, initial);
  for (std::size_t i = 0; i < k && i < ops.size(); ++i) {
    if (ops[i].shape == 2) continue;
    b[ops[i].from] -= ops[i].amount;
    b[ops[i].to] += ops[i].amount;
  }
  return b;
}

inline void bank_setup(pool& p) {
  transaction tx(p);
  allocation a = tx.alloc(sizeof(bank));
  auto* b = static_cast<bank*>(a.pointer);
  std::memset(b, 0, sizeof(bank));
  for (auto& acc : b->account) acc.balance = initial;
  p.set_root("bank", a.offset);
}

inline void bank_apply(pool& p, const transfer& t, std::size_t op) {
  auto* b = p.at<bank>(p.root("bank"));
  auto move = [&](transaction& tx) {
    tx.snapshot({{&b->account[t.from], 16}, {&b->account[t.to], 16}});
    b->account[t.from].balance -= t.amount;
    b->account[t.to].balance += t.amount;
    b->account[t.from].transfers++;
    b->account[t.to].transfers++;
  };
  switch (t.shape) {
    case 0: run_tx(p, move); break;
    case 1:
      run_tx(p, [&](transaction&) {
        run_tx(p, move);
      });
      break;
    case 2:
      try {
        run_tx(p, [&](transaction& tx) {
          move(tx);
          tx.alloc(100);
          throw std::runtime_error("abandon");
        });
      } catch (const std::runtime_error&) {
      }
      break;
    case 3:
      run_tx(p, [&](transaction& tx) {
        move(tx);
        allocation a = tx.alloc(sizeof(receipt));
        *static_cast<receipt*>(a.pointer) = receipt{op, t.from, t.to, t.amount};
        if (b->receipt != 0) tx.free(b->receipt);
        tx.set(b->receipt, a.offset);
      });
      break;
  }
}

inline void bank_verify(pool& p, const crash_point& pt, const std::vector<transfer>& ops) {
  auto* b = p.at<bank>(p.root("bank"));
  expect(b != nullptr, "the bank root is gone");
  std::vector<std::uint64_t> got(accounts);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < accounts; ++i) total += got[i] = b->account[i].balance;
  expect(total == accounts * initial, "total balance {} != {}", total, accounts * initial);
  bool match = got == bank_expected(ops, pt.ops_completed) ||
               (pt.op_in_flight && got == bank_expected(ops, pt.ops_completed + 1));
  expect(match, "balances match neither the {} completed transfers nor those plus the one in flight",
         pt.ops_completed);
  // The receipt is the one written by the newest receipt-writing transfer that completed, or by
  // the transfer in flight.
  auto newest_receipt = [&](std::size_t k) {
    for (std::size_t i = std::min(k, ops.size()); i-- > 0;) {
      if (ops[i].shape == 3) return static_cast<std::int64_t>(i);
    }
    return std::int64_t{-1};
  };
  std::int64_t want = newest_receipt(pt.ops_completed);
  std::int64_t want_in_flight = pt.op_in_flight ? newest_receipt(pt.ops_completed + 1) : want;
  std::int64_t got_op = -1;
  if (b->receipt != 0) {
    expect(p.heap().is_allocated(b->receipt), "the receipt is linked but not allocated");
    auto* r = p.at<receipt>(b->receipt);
    got_op = static_cast<std::int64_t>(r->op);
    expect(r->op < ops.size() && ops[r->op].shape == 3 && r->from == ops[r->op].from &&
               r->amount == ops[r->op].amount,
           "the receipt does not describe a receipt-writing transfer");
  }
  expect(got_op == want || got_op == want_in_flight, "the receipt is from transfer {}, expected {} or {}", got_op,
         want, want_in_flight);
}

inline pobj::testing::crash_test bank_test(std::size_t n, std::uint64_t seed) {
  auto ops = bank_ops(n, seed);
  pobj::testing::crash_test t;
  t.name = "bank transfers";
  t.options = crash_options();
  t.seed = seed;
  t.setup = bank_setup;
  t.workload = [ops](crash_context& ctx) {
    for (std::size_t i = 0; i < ops.size(); ++i) {
      ctx.begin_op();
      bank_apply(ctx.pool(), ops[i], i);
      ctx.end_op();
    }
  };
  t.verify = [ops](pool& p, const crash_point& pt) { bank_verify(p, pt, ops); };
  return t;
}

}  // namespace crash_workloads
