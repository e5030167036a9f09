// A fast 64-bit checksum for detecting torn or stale persistent records. Not cryptographic: it
// guards against partial writes, which it detects with probability 1 - 2^-64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pobj::detail {

class checksum64 {
 public:
  void add(const void* data, std::size_t n) noexcept {
    auto* p = static_cast<const unsigned char*>(data);
    while (n >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      mix(w);
      p += 8;
      n -= 8;
    }
    if (n > 0) {
      std::uint64_t w = 0;
      std::memcpy(&w, p, n);
      mix(w ^ (static_cast<std::uint64_t>(n) << 56));
    }
  }
  void add_u64(std::uint64_t w) noexcept { mix(w); }
  std::uint64_t value() const noexcept {
    std::uint64_t h = state_ ^ (count_ * 0x9e3779b97f4a7c15ULL);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h | 1;  // never 0, so an all-zero record never validates
  }

 private:
  // One multiply per word: cheap on the commit path, and any changed word changes the state.
  void mix(std::uint64_t w) noexcept {
    state_ = (state_ ^ w) * 0x9e3779b97f4a7c15ULL;
    state_ ^= state_ >> 32;
    ++count_;
  }
  std::uint64_t state_ = 0x243f6a8885a308d3ULL;
  std::uint64_t count_ = 0;
};

inline std::uint64_t checksum(const void* data, std::size_t n) noexcept {
  checksum64 c;
  c.add(data, n);
  return c.value();
}

}  // namespace pobj::detail
