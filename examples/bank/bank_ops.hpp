// The bank example's operations, shared by the program (main.cpp) and its crash test.
#pragma once

#include <cstdint>
#include <string>

#include <pobj/pobj.hpp>

#include "bank.pobj.hpp"

namespace bank {

struct scale {
  std::uint32_t branches = 1;
  std::uint32_t tellers_per_branch = 10;
  std::uint32_t accounts = 10000;
  std::int64_t initial_balance = 1000;
};

// The bank in `p` (root "bank"), made at `s` if the pool has none; a creation that was interrupted
// resumes where it stopped.
pobj::proxy<bank> open_or_create(pobj::pool& p, const scale& s);

pobj::proxy<account> account_at(pobj::proxy<bank> b, std::uint32_t account_no);

// What an audit finds. TPC-B's consistency conditions plus the history: the sum of the accounts
// equals their initial money plus every deposit; tellers and branches each sum to the deposits;
// the history has one line per transaction, and replaying it gives every account's balance.
struct audit_report {
  std::int64_t accounts = 0, tellers = 0, branches = 0, deposits = 0;
  std::uint64_t history_lines = 0;
  std::string problem;  // empty if the invariants hold
  bool ok() const { return problem.empty(); }
};
audit_report audit(pobj::proxy<bank> b);

}  // namespace bank
