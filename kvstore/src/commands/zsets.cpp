// The sorted set commands: ZADD ZREM ZSCORE ZINCRBY ZCARD ZRANK ZRANGE ZREVRANGE ZRANGEBYSCORE
// ZSCAN, with Redis 7's replies and errors. A sorted set is two pobj maps (store.hpp): member ->
// score, and the order, a pobj::set of [order-preserving 8-byte score][member]; every change
// updates both in the same block. ZRANK and ZRANGE by index walk the order from its first entry
// (O(rank)): the B+ tree keeps no counts. A sorted set whose last member goes is removed.
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

using scores_ref = pobj::hash_map_ref<pobj::bytes, pobj::bytes>;
using order_ref = pobj::set_ref<pobj::bytes>;

struct zset {
  scores_ref scores;
  order_ref order;
};

// A double as 8 bytes whose memcmp order is the numbers' order (-inf first, +inf last).
std::string order_key(double score, std::string_view member) {
  std::uint64_t bits = std::bit_cast<std::uint64_t>(score == 0 ? 0.0 : score);  // -0 is 0
  bits = (bits >> 63) != 0 ? ~bits : bits | (std::uint64_t{1} << 63);
  std::string k(8, '\0');
  for (int i = 0; i < 8; ++i) k[static_cast<std::size_t>(i)] = static_cast<char>(bits >> (56 - 8 * i));
  k.append(member);
  return k;
}

std::pair<double, std::string> from_order_key(std::string_view k) {
  std::uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits = bits << 8 | static_cast<unsigned char>(k[static_cast<std::size_t>(i)]);
  bits = (bits >> 63) != 0 ? bits & ~(std::uint64_t{1} << 63) : ~bits;
  return {std::bit_cast<double>(bits), std::string(k.substr(8))};
}

std::string score_bytes(double d) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &d, 8);
  return s;
}
double score_of(std::string_view bytes) {
  double d = 0;
  if (bytes.size() == 8) std::memcpy(&d, bytes.data(), 8);
  return d;
}

bool zset_at(command_context& c, std::string_view key, std::optional<zset>& out) {
  return value_at(c, key, value_type::zset, out, [&](std::string_view k) { return zset{c.db.fields(k), c.db.zorder(k)}; });
}

// Redis's score syntax: a float, or inf, +inf, -inf.
bool parse_score(std::string_view s, double& out) {
  const std::string copy(s);
  if (copy == "inf" || copy == "+inf") {
    out = INFINITY;
    return true;
  }
  if (copy == "-inf") {
    out = -INFINITY;
    return true;
  }
  char* end = nullptr;
  out = copy.empty() || std::isspace(static_cast<unsigned char>(copy[0])) ? NAN : std::strtod(copy.c_str(), &end);
  return !copy.empty() && end == copy.c_str() + copy.size() && !std::isnan(out);
}

// Sets a member's score (both maps), in the block.
void set_score(command_context& c, zset& z, std::string_view member, std::optional<double> old, double score) {
  if (old) z.order.erase(c.tx, order_key(*old, member));
  z.order.insert(c.tx, order_key(score, member));
  z.scores.insert_or_assign(c.tx, member, score_bytes(score));
}

void reply_score(command_context& c, double d) { c.reply.double_value(d); }

void zadd(command_context& c) {
  bool nx = false, xx = false, gt = false, lt = false, ch = false, incr = false;
  std::size_t i = 2;
  for (; i < c.argv.size(); ++i) {
    const std::string opt = lower(c.argv[i]);
    if (opt == "nx") nx = true;
    else if (opt == "xx") xx = true;
    else if (opt == "gt") gt = true;
    else if (opt == "lt") lt = true;
    else if (opt == "ch") ch = true;
    else if (opt == "incr") incr = true;
    else break;
  }
  const std::size_t pairs = c.argv.size() - i;
  if (pairs == 0 || pairs % 2 != 0) return syntax_error(c);
  if (nx && xx) return c.reply.error("ERR XX and NX options at the same time are not compatible");
  if ((gt && nx) || (lt && nx) || (gt && lt)) {
    return c.reply.error("ERR GT, LT, and/or NX options at the same time are not compatible");
  }
  if (incr && pairs != 2) return c.reply.error("ERR INCR option supports a single increment-element pair");
  std::vector<double> scores;
  for (std::size_t k = i; k < c.argv.size(); k += 2) {
    double d = 0;
    if (!parse_score(c.argv[k], d)) return c.reply.error("ERR value is not a valid float");
    scores.push_back(d);
  }
  std::optional<zset> z;
  if (!zset_at(c, c.argv[1], z)) return;
  const bool created = !z;
  if (created) {
    if (xx) return incr ? c.reply.null() : c.reply.integer(0);
    c.db.make_zset(c.tx, c.argv[1]);
    z.emplace(zset{c.db.fields(c.argv[1]), c.db.zorder(c.argv[1])});
  }
  std::int64_t added = 0, changed = 0;
  std::optional<double> result;
  for (std::size_t k = 0; k < scores.size(); ++k) {
    const std::string_view member = c.argv[i + 2 * k + 1];
    std::optional<double> old;
    if (auto b = z->scores.find(member)) old = score_of(*b);
    if ((nx && old) || (xx && !old)) continue;
    double score = scores[k];
    if (incr && old) score += *old;
    if (std::isnan(score)) return c.reply.error("ERR resulting score is not a number (NaN)");
    if (old && ((gt && score <= *old) || (lt && score >= *old))) continue;
    result = score;
    if (old && *old == score) continue;
    set_score(c, *z, member, old, score);
    ++(old ? changed : added);
  }
  if (created && added == 0) c.db.erase(c.tx, c.argv[1], c.now_ms);  // made, and nothing went in
  if (added + changed > 0) c.server.touch(c.argv[1]);
  if (incr) return result ? reply_score(c, *result) : c.reply.null();
  c.reply.integer(ch ? added + changed : added);
}

