// kvstore/store: pobj-kv's keyspace in a pobj pool.
//
// The keyspace is one pobj::hash_map from keys to entries (root "pobj-kv.keys"); keys with a time
// to live are also in an ordered index by expiry time (root "pobj-kv.expires", a pobj::set of
// [big-endian u64 milliseconds][key]), which active expiry walks from its first entry. An entry
// is [u8 type][u8 flags][u64 expiry ms, if flags say so][payload]; a string's payload is its
// bytes. A hash's fields (or a sorted set's scores) are a pobj::hash_map of their own, held by the
// owning map of maps (root "pobj-kv.maps", key -> container), a set's members likewise in
// "pobj-kv.sets", a sorted set's order in "pobj-kv.zsets", and a list's elements are a
// pobj::ordered_map by position held by the owning map of lists (root "pobj-kv.lists"): the pool's
// heap check traces each there, and removing the key there destroys it (a large one in steps
// after the block commits).
// docs/kvstore.md, docs/format/kvstore.md.
//
// Every change joins the caller's failure-atomic block (the server's batch, or a MULTI's EXEC):
// it is visible at once to the thread running the batch and durable when the block commits.
// Expiry is decided against the `now` the caller passes (one time per batch), never the clock,
// so that a command's effect is a function of the command, the store and that time: the server
// is a deterministic state machine over its pool, which a replicated log can order and replay.
//
// Thread safety: one thread at a time (the server's executor) uses a store; the maps' own
// concurrency is not used.
// Crash consistency: what the caller's block changed is all there or none of it after a crash.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <pobj/pobj.hpp>

namespace pobj::kv {

// object: a coordination object (commands/objects.cpp), its state inline in the entry's payload.
// instance: an object of a user's persistent class (commands/classes.cpp), held by the owning map
// "pobj-kv.objects".
enum class value_type : std::uint8_t { string = 0, hash = 1, set = 2, list = 3, zset = 4, object = 5, instance = 6 };

// Redis's name for a type (TYPE's reply).
std::string_view type_name(value_type t) noexcept;

struct entry {
  value_type type = value_type::string;
  std::int64_t expires_ms = 0;  // 0: no time to live
  std::string payload;
};

class store {
 public:
  static constexpr std::string_view keys_root = "pobj-kv.keys";
  static constexpr std::string_view expires_root = "pobj-kv.expires";
  static constexpr std::string_view maps_root = "pobj-kv.maps";
  static constexpr std::string_view lists_root = "pobj-kv.lists";
  static constexpr std::string_view zsets_root = "pobj-kv.zsets";
  static constexpr std::string_view sets_root = "pobj-kv.sets";
  // Objects of users' persistent classes (OBJ.NEW), each owned by this map: key -> object.
  static constexpr std::string_view objects_root = "pobj-kv.objects";
  // Exactly-once replies (commands/once.cpp): request id -> reply bytes, in two generations. New
  // replies go to the current one; when it is reply-ttl old, the previous one is destroyed (in
  // steps, if large) and the current one becomes the previous. So a reply is kept at least
  // reply-ttl and at most twice that, and storing one is one map insert (no expiry index). The
  // current generation's start time is its entry under the key "\0epoch" (ids never start with
  // a NUL byte).
  static constexpr std::string_view replies_root = "pobj-kv.replies";
  static constexpr std::string_view old_replies_root = "pobj-kv.replies-old";

  // Keys of each type (each an owning map's size: O(segments), nothing counted in DRAM).
  struct type_counts {
    std::uint64_t strings = 0, hashes = 0, sets = 0, lists = 0, zsets = 0, objects = 0;
  };
  type_counts counts() const;

