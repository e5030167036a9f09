// bank: a TPC-B-like bank in a pool. Each run applies a batch of failure-atomic transactions
// (deposits through a teller, as in TPC-B, and transfers between accounts) to the bank the
// previous runs left, then audits it: the money adds up and the history replays to the balances.
// Kill it at any moment; the next run finds a consistent bank.
//
//   bank [--pool PATH] [--transactions N] [--accounts N] [--branches N] [--seed N]
//
// PATH defaults to bank.pool in the working directory; --accounts and --branches apply when the
// pool is created.
#include <chrono>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "bank_ops.hpp"

namespace {

int usage() {
  fmt::print(stderr, "usage: bank [--pool PATH] [--transactions N] [--accounts N] [--branches N] [--seed N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string path = "bank.pool";
  std::uint64_t transactions = 1000, seed = std::random_device{}();
  bank::scale scale;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    std::string v = argv[++i];
    try {
      if (a == "--pool") path = v;
      else if (a == "--transactions") transactions = std::stoull(v);
      else if (a == "--accounts") scale.accounts = static_cast<std::uint32_t>(std::stoul(v));
      else if (a == "--branches") scale.branches = static_cast<std::uint32_t>(std::stoul(v));
      else if (a == "--seed") seed = std::stoull(v);
      else return usage();
    } catch (const std::logic_error&) {
      return usage();
    }
  }
  pobj::pool pool = pobj::pool::open_or_create(path);
  auto b = bank::open_or_create(pool, scale);
  const std::uint64_t before = b.transactions();

  std::mt19937_64 rng(seed);
  std::uint64_t refused = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < transactions; ++i) {
    const auto account = static_cast<std::uint32_t>(rng() % b.accounts());
    const auto teller = static_cast<std::uint32_t>(rng() % b.tellers());
    if (rng() % 2 == 0) {
      b.deposit(account, teller, static_cast<std::int64_t>(rng() % 1999999) - 999999);  // TPC-B's delta range
    } else {
      const auto to = static_cast<std::uint32_t>((account + 1 + rng() % (b.accounts() - 1)) % b.accounts());
      try {
        if (to != account) b.transfer(account, to, static_cast<std::int64_t>(rng() % 500), teller);
      } catch (const std::runtime_error&) {
        ++refused;  // would overdraw: rolled back, nothing changed
      }
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  auto report = bank::audit(b);
  fmt::print("bank {}: {} accounts, {} tellers, {} branches ({} mode)\n", path, b.accounts(), b.tellers(), b.branches(),
             pobj::to_string(pool.mode()));
  fmt::print("this run: {} transactions in {:.3f} s ({:.0f} per second), {} transfers refused\n",
             b.transactions() - before, seconds, static_cast<double>(b.transactions() - before) / seconds, refused);
  fmt::print("in all:   {} transactions; accounts hold {}, deposits {}, tellers {}, branches {}\n", b.transactions(),
             report.accounts, report.deposits, report.tellers, report.branches);
  if (!report.ok()) {
    fmt::print(stderr, "bank: audit FAILED: {}\n", report.problem);
    return 1;
  }
  fmt::print("audit: the money adds up and the history replays to every balance\n");
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "bank: {}\n", e.what());
  return 1;
}
