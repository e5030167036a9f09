// Helpers shared by the test suites: scratch pool paths that clean up after themselves.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <pobj/pool.hpp>

namespace pobj_test {

// A unique path on /dev/shm (or the temp directory), removed when the object dies.
class scratch_path {
 public:
  explicit scratch_path(const std::string& name = "t") {
    static std::mt19937_64 rng{std::random_device{}()};
    std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    path_ = (dir / ("pobj-test-" + name + "-" + std::to_string(rng()) + ".pool")).string();
  }
  ~scratch_path() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
    std::filesystem::remove(path_ + ".journal", ec);  // a page-mode pool's journal
  }
  const std::string& str() const { return path_; }
  operator const std::string&() const { return path_; }

 private:
  std::string path_;
};

inline pobj::pool_options small_options() {
  pobj::pool_options o;
  o.size = 8 * pobj::MiB;
  o.max_size = 1 * pobj::GiB;
  o.lanes = 8;
  o.lane_log_size = 16 * pobj::KiB;
  o.mode = pobj::persist_mode::byte;
  return o;
}

inline std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

inline void write_file(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace pobj_test
