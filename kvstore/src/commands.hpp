// kvstore/commands: the command table, as data, and what a command handler is given.
//
// Each family of commands lives in a file of its own under commands/ (connection.cpp, server.cpp,
// strings.cpp, keys.cpp, hashes.cpp, sets.cpp, lists.cpp, zsets.cpp,
// transactions.cpp, objects.cpp with semaphores.cpp, once.cpp, classes.cpp; args.cpp holds the
// argument helpers they share), with handlers named after their command, and lists
// its commands in a table: name, arity (Redis's: n means exactly n arguments with the name, -n
// at least n), flags, key positions, group and summary. The engine assembles the tables and
// checks arity, authentication and MULTI state before a handler runs.
//
// Thread safety: the tables are immutable after startup and may be read from any thread; a
// handler runs on the executor thread only, one at a time.
// Crash consistency: a handler's every change to the store joins the caller's failure-atomic
// block (the batch): all of it or none of it survives a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "resp.hpp"
#include "store.hpp"

namespace pobj::kv {

class engine;
struct session;

namespace command_flags {
inline constexpr std::uint32_t write = 1;          // may change the store
inline constexpr std::uint32_t readonly = 2;       // reads the store only
inline constexpr std::uint32_t deny_oom = 4;       // may allocate: refused when the pool is full
inline constexpr std::uint32_t admin = 8;
inline constexpr std::uint32_t no_auth = 16;       // allowed before AUTH
inline constexpr std::uint32_t fast = 32;
inline constexpr std::uint32_t connection_state = 64;  // changes the connection's state (never batched with others)
inline constexpr std::uint32_t immediate = 128;    // runs at once inside MULTI, not queued (EXEC, DISCARD, ...)
inline constexpr std::uint32_t own_block = 256;    // runs in a block of its own (FLUSHALL, EXEC)
inline constexpr std::uint32_t no_multi = 512;     // refused inside MULTI (SHUTDOWN), as Redis's no-multi
}  // namespace command_flags

// What a handler is given. `tx` is the open failure-atomic block every store change joins;
// `now_ms` the batch's time (expiry is decided against it, never against the clock).
struct command_context {
  engine& server;
  store& db;
  session& client;
  std::span<const std::string_view> argv;
  reply_writer& reply;
  transaction& tx;
  std::int64_t now_ms;
};

using command_handler = void (*)(command_context&);

struct command_spec {
  std::string_view name;  // lower case
  int arity;
  std::uint32_t flags;
  command_handler handler;
  int first_key, last_key, key_step;  // as Redis's COMMAND reply
  std::string_view group;
  std::string_view summary;
};

// The families' tables.
std::span<const command_spec> connection_commands();
std::span<const command_spec> server_commands();
std::span<const command_spec> string_commands();
std::span<const command_spec> key_commands();
std::span<const command_spec> hash_commands();
std::span<const command_spec> set_commands();
std::span<const command_spec> list_commands();
std::span<const command_spec> zset_commands();
std::span<const command_spec> transaction_commands();
std::span<const command_spec> object_commands();
std::span<const command_spec> once_commands();
std::span<const command_spec> class_commands();

// Argument helpers shared by the families; each returns false after replying with Redis's error.
bool parse_integer(command_context& c, std::string_view s, std::int64_t& out);
bool parse_long_double(command_context& c, std::string_view s, long double& out);
// A stored number as INCRBYFLOAT reads it (the whole string, no spaces, not NaN).
bool stored_long_double(const std::string& s, long double& out);
std::string lower(std::string_view s);
bool equals_ignore_case(std::string_view a, std::string_view b);
// Replies with Redis's wrong-type error.
void wrong_type(command_context& c);
void syntax_error(command_context& c);

// The entry at `key` if it holds `type` (nullopt if absent); false, after replying WRONGTYPE, if
// it holds another type. Counts a keyspace hit or miss.
bool typed_entry(command_context& c, std::string_view key, value_type type, std::optional<entry>& out);

// The value of the key at `key` if it holds `type`, opened by `open(key)` into `out` (nullopt if
// the key is absent); false, after replying WRONGTYPE, if it holds another type. The families'
// lookups (hash_at, set_at, list_at, zset_at) are this with their own `open`.
template <class Value, class Open>
bool value_at(command_context& c, std::string_view key, value_type type, std::optional<Value>& out, Open open) {
  std::optional<entry> e;
  if (!typed_entry(c, key, type, e)) return false;
  if (e) out.emplace(open(key));
  return true;
}

// SCAN, HSCAN, SSCAN and ZSCAN's arguments from argv[at] (the cursor) on: MATCH, COUNT, and TYPE
// or NOVALUES where the command has them. False after replying with Redis's error.
struct scan_args {
  std::uint64_t cursor = 0;
  std::string_view pattern;  // empty: every element
  std::int64_t count = 10;
  std::string type;          // SCAN's TYPE, lower case; empty: any
  bool novalues = false;     // HSCAN's NOVALUES
};
bool parse_scan(command_context& c, std::size_t at, bool with_type, bool with_novalues, scan_args& out);
// HSCAN, SSCAN, ZSCAN: walks a member map (none: an absent key) from a.cursor, a hash range at a
// time, until COUNT members are seen, and replies; `value` turns a stored value into the reply's.
void scan_members(command_context& c, const pobj::hash_map_ref<pobj::bytes, pobj::bytes>* members, const scan_args& a,
                  bool with_values, std::string (*value)(std::string_view));
// The reply: [next cursor, [elements]], each element one string or (with values) two.
void reply_scan(command_context& c, std::uint64_t next, const std::vector<std::pair<std::string, std::string>>& found,
                bool with_values);

// Redis's glob (* ? [a-z] [^x] and \ escapes), as KEYS, SCAN MATCH and CONFIG GET use it.
bool glob_match(std::string_view pattern, std::string_view s);


}  // namespace pobj::kv
