// MULTI EXEC DISCARD WATCH UNWATCH. EXEC runs the queued commands in one failure-atomic block of
// its own: they are all durable when its reply is sent, and a failure in any of them (the pool
// full, say) rolls all of them back and fails the EXEC, where Redis would have applied the others.
#include <array>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

void multi(command_context& c) {
  if (c.client.in_multi) return c.reply.error("ERR MULTI calls can not be nested");
  c.client.in_multi = true;
  c.client.multi_failed = false;
  c.client.queued.clear();
  c.reply.ok();
}

void discard(command_context& c) {
  if (!c.client.in_multi) return c.reply.error("ERR DISCARD without MULTI");
  c.client.in_multi = false;
  c.client.multi_failed = false;
  c.client.queued.clear();
  c.server.unwatch(c.client);
  c.reply.ok();
}

void exec(command_context& c) {
  if (!c.client.in_multi) return c.reply.error("ERR EXEC without MULTI");
  std::vector<std::vector<std::string>> queued = std::move(c.client.queued);
  const bool failed = c.client.multi_failed;
  const bool dirty = c.client.watch_dirty || c.server.watched_expired(c.client, c.now_ms);
  c.client.in_multi = false;
  c.client.multi_failed = false;
  c.client.queued.clear();
  c.server.unwatch(c.client);
  if (failed) return c.reply.error("EXECABORT Transaction discarded because of previous errors.");
  if (dirty) return c.reply.null_array();
  // All of the queue or none of it: a journal failing now refuses the whole EXEC if any queued
  // command writes (as Redis refuses it), never the writes after some that ran.
  for (const auto& command : queued) {
    const command_spec* spec = c.server.find(command.front());
    if (spec == nullptr || (spec->flags & command_flags::write) == 0) continue;
    if (std::string why = c.server.write_refusal(); !why.empty()) {
      return c.reply.error("EXECABORT Transaction discarded because of: " + why);
    }
    break;
  }
  c.reply.array(queued.size());
  std::vector<std::string_view> argv;
  c.client.in_exec = true;
  try {
    for (const auto& command : queued) {
      argv.assign(command.begin(), command.end());
      c.server.execute(c.client, argv, c.reply, c.tx, c.now_ms);
    }
  } catch (...) {
    c.client.in_exec = false;
    throw;
  }
  c.client.in_exec = false;
}

void watch(command_context& c) {
  if (c.client.in_multi) return c.reply.error("ERR WATCH inside MULTI is not allowed");
  for (std::size_t i = 1; i < c.argv.size(); ++i) {
    // (peek: WATCH is not replicated, so an expired key it met must not be removed here alone.
    // Such a key counts as absent, and its later removal as no change, as in Redis 7.)
    const auto e = c.db.peek(c.argv[i]);
    const bool gone = e && e->expires_ms != 0 && e->expires_ms <= c.now_ms;
    c.server.watch(c.client, c.argv[i], !e ? 0 : gone ? -1 : e->expires_ms);
  }
  c.reply.ok();
}

void unwatch(command_context& c) {
  c.server.unwatch(c.client);
  c.reply.ok();
}

using namespace command_flags;

const std::array table{
    command_spec{"multi", 1, fast | connection_state | immediate, multi, 0, 0, 0, "transactions", "starts a transaction"},
    command_spec{"exec", 1, connection_state | immediate | own_block, exec, 0, 0, 0, "transactions",
                 "runs the queued commands, atomically and durably"},
    command_spec{"discard", 1, fast | connection_state | immediate, discard, 0, 0, 0, "transactions", "drops the queue"},
    command_spec{"watch", -2, fast | connection_state | immediate, watch, 1, -1, 1, "transactions",
                 "makes EXEC fail if these keys change"},
    command_spec{"unwatch", 1, fast | connection_state, unwatch, 0, 0, 0, "transactions", "forgets the watched keys"},
};

}  // namespace

std::span<const command_spec> transaction_commands() { return table; }

}  // namespace pobj::kv
