// libFuzzer target for pobj-kv's request parser (kvstore/src/resp.cpp): any bytes, delivered in
// pieces whose sizes the input chooses, must parse to commands, wait for more, or stop at a
// protocol error; never crash, read outside the input, or let an argument point outside it.
// CI runs it briefly (the clang suite: meson test resp-fuzz-smoke); a long run:
//   build-test/clang/tests/resp_fuzz -max_total_time=3600 -max_len=4096 corpus/
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "resp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first byte picks the piece size (1..64), the second whether the client is authenticated.
  const std::size_t step = (data[0] % 64) + 1;
  const bool authenticated = (data[1] & 1) != 0;
  pobj::kv::protocol_limits limits;
  limits.max_bulk = 1 << 20;  // keep what a fuzz input can make the parser wait for small
  pobj::kv::request_parser parser(limits);
  std::string buffer;
  std::vector<std::string_view> args;
  for (std::size_t at = 2; at < size; at += step) {
    buffer.append(reinterpret_cast<const char*>(data) + at, std::min(step, size - at));
    for (;;) {
      std::size_t consumed = 0;
      const auto s = parser.parse(buffer, authenticated, args, consumed);
      if (s == pobj::kv::request_parser::status::incomplete) break;
      if (s == pobj::kv::request_parser::status::error) {
        if (parser.error_message().rfind("Protocol error: ", 0) != 0) std::abort();
        return 0;
      }
      if (consumed == 0 || consumed > buffer.size()) std::abort();
      for (std::string_view a : args) {
        const bool in_buffer = a.data() >= buffer.data() && a.data() + a.size() <= buffer.data() + buffer.size();
        // Inline arguments live in the parser (unquoted copies); they are never longer than the line.
        if (!in_buffer && a.size() > consumed) std::abort();
      }
      buffer.erase(0, consumed);
    }
  }
  std::string out;
  pobj::kv::reply_writer w(out, 2 + (data[1] >> 7));
  w.bulk(buffer);
  return 0;
}
