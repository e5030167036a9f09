// pobj-kv's keyspace (store.hpp).
#include "store.hpp"

#include <array>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace pobj::kv {

namespace {

constexpr std::uint8_t has_expiry = 1;

std::uint64_t big_endian(std::uint64_t v) noexcept { return __builtin_bswap64(v); }

}  // namespace

std::string_view type_name(value_type t) noexcept {
  switch (t) {
    case value_type::string: return "string";
    case value_type::hash: return "hash";
    case value_type::set: return "set";
    case value_type::list: return "list";
    case value_type::zset: return "zset";
    case value_type::object: return "object";
    case value_type::instance: return "pobj-object";
  }
  return "none";
}

store::pool_survey store::survey(const pobj::pool& p) {
  // The keyspace's roots since the first version (keys and their expiry index); the others came
  // with later versions and are made when an older pool opens.
  static constexpr std::array<std::string_view, 2> required{keys_root, expires_root};
  pool_survey s;
  std::size_t found = 0;
  for (const std::string_view name : required) {
    if (p.root(name) != 0) {
      ++found;
    } else {
      s.missing.emplace_back(name);
    }
  }
  bool any_ours = found > 0;
  for (const auto& [name, offset] : p.roots()) {
    if (name.rfind("pobj-kv.", 0) == 0) {
      any_ours = true;
    } else if (name.rfind("pobj.", 0) != 0 && name.rfind("pobj-raft.", 0) != 0) {  // pobj-raft: replication/
      s.others.push_back(name);
    }
  }
  if (found == required.size()) {
    s.kind = pool_kind::ours;
    s.missing.clear();
  } else if (any_ours) {
    s.kind = pool_kind::damaged;
  } else {
    s.kind = s.others.empty() ? pool_kind::fresh : pool_kind::foreign;
    s.missing.clear();
  }
  return s;
}

store::store(pobj::pool& p) : pool_(&p) {
  if (const pool_survey s = survey(p); s.kind == pool_kind::foreign) {
    throw pobj::error(pobj::errc::invalid_argument,
                      fmt::format("pool '{}' is not a pobj-kv pool: it holds another program's roots ({}{}); give "
                                  "pobj-kv a pool of its own",
                                  p.path(), s.others.front(), s.others.size() > 1 ? ", ..." : ""));
  } else if (s.kind == pool_kind::damaged) {
    throw pobj::error(pobj::errc::corrupt,
                      fmt::format("pool '{}' is a damaged pobj-kv pool: the keyspace's root '{}'{} is missing; "
                                  "pobj-kv will not make a new keyspace beside the old one (pobj-kv --check POOL "
                                  "reports what it finds)",
                                  p.path(), s.missing.front(), s.missing.size() > 1 ? " (and others)" : ""));
  }
  const pobj::offset_t k = p.root(keys_root), x = p.root(expires_root), h = p.root(maps_root),
                       l = p.root(lists_root), z = p.root(zsets_root), st = p.root(sets_root),
                       r = p.root(replies_root), ro = p.root(old_replies_root), ob = p.root(objects_root);
  if (k != 0 && x != 0 && h != 0 && l != 0 && z != 0 && st != 0 && r != 0 && ro != 0 && ob != 0) {
    objects_ = map_of_objects{ob};
    replies_ = key_map{r};
    old_replies_ = key_map{ro};
    sets_ = map_of_maps{st};
    keys_ = key_map{k};
    expires_ = expiry_set{x};
    maps_ = map_of_maps{h};
    lists_ = map_of_lists{l};
    zsets_ = map_of_orders{z};
  } else {
    pobj::run_tx(p, [&](transaction& tx) {
      keys_ = k != 0 ? key_map{k} : pobj::make_hash_map<pobj::bytes, pobj::bytes>(tx);
      expires_ = x != 0 ? expiry_set{x} : pobj::make_set<pobj::bytes>(tx);
      maps_ = h != 0 ? map_of_maps{h} : pobj::make_hash_map<pobj::bytes, field_map>(tx);
      lists_ = l != 0 ? map_of_lists{l} : pobj::make_hash_map<pobj::bytes, element_map>(tx);
      zsets_ = z != 0 ? map_of_orders{z} : pobj::make_hash_map<pobj::bytes, order_set>(tx);
      sets_ = st != 0 ? map_of_maps{st} : pobj::make_hash_map<pobj::bytes, field_map>(tx);
      replies_ = r != 0 ? key_map{r} : pobj::make_hash_map<pobj::bytes, pobj::bytes>(tx);
      old_replies_ = ro != 0 ? key_map{ro} : pobj::make_hash_map<pobj::bytes, pobj::bytes>(tx);
      // Pools made before user objects existed gain the map when they open.
      objects_ = ob != 0 ? map_of_objects{ob} : pobj::make_hash_map<pobj::bytes, pobj::owned_object>(tx);
      p.set_root(objects_root, objects_.offset);
      p.set_root(replies_root, replies_.offset);
      p.set_root(old_replies_root, old_replies_.offset);
      p.set_root(keys_root, keys_.offset);
      p.set_root(expires_root, expires_.offset);
      p.set_root(maps_root, maps_.offset);
      p.set_root(lists_root, lists_.offset);
      p.set_root(zsets_root, zsets_.offset);
      p.set_root(sets_root, sets_.offset);
    });
  }
  keys();  // checks that the roots hold what they should (throws if not)
  expires();
  maps();
  lists();
  zsets();
  sets();
  objects();
  pobj::hash_map_ref<pobj::bytes, pobj::bytes>(p, replies_);
  pobj::hash_map_ref<pobj::bytes, pobj::bytes>(p, old_replies_);
}

