// kvstore/src/resp: the request parser (multibulk and inline, fed whole or a byte at a time, bad
// input refused with Redis's messages and without reserving what a count claims) and the reply
// writer in RESP2 and RESP3.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "resp.hpp"

using pobj::kv::request_parser;
using pobj::kv::reply_writer;

namespace {

struct parsed {
  std::vector<std::vector<std::string>> commands;
  std::string error;
};

// Feeds `input` in pieces of `step` bytes (as reads would deliver it), consuming each command.
parsed feed(const std::string& input, std::size_t step, bool authenticated = true) {
  request_parser parser;
  parsed out;
  std::string buffer;
  std::vector<std::string_view> args;
  for (std::size_t at = 0; at < input.size();) {
    buffer.append(input, at, step);
    at += step;
    for (;;) {
      std::size_t consumed = 0;
      const auto s = parser.parse(buffer, authenticated, args, consumed);
      if (s == request_parser::status::incomplete) break;
      if (s == request_parser::status::error) {
        out.error = parser.error_message();
        return out;
      }
      if (!args.empty()) out.commands.emplace_back(args.begin(), args.end());
      buffer.erase(0, consumed);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("multibulk and inline requests parse whole and a byte at a time", "[kvstore][resp]") {
  const std::string input =
      "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$12\r\nhello\r\nworld\r\n"  // a value holding CR LF
      "PING\r\n"
      "*0\r\n"                                                      // empty: nothing to run
      "\r\n"                                                        // an empty inline line too
      "set \"a b\" 'c d' \"\\x41\\n\"\n"                            // quoting, escapes, bare LF
      "*1\r\n$0\r\n\r\n";                                           // an empty argument
  const std::vector<std::vector<std::string>> expected{
      {"SET", "key", "hello\r\nworld"}, {"PING"}, {"set", "a b", "c d", "A\n"}, {""}};
  for (std::size_t step : {input.size(), std::size_t{1}, std::size_t{3}, std::size_t{7}}) {
    INFO("step " << step);
    const parsed p = feed(input, step);
    CHECK(p.error.empty());
    CHECK(p.commands == expected);
  }
}

TEST_CASE("malformed requests get Redis's protocol errors", "[kvstore][resp]") {
  CHECK(feed("*x\r\n", 100).error == "Protocol error: invalid multibulk length");
  CHECK(feed("*99999999999\r\n", 100).error == "Protocol error: invalid multibulk length");
  // Redis 7's limit is INT_MAX arguments (docs/kvstore.md said 1,048,576, Redis 5's, and the code
  // took more: now both say INT_MAX).
  CHECK(feed("*2147483648\r\n", 100).error == "Protocol error: invalid multibulk length");
  CHECK(feed("*2147483647\r\n", 100).error.empty());
  CHECK(feed("*1048577\r\n", 100).error.empty());
  CHECK(feed("*1\r\n+OK\r\n", 100).error == "Protocol error: expected '$', got '+'");
  CHECK(feed("*1\r\n$-1\r\n", 100).error == "Protocol error: invalid bulk length");
  CHECK(feed("*1\r\n$999999999999\r\n", 100).error == "Protocol error: invalid bulk length");
  CHECK(feed("set \"unbalanced\n", 100).error == "Protocol error: unbalanced quotes in request");
  // Counts as Redis's string2ll reads them: no leading zeros, no -0 (a regression: they passed).
  CHECK(feed("*02\r\n", 100).error == "Protocol error: invalid multibulk length");
  CHECK(feed("*-0\r\n", 100).error == "Protocol error: invalid multibulk length");
  CHECK(feed("*1\r\n$04\r\nPING\r\n", 100).error == "Protocol error: invalid bulk length");
  CHECK(feed("set \"a\"b\n", 100).error == "Protocol error: unbalanced quotes in request");
  CHECK(feed(std::string(70000, 'a'), 4096).error == "Protocol error: too big inline request");
  CHECK(feed("*" + std::string(70000, '1'), 4096).error == "Protocol error: too big mbulk count string");
  // Before AUTH: a few small arguments only.
  CHECK(feed("*11\r\n", 100, false).error == "Protocol error: unauthenticated multibulk length");
  CHECK(feed("*1\r\n$20000\r\n", 100, false).error == "Protocol error: unauthenticated bulk length");
}

TEST_CASE("a huge multibulk count reserves nothing until its arguments arrive", "[kvstore][resp]") {
  request_parser parser;
  std::vector<std::string_view> args;
  std::size_t consumed = 0;
  CHECK(parser.parse("*1000000\r\n$1\r\na\r\n", true, args, consumed) == request_parser::status::incomplete);
  CHECK(args.capacity() < 1000000);
  // A bulk length says how much is still wanted, so a reader can size its buffer.
  request_parser bulk;
  CHECK(bulk.parse("*1\r\n$100\r\nabc", true, args, consumed) == request_parser::status::incomplete);
  CHECK(bulk.bytes_wanted() == 99);
}

TEST_CASE("replies in RESP2 and RESP3", "[kvstore][resp]") {
  std::string two, three;
  reply_writer r2(two, 2), r3(three, 3);
  for (reply_writer* r : {&r2, &r3}) {
    r->ok();
    r->error("ERR bad\r\nthing");
    r->integer(-42);
    r->bulk("a\r\nb");
    r->null();
    r->map(1);
    r->bulk("k");
    r->double_value(2.5);
    r->boolean(true);
    r->set(0);
  }
  CHECK(two == "+OK\r\n-ERR bad  thing\r\n:-42\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n$1\r\nk\r\n$3\r\n2.5\r\n:1\r\n*0\r\n");
  CHECK(three == "+OK\r\n-ERR bad  thing\r\n:-42\r\n$4\r\na\r\nb\r\n_\r\n%1\r\n$1\r\nk\r\n,2.5\r\n#t\r\n~0\r\n");
  CHECK(pobj::kv::format_double(3.0) == "3");
  CHECK(pobj::kv::format_double(10.6) == "10.6");
  CHECK(pobj::kv::format_double(-1.0 / 0.0) == "-inf");
}
