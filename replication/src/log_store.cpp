// replication/log_store: the Raft log and state as pool maps.
#include "log_store.hpp"

#include <fmt/format.h>

#include "records.hpp"

namespace pobj::repl {

namespace {
constexpr std::string_view hard_key = "hard";          // [u64 term][u64 vote][u64 commit]
constexpr std::string_view snapshot_key = "snapshot";  // [u64 index][u64 term]
constexpr std::string_view applied_key = "applied";    // [u64 index]
constexpr std::string_view identity_key = "identity";  // [u64 id][group name]
constexpr std::string_view clients_key = "clients";    // ([u64 id][u32 length][address])...
constexpr std::string_view peers_key = "peers";        // the same, each member's raft address

std::uint64_t decode_u64(std::string_view bytes) { return byte_reader(bytes).u64(); }
}  // namespace

std::string log_store::encode_members(const conf_state& c) {
  byte_writer w;
  w.u32(static_cast<std::uint32_t>(c.encoded.size()));
  w.bytes(c.encoded);
  w.u32(static_cast<std::uint32_t>(c.voters.size()));
  for (std::uint64_t v : c.voters) w.u64(v);
  w.u32(static_cast<std::uint32_t>(c.learners.size()));
  for (std::uint64_t v : c.learners) w.u64(v);
  return std::move(w).take();
}

conf_state log_store::decode_members(std::string_view bytes) {
  byte_reader r(bytes);
  conf_state c;
  c.encoded = std::string(r.take(r.u32()));
  for (std::uint32_t i = 0, n = r.u32(); i < n; ++i) c.voters.push_back(r.u64());
  for (std::uint32_t i = 0, n = r.u32(); i < n; ++i) c.learners.push_back(r.u64());
  return c;
}

log_store::log_store(pobj::pool& p) : pool_(&p) {
  const pobj::offset_t l = p.root(log_root), s = p.root(state_root), m = p.root(members_root);
  if (l != 0 && s != 0 && m != 0) {
    log_ = log_map{l};
    state_ = state_map{s};
    members_ = log_map{m};
  } else {
    pobj::run_tx(p, [&](transaction& tx) {
      log_ = l != 0 ? log_map{l} : pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx);
      state_ = s != 0 ? state_map{s} : pobj::make_hash_map<pobj::bytes, pobj::bytes>(tx);
      members_ = m != 0 ? log_map{m} : pobj::make_ordered_map<std::uint64_t, pobj::bytes>(tx);
      p.set_root(log_root, log_.offset);
      p.set_root(state_root, state_.offset);
      p.set_root(members_root, members_.offset);
    });
  }
  log();  // checks that the roots hold what they should (throws if not)
  state();
  confs();
}

std::optional<std::string> log_store::get(std::string_view key) const { return state().find(key); }

void log_store::put(transaction& tx, std::string_view key, std::string_view value) {
  state().insert_or_assign(tx, key, value);
}

bool log_store::initialized() const { return get(identity_key).has_value(); }

std::optional<member_identity> log_store::identity() const {
  const auto v = get(identity_key);
  if (!v) return std::nullopt;
  byte_reader r(*v);
  member_identity m;
  m.id = r.u64();
  m.group = std::string(r.rest());
  return m;
}

void log_store::set_identity(transaction& tx, const member_identity& self, bool replace) {
  if (self.id == 0) throw pobj::error(pobj::errc::invalid_argument, "a raft member's id must not be 0");
  if (initialized() && !replace) {
    const member_identity old = *identity();
    throw pobj::error(pobj::errc::invalid_argument,
                      fmt::format("pool '{}' already holds member {} of group '{}'", pool_->path(), old.id, old.group));
  }
  byte_writer w;
  w.u64(self.id);
  w.bytes(self.group);
  put(tx, identity_key, std::move(w).take());
}