namespace {
constexpr std::string_view epoch_key{"\0epoch", 6};
}

std::optional<std::string> store::stored_reply(std::string_view id) const {
  if (id.empty() || id[0] == '\0') return std::nullopt;
  if (auto r = pobj::hash_map_ref<pobj::bytes, pobj::bytes>(*pool_, replies_).find(id)) return r;
  return pobj::hash_map_ref<pobj::bytes, pobj::bytes>(*pool_, old_replies_).find(id);
}

void store::store_reply(transaction& tx, std::string_view id, std::string_view reply) {
  pobj::hash_map_ref<pobj::bytes, pobj::bytes>(*pool_, replies_).insert_or_assign(tx, id, reply);
}

bool store::replies_epoch_known() const {
  const auto e = pobj::hash_map_ref<pobj::bytes, pobj::bytes>(*pool_, replies_).find(epoch_key);
  return e && e->size() == 8;
}

bool store::rotate_replies(transaction& tx, std::int64_t now, std::int64_t ttl_ms) {
  pobj::hash_map_ref<pobj::bytes, pobj::bytes> current(*pool_, replies_);
  std::int64_t epoch = 0;
  if (auto e = current.find(epoch_key); e && e->size() == 8) {
    std::memcpy(&epoch, e->data(), 8);
  } else {  // a generation made before its start time was kept: it starts now
    std::string v(8, '\0');
    std::memcpy(v.data(), &now, 8);
    current.insert_or_assign(tx, epoch_key, v);
    return false;
  }
  if (now - epoch < ttl_ms) return false;
  const key_map dropped = old_replies_;
  old_replies_ = replies_;
  replies_ = pobj::make_hash_map<pobj::bytes, pobj::bytes>(tx);
  std::string v(8, '\0');
  std::memcpy(v.data(), &now, 8);
  pobj::hash_map_ref<pobj::bytes, pobj::bytes>(*pool_, replies_).insert(tx, epoch_key, v);
  pool_->set_root(replies_root, replies_.offset);
  pool_->set_root(old_replies_root, old_replies_.offset);
  pobj::destroy(tx, dropped);  // a large one is freed in steps after the block commits
  return true;
}

