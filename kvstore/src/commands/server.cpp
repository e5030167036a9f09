// The server commands: INFO CONFIG DBSIZE FLUSHDB FLUSHALL TIME SHUTDOWN, with Redis 7's replies
// and errors.
#include <array>
#include <chrono>

#include <fmt/format.h>
#include <pobj/shared.hpp>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

std::string engine_section(command_context& c, std::string_view section) {
  engine_stats& st = c.server.stats();
  pobj::pool& p = c.db.pool();
  if (section == "memory") {
    const pobj::heap_stats h = p.heap().stats();
    const store::type_counts n = c.db.counts();
    return fmt::format(
        "# Memory\r\npool_path:{}\r\npool_size:{}\r\npool_max_size:{}\r\nused_memory:{}\r\npool_bytes_used:{}\r\n"
        "pool_bytes_free:{}\r\npool_chunks_free:{}\r\npool_chunks_total:{}\r\npool_extents:{}\r\n"
        "keys_string:{}\r\nkeys_hash:{}\r\nkeys_list:{}\r\nkeys_set:{}\r\nkeys_zset:{}\r\nkeys_pobj_object:{}\r\n\r\n",
        p.path(), p.size(), p.max_size(), h.bytes_used, h.bytes_used, h.bytes_free, h.chunks_free, h.chunks_total,
        h.extents, n.strings, n.hashes, n.lists, n.sets, n.zsets, n.objects);
  }
  if (section == "stats") {
    return fmt::format("# Stats\r\ntotal_commands_processed:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n"
                       "expired_keys:{}\r\nrejected_oom:{}\r\n\r\n",
                       st.commands, st.keyspace_hits, st.keyspace_misses, st.expired_keys, st.rejected_oom);
  }
  if (section == "keyspace") {
    const std::uint64_t n = c.db.size();
    if (n == 0) return "# Keyspace\r\n\r\n";
    return fmt::format("# Keyspace\r\ndb0:keys={},expires={},avg_ttl=0\r\n\r\n", n, c.db.volatile_keys());
  }
  if (section == "objects") {  // users' shared classes: the libraries', and their methods' calls
    // One line per method, numbered (class names hold colons, which INFO's keys cannot).
    std::string out = "# Objects\r\n";
    std::size_t i = 0;
    for (const pobj::shared_class* k : pobj::shared_classes()) {
      for (const pobj::shared_method& m : k->methods) {
        const auto it = st.methods.find(&m);
        const engine_stats::method_counts n = it == st.methods.end() ? engine_stats::method_counts{} : it->second;
        out += fmt::format("method_{}:class={},method={},calls={},errors={},changes={}\r\n", i++, k->info->name, m.name,
                           n.calls, n.errors, m.changes ? 1 : 0);
      }
    }
    return out + "\r\n";
  }
  if (section == "commandstats") {
    std::string out = "# Commandstats\r\n";
    for (const auto& [spec, calls] : st.calls) out += fmt::format("cmdstat_{}:calls={}\r\n", spec->name, calls);
    return out + "\r\n";
  }
  return {};
}

void info(command_context& c) {
  static constexpr std::array defaults{"server", "clients", "memory", "persistence", "stats", "replication", "keyspace"};
  std::vector<std::string> sections;
  for (std::size_t i = 1; i < c.argv.size(); ++i) sections.push_back(lower(c.argv[i]));
  if (sections.empty() || sections[0] == "default" || sections[0] == "all" || sections[0] == "everything") {
    const bool all = !sections.empty() && sections[0] != "default";
    sections.assign(defaults.begin(), defaults.end());
    if (all) {
      sections.emplace_back("objects");
      sections.emplace_back("commandstats");
    }
  }
  std::string out;
  for (const auto& s : sections) {
    std::string text = engine_section(c, s);
    if (text.empty() && c.server.server() != nullptr) text = c.server.server()->info_section(s);
    out += text;
  }
  c.reply.verbatim(out);
}

