// pobj-kv's settings (config.hpp).
#include "config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <pobj/error.hpp>

namespace pobj::kv {

namespace {

std::optional<std::uint64_t> parse_size(std::string_view s) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  std::string unit(p, s.data() + s.size());
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::uint64_t m = 1;
  if (unit.empty() || unit == "b") {
    m = 1;
  } else if (unit == "k" || unit == "kb") {
    m = 1ull << 10;
  } else if (unit == "m" || unit == "mb") {
    m = 1ull << 20;
  } else if (unit == "g" || unit == "gb") {
    m = 1ull << 30;
  } else {
    return std::nullopt;
  }
  if (v > UINT64_MAX / m) return std::nullopt;
  return v * m;
}

std::optional<int> parse_int(std::string_view s, int lo, int hi) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

std::string size_text(std::uint64_t v) { return std::to_string(v); }

}  // namespace

std::optional<std::string> apply_setting(config& cfg, std::string_view name, std::string_view value) {
  auto bad = [&](std::string_view what) { return fmt::format("{} '{}': {}", name, value, what); };
  if (name == "bind") {
    // One or more numeric IPv4 or IPv6 addresses, as Redis's `bind 127.0.0.1 ::1`; checked here,
    // before any file is made.
    std::vector<std::string> addresses;
    std::istringstream words{std::string(value)};
    for (std::string a; words >> a;) {
      in6_addr scratch{};
      if (inet_pton(AF_INET, a.c_str(), &scratch) != 1 && inet_pton(AF_INET6, a.c_str(), &scratch) != 1) {
        return bad(fmt::format("'{}' is not a numeric IPv4 or IPv6 address", a));
      }
      if (std::find(addresses.begin(), addresses.end(), a) == addresses.end()) addresses.push_back(a);
    }
    if (addresses.empty()) return bad("an address is needed");
    cfg.bind = value;
    cfg.bind_addresses = std::move(addresses);
  } else if (name == "protected-mode") {
    std::string v(value);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (v != "yes" && v != "no") return bad("yes or no");
    cfg.protected_mode = v == "yes";
  } else if (name == "port") {
    auto v = parse_int(value, 0, 65535);
    if (!v) return bad("a port is 0 to 65535");
    cfg.port = *v;
  } else if (name == "pool") {
    if (value.empty()) return bad("a path is needed");
    cfg.pool_path = value;
  } else if (name == "pool-size" || name == "pool-max-size") {
    auto v = parse_size(value);
    if (!v || *v == 0) return bad("a size is a number with an optional k, m or g");
    (name == "pool-size" ? cfg.pool_size : cfg.pool_max_size) = *v;
  } else if (name == "persist-mode") {
    try {
      cfg.mode = parse_persist_mode(value == "auto" ? std::string_view("auto") : value);
    } catch (const pobj::error&) {
      return bad("modes are auto, byte, cache_line, page");
    }
    if (cfg.mode == persist_mode::sim) return bad("sim is for tests only");
  } else if (name == "threads") {
    auto v = parse_int(value, 1, 64);
    if (!v) return bad("1 to 64");
    cfg.threads = *v;
  } else if (name == "maxclients") {
    auto v = parse_int(value, 1, 1000000);
    if (!v) return bad("1 to 1000000");
    cfg.maxclients = *v;
  } else if (name == "requirepass") {
    cfg.requirepass = value;
  } else if (name == "hz") {
    auto v = parse_int(value, 1, 500);
    if (!v) return bad("1 to 500");
    cfg.hz = *v;
  } else if (name == "replica-id") {
    auto v = parse_int(value, 1, 1 << 30);
    if (!v) return bad("a member id is 1 to 1073741824");
    cfg.replica_id = static_cast<std::uint64_t>(*v);
  } else if (name == "replicas") {
    if (value.empty()) return bad("ID=HOST:PORT for every member, comma-separated");
    cfg.replicas = value;
  } else if (name == "replica-bootstrap") {
    if (value != "yes" && value != "no") return bad("yes or no");
    cfg.replica_bootstrap = value == "yes";
  } else if (name == "replica-join") {
    if (value != "yes" && value != "no") return bad("yes or no");
    cfg.replica_join = value == "yes";
  } else if (name == "raft-log-entries") {
    auto v = parse_int(value, 10, 100000000);
    if (!v) return bad("10 to 100000000 entries");
    cfg.raft_log_entries = static_cast<std::uint64_t>(*v);
  } else if (name == "replica-announce-ip") {
    cfg.replica_announce_ip = value;
  } else if (name == "replica-transport") {
    if (value.empty() || value.find("sockets") != std::string::npos)
      return bad("auto, or a libfabric provider such as tcp;ofi_rxm, verbs;ofi_rxm or efa (never sockets)");
    cfg.replica_transport = value;
  } else if (name == "replica-forward") {
    if (value != "yes" && value != "no") return bad("yes or no");
    cfg.replica_forward = value == "yes";
  } else if (name == "replica-group") {
    if (value.empty()) return bad("a group name is needed");
    cfg.replica_group = value;
  } else if (name == "reply-ttl") {
    auto v = parse_int(value, 1, 365 * 86400);
    if (!v) return bad("1 to 31536000 seconds");
    cfg.reply_ttl_s = *v;
  } else if (name == "objects-library") {
    if (value.empty()) return bad("a path to a shared library is needed");
    cfg.objects_libraries.emplace_back(value);
  } else if (name == "log-level" || name == "loglevel") {
    if (value != "debug" && value != "verbose" && value != "notice" && value != "warning") {
      return bad("debug, verbose, notice or warning");
    }
    cfg.log_level = value;
  } else {
    return fmt::format("unknown setting '{}'", name);
  }
  return std::nullopt;
}

