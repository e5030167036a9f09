// The hash commands: HSET HMSET HSETNX HGET HMGET HDEL HGETALL HKEYS HVALS HLEN HEXISTS HSTRLEN
// HINCRBY HINCRBYFLOAT HSCAN, with Redis 7's replies and errors. A hash's fields are a
// pobj::hash_map of their own (store.hpp); a hash whose last field goes is removed, as in Redis.
#include <array>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

using fields_ref = pobj::hash_map_ref<pobj::bytes, pobj::bytes>;

// The fields of the hash at `key`: nullopt if the key is absent; false after a WRONGTYPE reply.
bool hash_at(command_context& c, std::string_view key, std::optional<fields_ref>& out) {
  return value_at(c, key, value_type::hash, out, [&](std::string_view k) { return c.db.fields(k); });
}

// The hash at `key`, made if absent; false after a WRONGTYPE reply.
bool hash_for_write(command_context& c, std::string_view key, std::optional<fields_ref>& out) {
  if (!hash_at(c, key, out)) return false;
  if (!out) out.emplace(c.db.make_map(c.tx, key, value_type::hash));
  return true;
}

bool even_pairs_from(command_context& c, std::size_t first) {
  if ((c.argv.size() - first) % 2 == 0 && c.argv.size() > first) return true;
  c.reply.error(fmt::format("ERR wrong number of arguments for '{}' command", lower(c.argv[0])));
  return false;
}

void hset(command_context& c) {
  if (!even_pairs_from(c, 2)) return;
  std::optional<fields_ref> h;
  if (!hash_for_write(c, c.argv[1], h)) return;
  std::int64_t added = 0;
  for (std::size_t i = 2; i < c.argv.size(); i += 2) added += h->insert_or_assign(c.tx, c.argv[i], c.argv[i + 1]) ? 1 : 0;
  c.server.touch(c.argv[1]);
  if (equals_ignore_case(c.argv[0], "hmset")) return c.reply.ok();
  c.reply.integer(added);
}

void hsetnx(command_context& c) {
  std::optional<fields_ref> h;
  if (!hash_for_write(c, c.argv[1], h)) return;
  const bool added = h->insert(c.tx, c.argv[2], c.argv[3]);
  if (added) c.server.touch(c.argv[1]);
  c.reply.integer(added ? 1 : 0);
}

void hget(command_context& c) {
  std::optional<fields_ref> h;
  if (!hash_at(c, c.argv[1], h)) return;
  auto v = h ? h->find(c.argv[2]) : std::nullopt;
  if (!v) return c.reply.null();
  c.reply.bulk(*v);
}

void hmget(command_context& c) {
  std::optional<fields_ref> h;
  if (!hash_at(c, c.argv[1], h)) return;
  c.reply.array(c.argv.size() - 2);
  for (std::size_t i = 2; i < c.argv.size(); ++i) {
    auto v = h ? h->find(c.argv[i]) : std::nullopt;
    if (v) {
      c.reply.bulk(*v);
    } else {
      c.reply.null();
    }
  }
}

void hdel(command_context& c) {
  std::optional<fields_ref> h;
  if (!hash_at(c, c.argv[1], h)) return;
  if (!h) return c.reply.integer(0);
  std::int64_t removed = 0;
  for (std::size_t i = 2; i < c.argv.size(); ++i) removed += h->erase(c.tx, c.argv[i]) ? 1 : 0;
  if (removed > 0) {
    c.server.touch(c.argv[1]);
    if (h->empty()) c.db.erase(c.tx, c.argv[1], c.now_ms);
  }
  c.reply.integer(removed);
}

// HGETALL, HKEYS, HVALS: the fields in the map's order.
void walk(command_context& c, bool keys, bool values) {
  std::optional<fields_ref> h;
  if (!hash_at(c, c.argv[1], h)) return;
  std::vector<std::pair<std::string, std::string>> all;
  if (h) h->for_each([&](std::string f, std::string v) { all.emplace_back(std::move(f), std::move(v)); });
  if (keys && values) {
    c.reply.map(all.size());
  } else {
    c.reply.array(all.size());
  }
  for (const auto& [f, v] : all) {
    if (keys) c.reply.bulk(f);
    if (values) c.reply.bulk(v);
  }
}
void hgetall(command_context& c) { walk(c, true, true); }
void hkeys(command_context& c) { walk(c, true, false); }
void hvals(command_context& c) { walk(c, false, true); }