void config_(command_context& c) {
  const std::string sub = lower(c.argv[1]);
  config& cfg = c.server.settings();
  if (sub == "get" && c.argv.size() >= 3) {
    std::vector<std::pair<std::string, std::string>> found;
    for (const auto& name : setting_names()) {
      for (std::size_t i = 2; i < c.argv.size(); ++i) {
        if (glob_match(lower(c.argv[i]), name)) {
          found.emplace_back(name, *setting_value(cfg, name));
          break;
        }
      }
    }
    c.reply.map(found.size());
    for (const auto& [k, v] : found) {
      c.reply.bulk(k);
      c.reply.bulk(v);
    }
    return;
  }
  if (sub == "set" && c.argv.size() >= 4 && c.argv.size() % 2 == 0) {
    // Settings that take effect while running; the others need a restart.
    static constexpr std::array live{"requirepass", "hz", "maxclients", "log-level", "loglevel", "protected-mode"};
    config changed = cfg;
    for (std::size_t i = 2; i < c.argv.size(); i += 2) {
      const std::string name = lower(c.argv[i]);
      if (std::find(live.begin(), live.end(), name) == live.end()) {
        const bool known = setting_value(cfg, name).has_value();
        return c.reply.error(fmt::format("ERR {} - argument '{}'", known ? "CONFIG SET failed (possibly related to "
                                                                           "argument) - can't set immutable config"
                                                                         : "Unknown option or number of arguments for "
                                                                           "CONFIG SET",
                                         c.argv[i]));
      }
      if (auto err = apply_setting(changed, name, c.argv[i + 1])) {
        return c.reply.error(fmt::format("ERR CONFIG SET failed (possibly related to argument '{}') - {}", c.argv[i], *err));
      }
    }
    cfg = changed;
    return c.reply.ok();
  }
  if (sub == "resetstat" && c.argv.size() == 2) {
    c.server.stats() = engine_stats{};
    return c.reply.ok();
  }
  c.reply.error(fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.", c.argv[1]));
}

void dbsize(command_context& c) { c.reply.integer(static_cast<std::int64_t>(c.db.size())); }

void flushdb(command_context& c) {
  if (c.argv.size() > 2 || (c.argv.size() == 2 && !equals_ignore_case(c.argv[1], "async") &&
                            !equals_ignore_case(c.argv[1], "sync"))) {
    return syntax_error(c);
  }
  c.db.clear(c.tx);
  c.server.touch_all();
  c.reply.ok();
}

void time(command_context& c) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  c.reply.array(2);
  c.reply.bulk(std::to_string(us / 1000000));
  c.reply.bulk(std::to_string(us % 1000000));
}

void shutdown(command_context& c) {
  for (std::size_t i = 1; i < c.argv.size(); ++i) {
    const std::string opt = lower(c.argv[i]);
    if (opt == "abort") return c.reply.error("ERR No shutdown in progress.");
    if (opt != "nosave" && opt != "save" && opt != "now" && opt != "force") return syntax_error(c);
  }
  // Nothing to save: every acknowledged write is already in the pool. The server stops once
  // this batch has committed; like Redis, it sends no reply.
  if (c.server.server() != nullptr) c.server.server()->request_shutdown();
  c.client.close_after_reply = true;
}

// ROLE as Redis's: a leader is a master with its followers (offsets are Raft indexes), a
// follower a slave of the leader; a single server a master with none.
void role(command_context& c) {
  const replication_view v = c.server.server() != nullptr ? c.server.server()->replication() : replication_view{};
  auto split = [](const std::string& hp) {
    const std::size_t colon = hp.rfind(':');
    if (colon == std::string::npos) return std::pair<std::string, std::string>{hp, "0"};
    std::string host = hp.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    return std::pair<std::string, std::string>{host, hp.substr(colon + 1)};
  };
  if (v.leading) {
    c.reply.array(3);
    c.reply.bulk("master");
    c.reply.integer(static_cast<std::int64_t>(v.commit));
    c.reply.array(v.followers.size());
    for (const auto& f : v.followers) {
      const auto [host, port] = split(f.client);
      c.reply.array(3);
      c.reply.bulk(host);
      c.reply.bulk(port);
      c.reply.bulk(std::to_string(f.match));
    }
    return;
  }
  const auto [host, port] = split(v.leader_client);
  std::int64_t p = 0;
  string_to_int64(port, p);
  c.reply.array(5);
  c.reply.bulk("slave");
  c.reply.bulk(host);
  c.reply.integer(p);
  c.reply.bulk(v.leader_client.empty() ? "connecting" : "connected");
  c.reply.integer(static_cast<std::int64_t>(v.applied));
}

