// The command engine (engine.hpp) and the argument helpers the command families share.
#include "engine.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace pobj::kv {

// ---- helpers (commands.hpp) ---------------------------------------------------------------------

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

// ---- engine -------------------------------------------------------------------------------------

engine::engine(pobj::pool& pool, config& cfg) : db_(pool), config_(&cfg) {
  db_.on_expired = [this](std::string_view key) {
    ++stats_.expired_keys;
    touch(key);
  };
  for (auto table : {connection_commands(), server_commands(), string_commands(), key_commands(),
                     hash_commands(), set_commands(), list_commands(), zset_commands(),
                     transaction_commands(), object_commands(), once_commands(), class_commands()}) {
    for (const command_spec& c : table) {
      all_.push_back(&c);
      by_name_.emplace(std::string(c.name), &c);
    }
  }
}

const command_spec* engine::find(std::string_view name) const {
  // Lower case on the stack: no allocation per command (names are short).
  char buf[32];
  if (name.size() > sizeof(buf)) return nullptr;
  for (std::size_t i = 0; i < name.size(); ++i) buf[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
  auto it = by_name_.find(std::string_view(buf, name.size()));
  return it == by_name_.end() ? nullptr : it->second;
}

engine::placement engine::placement_of(const session& s, std::span<const std::string_view> argv) const {
  if (s.in_multi || argv.empty()) return placement::alone;
  const command_spec* c = find(argv[0]);
  if (c == nullptr) return placement::batch;  // an error reply: nothing to undo
  return (c->flags & (command_flags::connection_state | command_flags::own_block)) != 0 ? placement::alone : placement::batch;
}

namespace {

std::string unknown_command(std::span<const std::string_view> argv) {
  std::string args;
  for (std::size_t i = 1; i < argv.size() && args.size() < 128; ++i) {
    args += fmt::format("'{}' ", argv[i].substr(0, 128));
  }
  return fmt::format("ERR unknown command '{}', with args beginning with: {}", argv[0].substr(0, 128), args);
}

bool arity_ok(const command_spec& c, std::size_t argc) {
  return c.arity >= 0 ? argc == static_cast<std::size_t>(c.arity) : argc >= static_cast<std::size_t>(-c.arity);
}

}  // namespace

void engine::execute(session& s, std::span<const std::string_view> argv, reply_writer& reply, transaction& tx,
                     std::int64_t now) {
  if (argv.empty()) return;
  const command_spec* c = find(argv[0]);
  s.last_ms = now;
  if (c == nullptr) {
    if (s.in_multi) s.multi_failed = true;
    reply.error(unknown_command(argv));
    return;
  }
  s.last_command = c->name;
  if (!config_->requirepass.empty() && !s.authenticated && (c->flags & command_flags::no_auth) == 0) {
    reply.error("NOAUTH Authentication required.");
    return;
  }
  if (!arity_ok(*c, argv.size())) {
    if (s.in_multi) s.multi_failed = true;
    reply.error(fmt::format("ERR wrong number of arguments for '{}' command", c->name));
    return;
  }
  if (s.in_multi && (c->flags & command_flags::no_multi) != 0) {
    s.multi_failed = true;
    reply.error("ERR Command not allowed inside a transaction");
    return;
  }
  if (s.in_multi && (c->flags & command_flags::immediate) == 0) {
    s.queued.emplace_back(argv.begin(), argv.end());
    reply.simple("QUEUED");
    return;
  }
  ++stats_.commands;
  ++stats_.calls[c];
  command_context ctx{*this, db_, s, argv, reply, tx, now};
  c->handler(ctx);
}

void engine::watch(session& s, std::string_view key, std::int64_t expires_ms) {
  if (std::find(s.watched.begin(), s.watched.end(), key) != s.watched.end()) return;
  s.watched.emplace_back(key);
  s.watched_expiry.push_back(expires_ms);
  watchers_[std::string(key)].insert(&s);
}

void engine::unwatch(session& s) {
  for (const auto& k : s.watched) {
    auto it = watchers_.find(k);
    if (it == watchers_.end()) continue;
    it->second.erase(&s);
    if (it->second.empty()) watchers_.erase(it);
  }
  s.watched.clear();
  s.watched_expiry.clear();
  s.watch_dirty = false;
}

void engine::touch(std::string_view key) {
  if (watchers_.empty()) return;
  auto it = watchers_.find(std::string(key));
  if (it == watchers_.end()) return;
  for (session* s : it->second) s->watch_dirty = true;
}

void engine::touch_all() {
  for (auto& [k, sessions] : watchers_) {
    for (session* s : sessions) s->watch_dirty = true;
  }
}

void engine::forget(session& s) { unwatch(s); }

void engine::signal_ready(std::string_view key) {
  if (std::find(ready_.begin(), ready_.end(), key) == ready_.end()) ready_.emplace_back(key);
}

std::vector<std::string> engine::take_ready() { return std::exchange(ready_, {}); }

bool engine::watched_expired(const session& s, std::int64_t now) const {
  return std::any_of(s.watched_expiry.begin(), s.watched_expiry.end(), [&](std::int64_t t) { return t != 0 && t <= now; });
}

}  // namespace pobj::kv
