// kvstore/config: pobj-kv's settings, from flags and a config file.
//
// Flags are `--name value` (or `--name=value`); a config file (`--config FILE`) has one
// `name value` per line, as redis.conf, with # comments; flags given after --config override the
// file. Names: bind (one or more addresses), protected-mode, port, pool, pool-size, pool-max-size, persist-mode, threads, maxclients,
// requirepass, hz, reply-ttl, objects-library (repeatable), log-level, replica-id, replicas,
// replica-group, replica-bootstrap, raft-log-entries. Sizes take k/m/g/kb/mb/gb suffixes.
//
// Thread safety: a config is a value, parsed once at startup; copies may be read from any thread.
// Crash consistency: not applicable (nothing persistent; CONFIG SET changes only the running
// server).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pobj/media.hpp>

namespace pobj::kv {

struct config {
  std::string bind = "127.0.0.1";           // loopback only unless told otherwise; as given
  std::vector<std::string> bind_addresses{"127.0.0.1"};  // bind's numeric addresses, checked when set
  bool protected_mode = true;               // without requirepass, only loopback clients (as Redis)
  int port = 7379;                          // not Redis's 6379: both can run on one machine
  std::string pool_path = "pobj-kv.pool";   // in the working directory
  std::uint64_t pool_size = 256ull << 20;   // initial size of a new pool
  std::uint64_t pool_max_size = 64ull << 30;
  persist_mode mode = persist_mode::auto_detect;
  int threads = 1;                          // command execution is one thread (deterministic)
  int maxclients = 10000;
  std::string requirepass;                  // empty: no AUTH needed
  int hz = 10;                              // active expiry cycles per second
  std::int64_t reply_ttl_s = 3600;          // how long ONCE keeps a request's reply
  std::vector<std::string> objects_libraries;  // loaded at start: users' shared classes (repeatable)
  std::string log_level = "notice";         // debug, verbose, notice, warning
  // A member of a replicated group (docs/replication.md): its id, and every member's raft address
  // ("1=host:port,2=host:port,3=host:port"); 0 and empty: a single server.
  std::uint64_t replica_id = 0;
  std::string replicas;
  std::string replica_group = "pobj-kv";
  bool replica_bootstrap = false;           // a new pool founds the group (once, on each founder)
  bool replica_join = false;                // a new pool joins a running group (RAFT ADD)
  std::uint64_t raft_log_entries = 10000;  // the log is compacted to about this many entries
  // Where clients reach this member when it leads (announced to the others, which forward to it):
  // the first bind address, or its raft host where that is a wildcard; this overrides it.
  std::string replica_announce_ip;
  bool replica_forward = true;              // a follower relays its clients' commands to the leader
  std::string replica_transport = "auto";   // libfabric provider: auto (verbs, efa, then tcp) or a name
  std::string check_pool;                   // --check POOL: verify offline and exit
  bool show_help = false;
  bool show_version = false;
};

// Applies `name value` to cfg; returns an error message, or nothing.
std::optional<std::string> apply_setting(config& cfg, std::string_view name, std::string_view value);
// Parses argv (argv[0] skipped); returns an error message, or nothing.
std::optional<std::string> parse_arguments(config& cfg, const std::vector<std::string>& args);
// Reads a config file; returns an error message ("FILE:LINE: ..."), or nothing.
std::optional<std::string> load_config_file(config& cfg, const std::string& path);
// CONFIG GET's view: the value of a setting, if the name is known.
std::optional<std::string> setting_value(const config& cfg, std::string_view name);
std::vector<std::string> setting_names();
std::string usage();

}  // namespace pobj::kv