void zincrby(command_context& c) {
  double delta = 0;
  if (!parse_score(c.argv[2], delta)) return c.reply.error("ERR value is not a valid float");
  std::optional<zset> z;
  if (!zset_at(c, c.argv[1], z)) return;
  if (!z) {
    c.db.make_zset(c.tx, c.argv[1]);
    z.emplace(zset{c.db.fields(c.argv[1]), c.db.zorder(c.argv[1])});
  }
  std::optional<double> old;
  if (auto b = z->scores.find(c.argv[3])) old = score_of(*b);
  const double score = (old ? *old : 0) + delta;
  if (std::isnan(score)) return c.reply.error("ERR resulting score is not a number (NaN)");
  set_score(c, *z, c.argv[3], old, score);
  c.server.touch(c.argv[1]);
  reply_score(c, score);
}

void zrem(command_context& c) {
  std::optional<zset> z;
  if (!zset_at(c, c.argv[1], z)) return;
  if (!z) return c.reply.integer(0);
  std::int64_t removed = 0;
  for (std::size_t i = 2; i < c.argv.size(); ++i) {
    auto b = z->scores.find(c.argv[i]);
    if (!b) continue;
    z->order.erase(c.tx, order_key(score_of(*b), c.argv[i]));
    z->scores.erase(c.tx, c.argv[i]);
    ++removed;
  }
  if (removed > 0) {
    c.server.touch(c.argv[1]);
    if (z->scores.empty()) c.db.erase(c.tx, c.argv[1], c.now_ms);
  }
  c.reply.integer(removed);
}

void zscore(command_context& c) {
  std::optional<zset> z;
  if (!zset_at(c, c.argv[1], z)) return;
  auto b = z ? z->scores.find(c.argv[2]) : std::nullopt;
  if (!b) return c.reply.null();
  reply_score(c, score_of(*b));
}

void zcard(command_context& c) {
  std::optional<zset> z;
  if (!zset_at(c, c.argv[1], z)) return;
  c.reply.integer(z ? static_cast<std::int64_t>(z->scores.size()) : 0);
}

void zrank(command_context& c) {
  std::optional<zset> z;
  if (!zset_at(c, c.argv[1], z)) return;
  auto b = z ? z->scores.find(c.argv[2]) : std::nullopt;
  if (!b) return c.reply.null();
  const std::string target = order_key(score_of(*b), c.argv[2]);
  std::int64_t rank = 0;
  order_ref::range r;
  r.to = target;
  z->order.scan(r, [&](const std::string&) { ++rank; });
  c.reply.integer(rank);
}

// Replies with members (and scores) as Redis does: flat in RESP2, [member, score] pairs in RESP3.
void reply_members(command_context& c, const std::vector<std::pair<double, std::string>>& found, bool withscores) {
  if (!withscores) {
    c.reply.array(found.size());
    for (const auto& [s, m] : found) c.reply.bulk(m);
    return;
  }
  if (c.reply.protocol() >= 3) {
    c.reply.array(found.size());
    for (const auto& [s, m] : found) {
      c.reply.array(2);
      c.reply.bulk(m);
      reply_score(c, s);
    }
    return;
  }
  c.reply.array(found.size() * 2);
  for (const auto& [s, m] : found) {
    c.reply.bulk(m);
    reply_score(c, s);
  }
}

