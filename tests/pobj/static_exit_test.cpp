// Regression: a pool held in a static object is closed after the main thread's thread_local
// objects are destroyed. Closing it used to touch pobj's destroyed thread-local state (heap
// corruption, then a crash at exit). This program must exit cleanly; the meson test checks that.
#include <cstdio>
#include <filesystem>
#include <string>

#include <unistd.h>

#include <pobj/pobj.hpp>

namespace {
struct holder {
  std::string path = "/tmp/pobj-static-exit-" + std::to_string(getpid()) + ".pool";
  pobj::pool pool;
  ~holder() {
    pool.close();
    std::filesystem::remove(path);
  }
};
holder& the_pool() {
  static holder h;
  return h;
}
}  // namespace

int main() {
  for (auto mode : {pobj::persist_mode::page, pobj::persist_mode::cache_line}) {
    auto& h = the_pool();
    h.pool.close();
    std::filesystem::remove(h.path);
    pobj::pool_options o;
    o.size = 8 * pobj::MiB;
    o.lanes = 2;
    o.lane_log_size = 8 * pobj::KiB;
    o.mode = mode;
    h.pool = pobj::pool::create(h.path, o);
    pobj::run_tx(h.pool, [&](pobj::transaction& tx) { h.pool.set_root("x", tx.alloc(64).offset); });
  }
  std::puts("exiting with an open pool in a static object");
  return 0;
}