std::uint64_t store::stored_replies() const {
  const std::uint64_t n = pobj::hash_map_ref<pobj::bytes, pobj::bytes>(*pool_, replies_).size() +
                          pobj::hash_map_ref<pobj::bytes, pobj::bytes>(*pool_, old_replies_).size();
  const std::uint64_t epochs =
      (pobj::hash_map_ref<pobj::bytes, pobj::bytes>(*pool_, replies_).contains(epoch_key) ? 1 : 0) +
      (pobj::hash_map_ref<pobj::bytes, pobj::bytes>(*pool_, old_replies_).contains(epoch_key) ? 1 : 0);
  return n - epochs;
}

pobj::hash_map_ref<pobj::bytes, pobj::bytes> store::fields(std::string_view key) const {
  auto c = maps().find(key);
  if (!c) throw pobj::error(pobj::errc::corrupt, "pobj-kv: a hash key without its fields");
  return {*pool_, *c};
}

pobj::hash_map_ref<pobj::bytes, pobj::bytes> store::members(std::string_view key) const {
  auto c = sets().find(key);
  if (!c) throw pobj::error(pobj::errc::corrupt, "pobj-kv: a set key without its members");
  return {*pool_, *c};
}

pobj::hash_map_ref<pobj::bytes, pobj::bytes> store::make_map(transaction& tx, std::string_view key, value_type type) {
  const field_map fresh = pobj::make_hash_map<pobj::bytes, pobj::bytes>(tx);
  entry e{type, 0, {}};
  put(tx, key, e);
  (type == value_type::set ? sets() : maps()).insert_or_assign(tx, key, fresh);
  return {*pool_, fresh};
}

store::type_counts store::counts() const {
  type_counts n;
  n.zsets = zsets().size();
  n.hashes = maps().size() - n.zsets;
  n.sets = sets().size();
  n.lists = lists().size();
  n.objects = objects().size();
  const std::uint64_t all = keys().size(), others = n.hashes + n.sets + n.lists + n.zsets + n.objects;
  n.strings = all > others ? all - others : 0;
  return n;
}

pobj::ordered_map_ref<std::int64_t, pobj::bytes> store::elements(std::string_view key) const {
  auto c = lists().find(key);
  if (!c) throw pobj::error(pobj::errc::corrupt, "pobj-kv: a list key without its elements");
  return {*pool_, *c};
}

pobj::ordered_map_ref<std::int64_t, pobj::bytes> store::make_list(transaction& tx, std::string_view key) {
  const element_map fresh = pobj::make_ordered_map<std::int64_t, pobj::bytes>(tx);
  put(tx, key, entry{value_type::list, 0, {}});
  lists().insert_or_assign(tx, key, fresh);
  return {*pool_, fresh};
}

pobj::set_ref<pobj::bytes> store::zorder(std::string_view key) const {
  auto c = zsets().find(key);
  if (!c) throw pobj::error(pobj::errc::corrupt, "pobj-kv: a sorted set without its order");
  return {*pool_, *c};
}

void store::make_zset(transaction& tx, std::string_view key) {
  const field_map scores = pobj::make_hash_map<pobj::bytes, pobj::bytes>(tx);
  const order_set order = pobj::make_set<pobj::bytes>(tx);
  put(tx, key, entry{value_type::zset, 0, {}});
  maps().insert_or_assign(tx, key, scores);
  zsets().insert_or_assign(tx, key, order);
}

void store::drop_value(transaction& tx, std::string_view key, const entry& e) {
  // Erasing from an owning map destroys the container it held.
  if (e.type == value_type::hash || e.type == value_type::zset) maps().erase(tx, key);
  if (e.type == value_type::set) sets().erase(tx, key);
  if (e.type == value_type::zset) zsets().erase(tx, key);
  if (e.type == value_type::list) lists().erase(tx, key);
  if (e.type == value_type::instance) objects().erase(tx, key);
}