void range_by_index(command_context& c, bool reverse) {
  std::int64_t start = 0, stop = 0;
  if (!parse_integer(c, c.argv[2], start) || !parse_integer(c, c.argv[3], stop)) return;
  bool withscores = false;
  for (std::size_t i = 4; i < c.argv.size(); ++i) {
    const std::string opt = lower(c.argv[i]);
    if (opt == "withscores") {
      withscores = true;
    } else if (opt == "rev" && !equals_ignore_case(c.argv[0], "zrevrange")) {
      reverse = true;
    } else {
      return syntax_error(c);
    }
  }
  std::optional<zset> z;
  if (!zset_at(c, c.argv[1], z)) return;
  if (!z) return c.reply.array(0);
  const auto n = static_cast<std::int64_t>(z->scores.size());
  if (start < 0) start = std::max<std::int64_t>(n + start, 0);
  if (stop < 0) stop = n + stop;
  stop = std::min(stop, n - 1);
  if (start > stop || start >= n) return c.reply.array(0);
  std::vector<std::pair<double, std::string>> found;
  std::int64_t at = 0;
  auto take = [&](const std::string& k) {
    if (at++ < start) return true;
    found.push_back(from_order_key(k));
    return at <= stop;
  };
  if (reverse) {
    z->order.reverse_scan({}, take);
  } else {
    z->order.scan({}, take);
  }
  reply_members(c, found, withscores);
}
void zrange(command_context& c) { range_by_index(c, false); }
void zrevrange(command_context& c) { range_by_index(c, true); }

// A score bound: a number, (number for exclusive, -inf, +inf.
bool parse_bound(std::string_view s, double& v, bool& exclusive) {
  exclusive = !s.empty() && s[0] == '(';
  if (exclusive) s.remove_prefix(1);
  return parse_score(s, v);
}

void zrangebyscore(command_context& c) {
  double lo = 0, hi = 0;
  bool lo_ex = false, hi_ex = false;
  if (!parse_bound(c.argv[2], lo, lo_ex) || !parse_bound(c.argv[3], hi, hi_ex)) {
    return c.reply.error("ERR min or max is not a float");
  }
  bool withscores = false;
  std::int64_t offset = 0, count = -1;
  for (std::size_t i = 4; i < c.argv.size(); ++i) {
    const std::string opt = lower(c.argv[i]);
    if (opt == "withscores") {
      withscores = true;
    } else if (opt == "limit" && i + 2 < c.argv.size()) {
      if (!parse_integer(c, c.argv[i + 1], offset) || !parse_integer(c, c.argv[i + 2], count)) return;
      i += 2;
    } else {
      return syntax_error(c);
    }
  }
  std::optional<zset> z;
  if (!zset_at(c, c.argv[1], z)) return;
  std::vector<std::pair<double, std::string>> found;
  if (z && offset >= 0 && count != 0) {
    order_ref::range r;
    r.from = order_key(lo, "");
    std::int64_t skipped = 0;
    z->order.scan(r, [&](const std::string& k) {
      auto [score, member] = from_order_key(k);
      if (score < lo || (lo_ex && score == lo)) return true;
      if (score > hi || (hi_ex && score == hi)) return false;
      if (skipped++ < offset) return true;
      found.emplace_back(score, std::move(member));
      return count < 0 || static_cast<std::int64_t>(found.size()) < count;
    });
  }
  reply_members(c, found, withscores);
}

void zscan(command_context& c) {
  scan_args a;
  if (!parse_scan(c, 2, false, false, a)) return;
  std::optional<zset> z;
  if (!zset_at(c, c.argv[1], z)) return;
  scan_members(c, z ? &z->scores : nullptr, a, true, [](std::string_view v) { return format_double(score_of(v)); });
}

using namespace command_flags;

const std::array table{
    command_spec{"zadd", -4, write | deny_oom | fast, zadd, 1, 1, 1, "sorted-set", "adds members with scores"},
    command_spec{"zincrby", 4, write | deny_oom | fast, zincrby, 1, 1, 1, "sorted-set", "adds to a member's score"},
    command_spec{"zrem", -3, write | fast, zrem, 1, 1, 1, "sorted-set", "removes members"},
    command_spec{"zscore", 3, readonly | fast, zscore, 1, 1, 1, "sorted-set", "a member's score"},
    command_spec{"zcard", 2, readonly | fast, zcard, 1, 1, 1, "sorted-set", "the number of members"},
    command_spec{"zrank", 3, readonly, zrank, 1, 1, 1, "sorted-set", "a member's rank (O(rank))"},
    command_spec{"zrange", -4, readonly, zrange, 1, 1, 1, "sorted-set", "members by rank"},
    command_spec{"zrevrange", -4, readonly, zrevrange, 1, 1, 1, "sorted-set", "members by rank, highest first"},
    command_spec{"zrangebyscore", -4, readonly, zrangebyscore, 1, 1, 1, "sorted-set", "members by score"},
    command_spec{"zscan", -3, readonly, zscan, 1, 1, 1, "sorted-set", "iterates over the members"},
};

}  // namespace

std::span<const command_spec> zset_commands() { return table; }

}  // namespace pobj::kv
