// pobj/ordered_map: a concurrent, durable linearizable ordered map (and set) in a pool.
//
// pobj::ordered_map<K, V> is the storage: one 8-byte word (the offset of the map's header
// block), usable as a field of a persistent class, as a value in another container, or, by its
// offset, as a named root. Make one with pobj::make_ordered_map<K, V>(tx); operate on it through
// pobj::ordered_map_ref<K, V>(pool, map). pobj::set<K> is an ordered map with no values
// (pobj::make_set<K>, pobj::set_ref<K>).
//
// Keys are integers, enums, floating point numbers (ordered by value) or pobj::string /
// pobj::bytes (ordered bytewise, as memcmp; passed as std::string_view). Values are trivially
// copyable types (stored as their bytes) or pobj::string / pobj::bytes of any length.
//
// Layout (docs/types.md): a B+ tree whose inner nodes and leaves are all in the pool. A leaf
// holds up to 63 entries in a slot array (an 8-byte key prefix and the offset of a node holding
// the key and the value) and a one-line permutation that orders them, so an insert writes a free
// slot and the permutation line and moves nothing. Inner nodes hold up to 63 children and the
// separators between them: an 8-byte prefix, and only when two neighbours share their first 8
// bytes, a block with the whole separator key. Nothing is rebuilt when a pool opens.
//
// Thread safety: writers of different leaves run in parallel (a lock per leaf stripe, in DRAM); a
// split, or the removal of a leaf that became empty, excludes the map's other writers for its
// duration. Readers take no lock: they read optimistically and retry if a writer of their leaf
// (or a structure change) ran meanwhile, so they wait only while a writer of their own leaf is
// between its first store and its commit fence, and never return what a crash could take back.
// Scans copy one leaf at a time (validated the same way) and call fn outside any lock: they see
// every entry present for the whole scan exactly once, in order, and may or may not see entries
// inserted or erased during it; fn may use the map, including modifying it.
// Mutating operations are blocks of their own: inside an open failure-atomic block they throw
// errc::invalid_argument, unless given that block (the overloads taking a transaction), by a
// caller that has the map to itself until the block ends.
//
// Cost (cache_line mode): insert, replace and erase are one failure-atomic block each (2
// fences); a split adds one block every ~30 inserts into a leaf. find is a descent of the inner
// nodes (binary search on the prefixes, no indirection for keys of up to 8 bytes) and one node,
// with no fence and no lock.
//
// Crash consistency: each insert, replacement, erase, split and leaf removal is atomic and
// durable when it returns (tests/crash/ordered_map_crash_test.cpp). Leaves never merge; a leaf
// that becomes empty is removed with the inner nodes above it left with no other child, and a
// root left with one child gives way to it, unless the leaf is the map's only one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <pobj/codec.hpp>
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>
#include <pobj/detail/ordered_map_engine.hpp>

namespace pobj {

template <class K, class V>
struct ordered_map {
  std::uint64_t offset = 0;  // of the map's header block; 0 is none
  constexpr explicit operator bool() const noexcept { return offset != 0; }
};

template <class K>
struct set {
  std::uint64_t offset = 0;  // an ordered_map<K, no value>
  constexpr explicit operator bool() const noexcept { return offset != 0; }
};


template <class K, class V>
ordered_map<K, V> make_ordered_map(transaction& tx) {
  return ordered_map<K, V>{detail::omap::create(tx, detail::is_container<V>)};
}

// Frees the map and everything in it, when the block commits.
template <class K, class V>
void destroy(transaction& tx, ordered_map<K, V> map) {
  detail::destroy_container(tx, map.offset);
}

template <class K, class V>
class ordered_map_ref {
  using kc = detail::ordered_codec<K>;
  using vc = detail::value_codec<V>;

 public:
  using key_type = typename kc::out;
  using mapped_type = typename vc::out;
  using value_type = std::pair<key_type, mapped_type>;

  // A key range: [from, to) by default; an absent bound is unbounded.
  struct range {
    std::optional<key_type> from{};
    std::optional<key_type> to{};
    bool from_inclusive = true;
    bool to_inclusive = false;
  };