std::optional<std::uint64_t> store::object(std::string_view key) const {
  auto o = objects().find(key);
  if (!o) return std::nullopt;
  return o->offset;
}

void store::put_object(transaction& tx, std::string_view key, std::uint64_t block, std::int64_t expires_ms) {
  put(tx, key, entry{value_type::instance, expires_ms, {}});
  objects().insert_or_assign(tx, key, pobj::owned_object{block});
}

std::uint64_t store::release_object(transaction& tx, std::string_view key) {
  auto o = objects().release(tx, key);
  if (!o) throw pobj::error(pobj::errc::corrupt, "pobj-kv: an object key without its object");
  return o->offset;
}

std::string store::encode(const entry& e) {
  std::string out;
  out.reserve(2 + 8 + e.payload.size());
  out.push_back(static_cast<char>(e.type));
  out.push_back(static_cast<char>(e.expires_ms != 0 ? has_expiry : 0));
  if (e.expires_ms != 0) out.append(reinterpret_cast<const char*>(&e.expires_ms), 8);
  out.append(e.payload);
  return out;
}

entry store::decode(std::string_view bytes) {
  entry e;
  if (bytes.size() < 2 || static_cast<std::uint8_t>(bytes[0]) > static_cast<std::uint8_t>(value_type::instance) ||
      (static_cast<std::uint8_t>(bytes[1]) & ~has_expiry) != 0 ||
      ((static_cast<std::uint8_t>(bytes[1]) & has_expiry) && bytes.size() < 10)) {
    throw pobj::error(pobj::errc::corrupt, "pobj-kv: a damaged entry in the keyspace");
  }
  e.type = static_cast<value_type>(bytes[0]);
  std::size_t at = 2;
  if (static_cast<std::uint8_t>(bytes[1]) & has_expiry) {
    std::memcpy(&e.expires_ms, bytes.data() + 2, 8);
    at = 10;
  }
  e.payload.assign(bytes.substr(at));
  return e;
}

std::string store::expiry_key(std::int64_t ms, std::string_view key) {
  std::string k(8, '\0');
  const std::uint64_t be = big_endian(static_cast<std::uint64_t>(ms));
  std::memcpy(k.data(), &be, 8);
  k.append(key);
  return k;
}

std::optional<entry> store::get(transaction& tx, std::string_view key, std::int64_t now) {
  auto found = keys().find(key);
  if (!found) return std::nullopt;
  entry e = decode(*found);
  if (expired(e, now)) {
    keys().erase(tx, key);
    expires().erase(tx, expiry_key(e.expires_ms, key));
    drop_value(tx, key, e);
    if (on_expired) on_expired(key);
    return std::nullopt;
  }
  return e;
}

std::optional<entry> store::peek(std::string_view key) const {
  auto found = keys().find(key);
  if (!found) return std::nullopt;
  return decode(*found);
}

bool store::exists(transaction& tx, std::string_view key, std::int64_t now) { return get(tx, key, now).has_value(); }

void store::put(transaction& tx, std::string_view key, const entry& e) {
  if (auto old = keys().find(key)) {
    const entry before = decode(*old);
    // A value of another kind goes, with what it held; a hash whose entry only changes (its time to
    // live) keeps its fields.
    if (before.type != e.type || e.type == value_type::string) drop_value(tx, key, before);
    if (before.expires_ms != 0 && before.expires_ms != e.expires_ms) {
      expires().erase(tx, expiry_key(before.expires_ms, key));
    }
    if (e.expires_ms != 0 && before.expires_ms != e.expires_ms) expires().insert(tx, expiry_key(e.expires_ms, key));
  } else if (e.expires_ms != 0) {
    expires().insert(tx, expiry_key(e.expires_ms, key));
  }
  keys().insert_or_assign(tx, key, encode(e));
}

