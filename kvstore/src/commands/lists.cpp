// The list commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LRANGE LLEN LINDEX LSET LREM BLPOP BRPOP,
// with Redis 7's replies and errors. A list's elements are a pobj::ordered_map by position
// (store.hpp), consecutive from the first element's, so LINDEX and LRANGE find a position
// directly; LREM rebuilds the list. A list whose last element goes is removed, as in Redis.
//
// BLPOP/BRPOP on lists that are all empty block the connection (the server parks it: no reply,
// its later commands wait) until a push to one of the keys or the timeout. A push marks the key
// ready; the server then runs the oldest blocked client's pop in the same batch as the push, so
// the pop is durable before either reply is sent. A blocked client's connection does not survive
// a restart: the client sees the connection drop and calls again.
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

using elements_ref = pobj::ordered_map_ref<std::int64_t, pobj::bytes>;

// The elements of the list at `key`: nullopt if absent; false after a WRONGTYPE reply.
bool list_at(command_context& c, std::string_view key, std::optional<elements_ref>& out) {
  return value_at(c, key, value_type::list, out, [&](std::string_view k) { return c.db.elements(k); });
}

// First and last positions of a non-empty list.
std::pair<std::int64_t, std::int64_t> bounds(const elements_ref& l) {
  const auto f = l.first(), b = l.last();
  if (!f || !b) throw pobj::error(pobj::errc::corrupt, "pobj-kv: an empty list in the keyspace");
  return {f->first, b->first};
}

void push(command_context& c, bool left, bool only_if_exists) {
  std::optional<elements_ref> l;
  if (!list_at(c, c.argv[1], l)) return;
  if (!l) {
    if (only_if_exists) return c.reply.integer(0);
    l.emplace(c.db.make_list(c.tx, c.argv[1]));
  }
  std::int64_t first = 0, last = -1;
  if (const auto f = l->first()) {
    first = f->first;
    last = l->last()->first;
  }
  for (std::size_t i = 2; i < c.argv.size(); ++i) {
    if (left) {
      l->insert(c.tx, --first, c.argv[i]);
    } else {
      l->insert(c.tx, ++last, c.argv[i]);
    }
  }
  c.server.touch(c.argv[1]);
  c.server.signal_ready(c.argv[1]);
  c.reply.integer(last - first + 1);
}
void lpush(command_context& c) { push(c, true, false); }
void rpush(command_context& c) { push(c, false, false); }
void lpushx(command_context& c) { push(c, true, true); }
void rpushx(command_context& c) { push(c, false, true); }

// Removes up to n elements from one end; returns them in the order they left.
std::vector<std::string> pop_some(command_context& c, std::string_view key, elements_ref& l, bool left, std::int64_t n) {
  std::vector<std::string> out;
  while (n-- > 0) {
    auto e = left ? l.first() : l.last();
    if (!e) break;
    l.erase(c.tx, e->first);
    out.push_back(std::move(e->second));
  }
  if (!out.empty()) {
    c.server.touch(key);
    if (l.empty()) c.db.erase(c.tx, key, c.now_ms);
  }
  return out;
}

void pop(command_context& c, bool left) {
  std::int64_t count = 1;
  const bool counted = c.argv.size() == 3;
  if (counted) {
    if (!string_to_int64(c.argv[2], count) || count < 0) {
      return c.reply.error("ERR value is out of range, must be positive");
    }
  } else if (c.argv.size() > 3) {
    return c.reply.error(fmt::format("ERR wrong number of arguments for '{}' command", lower(c.argv[0])));
  }
  std::optional<elements_ref> l;
  if (!list_at(c, c.argv[1], l)) return;
  if (!l) return counted ? c.reply.null_array() : c.reply.null();
  const auto out = pop_some(c, c.argv[1], *l, left, count);
  if (!counted) return c.reply.bulk(out.front());
  c.reply.array(out.size());
  for (const auto& v : out) c.reply.bulk(v);
}
void lpop(command_context& c) { pop(c, true); }
void rpop(command_context& c) { pop(c, false); }

void llen(command_context& c) {
  std::optional<elements_ref> l;
  if (!list_at(c, c.argv[1], l)) return;
  if (!l) return c.reply.integer(0);
  const auto [first, last] = bounds(*l);
  c.reply.integer(last - first + 1);
}

// Redis's index rules: negative counts from the end; the range clamped.
void lrange(command_context& c) {
  std::int64_t start = 0, stop = 0;
  if (!parse_integer(c, c.argv[2], start) || !parse_integer(c, c.argv[3], stop)) return;
  std::optional<elements_ref> l;
  if (!list_at(c, c.argv[1], l)) return;
  if (!l) return c.reply.array(0);
  const auto [first, last] = bounds(*l);
  const std::int64_t n = last - first + 1;
  if (start < 0) start = std::max<std::int64_t>(n + start, 0);
  if (stop < 0) stop = n + stop;
  stop = std::min(stop, n - 1);
  if (start > stop || start >= n) return c.reply.array(0);
  std::vector<std::string> out;
  elements_ref::range r;
  r.from = first + start;
  r.to = first + stop;
  r.to_inclusive = true;
  l->scan(r, [&](std::int64_t, std::string v) { out.push_back(std::move(v)); });
  c.reply.array(out.size());
  for (const auto& v : out) c.reply.bulk(v);
}

// The position of index i in a list, or nullopt if out of range.
std::optional<std::int64_t> position_of(const elements_ref& l, std::int64_t i) {
  const auto [first, last] = bounds(l);
  const std::int64_t n = last - first + 1;
  if (i < 0) i += n;
  if (i < 0 || i >= n) return std::nullopt;
  return first + i;
}

