// The keyspace commands: DEL UNLINK EXISTS TYPE KEYS SCAN RENAME EXPIRE PEXPIRE EXPIREAT
// PEXPIREAT TTL PTTL PERSIST, with Redis 7's replies and errors. Times to live survive restarts:
// they are absolute times in the entry and in the store's expiry index.
#include <array>
#include <charconv>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

void del(command_context& c) {
  std::int64_t n = 0;
  for (std::size_t i = 1; i < c.argv.size(); ++i) {
    if (c.db.erase(c.tx, c.argv[i], c.now_ms)) {
      ++n;
      c.server.touch(c.argv[i]);
    }
  }
  c.reply.integer(n);
}

void exists(command_context& c) {
  std::int64_t n = 0;
  for (std::size_t i = 1; i < c.argv.size(); ++i) n += c.db.exists(c.tx, c.argv[i], c.now_ms) ? 1 : 0;
  c.reply.integer(n);
}

void type(command_context& c) {
  auto e = c.db.get(c.tx, c.argv[1], c.now_ms);
  c.reply.simple(e ? type_name(e->type) : "none");
}

void keys(command_context& c) {
  std::vector<std::string> found;
  for (std::uint64_t cursor = 0;;) {
    cursor = c.db.scan(cursor, c.now_ms, [&](std::string_view k, const entry&) {
      if (glob_match(c.argv[1], k)) found.emplace_back(k);
    });
    if (cursor == 0) break;
  }
  c.reply.array(found.size());
  for (const auto& k : found) c.reply.bulk(k);
}

void scan(command_context& c) {
  scan_args a;
  if (!parse_scan(c, 1, true, false, a)) return;
  // Whole hash ranges (a segment each) until COUNT keys are seen: every key present for the whole
  // walk is returned at least once, as Redis promises.
  std::vector<std::pair<std::string, std::string>> found;
  std::int64_t seen = 0;
  std::uint64_t cursor = a.cursor;
  do {
    cursor = c.db.scan(cursor, c.now_ms, [&](std::string_view k, const entry& e) {
      ++seen;
      if (!a.type.empty() && a.type != type_name(e.type)) return;
      if (!a.pattern.empty() && !glob_match(a.pattern, k)) return;
      found.emplace_back(std::string(k), std::string());
    });
  } while (cursor != 0 && seen < a.count);
  reply_scan(c, cursor, found, false);
}

void rename(command_context& c) {
  auto e = c.db.get(c.tx, c.argv[1], c.now_ms);
  if (!e) return c.reply.error("ERR no such key");
  if (c.argv[1] != c.argv[2]) {
    if (e->type == value_type::list) {
      std::vector<std::pair<std::int64_t, std::string>> all;
      c.db.elements(c.argv[1]).for_each([&](std::int64_t at, std::string v) { all.emplace_back(at, std::move(v)); });
      c.db.erase(c.tx, c.argv[2], c.now_ms);
      auto copy = c.db.make_list(c.tx, c.argv[2]);
      for (const auto& [at, v] : all) copy.insert(c.tx, at, v);
      if (e->expires_ms != 0) {
        entry timed{e->type, 0, {}};
        c.db.set_expiry(c.tx, c.argv[2], timed, e->expires_ms);
      }
      c.db.erase(c.tx, c.argv[1], c.now_ms);
      c.server.signal_ready(c.argv[2]);
    } else if (e->type == value_type::zset) {
      std::vector<std::pair<std::string, std::string>> members;
      c.db.fields(c.argv[1]).for_each([&](std::string m, std::string s) { members.emplace_back(std::move(m), std::move(s)); });
      std::vector<std::string> order;
      c.db.zorder(c.argv[1]).for_each([&](std::string k) { order.push_back(std::move(k)); });
      c.db.erase(c.tx, c.argv[2], c.now_ms);
      c.db.make_zset(c.tx, c.argv[2]);
      auto scores = c.db.fields(c.argv[2]);
      auto ordered = c.db.zorder(c.argv[2]);
      for (const auto& [m, s] : members) scores.insert(c.tx, m, s);
      for (const auto& k : order) ordered.insert(c.tx, k);
      if (e->expires_ms != 0) {
        entry timed{e->type, 0, {}};
        c.db.set_expiry(c.tx, c.argv[2], timed, e->expires_ms);
      }
      c.db.erase(c.tx, c.argv[1], c.now_ms);
    } else if (e->type == value_type::instance) {
      // The object moves (it is not copied: it may own strings and containers): out of the old
      // key's entry, into the new key's, in the same block.
      const std::uint64_t block = c.db.release_object(c.tx, c.argv[1]);
      c.db.erase(c.tx, c.argv[1], c.now_ms);
      c.db.erase(c.tx, c.argv[2], c.now_ms);
      c.db.put_object(c.tx, c.argv[2], block);
      if (e->expires_ms != 0) {
        entry timed{e->type, 0, {}};
        c.db.set_expiry(c.tx, c.argv[2], timed, e->expires_ms);
      }
    } else if (e->type != value_type::string && e->type != value_type::object) {
      // The fields go to a fresh map under the new name (its nodes are new objects, written in
      // place: the block logs next to nothing), then the old key goes with its map.
      std::vector<std::pair<std::string, std::string>> fields;
      (e->type == value_type::set ? c.db.members(c.argv[1]) : c.db.fields(c.argv[1]))
          .for_each([&](std::string f, std::string v) { fields.emplace_back(std::move(f), std::move(v)); });
      c.db.erase(c.tx, c.argv[2], c.now_ms);
      auto copy = c.db.make_map(c.tx, c.argv[2], e->type);
      for (const auto& [f, v] : fields) copy.insert(c.tx, f, v);
      if (e->expires_ms != 0) {
        entry timed{e->type, 0, {}};
        c.db.set_expiry(c.tx, c.argv[2], timed, e->expires_ms);
      }
      c.db.erase(c.tx, c.argv[1], c.now_ms);
    } else {
      c.db.erase(c.tx, c.argv[1], c.now_ms);
      c.db.put(c.tx, c.argv[2], *e);
    }
    c.server.touch(c.argv[1]);
    c.server.touch(c.argv[2]);
  }
  c.reply.ok();
}

