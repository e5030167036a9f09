// counter: the smallest pobj program, and the snippet in the README. Each run adds one to a
// counter that lives in a pool, failure-atomically.
//
//   counter [POOL]      (POOL defaults to counter.pool in the working directory)
#include <cstdint>

#include <fmt/format.h>
#include <pobj/pobj.hpp>

int main(int argc, char** argv) try {
  pobj::pool pool = pobj::pool::open_or_create(argc > 1 ? argv[1] : "counter.pool");
  auto* counter = pool.at<std::uint64_t>(pool.root("counter"));
  if (counter == nullptr) {
    pobj::transaction tx(pool);
    pobj::allocation a = tx.alloc(sizeof(std::uint64_t));  // fresh: written in place, never logged
    counter = static_cast<std::uint64_t*>(a.pointer);
    *counter = 0;
    pool.set_root("counter", a.offset);  // joins the block
  }
  pobj::run_tx(pool, [&](pobj::transaction& tx) { tx.set(*counter, *counter + 1); });  // two fences
  fmt::print("counter = {}\n", *counter);
  return 0;
} catch (const pobj::error& e) {
  fmt::print(stderr, "counter: {}\n", e.what());
  return 1;
}