  // What a pool's roots say it is, before a store is made on it: pobj-kv's (every root of the
  // keyspace there; those added by later versions, objects and ONCE's replies, may be missing and
  // are made), new (no root but pobj's own), another program's (roots, none of them pobj-kv's), or
  // a damaged pobj-kv pool (some of the keyspace's roots missing: their names damaged, say).
  enum class pool_kind { ours, fresh, foreign, damaged };
  struct pool_survey {
    pool_kind kind = pool_kind::fresh;
    std::vector<std::string> missing;  // damaged: the keyspace's roots not found
    std::vector<std::string> others;   // roots that are neither pobj-kv's nor pobj's
  };
  static pool_survey survey(const pobj::pool& p);

  // Finds the keyspace in the pool, or makes it (in a block of its own) in a new pool. Throws
  // pobj::error(invalid_argument) for another program's pool or a damaged one (survey()), rather
  // than make a keyspace beside what is there.
  explicit store(pobj::pool& p);

  pobj::pool& pool() const noexcept { return *pool_; }
  // Called with each key removed because its time to live ended (lazily or actively).
  std::function<void(std::string_view)> on_expired;

  // The entry of a key, unless absent or expired at `now` (an expired key is removed in `tx`).
  std::optional<entry> get(transaction& tx, std::string_view key, std::int64_t now);
  // The entry of a key, expired or not, removing nothing: for what only looks (WATCH), which must
  // not change the store outside the log on a replicated leader.
  std::optional<entry> peek(std::string_view key) const;
  // Whether the key exists at `now`, without reading its value.
  bool exists(transaction& tx, std::string_view key, std::int64_t now);
  // Stores the entry (replacing any), in tx; keeps the expiry index in step.
  void put(transaction& tx, std::string_view key, const entry& e);
  // Removes the key, in tx; false if it was absent (or expired at now).
  bool erase(transaction& tx, std::string_view key, std::int64_t now);
  // Sets or clears (0) the time to live of an existing key, in tx.
  void set_expiry(transaction& tx, std::string_view key, entry& e, std::int64_t expires_ms);

  // A hash key's fields, or a sorted set's scores (REQUIRES: the key's entry says hash or zset);
  // a set key's members, with empty values (REQUIRES: the entry says set).
  using field_map = pobj::hash_map<pobj::bytes, pobj::bytes>;
  pobj::hash_map_ref<pobj::bytes, pobj::bytes> fields(std::string_view key) const;
  pobj::hash_map_ref<pobj::bytes, pobj::bytes> members(std::string_view key) const;
  // Makes `key` an empty hash or set (replacing whatever it held), in tx; returns its map.
  pobj::hash_map_ref<pobj::bytes, pobj::bytes> make_map(transaction& tx, std::string_view key, value_type type);

  // A list key's elements, by position (REQUIRES: the key's entry says list). Positions are
  // consecutive from the first element's: LPUSH takes the one before it, RPUSH the one after the
  // last.
  using element_map = pobj::ordered_map<std::int64_t, pobj::bytes>;
  pobj::ordered_map_ref<std::int64_t, pobj::bytes> elements(std::string_view key) const;
  // Makes `key` an empty list (replacing whatever it held), in tx; returns its elements.
  pobj::ordered_map_ref<std::int64_t, pobj::bytes> make_list(transaction& tx, std::string_view key);

  // A sorted set: its members' scores (member -> 8-byte double, in the map of maps) and its order
  // (a set of [order-preserving score][member], in the owning map "pobj-kv.zsets").
  using order_set = pobj::set<pobj::bytes>;
  pobj::set_ref<pobj::bytes> zorder(std::string_view key) const;
  // Makes `key` an empty sorted set (replacing whatever it held), in tx.
  void make_zset(transaction& tx, std::string_view key);

  // The block of the object at `key` (REQUIRES for a value: the key's entry says instance).
  std::optional<std::uint64_t> object(std::string_view key) const;
  // Makes `key` hold the object at `block` (made in tx), replacing whatever it held, in tx.
  void put_object(transaction& tx, std::string_view key, std::uint64_t block, std::int64_t expires_ms = 0);
  // Takes the object out of `key`'s map entry without destroying it (RENAME gives it to another
  // key in the same block); the key's entry is the caller's to remove.
  std::uint64_t release_object(transaction& tx, std::string_view key);