// WAIT numreplicas timeout. A replicated group acknowledges a write only once a majority holds it,
// so WAIT has nothing to wait for: it answers at once how many followers hold everything this
// member has applied (at least the majority's share, as the leader last learned), never fewer
// than it guarantees. A single server has no replicas: 0, as Redis without replicas.
void wait(command_context& c) {
  std::int64_t wanted = 0, timeout = 0;
  if (!string_to_int64(c.argv[1], wanted) || !string_to_int64(c.argv[2], timeout))
    return c.reply.error("ERR value is not an integer or out of range");
  if (timeout < 0) return c.reply.error("ERR timeout is negative");
  const replication_view v = c.server.server() != nullptr ? c.server.server()->replication() : replication_view{};
  if (!v.replicated) return c.reply.integer(0);
  if (!v.leading) return c.reply.error("ERR WAIT cannot be used with replica instances. Please also note that writes to replicas are just local and are not propagated.");
  std::int64_t holding = 0;
  for (const auto& f : v.followers)
    if (f.match >= v.applied) ++holding;
  c.reply.integer(std::max<std::int64_t>(holding, static_cast<std::int64_t>(v.members / 2)));
}

// RAFT MEMBERS | ADD id host:port | REMOVE id | TRANSFER id: the group's members and changes to
// them (docs/replication.md, "Changing the members"). MEMBERS answers on any member, as it last
// applied the configuration: per member [id, raft address, client address, "voter"|"learner",
// whether it leads]. The changes run on the leader and answer once committed.
void raft(command_context& c) {
  const std::string sub = lower(c.argv[1]);
  server_view* s = c.server.server();
  if (sub == "members" && c.argv.size() == 2) {
    const replication_view v = s != nullptr ? s->replication() : replication_view{};
    if (!v.replicated) return c.reply.error("ERR this server is not a member of a replicated group");
    c.reply.array(v.group.size());
    for (const auto& m : v.group) {
      c.reply.array(5);
      c.reply.integer(static_cast<std::int64_t>(m.id));
      c.reply.bulk(m.raft);
      c.reply.bulk(m.client);
      c.reply.bulk(m.voter ? "voter" : "learner");
      c.reply.integer(m.id == v.leader_id ? 1 : 0);
    }
    return;
  }
  const bool add = sub == "add", remove = sub == "remove", transfer = sub == "transfer";
  if (!((add && c.argv.size() == 4) || ((remove || transfer) && c.argv.size() == 3)))
    return c.reply.error(fmt::format(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try RAFT MEMBERS, RAFT ADD id host:port, "
        "RAFT REMOVE id, RAFT TRANSFER id",
        std::string(c.argv[1])));
  std::int64_t id = 0;
  if (!string_to_int64(c.argv[2], id) || id <= 0) return c.reply.error("ERR a member's id is a positive integer");
  if (s == nullptr) return c.reply.error("ERR this server is not a member of a replicated group");
  const std::string err = transfer ? s->transfer_leadership(static_cast<std::uint64_t>(id))
                                   : s->change_member(add, static_cast<std::uint64_t>(id), add ? c.argv[3] : "");
  if (!err.empty()) return c.reply.error(err);
  c.reply.ok();
}

using namespace command_flags;

const std::array table{
    command_spec{"info", -1, 0, info, 0, 0, 0, "server", "server, clients, memory, persistence, stats, keyspace"},
    command_spec{"config", -2, admin | connection_state, config_, 0, 0, 0, "server", "reads or changes settings"},
    command_spec{"dbsize", 1, readonly | fast, dbsize, 0, 0, 0, "server", "the number of keys"},
    command_spec{"flushdb", -1, write | own_block, flushdb, 0, 0, 0, "server", "removes every key"},
    command_spec{"flushall", -1, write | own_block, flushdb, 0, 0, 0, "server", "removes every key"},
    command_spec{"time", 1, fast, time, 0, 0, 0, "server", "the server's time"},
    command_spec{"role", 1, fast, role, 0, 0, 0, "server", "master or slave, as a member of a replicated group"},
    command_spec{"wait", 3, 0, wait, 0, 0, 0, "generic",
                 "how many followers hold this member's writes (every acknowledged write is on a majority already)"},
    command_spec{"raft", -2, admin | no_multi | own_block, raft, 0, 0, 0, "server",
                 "the replicated group's members: MEMBERS, ADD, REMOVE, TRANSFER"},
    command_spec{"shutdown", -1, admin | own_block | no_multi, shutdown, 0, 0, 0, "server", "stops the server"},
};

}  // namespace

std::span<const command_spec> server_commands() { return table; }

}  // namespace pobj::kv
