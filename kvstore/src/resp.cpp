// The RESP parser and reply writer (resp.hpp). Error messages and limits follow Redis 7's
// networking.c, so clients and tools see what they would see from Redis.
#include "resp.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

namespace pobj::kv {

namespace {

bool parse_count(std::string_view s, std::int64_t& v) { return string_to_int64(s, v); }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool string_to_int64(std::string_view s, std::int64_t& out) {
  if (s.empty() || s.size() > 20 || s[0] == '+' || (s.size() > 1 && s[0] == '0') ||
      (s.size() > 1 && s[0] == '-' && s[1] == '0')) {
    return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

void request_parser::reset() noexcept {
  arguments_ = -1;
  found_.clear();
  pos_ = 0;
  bulk_ = -1;
  wanted_ = 0;
}

request_parser::status request_parser::fail(std::string message) {
  reset();
  error_ = std::move(message);
  return status::error;
}

request_parser::status request_parser::parse(std::string_view input, bool authenticated,
                                             std::vector<std::string_view>& args, std::size_t& consumed) {
  args.clear();
  {
    if (arguments_ < 0) {
      // A new request: multibulk or inline.
      if (pos_ >= input.size()) return status::incomplete;
      if (input[pos_] != '*') return parse_inline(input, args, consumed);
      const std::size_t eol = input.find("\r\n", pos_);
      if (eol == std::string_view::npos) {
        if (input.size() - pos_ > limits_.max_inline) return fail("Protocol error: too big mbulk count string");
        return status::incomplete;
      }
      std::int64_t n = 0;
      if (!parse_count(input.substr(pos_ + 1, eol - pos_ - 1), n) || n > limits_.max_arguments) {
        return fail("Protocol error: invalid multibulk length");
      }
      if (!authenticated && n > limits_.unauthenticated_arguments) {
        return fail("Protocol error: unauthenticated multibulk length");
      }
      pos_ = eol + 2;
      if (n <= 0) {  // an empty request: consumed, nothing to run
        consumed = pos_;
        reset();
        return status::command;
      }
      arguments_ = n;
      // Reserve for what has arrived, not for what the count claims.
      found_.reserve(static_cast<std::size_t>(std::min<std::int64_t>(n, 1024)));
    }
    while (static_cast<std::int64_t>(found_.size()) < arguments_) {
      if (bulk_ < 0) {
        if (pos_ >= input.size()) return status::incomplete;
        const std::size_t eol = input.find("\r\n", pos_);
        if (eol == std::string_view::npos) {
          if (input.size() - pos_ > limits_.max_inline) return fail("Protocol error: too big bulk count string");
          return status::incomplete;
        }
        if (input[pos_] != '$') return fail(fmt::format("Protocol error: expected '$', got '{}'", input[pos_]));
        std::int64_t n = 0;
        if (!parse_count(input.substr(pos_ + 1, eol - pos_ - 1), n) || n < 0 ||
            static_cast<std::uint64_t>(n) > limits_.max_bulk) {
          return fail("Protocol error: invalid bulk length");
        }
        if (!authenticated && static_cast<std::uint64_t>(n) > limits_.unauthenticated_bulk) {
          return fail("Protocol error: unauthenticated bulk length");
        }
        bulk_ = n;
        pos_ = eol + 2;
      }
      const std::size_t need = static_cast<std::size_t>(bulk_) + 2;
      if (input.size() - pos_ < need) {
        wanted_ = need - (input.size() - pos_);
        return status::incomplete;
      }
      found_.emplace_back(pos_, static_cast<std::size_t>(bulk_));
      pos_ += need;  // as Redis, the two bytes after the bulk string are not checked
      bulk_ = -1;
      wanted_ = 0;
    }
    for (const auto& [at, n] : found_) args.push_back(input.substr(at, n));
    consumed = pos_;
    reset();
    return status::command;
  }
}

request_parser::status request_parser::parse_inline(std::string_view input, std::vector<std::string_view>& args,
                                                    std::size_t& consumed) {
  const std::size_t eol = input.find('\n', pos_);
  if (eol == std::string_view::npos) {
    if (input.size() - pos_ > limits_.max_inline) return fail("Protocol error: too big inline request");
    return status::incomplete;
  }
  std::string_view line = input.substr(pos_, eol - pos_);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!split_inline(line, inline_args_)) return fail("Protocol error: unbalanced quotes in request");
  for (const auto& a : inline_args_) args.push_back(a);
  consumed = eol + 1;
  reset();
  return status::command;
}

bool split_inline(std::string_view line, std::vector<std::string>& out) {
  out.clear();
  std::size_t i = 0;
  const std::size_t n = line.size();
  for (;;) {
    while (i < n && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i == n) return true;
    std::string arg;
    bool in_double = false, in_single = false;
    for (;;) {
      if (in_double) {
        if (i == n) return false;
        if (line[i] == '\\' && i + 3 < n && line[i + 1] == 'x' && hex_digit(line[i + 2]) >= 0 &&
            hex_digit(line[i + 3]) >= 0) {
          arg.push_back(static_cast<char>(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3])));
          i += 3;
        } else if (line[i] == '\\' && i + 1 < n) {
          ++i;
          switch (line[i]) {
            case 'n': arg.push_back('\n'); break;
            case 'r': arg.push_back('\r'); break;
            case 't': arg.push_back('\t'); break;
            case 'b': arg.push_back('\b'); break;
            case 'a': arg.push_back('\a'); break;
            default: arg.push_back(line[i]); break;
          }
        } else if (line[i] == '"') {
          // The closing quote must be followed by a space or the end.
          if (i + 1 < n && !std::isspace(static_cast<unsigned char>(line[i + 1]))) return false;
          in_double = false;
          ++i;
          break;
        } else {
          arg.push_back(line[i]);
        }
      } else if (in_single) {
        if (i == n) return false;
        if (line[i] == '\\' && i + 1 < n && line[i + 1] == '\'') {
          ++i;
          arg.push_back('\'');
        } else if (line[i] == '\'') {
          if (i + 1 < n && !std::isspace(static_cast<unsigned char>(line[i + 1]))) return false;
          in_single = false;
          ++i;
          break;
        } else {
          arg.push_back(line[i]);
        }
      } else {
        if (i == n || std::isspace(static_cast<unsigned char>(line[i]))) break;
        if (line[i] == '"') {
          in_double = true;
        } else if (line[i] == '\'') {
          in_single = true;
        } else {
          arg.push_back(line[i]);
        }
      }
      ++i;
    }
    out.push_back(std::move(arg));
  }
}

// ---- replies ----------------------------------------------------------------------------------

void reply_writer::header(char type, std::int64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), n);
  out_->push_back(type);
  out_->append(buf, end);
  out_->append("\r\n");
}