  // The reply stored for request `id`, if it is still kept.
  std::optional<std::string> stored_reply(std::string_view id) const;
  // Stores the reply of request `id`, in tx.
  void store_reply(transaction& tx, std::string_view id, std::string_view reply);
  // If the current generation started ttl_ms or more before now: drops the previous one, in tx,
  // and starts a new current one. Returns whether it did.
  bool rotate_replies(transaction& tx, std::int64_t now, std::int64_t ttl_ms);
  // Whether the current generation's start time is recorded (rotate_replies records it if not).
  bool replies_epoch_known() const;
  std::uint64_t stored_replies() const;
  // Keys in the keyspace, including expired keys not yet removed (O(segments)).
  std::uint64_t size() const;
  // Removes every key, in tx (new empty maps replace the old ones, which are destroyed).
  void clear(transaction& tx);
  // Reads the roots again: after a block that ran clear() was rolled back.
  void reload();
  // Calls fn(key, entry) for the keys whose hash lies in the range the cursor names, and returns
  // the next cursor (0 when the walk is over): every key present for the whole walk is seen at
  // least once. Expired keys are skipped (not removed).
  template <class F>
  std::uint64_t scan(std::uint64_t cursor, std::int64_t now, F&& fn) const {
    return keys().scan(cursor, [&](std::string_view k, std::string_view v) {
      entry e = decode(v);
      if (!expired(e, now)) fn(k, e);
    });
  }
  // Removes up to `limit` keys whose time to live ended at or before now, in tx; returns how many.
  std::size_t expire_some(transaction& tx, std::int64_t now, std::size_t limit);
  // Keys with a time to live (the expiry index's size).
  std::uint64_t volatile_keys() const;

  static bool expired(const entry& e, std::int64_t now) noexcept { return e.expires_ms != 0 && e.expires_ms <= now; }
  static std::string encode(const entry& e);
  static entry decode(std::string_view bytes);  // throws errc::corrupt on a damaged entry

 private:
  using key_map = pobj::hash_map<pobj::bytes, pobj::bytes>;
  using expiry_set = pobj::set<pobj::bytes>;
  using map_of_maps = pobj::hash_map<pobj::bytes, field_map>;
  pobj::hash_map_ref<pobj::bytes, pobj::bytes> keys() const { return {*pool_, keys_}; }
  pobj::set_ref<pobj::bytes> expires() const { return {*pool_, expires_}; }
  pobj::hash_map_ref<pobj::bytes, field_map> maps() const { return {*pool_, maps_}; }
  pobj::hash_map_ref<pobj::bytes, field_map> sets() const { return {*pool_, sets_}; }
  using map_of_lists = pobj::hash_map<pobj::bytes, element_map>;
  pobj::hash_map_ref<pobj::bytes, element_map> lists() const { return {*pool_, lists_}; }
  using map_of_orders = pobj::hash_map<pobj::bytes, order_set>;
  pobj::hash_map_ref<pobj::bytes, order_set> zsets() const { return {*pool_, zsets_}; }
  using map_of_objects = pobj::hash_map<pobj::bytes, pobj::owned_object>;
  pobj::hash_map_ref<pobj::bytes, pobj::owned_object> objects() const { return {*pool_, objects_}; }
  static std::string expiry_key(std::int64_t ms, std::string_view key);
  // Removes what a key's entry holds outside the entry (a hash's fields), in tx.
  void drop_value(transaction& tx, std::string_view key, const entry& e);

  pobj::pool* pool_;
  key_map keys_;
  expiry_set expires_;
  map_of_maps maps_;
  map_of_maps sets_;
  map_of_lists lists_;
  map_of_orders zsets_;
  map_of_objects objects_;
  key_map replies_;
  key_map old_replies_;
};

}  // namespace pobj::kv
