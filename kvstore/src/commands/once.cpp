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

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

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
  }
  if (const auto stored = c.db.stored_reply(id)) {
    c.reply.buffer().append(*stored);
    return;
  }
  std::string& out = c.reply.buffer();
  const std::size_t from = out.size();
  c.client.request_id = std::string(id);
  try {
    c.server.execute(c.client, inner, c.reply, c.tx, c.now_ms);
  } catch (...) {
    c.client.request_id.clear();
    throw;
  }
  c.client.request_id.clear();
  session::blocking& b = c.client.blocked;
  if (b.active) {  // no reply yet: the call runs again later, as this ONCE
    b.retry.insert(b.retry.begin(), {"ONCE", std::string(id)});
    return;
  }
  c.db.store_reply(c.tx, id, std::string_view(out).substr(from));
}

using namespace command_flags;

const std::array table{
    command_spec{"once", -3, write | deny_oom, once, 0, 0, 0, "object",
                 "runs a command at most once per request id, replying the first reply to retries"},
};

}  // namespace

std::span<const command_spec> once_commands() { return table; }

}  // namespace pobj::kv
