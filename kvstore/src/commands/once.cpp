// Exactly-once retries (docs/kvstore.md, "Exactly-once"): ONCE request-id command [args...] runs
// the command, and stores its reply under the request id in the same failure-atomic block as the
// command's effect; a retry with the same id gets the stored reply and changes nothing. A client
// that lost its connection (or its server, to a crash) mid-call retries with the same id and
// cannot apply the command twice, nor lose it: either the block committed, reply and effect
// together, or neither did. Stored replies are kept for `reply-ttl` seconds at least and twice that
// at most (store.hpp: two generations, rotated by active expiry), so the store does not grow
// without bound and storing a reply costs one map insert. A blocking call (BARRIER.AWAIT, ...)
// stores its reply when it finally replies; until then a retry joins the same wait (the objects
// know their waiters by id).
#include <array>
#include <algorithm>
#include <cctype>
#include <cstring>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

// FNV-1a over the command's name (any case) and first argument (its key, mostly): what a retry
// must repeat. Not the rest: a parked call runs again with options of its own (DEADLINE, ID).
// OBJ.CALL's whole command: a request id reused for another method or arguments on the same
// object is refused rather than answered with the first call's reply.
std::uint64_t command_hash(std::span<const std::string_view> argv) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&](unsigned char ch) { h = (h ^ ch) * 0x100000001b3ULL; };
  const bool whole = !argv.empty() && equals_ignore_case(argv[0], "obj.call");
  for (std::size_t i = 0; i < (whole ? argv.size() : std::min<std::size_t>(argv.size(), 2)); ++i) {
    for (int b = 0; b < 8; ++b) mix(static_cast<unsigned char>(argv[i].size() >> (8 * b)));
    for (unsigned char ch : argv[i]) mix(i == 0 ? static_cast<unsigned char>(std::tolower(ch)) : ch);
  }
  return h;
}

// A stored reply: [u8 RESP version it was written in][u64 command_hash][the reply's bytes].
constexpr std::size_t stored_header = 9;

void once(command_context& c) {
  const std::string_view id = c.argv[1];
  if (id.empty() || id.size() > 512 || id[0] == '\0') {
    return c.reply.error("ERR request ids are 1 to 512 bytes, not starting with a NUL byte");
  }
  const std::span<const std::string_view> inner = c.argv.subspan(2);
  const command_spec* spec = c.server.find(inner[0]);
  if (spec != nullptr) {
    using namespace command_flags;
    const std::string name(spec->name);
    if ((spec->flags & (connection_state | own_block | immediate)) != 0 || name == "once" || name == "blpop" ||
        name == "brpop") {
      return c.reply.error(fmt::format("ERR ONCE cannot run '{}'", spec->name));
    }
    // Inside EXEC a blocking call cannot wait and would store the nil it replies instead.
    if (c.client.in_exec && (spec->flags & no_multi) != 0) {
      return c.reply.error(fmt::format("ERR ONCE cannot run '{}' inside MULTI", spec->name));
    }
  }
  const std::uint64_t hash = command_hash(inner);
  if (const auto stored = c.db.stored_reply(id); stored && stored->size() >= stored_header) {
    std::uint64_t was = 0;
    std::memcpy(&was, stored->data() + 1, 8);
    if (was != hash) return c.reply.error("ERR this request id was used for another command");
    if (static_cast<int>((*stored)[0]) != c.client.protocol) {
      return c.reply.error(fmt::format("ERR the reply to this request was sent in RESP{}; retry with HELLO {}",
                                       static_cast<int>((*stored)[0]), static_cast<int>((*stored)[0])));
    }
    c.reply.buffer().append(std::string_view(*stored).substr(stored_header));
    return;
  }
  std::string& out = c.reply.buffer();
  const std::size_t from = out.size();
  c.client.request_id = std::string(id);
  c.client.read_only_call = false;
  try {
    c.server.execute(c.client, inner, c.reply, c.tx, c.now_ms);
  } catch (...) {
    c.client.request_id.clear();
    c.client.read_only_call = false;
    throw;
  }
  c.client.request_id.clear();
  // A call that changed nothing (a const method of a user's object) may simply run again: its
  // reply is not kept.
  if (std::exchange(c.client.read_only_call, false)) return;
  session::blocking& b = c.client.blocked;
  if (b.active) {  // no reply yet: the call runs again later, as this ONCE
    b.retry.insert(b.retry.begin(), {"ONCE", std::string(id)});
    return;
  }
  std::string stored(stored_header, '\0');
  stored[0] = static_cast<char>(c.client.protocol);
  std::memcpy(stored.data() + 1, &hash, 8);
  stored.append(std::string_view(out).substr(from));
  c.db.store_reply(c.tx, id, stored);
}

using namespace command_flags;

const std::array table{
    command_spec{"once", -3, write | deny_oom, once, 0, 0, 0, "object",
                 "runs a command at most once per request id, replying the first reply to retries"},
};

}  // namespace

std::span<const command_spec> once_commands() { return table; }

}  // namespace pobj::kv
