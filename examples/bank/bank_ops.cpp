#include "bank_ops.hpp"

#include <map>
#include <stdexcept>

#include <fmt/format.h>

namespace gen = pobj::generated;

// The persistent methods bank.hpp declares. pobj-gen wraps each in a failure-atomic block.
void gen::bank_bank_proxy::deposit(pobj::transaction& tx, std::uint32_t account_no, std::uint32_t teller_no,
                                   std::int64_t amount) {
  if (account_no >= accounts_ready() || teller_no >= tellers()) {
    throw std::out_of_range(fmt::format("no account {} or teller {}", account_no, teller_no));
  }
  auto acc = bank::account_at(*this, account_no);
  auto tel = teller_list_object(teller_no);
  auto br = tel.home_object();
  acc.set_balance(tx, acc.balance() + amount);
  tel.set_balance(tx, tel.balance() + amount);
  br.set_balance(tx, br.balance() + amount);
  auto line = pobj::builder<bank::history>()
                  .sequence(transactions() + 1)
                  .amount(amount)
                  .account(account_no)
                  .from_account(0xffffffff)
                  .teller(teller_no)
                  .previous(last())
                  .make(tx);
  set_last(tx, line.ref());
  set_transactions(tx, transactions() + 1);
}

void gen::bank_bank_proxy::transfer(pobj::transaction& tx, std::uint32_t from, std::uint32_t to, std::int64_t amount,
                                    std::uint32_t teller_no) {
  if (from >= accounts_ready() || to >= accounts_ready() || from == to) {
    throw std::out_of_range(fmt::format("cannot transfer from account {} to account {}", from, to));
  }
  auto a = bank::account_at(*this, from);
  auto b = bank::account_at(*this, to);
  a.set_balance(tx, a.balance() - amount);
  if (a.balance() < 0) throw std::runtime_error(fmt::format("account {} cannot pay {}", from, amount));
  b.set_balance(tx, b.balance() + amount);
  auto line = pobj::builder<bank::history>()
                  .sequence(transactions() + 1)
                  .amount(amount)
                  .account(to)
                  .from_account(from)
                  .teller(teller_no)
                  .previous(last())
                  .make(tx);
  set_last(tx, line.ref());
  set_transactions(tx, transactions() + 1);
}

namespace bank {

pobj::proxy<account> account_at(pobj::proxy<bank> b, std::uint32_t account_no) {
  return b.pages_object(account_no / page_size).accounts_object(account_no % page_size);
}

pobj::proxy<bank> open_or_create(pobj::pool& p, const scale& s) {
  std::optional<pobj::proxy<bank>> found = pobj::root<bank>(p, "bank");
  if (!found) {
    if (s.branches < 1 || s.branches > max_branches || s.tellers_per_branch < 1 ||
        s.branches * s.tellers_per_branch > max_tellers || s.accounts < 1 || s.accounts > page_size * max_pages) {
      throw std::invalid_argument(fmt::format("a bank has 1 to {} branches, 1 to {} tellers and 1 to {} accounts",
                                              max_branches, max_tellers, page_size * max_pages));
    }
    found = pobj::run_tx(p, [&](pobj::transaction& tx) {
      auto b = pobj::builder<bank>()
                   .branches(s.branches)
                   .tellers(s.branches * s.tellers_per_branch)
                   .accounts(s.accounts)
                   .initial_balance(s.initial_balance)
                   .make(tx);
      for (std::uint32_t i = 0; i < s.branches; ++i) {
        b.set_branch_list(tx, i, pobj::builder<branch>().name(fmt::format("branch {}", i)).make(tx).ref());
      }
      for (std::uint32_t i = 0; i < b.tellers(); ++i) {
        b.set_teller_list(tx, i, pobj::builder<teller>().home(b.branch_list()[i % s.branches]).make(tx).ref());
      }
      pobj::set_root(p, "bank", b.ref());
      return b;
    });
  }
  pobj::proxy<bank> b = *found;
  // Accounts, one page per block, so an interrupted creation resumes at the next page.
  while (b.accounts_ready() < b.accounts()) {
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      const std::uint32_t first = b.accounts_ready();
      const std::uint32_t n = std::min(page_size, b.accounts() - first);
      auto page = pobj::make<account_page>(tx);
      for (std::uint32_t i = 0; i < n; ++i) {
        auto a = pobj::builder<account>()
                     .balance(b.initial_balance())
                     .home(b.branch_list()[(first + i) % b.branches()])
                     .make(tx);
        page.set_accounts(tx, i, a.ref());
      }
      b.set_pages(tx, first / page_size, page.ref());
      b.set_accounts_ready(tx, first + n);
    });
  }
  return b;
}

audit_report audit(pobj::proxy<bank> b) {
  audit_report r;
  std::map<std::uint32_t, std::int64_t> expected;  // account -> balance the history says
  for (std::uint32_t i = 0; i < b.accounts_ready(); ++i) r.accounts += account_at(b, i).balance();
  for (std::uint32_t i = 0; i < b.tellers(); ++i) r.tellers += b.teller_list_object(i).balance();
  for (std::uint32_t i = 0; i < b.branches(); ++i) r.branches += b.branch_list_object(i).balance();
  std::uint64_t next = b.transactions();
  for (auto h = b.last(); h; h = pobj::deref(b.pool(), h).previous()) {
    auto line = pobj::deref(b.pool(), h);
    if (line.sequence() != next) {
      r.problem = fmt::format("history line {} follows line {}", line.sequence(), next + 1);
      return r;
    }
    --next;
    ++r.history_lines;
    expected[line.account()] += line.amount();
    if (line.from_account() == 0xffffffff) {
      r.deposits += line.amount();
    } else {
      expected[line.from_account()] -= line.amount();
    }
  }
  const std::int64_t initial = b.initial_balance() * static_cast<std::int64_t>(b.accounts_ready());
  if (r.history_lines != b.transactions()) {
    r.problem = fmt::format("{} history lines for {} transactions", r.history_lines, b.transactions());
  } else if (r.accounts != initial + r.deposits) {
    r.problem = fmt::format("accounts hold {}, but {} were deposited on top of {}", r.accounts, r.deposits, initial);
  } else if (r.tellers != r.deposits || r.branches != r.deposits) {
    r.problem = fmt::format("tellers hold {} and branches {}, but {} were deposited", r.tellers, r.branches, r.deposits);
  } else {
    for (auto [no, delta] : expected) {
      if (no >= b.accounts_ready() || account_at(b, no).balance() != b.initial_balance() + delta) {
        r.problem = fmt::format("account {} does not match its history", no);
        break;
      }
    }
  }
  return r;
}

}  // namespace bank
