// replication/records: little-endian byte strings, read and written (core.h's records, the
// log store's values, the transport's frames).
//
// Thread safety: none (values). Crash consistency: not applicable.
#pragma once

#include <cstdint>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pobj::repl {

class byte_writer {
 public:
  byte_writer() = default;
  explicit byte_writer(std::string into) : b_(std::move(into)) {}
  void u8(std::uint8_t v) { b_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) { put(&v, 4); }
  void u64(std::uint64_t v) { put(&v, 8); }
  void bytes(std::string_view v) { b_.append(v); }
  std::string take() && { return std::move(b_); }
  const std::string& view() const noexcept { return b_; }

 private:
  void put(const void* v, std::size_t n) {  // the host is little endian (x86-64, arm64)
    static_assert(std::endian::native == std::endian::little);
    b_.append(static_cast<const char*>(v), n);
  }
  std::string b_;
};

// Reads a byte string; reading past its end throws std::runtime_error (a malformed record).
class byte_reader {
 public:
  explicit byte_reader(std::string_view b) : b_(b) {}
  bool done() const noexcept { return b_.empty(); }
  std::size_t left() const noexcept { return b_.size(); }
  std::uint8_t u8() { return static_cast<std::uint8_t>(take(1)[0]); }
  std::uint32_t u32() { return get<std::uint32_t>(); }
  std::uint64_t u64() { return get<std::uint64_t>(); }
  std::string_view take(std::size_t n) {
    if (n > b_.size()) throw std::runtime_error("a record is shorter than it says");
    std::string_view v = b_.substr(0, n);
    b_.remove_prefix(n);
    return v;
  }
  std::string_view rest() noexcept {
    std::string_view v = b_;
    b_ = {};
    return v;
  }

 private:
  template <class T>
  T get() {
    T v;
    std::memcpy(&v, take(sizeof(T)).data(), sizeof(T));
    return v;
  }
  std::string_view b_;
};

}  // namespace pobj::repl
