// An out-of-tree program: a list of orders that grows by one on every run.
//   external [POOL]
#include <fmt/format.h>
#include <pobj/object.hpp>
#include <pobj/pobj.hpp>

#include "classes.pobj.hpp"

int main(int argc, char** argv) try {
  pobj::pool pool = pobj::pool::open_or_create(argc > 1 ? argv[1] : "orders.pool");
  pobj::ref<shop::order> last(pool.root("last-order"));
  int count = 0;
  for (pobj::ref<shop::order> r = last; r; r = pobj::deref(pool, r).previous()) ++count;
  pobj::run_tx(pool, [&](pobj::transaction& tx) {
    auto o = pobj::make<shop::order>(tx, shop::order{100 * (count + 1), 1, last});
    pool.set_root("last-order", o.ref().offset);
    fmt::print("{} orders before; added {}\n", count, o);
  });
  return 0;
} catch (const pobj::error& e) {
  fmt::print(stderr, "external: {}\n", e.what());
  return 1;
}
