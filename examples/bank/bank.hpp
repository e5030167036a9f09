// The bank example's persistent classes: a TPC-B-like bank of branches, tellers, accounts and a
// history, all in one pool. pobj-gen reads this header and emits bank.pobj.hpp.
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/ref.hpp>
#include <pobj/string.hpp>

namespace bank {

inline constexpr std::uint32_t max_branches = 8;
inline constexpr std::uint32_t max_tellers = 80;
inline constexpr std::uint32_t page_size = 512;  // accounts per page
inline constexpr std::uint32_t max_pages = 256;  // so at most 131072 accounts

struct POBJ_PERSISTENT branch {
  std::int64_t balance;
  pobj::string name;
};

struct POBJ_PERSISTENT teller {
  std::int64_t balance;
  pobj::ref<branch> home;
};

struct POBJ_PERSISTENT account {
  std::int64_t balance;
  pobj::ref<branch> home;
};

// One line of the history, newest first: a deposit (TPC-B) or a transfer between two accounts.
struct POBJ_PERSISTENT history {
  std::uint64_t sequence;
  std::int64_t amount;
  std::uint32_t account;       // the account credited
  std::uint32_t from_account;  // transfers: the account debited; deposits: 0xffffffff
  std::uint32_t teller;
  pobj::ref<history> previous;
};

struct POBJ_PERSISTENT account_page {
  pobj::ref<account> accounts[page_size];
};

struct POBJ_PERSISTENT bank {
  std::uint32_t branches;
  std::uint32_t tellers;           // in all
  std::uint32_t accounts;          // in all
  std::uint32_t accounts_ready;    // made so far (creation is resumable)
  std::int64_t initial_balance;    // of every account
  std::uint64_t transactions;      // deposits and transfers applied
  pobj::ref<history> last;
  pobj::ref<branch> branch_list[max_branches];
  pobj::ref<teller> teller_list[max_tellers];
  pobj::ref<account_page> pages[max_pages];

  // TPC-B: the account, its teller and their branch move by `amount`, and the history grows.
  POBJ_FAILURE_ATOMIC void deposit(std::uint32_t account_no, std::uint32_t teller_no, std::int64_t amount);
  // Moves `amount` from one account to another; throws (changing nothing) if it would overdraw.
  POBJ_FAILURE_ATOMIC void transfer(std::uint32_t from, std::uint32_t to, std::int64_t amount, std::uint32_t teller_no);
};

}  // namespace bank