void log_store::put_addresses(transaction& tx, std::string_view key, const std::map<std::uint64_t, std::string>& all) {
  byte_writer w;
  for (const auto& [member, where] : all) {
    w.u64(member);
    w.u32(static_cast<std::uint32_t>(where.size()));
    w.bytes(where);
  }
  put(tx, key, std::move(w).take());
}

std::map<std::uint64_t, std::string> log_store::addresses(std::string_view key) const {
  std::map<std::uint64_t, std::string> all;
  const auto v = get(key);
  if (!v) return all;
  byte_reader r(*v);
  while (!r.done()) {
    const std::uint64_t id = r.u64();
    all[id] = std::string(r.take(r.u32()));
  }
  return all;
}

void log_store::set_client_address(transaction& tx, std::uint64_t id, std::string_view address) {
  auto all = client_addresses();
  if (auto it = all.find(id); it != all.end() && it->second == address) return;
  all[id] = std::string(address);
  put_addresses(tx, clients_key, all);
}

std::map<std::uint64_t, std::string> log_store::client_addresses() const { return addresses(clients_key); }

void log_store::set_raft_address(transaction& tx, std::uint64_t id, std::string_view address) {
  auto all = raft_addresses();
  if (address.empty()) {
    if (all.erase(id) == 0) return;
  } else {
    if (auto it = all.find(id); it != all.end() && it->second == address) return;
    all[id] = std::string(address);
  }
  put_addresses(tx, peers_key, all);
}

std::map<std::uint64_t, std::string> log_store::raft_addresses() const { return addresses(peers_key); }

void log_store::put_snapshot(transaction& tx, const snapshot_meta& s, const conf_state& members) {
  byte_writer w;
  w.u64(s.index);
  w.u64(s.term);
  put(tx, snapshot_key, std::move(w).take());
  // The members as of the snapshot replace every change recorded at or before it.
  auto c = confs();
  while (auto first = c.first()) {
    if (first->first > s.index) break;
    c.erase(tx, first->first);
  }
  c.insert_or_assign(tx, s.index, encode_members(members));
}

void log_store::bootstrap(const member_identity& self, std::span<const std::uint64_t> voters) {
  if (voters.empty()) throw pobj::error(pobj::errc::invalid_argument, "a group needs at least one member");
  pobj::run_tx(*pool_, [&](transaction& tx) {
    set_identity(tx, self);
    ready rd;
    for (std::uint64_t v : voters)
      rd.entries.push_back({rd.entries.size() + 1, 1, entry_type::conf_change, conf_change_data(conf_op::add_voter, v)});
    rd.hard = hard_state{1, 0, rd.entries.size()};
    save(tx, rd);
  });
}

void log_store::join(const member_identity& self) {
  pobj::run_tx(*pool_, [&](transaction& tx) { set_identity(tx, self); });
}

void log_store::save(transaction& tx, const ready& rd) {
  if (rd.hard) {
    byte_writer w;
    w.u64(rd.hard->term);
    w.u64(rd.hard->vote);
    w.u64(rd.hard->commit);
    put(tx, hard_key, std::move(w).take());
  }
  if (rd.snapshot) {
    // A snapshot replaces the log up to its index (and the entries after it, which may disagree).
    auto l = log();
    while (auto first = l.first()) l.erase(tx, first->first);
    put_snapshot(tx, *rd.snapshot, conf_state{rd.snapshot->conf, {}, {}});
    auto c = confs();  // and the members recorded after it (they were the old log's)
    while (auto last = c.last()) {
      if (last->first <= rd.snapshot->index) break;
      c.erase(tx, last->first);
    }
  }
  if (!rd.entries.empty()) {
    auto l = log();
    // The new entries win over any from their first index on.
    const std::uint64_t from = rd.entries.front().index;
    while (auto last = l.last()) {
      if (last->first < from) break;
      l.erase(tx, last->first);
    }
    for (const log_entry& e : rd.entries) l.insert_or_assign(tx, e.index, encode_entry(e));
  }
}

