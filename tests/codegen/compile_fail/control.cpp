// The positive control: the same store inside a block, and a single-store field outside one.
#include "bank.pobj.hpp"

void use(pobj::transaction& tx, pobj::proxy<bank::account> account) {
  account.set_limit(tx, bank::money{100, 978});
  account.set_rate(0.5);
}
