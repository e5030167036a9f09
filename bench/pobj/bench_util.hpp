// Shared by the pobj benchmarks: scratch pool paths and the libpmemobj baseline's pool.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <sys/statvfs.h>
#include <unistd.h>

namespace bench {

// Pools live on /dev/shm (when it has room for them) unless POBJ_BENCH_DIR says otherwise.
inline std::string pool_path(const std::string& name) {
  const char* dir = std::getenv("POBJ_BENCH_DIR");
  std::string d = dir != nullptr ? dir : "/dev/shm";
  struct statvfs fs {};
  if (dir == nullptr && (statvfs(d.c_str(), &fs) != 0 || fs.f_bavail * fs.f_frsize < (std::uint64_t{1} << 30))) {
    d = std::filesystem::temp_directory_path().string();
  }
  std::string p = d + "/pobj-bench-" + name + "-" + std::to_string(getpid()) + ".pool";
  std::filesystem::remove(p);
  return p;
}

}  // namespace bench
