// A user-defined shared object: a box office that sells a fixed number of seats to many
// serverless functions at once. pobj-gen compiles it; pobj-kv loads the library
// (--objects-library) and runs its POBJ_SHARED methods for clients: `OBJ.CALL key reserve ada 2`.
//
// Each method is one atomic, durable step on the server. A reservation checks what is left,
// records the customer's seats and counts the sale together, which a Redis client could only do
// with a Lua script or a WATCH loop; here it is a method, and with a request id (ONCE) a function
// that is retried reserves once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <pobj/annotate.hpp>
#include <pobj/hash_map.hpp>
#include <pobj/string.hpp>

namespace tickets {

struct POBJ_PERSISTENT box_office {
  std::int64_t capacity;  // seats for sale (0: not open yet)
  std::int64_t sold;
  std::int64_t refused;  // requests turned down for want of seats
  pobj::string show;
  pobj::hash_map<pobj::string, std::int64_t> holders;  // customer -> seats held

  // Opens the sale of `seats` seats for `name`; a box office opens once (later calls change
  // nothing). Returns the capacity.
  POBJ_SHARED std::int64_t open(std::string_view name, std::int64_t seats);
  // Sells `seats` seats to `customer` if that many are left (true); otherwise sells none (false).
  POBJ_SHARED bool reserve(std::string_view customer, std::int64_t seats);
  // Gives back every seat `customer` holds; returns how many.
  POBJ_SHARED std::int64_t cancel(std::string_view customer);
  POBJ_SHARED std::int64_t available() const;
  POBJ_SHARED std::int64_t seats_of(std::string_view customer) const;
  // "Hamlet: 100 of 100 seats sold to 41 customers, 12 requests refused"
  POBJ_SHARED std::string report() const;
};

}  // namespace tickets
