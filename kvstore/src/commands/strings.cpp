// The string commands: GET SET SETNX SETEX PSETEX MGET MSET MSETNX GETSET GETDEL APPEND STRLEN
// INCR DECR INCRBY DECRBY INCRBYFLOAT GETRANGE SETRANGE, with Redis 7's replies and errors.
#include <array>
#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

constexpr std::int64_t max_string = 512ll * 1024 * 1024;

std::optional<entry> lookup(command_context& c, std::string_view key) {
  auto e = c.db.get(c.tx, key, c.now_ms);
  ++(e ? c.server.stats().keyspace_hits : c.server.stats().keyspace_misses);
  return e;
}

// The string at `key` into `e` (empty if absent); false, after replying WRONGTYPE, if the key
// holds another type.
bool string_at(command_context& c, std::string_view key, std::optional<entry>& e) {
  return typed_entry(c, key, value_type::string, e);
}

void store_string(command_context& c, std::string_view key, std::string payload, std::int64_t expires_ms) {
  c.db.put(c.tx, key, entry{value_type::string, expires_ms, std::move(payload)});
  c.server.touch(key);
}

// An absolute expiry time in ms from SET's or SETEX's argument; false after the error reply.
bool expiry_from(command_context& c, std::string_view arg, std::int64_t unit_ms, bool absolute, std::int64_t& out,
                 std::string_view command) {
  std::int64_t v = 0;
  if (!parse_integer(c, arg, v)) return false;
  std::int64_t ms = 0;
  if (v <= 0 || __builtin_mul_overflow(v, unit_ms, &ms) || (!absolute && __builtin_add_overflow(ms, c.now_ms, &ms))) {
    c.reply.error(fmt::format("ERR invalid expire time in '{}' command", command));
    return false;
  }
  out = ms;
  return true;
}

void get(command_context& c) {
  std::optional<entry> e;
  if (!string_at(c, c.argv[1], e)) return;
  if (!e) return c.reply.null();
  c.reply.bulk(e->payload);
}

void set(command_context& c) {
  bool nx = false, xx = false, want_old = false, keep_ttl = false;
  std::int64_t expires = 0;
  bool has_expiry = false;
  for (std::size_t i = 3; i < c.argv.size(); ++i) {
    const std::string opt = lower(c.argv[i]);
    const bool more = i + 1 < c.argv.size();
    if (opt == "nx" && !xx) {
      nx = true;
    } else if (opt == "xx" && !nx) {
      xx = true;
    } else if (opt == "get") {
      want_old = true;
    } else if (opt == "keepttl" && !has_expiry) {
      keep_ttl = true;
    } else if ((opt == "ex" || opt == "px" || opt == "exat" || opt == "pxat") && !keep_ttl && !has_expiry && more) {
      const bool seconds = opt == "ex" || opt == "exat";
      if (!expiry_from(c, c.argv[++i], seconds ? 1000 : 1, opt.ends_with("at"), expires, "set")) return;
      has_expiry = true;
    } else {
      return syntax_error(c);
    }
  }
  auto old = c.db.get(c.tx, c.argv[1], c.now_ms);
  if (want_old && old && old->type != value_type::string) return wrong_type(c);
  if ((nx && old) || (xx && !old)) {
    if (want_old && old) return c.reply.bulk(old->payload);
    return c.reply.null();
  }
  if (keep_ttl && old) expires = old->expires_ms;
  store_string(c, c.argv[1], std::string(c.argv[2]), expires);
  if (!want_old) return c.reply.ok();
  if (!old) return c.reply.null();
  c.reply.bulk(old->payload);
}

void setnx(command_context& c) {
  if (c.db.exists(c.tx, c.argv[1], c.now_ms)) return c.reply.integer(0);
  store_string(c, c.argv[1], std::string(c.argv[2]), 0);
  c.reply.integer(1);
}

void setex_with(command_context& c, std::int64_t unit, std::string_view name) {
  std::int64_t expires = 0;
  if (!expiry_from(c, c.argv[2], unit, false, expires, name)) return;
  store_string(c, c.argv[1], std::string(c.argv[3]), expires);
  c.reply.ok();
}
void setex(command_context& c) { setex_with(c, 1000, "setex"); }
void psetex(command_context& c) { setex_with(c, 1, "psetex"); }