void hlen(command_context& c) {
  std::optional<fields_ref> h;
  if (!hash_at(c, c.argv[1], h)) return;
  c.reply.integer(h ? static_cast<std::int64_t>(h->size()) : 0);
}

void hexists(command_context& c) {
  std::optional<fields_ref> h;
  if (!hash_at(c, c.argv[1], h)) return;
  c.reply.integer(h && h->contains(c.argv[2]) ? 1 : 0);
}

void hstrlen(command_context& c) {
  std::optional<fields_ref> h;
  if (!hash_at(c, c.argv[1], h)) return;
  auto v = h ? h->find(c.argv[2]) : std::nullopt;
  c.reply.integer(v ? static_cast<std::int64_t>(v->size()) : 0);
}

void hincrby(command_context& c) {
  std::int64_t delta = 0;
  if (!parse_integer(c, c.argv[3], delta)) return;
  std::optional<fields_ref> h;
  if (!hash_for_write(c, c.argv[1], h)) return;
  std::int64_t v = 0;
  if (auto old = h->find(c.argv[2]); old && !string_to_int64(*old, v)) {
    return c.reply.error("ERR hash value is not an integer");
  }
  if (__builtin_add_overflow(v, delta, &v)) return c.reply.error("ERR increment or decrement would overflow");
  h->insert_or_assign(c.tx, c.argv[2], std::to_string(v));
  c.server.touch(c.argv[1]);
  c.reply.integer(v);
}

void hincrbyfloat(command_context& c) {
  long double delta = 0;
  if (!parse_long_double(c, c.argv[3], delta)) return;
  std::optional<fields_ref> h;
  if (!hash_for_write(c, c.argv[1], h)) return;
  long double v = 0;
  if (auto old = h->find(c.argv[2]); old && !stored_long_double(*old, v)) {
    return c.reply.error("ERR hash value is not a float");
  }
  v += delta;
  if (std::isnan(v) || std::isinf(v)) return c.reply.error("ERR increment would produce NaN or Infinity");
  const std::string text = format_human(v);
  h->insert_or_assign(c.tx, c.argv[2], text);
  c.server.touch(c.argv[1]);
  c.reply.bulk(text);
}

void hscan(command_context& c) {
  scan_args a;
  if (!parse_scan(c, 2, false, true, a)) return;
  std::optional<fields_ref> h;
  if (!hash_at(c, c.argv[1], h)) return;
  scan_members(c, h ? &*h : nullptr, a, !a.novalues, [](std::string_view v) { return std::string(v); });
}

using namespace command_flags;

const std::array table{
    command_spec{"hset", -4, write | deny_oom | fast, hset, 1, 1, 1, "hash", "sets fields of a hash"},
    command_spec{"hmset", -4, write | deny_oom | fast, hset, 1, 1, 1, "hash", "sets fields of a hash (replies OK)"},
    command_spec{"hsetnx", 4, write | deny_oom | fast, hsetnx, 1, 1, 1, "hash", "sets a field if it is absent"},
    command_spec{"hget", 3, readonly | fast, hget, 1, 1, 1, "hash", "the value of a field"},
    command_spec{"hmget", -3, readonly | fast, hmget, 1, 1, 1, "hash", "the values of several fields"},
    command_spec{"hdel", -3, write | fast, hdel, 1, 1, 1, "hash", "deletes fields"},
    command_spec{"hgetall", 2, readonly, hgetall, 1, 1, 1, "hash", "every field and value"},
    command_spec{"hkeys", 2, readonly, hkeys, 1, 1, 1, "hash", "every field"},
    command_spec{"hvals", 2, readonly, hvals, 1, 1, 1, "hash", "every value"},
    command_spec{"hlen", 2, readonly | fast, hlen, 1, 1, 1, "hash", "the number of fields"},
    command_spec{"hexists", 3, readonly | fast, hexists, 1, 1, 1, "hash", "whether a field exists"},
    command_spec{"hstrlen", 3, readonly | fast, hstrlen, 1, 1, 1, "hash", "the length of a field's value"},
    command_spec{"hincrby", 4, write | deny_oom | fast, hincrby, 1, 1, 1, "hash", "adds to an integer field"},
    command_spec{"hincrbyfloat", 4, write | deny_oom | fast, hincrbyfloat, 1, 1, 1, "hash", "adds to a number field"},
    command_spec{"hscan", -3, readonly, hscan, 1, 1, 1, "hash", "iterates over the fields"},
};

}  // namespace

std::span<const command_spec> hash_commands() { return table; }

}  // namespace pobj::kv
