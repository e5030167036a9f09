// A valid input: shared methods (POBJ_SHARED), which a server runs by name with arguments as
// text, on a class and on one derived from it; a container field the object owns.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <pobj/annotate.hpp>
#include <pobj/hash_map.hpp>
#include <pobj/string.hpp>

namespace ledger {

struct POBJ_PERSISTENT account {
  std::int64_t balance;
  std::uint32_t operations;
  pobj::string owner;
  pobj::hash_map<pobj::string, std::int64_t> by_payee;

  POBJ_SHARED std::int64_t deposit(std::int64_t cents);
  POBJ_SHARED bool withdraw(std::int64_t cents, const std::string& payee);
  POBJ_SHARED void rename(std::string_view name);
  POBJ_SHARED std::string summary() const;
  POBJ_SHARED std::uint64_t limit() const;
  POBJ_SHARED std::int8_t sign(std::int8_t of, bool flip) const;
  POBJ_SHARED std::uint32_t add_operations(std::uint32_t count);
  // Throws when the balance is below `at_least`: a const method's error changes nothing.
  POBJ_SHARED std::int64_t checked_balance(std::int64_t at_least) const;
  // Changes the object, then throws: the caller's block must undo the change.
  POBJ_SHARED void fail_after(std::int64_t cents);
  POBJ_METHOD std::int64_t not_shared() const;
};

struct POBJ_PERSISTENT savings : account {
  double rate;

  POBJ_SHARED double accrue(double years, float bonus);
};

struct POBJ_PERSISTENT plain {
  std::int64_t value;
};

// Objects that own other objects: a map of them as a field.
struct POBJ_PERSISTENT drawer {
  pobj::hash_map<pobj::string, pobj::owned_object> items;
};

}  // namespace ledger
