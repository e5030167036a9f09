// A valid input: the classes of a small bank, with every kind of field pobj-gen supports.
#pragma once

#include <cstdint>
#include <string>

#include <pobj/annotate.hpp>
#include <pobj/atomic.hpp>
#include <pobj/record.hpp>
#include <pobj/ref.hpp>
#include <pobj/string.hpp>
#include <pobj/transaction.hpp>

namespace bank {

enum class kind : std::uint8_t { checking, savings };

struct money {  // a value record, stored whole
  std::int64_t cents;
  std::uint32_t currency;
};

struct dated {  // a value record holding another
  std::int64_t day;
  money amount;
};

struct account;

struct POBJ_PERSISTENT branch {
  std::int64_t balance;
  char code[8];
  pobj::string name;
  long long visits;  // a type of its own, though the size of std::int64_t
  pobj::atomic<std::uint64_t> hits;         // durable linearizable counters and references
  pobj::atomic<pobj::ref<account>> newest;

  POBJ_METHOD void rename(pobj::transaction& tx, std::string&& name);
};

struct POBJ_PERSISTENT marker {};  // no fields at all

struct POBJ_PERSISTENT account {
  std::int64_t balance;
  kind type;
  bool frozen;
  pobj::ref<branch> home;
  pobj::ref<account> next;  // self-references are fine
  money limit;
  double rate;
  pobj::bytes key;
  pobj::record<money> last_statement;
  dated opened;

  POBJ_FAILURE_ATOMIC void deposit(std::int64_t cents);
  POBJ_METHOD bool overdrawn() const;
};

}  // namespace bank
