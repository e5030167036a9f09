// The command engine (engine.hpp): the table, arity, authentication and MULTI checks, WATCH.
#include "engine.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace pobj::kv {

engine::engine(pobj::pool& pool, config& cfg) : db_(pool), config_(&cfg) {
  db_.on_expired = [this](std::string_view key) {
    ++stats_.expired_keys;
    // Watchers see the removal as a change, unless the key had expired already when they watched.
    if (watchers_.empty()) return;
    auto it = watchers_.find(std::string(key));
    if (it == watchers_.end()) return;
    for (session* s : it->second) {
      const auto at = static_cast<std::size_t>(std::find(s->watched.begin(), s->watched.end(), key) - s->watched.begin());
      if (at >= s->watched_expiry.size() || s->watched_expiry[at] != -1) s->watch_dirty = true;
    }
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
  s.accepted = false;
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
    s.accepted = true;
    reply.simple("QUEUED");
    return;
  }
  if ((c->flags & command_flags::write) != 0 && !s.in_exec) {  // EXEC checks its whole queue first
    if (std::string why = write_refusal(); !why.empty()) {
      reply.error(why);
      return;
    }
  }
  ++stats_.commands;
  ++stats_.calls[c];
  s.accepted = true;
  command_context ctx{*this, db_, s, argv, reply, tx, now};
  c->handler(ctx);
}

std::string engine::write_refusal() const {
  // The disk failed a journal write, which is being retried: a write now could not be
  // acknowledged until the disk is back, so it is refused, as Redis refuses writes it cannot
  // persist (MISCONF).
  const int failure = db_.pool().durability_failure();
  if (failure == 0) return {};
  return fmt::format("MISCONF pobj-kv cannot make writes durable: writing its journal failed ({}); "
                     "writes are refused until the disk recovers (INFO persistence: journal_status)",
                     std::strerror(failure));
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
  return std::any_of(s.watched_expiry.begin(), s.watched_expiry.end(), [&](std::int64_t t) { return t > 0 && t <= now; });
}

}  // namespace pobj::kv