void mget(command_context& c) {
  c.reply.array(c.argv.size() - 1);
  for (std::size_t i = 1; i < c.argv.size(); ++i) {
    auto e = lookup(c, c.argv[i]);
    if (e && e->type == value_type::string) {
      c.reply.bulk(e->payload);
    } else {
      c.reply.null();
    }
  }
}

void mset_pairs(command_context& c) {
  for (std::size_t i = 1; i + 1 < c.argv.size(); i += 2) store_string(c, c.argv[i], std::string(c.argv[i + 1]), 0);
}

bool even_pairs(command_context& c) {
  if (c.argv.size() % 2 == 1) return true;
  c.reply.error(fmt::format("ERR wrong number of arguments for '{}' command", lower(c.argv[0])));
  return false;
}

void mset(command_context& c) {
  if (!even_pairs(c)) return;
  mset_pairs(c);
  c.reply.ok();
}

void msetnx(command_context& c) {
  if (!even_pairs(c)) return;
  for (std::size_t i = 1; i < c.argv.size(); i += 2) {
    if (c.db.exists(c.tx, c.argv[i], c.now_ms)) return c.reply.integer(0);
  }
  mset_pairs(c);
  c.reply.integer(1);
}

void getset(command_context& c) {
  std::optional<entry> old;
  if (!string_at(c, c.argv[1], old)) return;
  store_string(c, c.argv[1], std::string(c.argv[2]), 0);
  if (!old) return c.reply.null();
  c.reply.bulk(old->payload);
}

void getdel(command_context& c) {
  std::optional<entry> old;
  if (!string_at(c, c.argv[1], old)) return;
  if (!old) return c.reply.null();
  c.db.erase(c.tx, c.argv[1], c.now_ms);
  c.server.touch(c.argv[1]);
  c.reply.bulk(old->payload);
}

void append(command_context& c) {
  std::optional<entry> e;
  if (!string_at(c, c.argv[1], e)) return;
  std::string value = e ? std::move(e->payload) : std::string();
  if (static_cast<std::int64_t>(value.size() + c.argv[2].size()) > max_string) {
    return c.reply.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  }
  value.append(c.argv[2]);
  const auto n = static_cast<std::int64_t>(value.size());
  store_string(c, c.argv[1], std::move(value), e ? e->expires_ms : 0);
  c.reply.integer(n);
}

void strlen_(command_context& c) {
  std::optional<entry> e;
  if (!string_at(c, c.argv[1], e)) return;
  c.reply.integer(e ? static_cast<std::int64_t>(e->payload.size()) : 0);
}

void add_integer(command_context& c, std::int64_t delta) {
  std::optional<entry> e;
  if (!string_at(c, c.argv[1], e)) return;
  std::int64_t v = 0;
  if (e && !string_to_int64(e->payload, v)) return c.reply.error("ERR value is not an integer or out of range");
  if (__builtin_add_overflow(v, delta, &v)) return c.reply.error("ERR increment or decrement would overflow");
  store_string(c, c.argv[1], std::to_string(v), e ? e->expires_ms : 0);
  c.reply.integer(v);
}

void incr(command_context& c) { add_integer(c, 1); }
void decr(command_context& c) { add_integer(c, -1); }
void incrby(command_context& c) {
  std::int64_t d = 0;
  if (parse_integer(c, c.argv[2], d)) add_integer(c, d);
}
void decrby(command_context& c) {
  std::int64_t d = 0;
  if (!parse_integer(c, c.argv[2], d)) return;
  if (d == std::numeric_limits<std::int64_t>::min()) return c.reply.error("ERR decrement would overflow");
  add_integer(c, -d);
}

void incrbyfloat(command_context& c) {
  long double delta = 0;
  if (!parse_long_double(c, c.argv[2], delta)) return;
  std::optional<entry> e;
  if (!string_at(c, c.argv[1], e)) return;
  long double v = 0;
  if (e && !stored_long_double(e->payload, v)) return c.reply.error("ERR value is not a valid float");
  v += delta;
  if (std::isnan(v) || std::isinf(v)) return c.reply.error("ERR increment would produce NaN or Infinity");
  std::string text = format_human(v);
  store_string(c, c.argv[1], text, e ? e->expires_ms : 0);
  c.reply.bulk(text);
}

