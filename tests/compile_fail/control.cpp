// The positive control of the compile-fail tests: correct uses of what they misuse.
#include <cstdint>
#include <utility>

#include <pobj/heap.hpp>
#include <pobj/transaction.hpp>

void use(pobj::heap& h, pobj::transaction& tx, std::uint64_t& field) {
  pobj::reservation r = h.reserve(64);
  pobj::reservation moved = std::move(r);
  h.cancel(moved);
  tx.set(field, std::uint64_t{1});
}