  // REQUIRES: map was made in p by make_ordered_map<K, V> (or make_set).
  ordered_map_ref(pool& p, ordered_map<K, V> map) : pool_(&p), state_(&detail::omap::attach(p, map.offset, detail::is_container<V>, detail::may_hold_refs<V>)) {}

  std::optional<mapped_type> find(typename kc::in key) const {
    std::string value;
    if (!detail::omap::find(*pool_, *state_, kc::encode(key), &value)) return std::nullopt;
    return vc::decode(value);
  }
  bool contains(typename kc::in key) const { return detail::omap::find(*pool_, *state_, kc::encode(key), nullptr); }
  // Inserts if absent; returns false (changing nothing) if the key is present.
  bool insert(typename kc::in key, typename vc::in value) {
    return detail::omap::put(*pool_, *state_, kc::encode(key), vc::encode(value), false) == 0;
  }
  // Inserts or replaces; returns true if it inserted.
  bool insert_or_assign(typename kc::in key, typename vc::in value) {
    return detail::omap::put(*pool_, *state_, kc::encode(key), vc::encode(value), true) == 0;
  }
  // Returns true if the key was present.
  bool erase(typename kc::in key) { return detail::omap::erase(*pool_, *state_, kc::encode(key)); }
  // The same three inside the caller's failure-atomic block `tx`, for a caller that has the map to
  // itself until tx ends (see hash_map_ref: visible at once to this thread, durable at commit,
  // undone on abort).
  bool insert(transaction& tx, typename kc::in key, typename vc::in value) {
    return detail::omap::put(*pool_, *state_, kc::encode(key), vc::encode(value), false, &tx) == 0;
  }
  bool insert_or_assign(transaction& tx, typename kc::in key, typename vc::in value) {
    return detail::omap::put(*pool_, *state_, kc::encode(key), vc::encode(value), true, &tx) == 0;
  }
  bool erase(transaction& tx, typename kc::in key) { return detail::omap::erase(*pool_, *state_, kc::encode(key), &tx); }
  // Counts the entries leaf by leaf (each leaf's count read between its writers): O(leaves).
  std::uint64_t size() const { return detail::omap::size(*pool_, *state_); }
  bool empty() const { return !first().has_value(); }

  // The first entry with a key at least (lower_bound) or greater than (upper_bound) `key`.
  std::optional<value_type> lower_bound(typename kc::in key) const { return seek(encoded(key), true, true); }
  std::optional<value_type> upper_bound(typename kc::in key) const { return seek(encoded(key), false, true); }
  // The last entry with a key at most / less than `key`.
  std::optional<value_type> at_or_before(typename kc::in key) const { return seek(encoded(key), true, false); }
  std::optional<value_type> before(typename kc::in key) const { return seek(encoded(key), false, false); }
  std::optional<value_type> first() const { return seek(std::nullopt, true, true); }
  std::optional<value_type> last() const { return seek(std::nullopt, true, false); }

  // fn(key, value) for each entry in r, in ascending (scan) or descending (reverse_scan) key
  // order; fn returns void, or bool (false stops the scan). See the header comment for what a
  // scan running beside writers sees.
  template <class F>
  void scan(const range& r, F&& fn) const {
    walk(r, true, std::forward<F>(fn));
  }
  template <class F>
  void reverse_scan(const range& r, F&& fn) const {
    walk(r, false, std::forward<F>(fn));
  }
  template <class F>
  void for_each(F&& fn) const {
    walk(range{}, true, std::forward<F>(fn));
  }

 private:
  static std::string encoded(typename kc::in key) { return std::string(std::string_view(kc::encode(key))); }

  std::optional<value_type> seek(std::optional<std::string> from, bool inclusive, bool forward) const {
    detail::omap::cursor c;
    c.forward = forward;
    if (from) {
      c.key = std::move(*from);
      c.bounded = true;
      c.inclusive = inclusive;
    }
    std::vector<detail::omap::entry> batch;
    while (!c.done && batch.empty()) detail::omap::next_batch(*pool_, *state_, c, batch, 1);
    if (batch.empty()) return std::nullopt;
    return value_type{kc::decode(batch.front().key), vc::decode(batch.front().value)};
  }

