// Must not compile: transaction::set takes only trivially copyable values (a std::string's bytes
// mean nothing in another process).
#include <string>

#include <pobj/transaction.hpp>

void misuse(pobj::transaction& tx, std::string& field) { tx.set(field, std::string("x")); }