bool store::erase(transaction& tx, std::string_view key, std::int64_t now) {
  auto found = keys().find(key);
  if (!found) return false;
  const entry e = decode(*found);
  keys().erase(tx, key);
  if (e.expires_ms != 0) expires().erase(tx, expiry_key(e.expires_ms, key));
  drop_value(tx, key, e);
  return !expired(e, now);
}

void store::set_expiry(transaction& tx, std::string_view key, entry& e, std::int64_t expires_ms) {
  e.expires_ms = expires_ms;
  put(tx, key, e);
}

std::uint64_t store::size() const { return keys().size(); }

std::uint64_t store::volatile_keys() const { return expires().size(); }

void store::clear(transaction& tx) {
  // New empty maps in place of the old ones, which are destroyed in the same block (a large one is
  // freed in steps right after the block commits: pobj/containers.hpp).
  const key_map old_keys = keys_;
  const expiry_set old_expires = expires_;
  const map_of_maps old_maps = maps_;
  const map_of_lists old_lists = lists_;
  const map_of_orders old_zsets = zsets_;
  const map_of_maps old_sets = sets_;
  const map_of_objects old_objects = objects_;
  objects_ = pobj::make_hash_map<pobj::bytes, pobj::owned_object>(tx);
  pool_->set_root(objects_root, objects_.offset);
  keys_ = pobj::make_hash_map<pobj::bytes, pobj::bytes>(tx);
  expires_ = pobj::make_set<pobj::bytes>(tx);
  maps_ = pobj::make_hash_map<pobj::bytes, field_map>(tx);
  lists_ = pobj::make_hash_map<pobj::bytes, element_map>(tx);
  zsets_ = pobj::make_hash_map<pobj::bytes, order_set>(tx);
  sets_ = pobj::make_hash_map<pobj::bytes, field_map>(tx);
  pool_->set_root(keys_root, keys_.offset);
  pool_->set_root(expires_root, expires_.offset);
  pool_->set_root(maps_root, maps_.offset);
  pool_->set_root(lists_root, lists_.offset);
  pool_->set_root(zsets_root, zsets_.offset);
  pool_->set_root(sets_root, sets_.offset);
  pobj::destroy(tx, old_keys);
  pobj::destroy(tx, old_expires);
  pobj::destroy(tx, old_maps);  // and every hash's and set's map with it
  pobj::destroy(tx, old_lists);
  pobj::destroy(tx, old_zsets);
  pobj::destroy(tx, old_sets);
  pobj::destroy(tx, old_objects);  // and every object in it
}

void store::reload() {
  keys_ = key_map{pool_->root(keys_root)};
  expires_ = expiry_set{pool_->root(expires_root)};
  maps_ = map_of_maps{pool_->root(maps_root)};
  lists_ = map_of_lists{pool_->root(lists_root)};
  zsets_ = map_of_orders{pool_->root(zsets_root)};
  sets_ = map_of_maps{pool_->root(sets_root)};
  objects_ = map_of_objects{pool_->root(objects_root)};
  replies_ = key_map{pool_->root(replies_root)};
  old_replies_ = key_map{pool_->root(old_replies_root)};
}

std::size_t store::expire_some(transaction& tx, std::int64_t now, std::size_t limit) {
  std::vector<std::string> due;
  expires().for_each([&](std::string_view k) {
    if (due.size() >= limit || k.size() < 8) return false;
    std::uint64_t ms = 0;
    for (std::size_t i = 0; i < 8; ++i) ms = ms << 8 | static_cast<unsigned char>(k[i]);
    if (static_cast<std::int64_t>(ms) > now) return false;
    due.emplace_back(k);
    return true;
  });
  for (const auto& k : due) {
    const std::string_view key = std::string_view(k).substr(8);
    if (auto found = keys().find(key)) {
      const entry e = decode(*found);
      if (e.expires_ms != 0 && expired(e, now)) {
        keys().erase(tx, key);
        drop_value(tx, key, e);
        if (on_expired) on_expired(key);
      }
    }
    expires().erase(tx, k);
  }
  return due.size();
}

}  // namespace pobj::kv
