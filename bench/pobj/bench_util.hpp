// Shared by the pobj benchmarks: scratch pool paths and the libpmemobj baseline's pool.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include <unistd.h>

namespace bench {

// Pools live on /dev/shm unless POBJ_BENCH_DIR says otherwise.
inline std::string pool_path(const std::string& name) {
  const char* dir = std::getenv("POBJ_BENCH_DIR");
  std::string d = dir != nullptr ? dir : "/dev/shm";
  std::string p = d + "/pobj-bench-" + name + "-" + std::to_string(getpid()) + ".pool";
  std::filesystem::remove(p);
  return p;
}

}  // namespace bench
