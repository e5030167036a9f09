// The methods of tests/codegen/inputs/ledger.hpp, for the codegen tests and for the shared
// module that pobj-kv's user-object tests load (tests/kvstore/user_objects_test.py).
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "ledger.pobj.hpp"

std::int64_t pobj::generated::ledger_account_proxy::deposit(pobj::transaction& tx, std::int64_t cents) {
  set_balance(tx, balance() + cents);
  set_operations(tx, operations() + 1);
  return balance();
}
bool pobj::generated::ledger_account_proxy::withdraw(pobj::transaction& tx, std::int64_t cents, const std::string& payee) {
  if (cents > balance()) return false;
  set_balance(tx, balance() - cents);
  if (by_payee().offset == 0) set_by_payee(tx, pobj::make_hash_map<pobj::string, std::int64_t>(tx));
  auto paid = by_payee_ref();
  paid.insert_or_assign(tx, payee, paid.find(payee).value_or(0) + cents);
  return true;
}
void pobj::generated::ledger_account_proxy::rename(pobj::transaction& tx, std::string_view name) { set_owner(tx, name); }
std::string pobj::generated::ledger_account_proxy::summary() const { return fmt::format("{}: {}", owner(), balance()); }
std::uint64_t pobj::generated::ledger_account_proxy::limit() const { return ~std::uint64_t{0}; }
std::int8_t pobj::generated::ledger_account_proxy::sign(std::int8_t of, bool flip) const {
  const std::int8_t s = of < 0 ? -1 : of > 0 ? 1 : 0;
  return static_cast<std::int8_t>(flip ? -s : s);
}
std::uint32_t pobj::generated::ledger_account_proxy::add_operations(pobj::transaction& tx, std::uint32_t count) {
  set_operations(tx, operations() + count);
  return operations();
}
std::int64_t pobj::generated::ledger_account_proxy::checked_balance(std::int64_t at_least) const {
  if (balance() < at_least) throw std::runtime_error(fmt::format("the balance is below {}", at_least));
  return balance();
}
void pobj::generated::ledger_account_proxy::fail_after(pobj::transaction& tx, std::int64_t cents) {
  set_balance(tx, balance() + cents);
  throw std::runtime_error("refused after the change");
}
std::int64_t pobj::generated::ledger_account_proxy::not_shared() const { return 0; }
double pobj::generated::ledger_savings_proxy::accrue(pobj::transaction& tx, double years, float bonus) {
  const double gained = static_cast<double>(balance()) * (rate() * years) + static_cast<double>(bonus);
  set_balance(tx, balance() + static_cast<std::int64_t>(gained));
  return gained;
}
