// The box office's methods (box_office.hpp). They run on the server, inside the block of the
// batch their call belongs to: every change below is failure-atomic with the others and with the
// reply, and an exception would undo them all. Like every shared method they are deterministic:
// no clock, no randomness, nothing but the object and the arguments.
#include <stdexcept>

#include <fmt/format.h>

#include "box_office.pobj.hpp"

using office = pobj::generated::tickets_box_office_proxy;

std::int64_t office::open(pobj::transaction& tx, std::string_view name, std::int64_t seats) {
  if (seats <= 0) throw std::invalid_argument("a show has at least one seat");
  if (capacity() != 0) return capacity();
  set_capacity(tx, seats);
  set_show(tx, name);
  set_holders(tx, pobj::make_hash_map<pobj::string, std::int64_t>(tx));
  return seats;
}

bool office::reserve(pobj::transaction& tx, std::string_view customer, std::int64_t seats) {
  if (capacity() == 0) throw std::logic_error("the box office is not open");
  if (seats <= 0) throw std::invalid_argument("reserve at least one seat");
  if (seats > capacity() - sold()) {
    set_refused(tx, refused() + 1);
    return false;
  }
  auto held = holders_ref();
  held.insert_or_assign(tx, customer, held.find(customer).value_or(0) + seats);
  set_sold(tx, sold() + seats);
  return true;
}

std::int64_t office::cancel(pobj::transaction& tx, std::string_view customer) {
  if (capacity() == 0) return 0;
  auto held = holders_ref();
  const std::int64_t seats = held.find(customer).value_or(0);
  if (seats == 0) return 0;
  held.erase(tx, customer);
  set_sold(tx, sold() - seats);
  return seats;
}

std::int64_t office::available() const { return capacity() - sold(); }

std::int64_t office::seats_of(std::string_view customer) const {
  return capacity() == 0 ? 0 : holders_ref().find(customer).value_or(0);
}

std::string office::report() const {
  const std::uint64_t customers = capacity() == 0 ? 0 : holders_ref().size();
  return fmt::format("{}: {} of {} seats sold to {} customers, {} requests refused", show(), sold(), capacity(), customers,
                     refused());
}