void log_store::set_applied(transaction& tx, std::uint64_t index) {
  byte_writer w;
  w.u64(index);
  put(tx, applied_key, std::move(w).take());
}

void log_store::adopt(transaction& tx, const member_identity& self, const hard_state& h, const snapshot_meta& at,
                      const conf_state& members) {
  if (initialized() && identity()->group != self.group)
    throw pobj::error(pobj::errc::invalid_argument,
                      fmt::format("pool '{}' is a copy of group '{}', not '{}'", pool_->path(), identity()->group,
                                  self.group));
  set_identity(tx, self, true);
  byte_writer w;
  w.u64(h.term);
  w.u64(h.vote);
  w.u64(h.commit);
  put(tx, hard_key, std::move(w).take());
  auto l = log();
  while (auto first = l.first()) l.erase(tx, first->first);
  auto c = confs();  // every change recorded after the snapshot's index was the copied log's
  while (auto last = c.last()) {
    if (last->first <= at.index) break;
    c.erase(tx, last->first);
  }
  put_snapshot(tx, at, members);
  set_applied(tx, at.index);
}

void log_store::set_members(transaction& tx, std::uint64_t index, const conf_state& c) {
  confs().insert_or_assign(tx, index, encode_members(c));
}

std::uint64_t log_store::applied() const {
  const auto v = get(applied_key);
  return v ? decode_u64(*v) : 0;
}

hard_state log_store::hard() const {
  hard_state h;
  if (const auto v = get(hard_key)) {
    byte_reader r(*v);
    h.term = r.u64();
    h.vote = r.u64();
    h.commit = r.u64();
  }
  return h;
}

snapshot_meta log_store::snapshot() const {
  snapshot_meta s;
  if (const auto v = get(snapshot_key)) {
    byte_reader r(*v);
    s.index = r.u64();
    s.term = r.u64();
  }
  s.conf = members_at(s.index).encoded;
  return s;
}

conf_state log_store::members() const { return members_at(applied()); }

conf_state log_store::members_at(std::uint64_t index) const {
  const auto v = confs().at_or_before(index);
  return v ? decode_members(v->second) : conf_state{};
}

std::uint64_t log_store::compact(transaction& tx, std::uint64_t index) {
  index = std::min(index, applied());
  const std::optional<log_entry> at = entry(index);
  if (!at) return 0;  // already compacted there, or nothing held
  auto l = log();
  std::uint64_t dropped = 0;
  while (auto first = l.first()) {
    if (first->first > index) break;
    l.erase(tx, first->first);
    ++dropped;
  }
  const conf_state members = members_at(index);
  put_snapshot(tx, {index, at->term, members.encoded}, members);
  return dropped;
}

std::uint64_t log_store::first_index() const { return snapshot().index + 1; }

std::uint64_t log_store::last_index() const {
  const auto last = log().last();
  return last ? last->first : snapshot().index;
}

std::uint64_t log_store::size() const { return log().size(); }

std::optional<log_entry> log_store::entry(std::uint64_t index) const {
  const auto v = log().find(index);
  if (!v) return std::nullopt;
  return decode_entry(index, *v);
}

start_state log_store::load() const {
  start_state s;
  s.hard = hard();
  s.snapshot = snapshot();
  s.applied = applied();
  log().for_each([&](std::uint64_t index, const std::string& bytes) {
    if (index > s.snapshot.index) s.entries.push_back(decode_entry(index, bytes));
  });
  return s;
}

std::string log_store::encode_entry(const log_entry& e) {
  byte_writer w;
  w.u64(e.term);
  w.u8(static_cast<std::uint8_t>(e.type));
  w.bytes(e.data);
  return std::move(w).take();
}

log_entry log_store::decode_entry(std::uint64_t index, std::string_view bytes) {
  byte_reader r(bytes);
  log_entry e;
  e.index = index;
  e.term = r.u64();
  e.type = static_cast<entry_type>(r.u8());
  e.data = std::string(r.rest());
  return e;
}

}  // namespace pobj::repl