std::optional<std::string> load_config_file(config& cfg, const std::string& path) {
  std::ifstream in(path);
  if (!in) return fmt::format("cannot read config file '{}'", path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto end = line.find_last_not_of(" \t\r");
    const std::string_view body = std::string_view(line).substr(first, end - first + 1);
    const auto space = body.find_first_of(" \t");
    const std::string_view name = body.substr(0, space);
    std::string_view value = space == std::string_view::npos ? std::string_view() : body.substr(space + 1);
    value.remove_prefix(std::min(value.find_first_not_of(" \t"), value.size()));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (auto err = apply_setting(cfg, name, value)) return fmt::format("{}:{}: {}", path, n, *err);
  }
  return std::nullopt;
}

std::optional<std::string> parse_arguments(config& cfg, const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "-h" || a == "--help") {
      cfg.show_help = true;
      continue;
    }
    if (a == "-v" || a == "--version") {
      cfg.show_version = true;
      continue;
    }
    if (!a.starts_with("--")) return fmt::format("unexpected argument '{}' (see --help)", a);
    a.remove_prefix(2);
    std::string_view value;
    if (const auto eq = a.find('='); eq != std::string_view::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else {
      if (i + 1 >= args.size()) return fmt::format("--{} needs a value", a);
      value = args[++i];
    }
    if (a == "config") {
      if (auto err = load_config_file(cfg, std::string(value))) return err;
    } else if (a == "check") {
      cfg.check_pool = value;
    } else if (auto err = apply_setting(cfg, a, value)) {
      return err;
    }
  }
  return std::nullopt;
}