  template <class F>
  void walk(const range& r, bool forward, F&& fn) const {
    const std::optional<key_type>& start = forward ? r.from : r.to;
    const std::optional<key_type>& stop = forward ? r.to : r.from;
    const bool stop_inclusive = forward ? r.to_inclusive : r.from_inclusive;
    detail::omap::cursor c;
    c.forward = forward;
    if (start) {
      c.key = encoded(*start);
      c.bounded = true;
      c.inclusive = forward ? r.from_inclusive : r.to_inclusive;
    }
    const std::string end = stop ? encoded(*stop) : std::string();
    std::vector<detail::omap::entry> batch;
    while (!c.done) {
      batch.clear();
      detail::omap::next_batch(*pool_, *state_, c, batch);
      for (const auto& e : batch) {
        if (stop) {
          const int cmp = std::string_view(e.key).compare(end);
          if (forward ? (cmp > 0 || (cmp == 0 && !stop_inclusive)) : (cmp < 0 || (cmp == 0 && !stop_inclusive))) return;
        }
        if constexpr (std::is_same_v<std::invoke_result_t<F&, key_type, mapped_type>, bool>) {
          if (!fn(kc::decode(e.key), vc::decode(e.value))) return;
        } else {
          fn(kc::decode(e.key), vc::decode(e.value));
        }
      }
    }
  }

  pool* pool_;
  detail::omap::map_state* state_;
};

// An ordered set: an ordered map with no values (the same engine, the same guarantees).
template <class K>
set<K> make_set(transaction& tx) {
  return set<K>{detail::omap::create(tx, false)};
}
template <class K>
void destroy(transaction& tx, set<K> s) {
  detail::destroy_container(tx, s.offset);
}

template <class K>
class set_ref {
  using map_ref = ordered_map_ref<K, detail::no_value>;
  using kc = detail::ordered_codec<K>;

 public:
  using key_type = typename map_ref::key_type;
  using range = typename map_ref::range;

  set_ref(pool& p, set<K> s) : map_(p, ordered_map<K, detail::no_value>{s.offset}) {}

  bool contains(typename kc::in key) const { return map_.contains(key); }
  // Returns true if the key was not there.
  bool insert(typename kc::in key) { return map_.insert(key, detail::no_value{}); }
  bool erase(typename kc::in key) { return map_.erase(key); }
  // Inside the caller's block, for a caller that has the set to itself (see ordered_map_ref).
  bool insert(transaction& tx, typename kc::in key) { return map_.insert(tx, key, detail::no_value{}); }
  bool erase(transaction& tx, typename kc::in key) { return map_.erase(tx, key); }
  std::uint64_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  std::optional<key_type> lower_bound(typename kc::in key) const { return key_of(map_.lower_bound(key)); }
  std::optional<key_type> upper_bound(typename kc::in key) const { return key_of(map_.upper_bound(key)); }
  std::optional<key_type> at_or_before(typename kc::in key) const { return key_of(map_.at_or_before(key)); }
  std::optional<key_type> before(typename kc::in key) const { return key_of(map_.before(key)); }
  std::optional<key_type> first() const { return key_of(map_.first()); }
  std::optional<key_type> last() const { return key_of(map_.last()); }
  template <class F>
  void scan(const range& r, F&& fn) const {
    map_.scan(r, [&](key_type k, detail::no_value) { return call(fn, std::move(k)); });
  }
  template <class F>
  void reverse_scan(const range& r, F&& fn) const {
    map_.reverse_scan(r, [&](key_type k, detail::no_value) { return call(fn, std::move(k)); });
  }
  template <class F>
  void for_each(F&& fn) const {
    scan(range{}, std::forward<F>(fn));
  }

 private:
  template <class F>
  static bool call(F& fn, key_type k) {
    if constexpr (std::is_same_v<std::invoke_result_t<F&, key_type>, bool>) {
      return fn(std::move(k));
    } else {
      fn(std::move(k));
      return true;
    }
  }
  static std::optional<key_type> key_of(std::optional<typename map_ref::value_type> e) {
    if (!e) return std::nullopt;
    return std::move(e->first);
  }
  map_ref map_;
};

}  // namespace pobj
