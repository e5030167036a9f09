// kvstore/resp: the Redis serialization protocol (RESP2 and RESP3), both ways.
//
// request_parser reads commands from a connection's input: multibulk requests
// (*<n>\r\n$<len>\r\n<bytes>\r\n...) and inline ones (words separated by spaces, with Redis's
// quoting), incrementally, keeping its place between reads so a large bulk string is not scanned
// twice. Bad input is a protocol error with Redis's message, after which the connection is to be
// closed, as Redis closes it; nothing the peer sends makes the parser hold more than what the
// limits allow (a huge multibulk count or bulk length is refused before any memory is reserved
// for it).
//
// reply_writer appends replies to an output buffer in the connection's protocol version: RESP3
// types (maps, sets, doubles, booleans, nulls) degrade to their RESP2 forms on a RESP2
// connection, as Redis does.
//
// Thread safety: a parser and a writer belong to one connection, used by one thread at a time.
//
// Thread safety: a parser or writer belongs to one connection, used by one thread at a time.
// Crash consistency: not applicable (connection buffers in DRAM).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pobj::kv {

struct protocol_limits {
  std::size_t max_bulk = 512u * 1024 * 1024;      // one argument (Redis: proto-max-bulk-len)
  std::size_t max_inline = 64 * 1024;             // an inline request line
  std::int64_t max_arguments = 2147483647;        // in one multibulk request (Redis: INT_MAX)
  // Before AUTH, on a server with a password, as Redis: a few small arguments only.
  std::int64_t unauthenticated_arguments = 10;
  std::size_t unauthenticated_bulk = 16 * 1024;
};

class request_parser {
 public:
  enum class status { incomplete, command, error };

  // Parses the next command of `input` (everything read and not yet consumed). On `command`,
  // `args` holds views into `input` (or into the parser, for inline requests), valid until the
  // next call, and `consumed` the bytes it took; `args` is empty for an empty request (a blank
  // line, *0), which is consumed and not run. On `incomplete`, call again with more input (the
  // same bytes first); on `error`, `error_message()` is the reply to send before closing
  // ("Protocol error: ...").
  status parse(std::string_view input, bool authenticated, std::vector<std::string_view>& args,
               std::size_t& consumed);
  const std::string& error_message() const noexcept { return error_; }
  // Bytes the command being parsed still needs, if known (a bulk string's rest), so the reader
  // can size its buffer; 0 if unknown.
  std::size_t bytes_wanted() const noexcept { return wanted_; }

  explicit request_parser(const protocol_limits& limits = {}) : limits_(limits) {}

 private:
  status parse_inline(std::string_view input, std::vector<std::string_view>& args, std::size_t& consumed);
  status fail(std::string message);
  void reset() noexcept;

  protocol_limits limits_;
  // Where a multibulk request stands: its argument count, the arguments found so far (offsets
  // into the input), where parsing resumes, and the length of the bulk string being read (-1:
  // its header is next).
  std::int64_t arguments_ = -1;
  std::vector<std::pair<std::size_t, std::size_t>> found_;
  std::size_t pos_ = 0;
  std::int64_t bulk_ = -1;
  std::size_t wanted_ = 0;
  std::string error_;
  std::vector<std::string> inline_args_;
};

// Splits an inline request line into arguments, as Redis's sdssplitargs does (double quotes with
// \n \r \t \b \a \\ \" \xHH escapes, single quotes with \' only); false on unbalanced quotes.
bool split_inline(std::string_view line, std::vector<std::string>& out);

class reply_writer {
 public:
  reply_writer(std::string& out, int protocol) : out_(&out), protocol_(protocol) {}
  int protocol() const noexcept { return protocol_; }
  std::string& buffer() noexcept { return *out_; }

  void simple(std::string_view s);          // +OK
  void error(std::string_view message);     // -ERR ... (message without the dash; CR/LF replaced)
  void integer(std::int64_t v);             // :42
  void bulk(std::string_view s);            // $3\r\nfoo
  void null();                              // RESP3 _; RESP2 $-1
  void null_array();                        // RESP3 _; RESP2 *-1
  void array(std::size_t n);                // *n, then n replies
  void map(std::size_t pairs);              // RESP3 %n; RESP2 *2n
  void set(std::size_t n);                  // RESP3 ~n; RESP2 *n
  void boolean(bool b);                     // RESP3 #t; RESP2 :1 / :0
  void double_value(double d);              // RESP3 ,d; RESP2 bulk string, formatted as Redis
  void verbatim(std::string_view s);        // RESP3 =n txt:..; RESP2 bulk string
  void ok() { simple("OK"); }

 private:
  void header(char type, std::int64_t n);
  std::string* out_;
  int protocol_;
};

// Formats a double as Redis replies with it: shortest round-trip form, inf and -inf.
std::string format_double(double d);
// Formats a number as Redis stores INCRBYFLOAT's results: long double, %.17Lf, trailing zeros
// (and a trailing point) trimmed: 0.3, 0.00001, 100000000000000000000.
std::string format_human(long double d);
// The integer a string holds, as Redis's string2ll (no spaces, no '+', no leading zeros, no -0,
// within int64).
bool string_to_int64(std::string_view s, std::int64_t& out);

}  // namespace pobj::kv
