// The argument helpers the command families share (commands.hpp): numbers as Redis parses them,
// typed lookups with WRONGTYPE, SCAN's arguments and replies, and Redis's glob.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool parse_integer(command_context& c, std::string_view s, std::int64_t& out) {
  if (string_to_int64(s, out)) return true;
  c.reply.error("ERR value is not an integer or out of range");
  return false;
}

bool stored_long_double(const std::string& s, long double& out) {
  char* end = nullptr;
  out = s.empty() || std::isspace(static_cast<unsigned char>(s[0])) ? NAN : std::strtold(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size() && !std::isnan(out);
}

bool parse_long_double(command_context& c, std::string_view s, long double& out) {
  std::string copy(s);
  char* end = nullptr;
  errno = 0;
  out = copy.empty() || std::isspace(static_cast<unsigned char>(copy[0])) ? NAN : std::strtold(copy.c_str(), &end);
  if (copy.empty() || end != copy.c_str() + copy.size() || std::isnan(out) || errno == ERANGE) {
    c.reply.error("ERR value is not a valid float");
    return false;
  }
  return true;
}

bool typed_entry(command_context& c, std::string_view key, value_type type, std::optional<entry>& out) {
  out = c.db.get(c.tx, key, c.now_ms);
  ++(out ? c.server.stats().keyspace_hits : c.server.stats().keyspace_misses);
  if (out && out->type != type) {
    wrong_type(c);
    return false;
  }
  return true;
}

bool parse_scan(command_context& c, std::size_t at, bool with_type, bool with_novalues, scan_args& out) {
  const std::string_view s = c.argv[at];
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out.cursor);
  if (ec != std::errc() || p != s.data() + s.size()) {
    c.reply.error("ERR invalid cursor");
    return false;
  }
  for (std::size_t i = at + 1; i < c.argv.size(); i += 2) {
    const std::string opt = lower(c.argv[i]);
    if (with_novalues && opt == "novalues") {
      out.novalues = true;
      --i;  // takes no value
      continue;
    }
    if (i + 1 >= c.argv.size()) {
      syntax_error(c);
      return false;
    }
    if (opt == "match") {
      out.pattern = c.argv[i + 1];
    } else if (opt == "count") {
      if (!parse_integer(c, c.argv[i + 1], out.count)) return false;
      if (out.count < 1) {
        syntax_error(c);
        return false;
      }
    } else if (with_type && opt == "type") {
      out.type = lower(c.argv[i + 1]);
    } else {
      syntax_error(c);
      return false;
    }
  }
  return true;
}

void scan_members(command_context& c, const pobj::hash_map_ref<pobj::bytes, pobj::bytes>* members, const scan_args& a,
                  bool with_values, std::string (*value)(std::string_view)) {
  std::vector<std::pair<std::string, std::string>> found;
  std::uint64_t cursor = 0;
  if (members != nullptr) {
    cursor = a.cursor;
    std::int64_t seen = 0;
    do {
      cursor = members->scan(cursor, [&](std::string m, const std::string& v) {
        ++seen;
        if (a.pattern.empty() || glob_match(a.pattern, m)) found.emplace_back(std::move(m), with_values ? value(v) : "");
      });
    } while (cursor != 0 && seen < a.count);
  }
  reply_scan(c, cursor, found, with_values);
}

void reply_scan(command_context& c, std::uint64_t next, const std::vector<std::pair<std::string, std::string>>& found,
                bool with_values) {
  c.reply.array(2);
  c.reply.bulk(std::to_string(next));
  c.reply.array(found.size() * (with_values ? 2 : 1));
  for (const auto& [k, v] : found) {
    c.reply.bulk(k);
    if (with_values) c.reply.bulk(v);
  }
}

void wrong_type(command_context& c) {
  c.reply.error("WRONGTYPE Operation against a key holding the wrong kind of value");
}

void syntax_error(command_context& c) { c.reply.error("ERR syntax error"); }

namespace {

// Whether the pattern element at `p` (? [class] \x or a byte) matches `ch`; moves p past it.
bool match_one(std::string_view pattern, std::size_t& p, char ch) {
  const char first = pattern[p++];
  if (first == '?') return true;
  if (first == '\\' && p < pattern.size()) return pattern[p++] == ch;
  if (first != '[') return first == ch;
  const bool negate = p < pattern.size() && pattern[p] == '^';
  if (negate) ++p;
  bool match = false;
  while (p < pattern.size() && pattern[p] != ']') {
    if (pattern[p] == '\\' && p + 1 < pattern.size()) {
      match |= pattern[p + 1] == ch;
      p += 2;
    } else if (p + 2 < pattern.size() && pattern[p + 1] == '-') {
      auto lo = static_cast<unsigned char>(pattern[p]), hi = static_cast<unsigned char>(pattern[p + 2]);
      if (lo > hi) std::swap(lo, hi);
      const auto c = static_cast<unsigned char>(ch);
      match |= c >= lo && c <= hi;
      p += 3;
    } else {
      match |= pattern[p++] == ch;
    }
  }
  if (p < pattern.size()) ++p;  // the closing bracket (an unclosed class runs to the end)
  return match != negate;
}

}  // namespace

// Redis's glob: * ? [abc] [^a-z] and \ escapes, byte by byte. Each element but * matches one
// byte, so on a mismatch only the last * needs to take one more byte: O(pattern x string), where
// naive backtracking is exponential in the number of stars.
bool glob_match(std::string_view pattern, std::string_view s) {
  std::size_t p = 0, i = 0, star = std::string_view::npos, star_i = 0;
  while (i < s.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      while (p < pattern.size() && pattern[p] == '*') ++p;
      if (p == pattern.size()) return true;
      star = p;
      star_i = i;
      continue;
    }
    if (p < pattern.size()) {
      std::size_t q = p;
      if (match_one(pattern, q, s[i])) {
        p = q;
        ++i;
        continue;
      }
    }
    if (star == std::string_view::npos) return false;
    p = star;
    i = ++star_i;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace pobj::kv
