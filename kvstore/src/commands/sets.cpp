// The set commands: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SSCAN, with Redis 7's replies
// and errors. A set's members are the keys of a pobj::hash_map of their own, with empty values
// (store.hpp); a set whose last member goes is removed, as in Redis.
#include <array>

#include "../engine.hpp"

namespace pobj::kv {

namespace {

using members_ref = pobj::hash_map_ref<pobj::bytes, pobj::bytes>;

// The members of the set at `key`: nullopt if the key is absent; false after a WRONGTYPE reply.
bool set_at(command_context& c, std::string_view key, std::optional<members_ref>& out) {
  return value_at(c, key, value_type::set, out, [&](std::string_view k) { return c.db.members(k); });
}

void sadd(command_context& c) {
  std::optional<members_ref> s;
  if (!set_at(c, c.argv[1], s)) return;
  if (!s) s.emplace(c.db.make_map(c.tx, c.argv[1], value_type::set));
  std::int64_t added = 0;
  for (std::size_t i = 2; i < c.argv.size(); ++i) added += s->insert(c.tx, c.argv[i], "") ? 1 : 0;
  if (added > 0) c.server.touch(c.argv[1]);
  c.reply.integer(added);
}

void srem(command_context& c) {
  std::optional<members_ref> s;
  if (!set_at(c, c.argv[1], s)) return;
  if (!s) return c.reply.integer(0);
  std::int64_t removed = 0;
  for (std::size_t i = 2; i < c.argv.size(); ++i) removed += s->erase(c.tx, c.argv[i]) ? 1 : 0;
  if (removed > 0) {
    c.server.touch(c.argv[1]);
    if (s->empty()) c.db.erase(c.tx, c.argv[1], c.now_ms);
  }
  c.reply.integer(removed);
}

void smembers(command_context& c) {
  std::optional<members_ref> s;
  if (!set_at(c, c.argv[1], s)) return;
  std::vector<std::string> all;
  if (s) s->for_each([&](std::string m, const std::string&) { all.push_back(std::move(m)); });
  c.reply.set(all.size());
  for (const auto& m : all) c.reply.bulk(m);
}

void sismember(command_context& c) {
  std::optional<members_ref> s;
  if (!set_at(c, c.argv[1], s)) return;
  c.reply.integer(s && s->contains(c.argv[2]) ? 1 : 0);
}

void smismember(command_context& c) {
  std::optional<members_ref> s;
  if (!set_at(c, c.argv[1], s)) return;
  c.reply.array(c.argv.size() - 2);
  for (std::size_t i = 2; i < c.argv.size(); ++i) c.reply.integer(s && s->contains(c.argv[i]) ? 1 : 0);
}

void scard(command_context& c) {
  std::optional<members_ref> s;
  if (!set_at(c, c.argv[1], s)) return;
  c.reply.integer(s ? static_cast<std::int64_t>(s->size()) : 0);
}

void sscan(command_context& c) {
  scan_args a;
  if (!parse_scan(c, 2, false, false, a)) return;
  std::optional<members_ref> s;
  if (!set_at(c, c.argv[1], s)) return;
  scan_members(c, s ? &*s : nullptr, a, false, nullptr);
}

using namespace command_flags;

const std::array table{
    command_spec{"sadd", -3, write | deny_oom | fast, sadd, 1, 1, 1, "set", "adds members to a set"},
    command_spec{"srem", -3, write | fast, srem, 1, 1, 1, "set", "removes members from a set"},
    command_spec{"smembers", 2, readonly, smembers, 1, 1, 1, "set", "every member"},
    command_spec{"sismember", 3, readonly | fast, sismember, 1, 1, 1, "set", "whether a member is in the set"},
    command_spec{"smismember", -3, readonly | fast, smismember, 1, 1, 1, "set", "whether each member is in the set"},
    command_spec{"scard", 2, readonly | fast, scard, 1, 1, 1, "set", "the number of members"},
    command_spec{"sscan", -3, readonly, sscan, 1, 1, 1, "set", "iterates over the members"},
};

}  // namespace

std::span<const command_spec> set_commands() { return table; }

}  // namespace pobj::kv