void reply_writer::simple(std::string_view s) {
  out_->push_back('+');
  out_->append(s);
  out_->append("\r\n");
}

void reply_writer::error(std::string_view message) {
  out_->push_back('-');
  for (char c : message) out_->push_back(c == '\r' || c == '\n' ? ' ' : c);
  out_->append("\r\n");
}

void reply_writer::integer(std::int64_t v) { header(':', v); }

void reply_writer::bulk(std::string_view s) {
  header('$', static_cast<std::int64_t>(s.size()));
  out_->append(s);
  out_->append("\r\n");
}

void reply_writer::null() {
  if (protocol_ >= 3) {
    out_->append("_\r\n");
  } else {
    out_->append("$-1\r\n");
  }
}

void reply_writer::null_array() {
  if (protocol_ >= 3) {
    out_->append("_\r\n");
  } else {
    out_->append("*-1\r\n");
  }
}

void reply_writer::array(std::size_t n) { header('*', static_cast<std::int64_t>(n)); }

void reply_writer::map(std::size_t pairs) {
  if (protocol_ >= 3) {
    header('%', static_cast<std::int64_t>(pairs));
  } else {
    header('*', static_cast<std::int64_t>(2 * pairs));
  }
}

void reply_writer::set(std::size_t n) { header(protocol_ >= 3 ? '~' : '*', static_cast<std::int64_t>(n)); }

void reply_writer::boolean(bool b) {
  if (protocol_ >= 3) {
    out_->append(b ? "#t\r\n" : "#f\r\n");
  } else {
    integer(b ? 1 : 0);
  }
}

void reply_writer::double_value(double d) {
  if (protocol_ >= 3) {
    out_->push_back(',');
    out_->append(format_double(d));
    out_->append("\r\n");
  } else {
    bulk(format_double(d));
  }
}

void reply_writer::verbatim(std::string_view s) {
  if (protocol_ >= 3) {
    header('=', static_cast<std::int64_t>(s.size() + 4));
    out_->append("txt:");
    out_->append(s);
    out_->append("\r\n");
  } else {
    bulk(s);
  }
}

std::string format_human(long double d) {
  char buf[5 * 1024];
  const int n = std::snprintf(buf, sizeof(buf), "%.17Lf", d);
  std::string s(buf, static_cast<std::size_t>(std::max(n, 0)));
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

std::string format_double(double d) {
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  // Integral values within 2^53 print without a fraction (as Redis: 3, not 3.0 or 3e0).
  if (std::trunc(d) == d && std::fabs(d) < 9007199254740992.0) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), static_cast<long long>(d));
    if (d == 0 && std::signbit(d)) return "-0";
    return std::string(buf, end);
  }
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  return std::string(buf, end);
}

}  // namespace pobj::kv
