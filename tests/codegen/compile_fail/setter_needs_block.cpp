// Must not compile: a 16-byte field cannot be stored durably by one store, so its setter exists
// only with a transaction; a store outside a block is a compile error, never a volatile store.
#include "bank.pobj.hpp"

void misuse(pobj::proxy<bank::account> account) { account.set_limit(bank::money{100, 978}); }
