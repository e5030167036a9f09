// pobj/hash_map: a concurrent, durable linearizable hash map in a pool.
//
// pobj::hash_map<K, V> is the storage: one 8-byte word (the offset of the map's header block),
// usable as a field of a persistent class or, by its offset, as a named root. Make one with
// pobj::make_hash_map<K, V>(tx); operate on it through pobj::hash_map_ref<K, V>(pool, map).
// K and V are trivially copyable types (stored as their bytes) or pobj::bytes / pobj::string
// (byte strings of any length: passed as std::string_view, returned as std::string).
//
// Layout (docs/types.md): extendible hashing. A directory of 2^depth segment offsets; each
// segment has 128 linearly probed slots pointing at nodes; a node is one heap block holding the
// key and the value behind a 4-byte length word. A segment that reaches 96 entries splits in two,
// in one failure-atomic block; the directory doubles when it must. Nothing is rebuilt when a pool
// opens.
//
// Thread safety: writers of different segments run in parallel (a lock per segment stripe, in
// DRAM); a split excludes other writers of the map for its duration. Readers take no lock: they
// read optimistically and retry if a writer of the same segment (or a split) ran meanwhile, so
// they wait only while a writer of their own segment is between its first store and its commit
// fence, and they never return what a crash could take back. for_each copies each segment under
// its lock and calls fn outside it: it sees each entry present for the whole walk exactly once,
// may or may not see entries inserted or erased during it; fn must not modify the map.
// Operations are blocks of their own: inside an open failure-atomic block they throw
// errc::invalid_argument (find, size and scan excepted), unless given that block (the overloads
// taking a transaction): a caller that has the map to itself (one thread, as pobj-kv's executor)
// may then make several changes, to several maps, commit together. scan() is a resumable walk
// by hash ranges, for cursors that outlive a call (Redis's SCAN).
//
// Cost (cache_line mode): insert, replace and erase are one failure-atomic block each (2 fences);
// a split adds one block. find is a hash, a directory and a segment lookup and a chain walk,
// with no fence and no lock.
//
// Keys are shorter than 2 GiB, values at most 4 GiB - 1 bytes.
// Crash consistency: each insert, replacement and erase is atomic and durable when it returns; a
// crash leaves no half-linked node and leaks no block (tests/crash/hash_map_crash_test.cpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <pobj/codec.hpp>
#include <pobj/pool.hpp>
#include <pobj/string.hpp>
#include <pobj/transaction.hpp>
#include <pobj/detail/hash_map_engine.hpp>

namespace pobj {

template <class K, class V>
struct hash_map {
  std::uint64_t offset = 0;  // of the map's header block; 0 is none
  constexpr explicit operator bool() const noexcept { return offset != 0; }
};


template <class K, class V>
hash_map<K, V> make_hash_map(transaction& tx) {
  return hash_map<K, V>{detail::hmap::create(tx, detail::is_container<V>)};
}

// Frees the map and everything in it, when the block commits (see destroy_container in
// pobj/containers.hpp for a map too large for one block).
template <class K, class V>
void destroy(transaction& tx, hash_map<K, V> map) {
  detail::destroy_container(tx, map.offset);
}

template <class K, class V>
class hash_map_ref {
  using kc = detail::value_codec<K>;
  using vc = detail::value_codec<V>;
  static_assert(!(detail::is_container<V> && detail::may_hold_refs<K>),
                "a map that owns its values takes keys without references (numbers, enums, byte strings)");

 public:
  // REQUIRES: map was made in p by make_hash_map<K, V>.
  hash_map_ref(pool& p, hash_map<K, V> map) : pool_(&p), state_(&detail::hmap::attach(p, map.offset, detail::is_container<V>, detail::may_hold_refs<K> || detail::may_hold_refs<V>)) {}

  std::optional<typename vc::out> find(typename kc::in key) const {
    std::string value;
    if (!detail::hmap::find(*pool_, *state_, kc::encode(key), &value)) return std::nullopt;
    return vc::decode(value);
  }
  bool contains(typename kc::in key) const { return detail::hmap::find(*pool_, *state_, kc::encode(key), nullptr); }
  // Inserts if absent; returns false (changing nothing) if the key is present.
  bool insert(typename kc::in key, typename vc::in value) {
    return detail::hmap::put(*pool_, *state_, kc::encode(key), vc::encode(value), false) == 0;
  }
  // Inserts or replaces; returns true if it inserted.
  bool insert_or_assign(typename kc::in key, typename vc::in value) {
    return detail::hmap::put(*pool_, *state_, kc::encode(key), vc::encode(value), true) == 0;
  }
  // Returns true if the key was present.
  bool erase(typename kc::in key) { return detail::hmap::erase(*pool_, *state_, kc::encode(key)); }

  // The same three inside the caller's failure-atomic block `tx` (open on this thread), for a
  // caller that has the map to itself until tx ends (no other thread reads or writes it: the
  // map's own locks are not held across the block). The change is visible at once to this
  // thread, durable when tx commits, undone if it aborts; changes made together share the
  // block's commit fence.
  bool insert(transaction& tx, typename kc::in key, typename vc::in value) {
    return detail::hmap::put(*pool_, *state_, kc::encode(key), vc::encode(value), false, &tx) == 0;
  }
  bool insert_or_assign(transaction& tx, typename kc::in key, typename vc::in value) {
    return detail::hmap::put(*pool_, *state_, kc::encode(key), vc::encode(value), true, &tx) == 0;
  }
  bool erase(transaction& tx, typename kc::in key) { return detail::hmap::erase(*pool_, *state_, kc::encode(key), &tx); }
  // In a map that owns its values (containers, pobj::owned_object): removes the entry without
  // destroying what it holds, and returns that, for the caller to give to another owner in the
  // same block (a rename); nullopt if the key is absent.
  std::optional<typename vc::out> release(transaction& tx, typename kc::in key)
    requires detail::is_container<V>
  {
    std::optional<typename vc::out> held = find(key);
    if (held) detail::hmap::erase(*pool_, *state_, kc::encode(key), &tx, true);
    return held;
  }

  std::uint64_t size() const { return detail::hmap::size(*pool_, *state_); }
  // Stops at the first segment holding an entry: O(1) for a map that is not empty.
  bool empty() const { return detail::hmap::empty(*pool_, *state_); }

  // A resumable walk: fn(key, value) for the entries whose hash lies in the range `cursor` (0 to
  // begin) falls in, from the cursor on, and returns the cursor of the next range (0 after the
  // last). Ranges are segments, which only ever split, so a walk from 0 back to 0 sees every
  // entry present for the whole walk at least once (exactly once if no segment split meanwhile),
  // whatever happens between calls. fn runs outside any lock.
  template <class F>
  std::uint64_t scan(std::uint64_t cursor, F&& fn) const {
    return detail::hmap::scan(*pool_, *state_, cursor,
                              [&](std::string_view k, std::string_view v) { fn(kc::decode(k), vc::decode(v)); });
  }
  // fn(key, value) for every entry (see the header comment for what a concurrent walk sees).
  template <class F>
  void for_each(F&& fn) const {
    detail::hmap::for_each(*pool_, *state_, [&](std::string_view k, std::string_view v) { fn(kc::decode(k), vc::decode(v)); });
  }

 private:
  pool* pool_;
  detail::hmap::map_state* state_;
};

}  // namespace pobj
