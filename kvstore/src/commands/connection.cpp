// The connection commands: PING ECHO HELLO AUTH SELECT QUIT RESET CLIENT COMMAND, with Redis 7's
// replies and errors.
#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

constexpr std::string_view compatible_version = "7.0.0";  // the Redis version clients may assume

void ping(command_context& c) {
  if (c.argv.size() > 2) return c.reply.error("ERR wrong number of arguments for 'ping' command");
  if (c.argv.size() == 2) return c.reply.bulk(c.argv[1]);
  c.reply.simple("PONG");
}

void echo(command_context& c) { c.reply.bulk(c.argv[1]); }

bool check_password(command_context& c, std::string_view user, std::string_view password) {
  const std::string& required = c.server.settings().requirepass;
  if (required.empty()) {
    if (user == "default") {
      c.client.authenticated = true;
      return true;
    }
    c.reply.error("ERR AUTH <password> called without any password configured for the default user. Are you "
                  "sure your configuration is correct?");
    return false;
  }
  if (user != "default" || password != required) {
    c.reply.error("WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  }
  c.client.authenticated = true;
  return true;
}

void auth(command_context& c) {
  if (c.argv.size() > 3) return syntax_error(c);
  const std::string_view user = c.argv.size() == 3 ? c.argv[1] : std::string_view("default");
  if (c.argv.size() == 2 && c.server.settings().requirepass.empty()) {
    return c.reply.error("ERR AUTH <password> called without any password configured for the default user. Are "
                         "you sure your configuration is correct?");
  }
  if (check_password(c, user, c.argv.back())) c.reply.ok();
}

bool valid_name(std::string_view name) {
  return std::all_of(name.begin(), name.end(), [](char ch) { return ch >= '!' && ch <= '~'; });
}

void hello(command_context& c) {
  int protocol = c.client.protocol;
  std::size_t i = 1;
  if (c.argv.size() > 1) {
    std::int64_t v = 0;
    if (!string_to_int64(c.argv[1], v)) return c.reply.error("ERR Protocol version is not an integer or out of range");
    if (v < 2 || v > 3) return c.reply.error("NOPROTO unsupported protocol version");
    protocol = static_cast<int>(v);
    i = 2;
  }
  std::string_view name;
  bool has_name = false;
  for (; i < c.argv.size(); ++i) {
    const std::string opt = lower(c.argv[i]);
    if (opt == "auth" && i + 2 < c.argv.size()) {
      if (!check_password(c, c.argv[i + 1], c.argv[i + 2])) return;
      i += 2;
    } else if (opt == "setname" && i + 1 < c.argv.size()) {
      name = c.argv[++i];
      has_name = true;
      if (!valid_name(name)) {
        return c.reply.error("ERR Client names cannot contain spaces, newlines or special characters.");
      }
    } else {
      return c.reply.error(fmt::format("ERR Syntax error in HELLO option '{}'", c.argv[i]));
    }
  }
  if (!c.server.settings().requirepass.empty() && !c.client.authenticated) {
    return c.reply.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
                         "<proto> AUTH <user> <pass> option can be used to authenticate the client and select the "
                         "RESP protocol version at the same time");
  }
  if (has_name) c.client.name = name;
  c.client.protocol = protocol;
  reply_writer r(c.reply.buffer(), protocol);  // the reply already speaks the new protocol
  r.map(7);
  r.bulk("server");
  r.bulk("pobj-kv");
  r.bulk("version");
  r.bulk(compatible_version);
  r.bulk("proto");
  r.integer(protocol);
  r.bulk("id");
  r.integer(static_cast<std::int64_t>(c.client.id));
  r.bulk("mode");
  r.bulk("standalone");
  r.bulk("role");
  r.bulk("master");
  r.bulk("modules");
  r.array(0);
}

void select(command_context& c) {
  std::int64_t db = 0;
  if (!parse_integer(c, c.argv[1], db)) return;
  if (db != 0) return c.reply.error("ERR DB index is out of range");
  c.reply.ok();
}

// READONLY / READWRITE (Redis Cluster's): on a follower of a replicated group, READONLY lets this
// connection read the follower's own state, which may be behind the leader's (stale reads, by
// choice); READWRITE goes back to linearizable service only. Elsewhere they change nothing.
void readonly_(command_context& c) {
  c.client.stale_reads = true;
  c.reply.ok();
}

void readwrite(command_context& c) {
  c.client.stale_reads = false;
  c.reply.ok();
}

void quit(command_context& c) {
  c.client.close_after_reply = true;
  c.reply.ok();
}

void reset(command_context& c) {
  c.server.unwatch(c.client);
  c.client.in_multi = false;
  c.client.multi_failed = false;
  c.client.queued.clear();
  c.client.protocol = 2;
  c.client.name.clear();
  c.client.stale_reads = false;
  c.client.authenticated = c.server.settings().requirepass.empty();
  c.reply.simple("RESET");
}

void client(command_context& c) {
  const std::string sub = lower(c.argv[1]);
  if (sub == "id" && c.argv.size() == 2) return c.reply.integer(static_cast<std::int64_t>(c.client.id));
  if (sub == "getname" && c.argv.size() == 2) {
    if (c.client.name.empty()) return c.reply.null();
    return c.reply.bulk(c.client.name);
  }
  if (sub == "setname" && c.argv.size() == 3) {
    if (!valid_name(c.argv[2])) {
      return c.reply.error("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    c.client.name = c.argv[2];
    return c.reply.ok();
  }
  if (sub == "list") return c.reply.verbatim(c.server.server() != nullptr ? c.server.server()->client_list() : "");
  if (sub == "info" && c.argv.size() == 2) {
    return c.reply.verbatim(fmt::format("id={} addr={} name={} db=0 cmd=client|info resp={}\n", c.client.id,
                                        c.client.address, c.client.name, c.client.protocol));
  }
  if (sub == "setinfo" && c.argv.size() == 4) return c.reply.ok();  // library name and version: accepted
  if (sub == "help") {
    c.reply.array(5);
    c.reply.simple("CLIENT <subcommand> [<arg> ...]. Subcommands are:");
    c.reply.simple("ID, GETNAME, SETNAME <name>, LIST, INFO");
    c.reply.simple("SETINFO <attr> <value> (accepted and ignored)");
    c.reply.simple("HELP");
    c.reply.simple("(pobj-kv)");
    return;
  }
  c.reply.error(fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.", c.argv[1]));
}

// FORWARDED protocol [name]: sent by a follower on the connection it opens to the leader for a
// client of its own (docs/replication.md): that client's protocol and name, and a mark that this
// connection is relayed already, so it is never relayed again (two members each thinking the
// other leads would otherwise relay in a circle).
void forwarded(command_context& c) {
  std::int64_t protocol = 0;
  if (c.argv.size() > 3 || !string_to_int64(c.argv[1], protocol) || protocol < 2 || protocol > 3)
    return c.reply.error("ERR FORWARDED protocol [name]: for members of a replicated group only");
  c.client.forwarded = true;
  c.client.protocol = static_cast<int>(protocol);
  if (c.argv.size() == 3) c.client.name = std::string(c.argv[2]);
  c.reply.ok();
}

std::string_view flag_name(std::uint32_t bit) {
  using namespace command_flags;
  switch (bit) {
    case write: return "write";
    case readonly: return "readonly";
    case deny_oom: return "denyoom";
    case admin: return "admin";
    case no_auth: return "no_auth";
    case fast: return "fast";
    case no_multi: return "no_multi";
    case immediate: return "immediate";
    default: return {};
  }
}

void command_info(command_context& c, const command_spec& s) {
  c.reply.array(10);
  c.reply.bulk(s.name);
  c.reply.integer(s.arity);
  std::vector<std::string_view> flags;
  for (std::uint32_t bit = 1; bit <= command_flags::no_multi; bit <<= 1) {
    if ((s.flags & bit) != 0 && !flag_name(bit).empty()) flags.push_back(flag_name(bit));
  }
  c.reply.set(flags.size());
  for (auto f : flags) c.reply.simple(f);
  c.reply.integer(s.first_key);
  c.reply.integer(s.last_key);
  c.reply.integer(s.key_step);
  c.reply.set(1);
  c.reply.simple(fmt::format("@{}", s.group));
  c.reply.set(0);  // tips
  c.reply.set(0);  // key specifications
  c.reply.set(0);  // subcommands
}

void command(command_context& c) {
  if (c.argv.size() == 1) {
    c.reply.array(c.server.commands().size());
    for (const command_spec* s : c.server.commands()) command_info(c, *s);
    return;
  }
  const std::string sub = lower(c.argv[1]);
  if (sub == "count" && c.argv.size() == 2) return c.reply.integer(static_cast<std::int64_t>(c.server.commands().size()));
  if (sub == "info") {
    std::vector<const command_spec*> asked;
    if (c.argv.size() == 2) {
      asked.assign(c.server.commands().begin(), c.server.commands().end());
    } else {
      for (std::size_t i = 2; i < c.argv.size(); ++i) asked.push_back(c.server.find(c.argv[i]));
    }
    c.reply.array(asked.size());
    for (const command_spec* s : asked) {
      if (s == nullptr) {
        c.reply.null_array();
      } else {
        command_info(c, *s);
      }
    }
    return;
  }
  if (sub == "docs") {
    std::vector<const command_spec*> asked;
    if (c.argv.size() == 2) {
      asked.assign(c.server.commands().begin(), c.server.commands().end());
    } else {
      for (std::size_t i = 2; i < c.argv.size(); ++i) {
        if (const command_spec* s = c.server.find(c.argv[i])) asked.push_back(s);
      }
    }
    c.reply.map(asked.size());
    for (const command_spec* s : asked) {
      c.reply.bulk(s->name);
      c.reply.map(3);
      c.reply.bulk("summary");
      c.reply.bulk(s->summary);
      c.reply.bulk("since");
      c.reply.bulk("1.0.0");
      c.reply.bulk("group");
      c.reply.bulk(s->group);
    }
    return;
  }
  c.reply.error(fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try COMMAND HELP.", c.argv[1]));
}

using namespace command_flags;

const std::array table{
    command_spec{"ping", -1, fast, ping, 0, 0, 0, "connection", "PONG, or the message"},
    command_spec{"echo", 2, fast, echo, 0, 0, 0, "connection", "the message"},
    command_spec{"hello", -1, no_auth | fast | connection_state | immediate, hello, 0, 0, 0, "connection",
                 "the protocol version, with authentication and a name"},
    command_spec{"auth", -2, no_auth | fast | connection_state | immediate, auth, 0, 0, 0, "connection", "authenticates"},
    command_spec{"select", 2, fast | connection_state, select, 0, 0, 0, "connection", "selects database 0 (the only one)"},
    command_spec{"readonly", 1, fast | connection_state, readonly_, 0, 0, 0, "cluster",
                 "on a follower of a replicated group: serve this connection's reads from local state (stale)"},
    command_spec{"readwrite", 1, fast | connection_state, readwrite, 0, 0, 0, "cluster",
                 "back to linearizable reads only (READONLY undone)"},
    command_spec{"forwarded", -2, fast | connection_state, forwarded, 0, 0, 0, "cluster",
                 "(between members of a replicated group) this connection relays a client of another member"},
    command_spec{"quit", -1, no_auth | fast | connection_state | immediate, quit, 0, 0, 0, "connection", "closes the connection"},
    command_spec{"reset", 1, no_auth | fast | connection_state | immediate, reset, 0, 0, 0, "connection",
                 "resets the connection's state"},
    command_spec{"client", -2, connection_state | admin, client, 0, 0, 0, "connection", "the connection's id, name, list"},
    command_spec{"command", -1, 0, command, 0, 0, 0, "server", "the command table"},
};

}  // namespace

std::span<const command_spec> connection_commands() { return table; }

}  // namespace pobj::kv