// EXPIRE and its kin: `unit` ms per argument unit; `absolute` for the *AT forms.
void expire_with(command_context& c, std::int64_t unit, bool absolute) {
  std::int64_t v = 0;
  if (!parse_integer(c, c.argv[2], v)) return;
  bool nx = false, xx = false, gt = false, lt = false;
  for (std::size_t i = 3; i < c.argv.size(); ++i) {
    const std::string opt = lower(c.argv[i]);
    if (opt == "nx") {
      nx = true;
    } else if (opt == "xx") {
      xx = true;
    } else if (opt == "gt") {
      gt = true;
    } else if (opt == "lt") {
      lt = true;
    } else {
      return c.reply.error(fmt::format("ERR Unsupported option {}", c.argv[i]));
    }
  }
  if (nx && (xx || gt || lt)) return c.reply.error("ERR NX and XX, GT or LT options at the same time are not compatible");
  if (gt && lt) return c.reply.error("ERR GT and LT options at the same time are not compatible");
  std::int64_t when = 0;
  if (__builtin_mul_overflow(v, unit, &when) || (!absolute && __builtin_add_overflow(when, c.now_ms, &when))) {
    return c.reply.error(fmt::format("ERR invalid expire time in '{}' command", lower(c.argv[0])));
  }
  auto e = c.db.get(c.tx, c.argv[1], c.now_ms);
  if (!e) return c.reply.integer(0);
  const std::int64_t current = e->expires_ms;  // 0: none, which GT treats as infinite
  if ((nx && current != 0) || (xx && current == 0) || (gt && (current == 0 || when <= current)) ||
      (lt && current != 0 && when >= current)) {
    return c.reply.integer(0);
  }
  c.server.touch(c.argv[1]);
  if (when <= c.now_ms) {  // a time in the past deletes the key, as Redis does
    c.db.erase(c.tx, c.argv[1], c.now_ms);
    return c.reply.integer(1);
  }
  c.db.set_expiry(c.tx, c.argv[1], *e, when);
  c.reply.integer(1);
}

void expire(command_context& c) { expire_with(c, 1000, false); }
void pexpire(command_context& c) { expire_with(c, 1, false); }
void expireat(command_context& c) { expire_with(c, 1000, true); }
void pexpireat(command_context& c) { expire_with(c, 1, true); }

void ttl_with(command_context& c, std::int64_t unit) {
  auto e = c.db.get(c.tx, c.argv[1], c.now_ms);
  if (!e) return c.reply.integer(-2);
  if (e->expires_ms == 0) return c.reply.integer(-1);
  const std::int64_t left = e->expires_ms - c.now_ms;
  c.reply.integer(unit == 1 ? left : (left + 500) / 1000);
}
void ttl(command_context& c) { ttl_with(c, 1000); }
void pttl(command_context& c) { ttl_with(c, 1); }

void persist(command_context& c) {
  auto e = c.db.get(c.tx, c.argv[1], c.now_ms);
  if (!e || e->expires_ms == 0) return c.reply.integer(0);
  c.db.set_expiry(c.tx, c.argv[1], *e, 0);
  c.server.touch(c.argv[1]);
  c.reply.integer(1);
}

using namespace command_flags;

const std::array table{
    command_spec{"del", -2, write, del, 1, -1, 1, "keyspace", "deletes keys"},
    command_spec{"unlink", -2, write | fast, del, 1, -1, 1, "keyspace",
                 "deletes keys (large values are freed in steps after the reply's block commits)"},
    command_spec{"exists", -2, readonly | fast, exists, 1, -1, 1, "keyspace", "counts the keys that exist"},
    command_spec{"type", 2, readonly | fast, type, 1, 1, 1, "keyspace", "the type of a key's value"},
    command_spec{"keys", 2, readonly, keys, 0, 0, 0, "keyspace", "the keys matching a pattern"},
    command_spec{"scan", -2, readonly, scan, 0, 0, 0, "keyspace", "iterates over the keys"},
    command_spec{"rename", 3, write, rename, 1, 2, 1, "keyspace", "renames a key"},
    command_spec{"expire", -3, write | fast, expire, 1, 1, 1, "keyspace", "sets a time to live in seconds"},
    command_spec{"pexpire", -3, write | fast, pexpire, 1, 1, 1, "keyspace", "sets a time to live in ms"},
    command_spec{"expireat", -3, write | fast, expireat, 1, 1, 1, "keyspace", "sets an expiry time (unix s)"},
    command_spec{"pexpireat", -3, write | fast, pexpireat, 1, 1, 1, "keyspace", "sets an expiry time (unix ms)"},
    command_spec{"ttl", 2, readonly | fast, ttl, 1, 1, 1, "keyspace", "the time to live in seconds"},
    command_spec{"pttl", 2, readonly | fast, pttl, 1, 1, 1, "keyspace", "the time to live in ms"},
    command_spec{"persist", 2, write | fast, persist, 1, 1, 1, "keyspace", "removes a key's time to live"},
};

}  // namespace

std::span<const command_spec> key_commands() { return table; }

}  // namespace pobj::kv