std::optional<std::string> setting_value(const config& cfg, std::string_view name) {
  if (name == "bind") return cfg.bind;
  if (name == "protected-mode") return std::string(cfg.protected_mode ? "yes" : "no");
  if (name == "port") return std::to_string(cfg.port);
  if (name == "pool") return cfg.pool_path;
  if (name == "pool-size") return size_text(cfg.pool_size);
  if (name == "pool-max-size") return size_text(cfg.pool_max_size);
  if (name == "persist-mode") return std::string(to_string(cfg.mode));
  if (name == "threads") return std::to_string(cfg.threads);
  if (name == "maxclients") return std::to_string(cfg.maxclients);
  if (name == "requirepass") return cfg.requirepass;
  if (name == "hz") return std::to_string(cfg.hz);
  if (name == "reply-ttl") return std::to_string(cfg.reply_ttl_s);
  if (name == "replica-id") return std::to_string(cfg.replica_id);
  if (name == "replicas") return cfg.replicas;
  if (name == "replica-group") return cfg.replica_group;
  if (name == "raft-log-entries") return std::to_string(cfg.raft_log_entries);
  if (name == "replica-bootstrap") return std::string(cfg.replica_bootstrap ? "yes" : "no");
  if (name == "replica-join") return std::string(cfg.replica_join ? "yes" : "no");
  if (name == "replica-announce-ip") return cfg.replica_announce_ip;
  if (name == "replica-forward") return std::string(cfg.replica_forward ? "yes" : "no");
  if (name == "replica-transport") return cfg.replica_transport;
  if (name == "log-level" || name == "loglevel") return cfg.log_level;
  if (name == "objects-library") {
    std::string all;
    for (const auto& l : cfg.objects_libraries) all += (all.empty() ? "" : " ") + l;
    return all;
  }
  // What clients and tools ask of Redis, answered as Redis would for this server.
  if (name == "save") return std::string();
  if (name == "appendonly") return std::string("no");
  if (name == "databases") return std::string("1");
  return std::nullopt;
}

std::vector<std::string> setting_names() {
  return {"bind", "protected-mode", "port", "pool", "pool-size", "pool-max-size", "persist-mode", "threads", "maxclients",
          "requirepass", "hz", "reply-ttl", "objects-library", "log-level", "replica-id", "replicas", "replica-group", "replica-bootstrap", "replica-join", "raft-log-entries",
          "replica-announce-ip", "replica-forward", "replica-transport", "save", "appendonly", "databases"};
}

std::string usage() {
  return R"(pobj-kv: a Redis-compatible server whose keyspace lives in a pobj pool.

usage: pobj-kv [--config FILE] [--NAME VALUE ...]
       pobj-kv --check POOL        verify a pool offline and exit (0 healthy, 1 problems, 2 unusable)

settings (flags, or "NAME VALUE" lines in the config file):
  bind ADDRESS...       listen addresses, numeric IPv4 or IPv6, space-separated (default 127.0.0.1)
  protected-mode yes|no without requirepass, refuse clients not on loopback (default yes)
  port N                TCP port (default 7379)
  pool PATH             the pool file (default ./pobj-kv.pool; made if missing)
  pool-size SIZE        initial size of a new pool (default 256m)
  pool-max-size SIZE    the pool grows up to this, then writes get -OOM (default 64g)
  persist-mode MODE     auto, byte, cache_line, page (default auto: what the file system gives)
  threads N             accepted for compatibility; commands run on one thread
  maxclients N          connections at once (default 10000)
  requirepass PASSWORD  clients must AUTH first
  hz N                  active expiry cycles per second (default 10)
  reply-ttl SECONDS     how long ONCE keeps a request's reply for its retries (default 3600)
  objects-library PATH  a shared library of persistent classes with POBJ_SHARED methods, loaded
                        before the pool opens (OBJ.NEW, OBJ.CALL); repeat for several
  log-level LEVEL       debug, verbose, notice, warning (default notice)

replication (docs/replication.md; every member is given the same replicas):
  replica-id N          this server's id in its group (1, 2, 3, ...)
  replicas LIST         every member's raft address: 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT
  replica-group NAME    the group's name (default pobj-kv): members of other groups are refused
  replica-bootstrap yes|no
                        yes: a new pool founds the group (give it to each founder's first start
                        only; without it a pool with no Raft state is refused) (default no)
  replica-join yes|no   yes: a new pool joins a running group as a new member, once the group
                        added it (RAFT ADD on the leader; docs/replication.md) (default no)
  raft-log-entries N    the log is compacted to about N entries once it holds 2N (default 10000)
  replica-forward yes|no
                        yes: a follower relays its clients' commands to the leader and its
                        replies back; no: it answers -READONLY, as a Redis replica (default yes)
  replica-announce-ip HOST
                        where clients reach this member when it leads (default: the first bind
                        address, or this member's raft host if that is a wildcard)
  replica-transport auto|PROVIDER
                        the libfabric provider between members: auto tries verbs;ofi_rxm, then
                        efa, then tcp;ofi_rxm (every member must end on the same one; INFO's
                        raft_transport says which) (default auto)
)";
}

}  // namespace pobj::kv