void lindex(command_context& c) {
  std::int64_t i = 0;
  if (!parse_integer(c, c.argv[2], i)) return;
  std::optional<elements_ref> l;
  if (!list_at(c, c.argv[1], l)) return;
  if (!l) return c.reply.null();
  const auto at = position_of(*l, i);
  auto v = at ? l->find(*at) : std::nullopt;
  if (!v) return c.reply.null();
  c.reply.bulk(*v);
}

void lset(command_context& c) {
  std::int64_t i = 0;
  if (!parse_integer(c, c.argv[2], i)) return;
  std::optional<elements_ref> l;
  if (!list_at(c, c.argv[1], l)) return;
  if (!l) return c.reply.error("ERR no such key");
  const auto at = position_of(*l, i);
  if (!at) return c.reply.error("ERR index out of range");
  l->insert_or_assign(c.tx, *at, c.argv[3]);
  c.server.touch(c.argv[1]);
  c.reply.ok();
}

void lrem(command_context& c) {
  std::int64_t count = 0;
  if (!parse_integer(c, c.argv[2], count)) return;
  std::optional<elements_ref> l;
  if (!list_at(c, c.argv[1], l)) return;
  if (!l) return c.reply.integer(0);
  std::vector<std::string> all;
  l->for_each([&](std::int64_t, std::string v) { all.push_back(std::move(v)); });
  std::vector<bool> gone(all.size(), false);
  std::int64_t removed = 0;
  const std::int64_t limit = count == 0 ? static_cast<std::int64_t>(all.size()) : std::llabs(count);
  for (std::size_t k = 0; k < all.size() && removed < limit; ++k) {
    const std::size_t i = count < 0 ? all.size() - 1 - k : k;
    if (all[i] == c.argv[3]) {
      gone[i] = true;
      ++removed;
    }
  }
  if (removed == 0) return c.reply.integer(0);
  // The rest, renumbered, in a fresh map (fresh nodes are written in place: the block logs little).
  const entry e = *c.db.get(c.tx, c.argv[1], c.now_ms);
  if (static_cast<std::size_t>(removed) == all.size()) {
    c.db.erase(c.tx, c.argv[1], c.now_ms);
  } else {
    auto fresh = c.db.make_list(c.tx, c.argv[1]);
    std::int64_t at = 0;
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (!gone[i]) fresh.insert(c.tx, at++, all[i]);
    }
    if (e.expires_ms != 0) {
      entry timed{value_type::list, 0, {}};
      c.db.set_expiry(c.tx, c.argv[1], timed, e.expires_ms);
    }
  }
  c.server.touch(c.argv[1]);
  c.reply.integer(removed);
}

// BLPOP/BRPOP key [key ...] timeout
void blocking_pop(command_context& c, bool left) {
  long double seconds = 0;
  {
    std::string t(c.argv.back());
    char* end = nullptr;
    seconds = std::strtold(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || std::isnan(seconds) || std::isinf(seconds)) {
      return c.reply.error("ERR timeout is not a float or out of range");
    }
    if (seconds < 0) return c.reply.error("ERR timeout is negative");
  }
  for (std::size_t i = 1; i + 1 < c.argv.size(); ++i) {
    std::optional<elements_ref> l;
    if (!list_at(c, c.argv[i], l)) return;
    if (!l) continue;
    const auto out = pop_some(c, c.argv[i], *l, left, 1);
    c.reply.array(2);
    c.reply.bulk(c.argv[i]);
    c.reply.bulk(out.front());
    return;
  }
  // Nothing to pop. Inside EXEC a blocking command does not block (as Redis): a null reply.
  if (c.client.in_exec) return c.reply.null_array();
  session::blocking& b = c.client.blocked;
  b.active = true;
  b.left = left;
  b.keys.assign(c.argv.begin() + 1, c.argv.end() - 1);
  b.deadline_ms = seconds == 0 ? 0 : c.now_ms + static_cast<std::int64_t>(std::ceil(seconds * 1000));
}
void blpop(command_context& c) { blocking_pop(c, true); }
void brpop(command_context& c) { blocking_pop(c, false); }

using namespace command_flags;

const std::array table{
    command_spec{"lpush", -3, write | deny_oom | fast, lpush, 1, 1, 1, "list", "pushes elements at the head"},
    command_spec{"rpush", -3, write | deny_oom | fast, rpush, 1, 1, 1, "list", "pushes elements at the tail"},
    command_spec{"lpushx", -3, write | deny_oom | fast, lpushx, 1, 1, 1, "list", "pushes at the head of an existing list"},
    command_spec{"rpushx", -3, write | deny_oom | fast, rpushx, 1, 1, 1, "list", "pushes at the tail of an existing list"},
    command_spec{"lpop", -2, write | fast, lpop, 1, 1, 1, "list", "removes elements from the head"},
    command_spec{"rpop", -2, write | fast, rpop, 1, 1, 1, "list", "removes elements from the tail"},
    command_spec{"llen", 2, readonly | fast, llen, 1, 1, 1, "list", "the length of a list"},
    command_spec{"lrange", 4, readonly, lrange, 1, 1, 1, "list", "a range of elements"},
    command_spec{"lindex", 3, readonly, lindex, 1, 1, 1, "list", "the element at an index"},
    command_spec{"lset", 4, write | deny_oom, lset, 1, 1, 1, "list", "sets the element at an index"},
    command_spec{"lrem", 4, write, lrem, 1, 1, 1, "list", "removes elements equal to a value"},
    command_spec{"blpop", -3, write, blpop, 1, -2, 1, "list", "pops from the head, waiting for an element"},
    command_spec{"brpop", -3, write, brpop, 1, -2, 1, "list", "pops from the tail, waiting for an element"},
};

}  // namespace

std::span<const command_spec> list_commands() { return table; }

}  // namespace pobj::kv