void getrange(command_context& c) {
  std::int64_t start = 0, end = 0;
  if (!parse_integer(c, c.argv[2], start) || !parse_integer(c, c.argv[3], end)) return;
  std::optional<entry> e;
  if (!string_at(c, c.argv[1], e)) return;
  const auto n = static_cast<std::int64_t>(e ? e->payload.size() : 0);
  if (n == 0 || (start < 0 && end < 0 && start > end)) return c.reply.bulk("");
  if (start < 0) start = std::max<std::int64_t>(n + start, 0);
  if (end < 0) end = std::max<std::int64_t>(n + end, 0);
  end = std::min(end, n - 1);
  if (start > end) return c.reply.bulk("");
  c.reply.bulk(std::string_view(e->payload).substr(static_cast<std::size_t>(start), static_cast<std::size_t>(end - start + 1)));
}

void setrange(command_context& c) {
  std::int64_t offset = 0;
  if (!parse_integer(c, c.argv[2], offset)) return;
  if (offset < 0) return c.reply.error("ERR offset is out of range");
  const std::string_view piece = c.argv[3];
  std::optional<entry> e;
  if (!string_at(c, c.argv[1], e)) return;
  std::string value = e ? std::move(e->payload) : std::string();
  if (piece.empty()) return c.reply.integer(static_cast<std::int64_t>(value.size()));
  if (offset > max_string - static_cast<std::int64_t>(piece.size())) {
    return c.reply.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  }
  const auto at = static_cast<std::size_t>(offset);
  if (value.size() < at + piece.size()) value.resize(at + piece.size(), '\0');
  value.replace(at, piece.size(), piece);
  const auto n = static_cast<std::int64_t>(value.size());
  store_string(c, c.argv[1], std::move(value), e ? e->expires_ms : 0);
  c.reply.integer(n);
}

using namespace command_flags;

const std::array table{
    command_spec{"get", 2, readonly | fast, get, 1, 1, 1, "string", "the value of a key"},
    command_spec{"set", -3, write | deny_oom, set, 1, 1, 1, "string", "sets a key's value, with options"},
    command_spec{"setnx", 3, write | deny_oom | fast, setnx, 1, 1, 1, "string", "sets a key if it is absent"},
    command_spec{"setex", 4, write | deny_oom, setex, 1, 1, 1, "string", "sets a value with a time to live in seconds"},
    command_spec{"psetex", 4, write | deny_oom, psetex, 1, 1, 1, "string", "sets a value with a time to live in ms"},
    command_spec{"mget", -2, readonly | fast, mget, 1, -1, 1, "string", "the values of several keys"},
    command_spec{"mset", -3, write | deny_oom, mset, 1, -1, 2, "string", "sets several keys"},
    command_spec{"msetnx", -3, write | deny_oom, msetnx, 1, -1, 2, "string", "sets several keys if none exists"},
    command_spec{"getset", 3, write | deny_oom | fast, getset, 1, 1, 1, "string", "sets a value, returns the old"},
    command_spec{"getdel", 2, write | fast, getdel, 1, 1, 1, "string", "returns a value and deletes the key"},
    command_spec{"append", 3, write | deny_oom | fast, append, 1, 1, 1, "string", "appends to a value"},
    command_spec{"strlen", 2, readonly | fast, strlen_, 1, 1, 1, "string", "the length of a value"},
    command_spec{"incr", 2, write | deny_oom | fast, incr, 1, 1, 1, "string", "adds one to an integer"},
    command_spec{"decr", 2, write | deny_oom | fast, decr, 1, 1, 1, "string", "subtracts one from an integer"},
    command_spec{"incrby", 3, write | deny_oom | fast, incrby, 1, 1, 1, "string", "adds to an integer"},
    command_spec{"decrby", 3, write | deny_oom | fast, decrby, 1, 1, 1, "string", "subtracts from an integer"},
    command_spec{"incrbyfloat", 3, write | deny_oom | fast, incrbyfloat, 1, 1, 1, "string", "adds to a number"},
    command_spec{"getrange", 4, readonly, getrange, 1, 1, 1, "string", "a substring of a value"},
    command_spec{"setrange", 4, write | deny_oom, setrange, 1, 1, 1, "string", "overwrites part of a value"},
};

}  // namespace

std::span<const command_spec> string_commands() { return table; }

}  // namespace pobj::kv
