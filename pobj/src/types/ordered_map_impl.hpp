// What the ordered map's files share (ordered_map.cpp: the operations; ordered_map_tree.cpp:
// splits and removals of nodes): the tree's layout, word access to its nodes, and the descent.
//
// The ordered map engine (pobj/ordered_map.hpp): a B+ tree entirely in the pool.
//
//   header  [u64 magic "POBJOMP1"][u64 root][u64 height]     height 0: the root is a leaf
//   inner   [u64 count][u64 0][u64 prefix] x 63 [u64 separator] x 63 [u64 child] x 63
//           child i holds the keys from separator i (i >= 1) up to separator i + 1; entry 0's
//           prefix and separator are unused. A separator is its prefix alone (separator word 0:
//           the bound is the shortest key with that prefix) or a string block [u64 len][bytes]
//           with the whole key, when the keys on both sides share their first 8 bytes.
//   leaf    [u8 count][u8 order] x 63   (one line: order[i] is the slot of the i-th key)
//           then 63 slots [u64 prefix][u64 length << 48 | node]   (length capped at 0xffff)
//   node    the hash map's node: [lengths][key][value] (entry_node.hpp)
//
// A prefix is a key's first 8 bytes, big-endian, zero-padded: prefixes order as the keys do
// (prefix(a) < prefix(b) implies a < b), and two keys of at most 8 bytes with equal prefixes
// order by length, so a search dereferences a node only for longer keys with equal prefixes.
//
// An insert fills a free slot and rewrites the order line, logging both (one fence) before the
// commit; an erase rewrites the order line. A full leaf splits, in one block, into itself and a
// fresh leaf, at a point where the prefixes differ if one is near the middle; the separator goes
// into the parent, which splits in turn when full (a new root when the root splits). A leaf left
// empty by an erase is removed in one block, with the inner nodes above it that have no other
// child, and a root left with one child gives way to it (remove_empty_leaf). Inner
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <pobj/heap.hpp>
#include <pobj/ordered_map.hpp>

#include "pool/pool_impl.hpp"
#include "types/containers_impl.hpp"
#include "types/entry_node.hpp"

namespace pobj::detail::omap {

using namespace containers;

constexpr std::uint64_t header_magic = 0x31504d4f4a424f50ULL;  // "POBJOMP1"
constexpr std::uint64_t owning_magic = 0x314f4d4f4a424f50ULL;  // "POBJOMO1": values are containers it owns
constexpr std::uint16_t header_type = heap_type::tree_header, inner_type = heap_type::tree_inner,
                        leaf_type = heap_type::tree_leaf, key_type = heap_type::string;
constexpr std::uint32_t leaf_cap = 63, inner_cap = 63;
constexpr std::size_t header_size = 24;
constexpr std::size_t leaf_slots = 64, leaf_size = leaf_slots + leaf_cap * 16;
constexpr std::size_t inner_prefixes = 16, inner_seps = inner_prefixes + 8 * inner_cap,
                      inner_children = inner_seps + 8 * inner_cap, inner_size = inner_children + 8 * inner_cap;
constexpr std::uint64_t max_height = 24;
constexpr std::uint64_t max_key_block = std::uint64_t{1} << 31;


// Whether the map's values are containers it owns (its header says).
inline bool owns(const view& v, const map_state& m) noexcept { return load(v.at(m.header)) == owning_magic; }

inline std::uint64_t prefix_of(std::string_view key) noexcept {
  std::uint64_t p = 0;
  const std::size_t n = std::min<std::size_t>(8, key.size());
  for (std::size_t i = 0; i < n; ++i) p |= std::uint64_t{static_cast<unsigned char>(key[i])} << (56 - 8 * i);
  return p;
}
// The shortest key with this prefix.
inline std::string bound_of_prefix(std::uint64_t prefix) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((prefix >> (56 - 8 * i)) & 0xff));
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}
inline int sign(int c) noexcept { return (c > 0) - (c < 0); }

[[noreturn]] inline void broken_map(pool& p) {
  throw error(errc::corrupt, fmt::format("pobj: an ordered map in pool '{}' is damaged", p.path()));
}

// The order line of a leaf.
struct order_line {
  std::array<std::uint8_t, 64> b{};
  std::uint32_t count() const noexcept { return b[0]; }
  std::uint32_t slot(std::uint32_t i) const noexcept { return b[1 + i]; }
  bool valid() const noexcept {
    if (count() > leaf_cap) return false;
    for (std::uint32_t i = 0; i < count(); ++i) {
      if (slot(i) >= leaf_cap) return false;
    }
    return true;
  }
};
inline order_line load_order(const view& v, std::uint64_t leaf) noexcept {
  order_line o;
  for (std::size_t w = 0; w < 8; ++w) {
    const std::uint64_t x = load(v.at(leaf + w * 8));
    std::memcpy(o.b.data() + w * 8, &x, 8);
  }
  return o;
}
// Writes the words of `now` that differ from `before` (the order line was logged).
inline void store_order(const view& v, std::uint64_t leaf, const order_line& before, const order_line& now) noexcept {
  for (std::size_t w = 0; w < 8; ++w) {
    std::uint64_t a, b;
    std::memcpy(&a, before.b.data() + w * 8, 8);
    std::memcpy(&b, now.b.data() + w * 8, 8);
    if (a != b) store_release(v.at(leaf + w * 8), b);
  }
}
inline std::byte* slot_at(const view& v, std::uint64_t leaf, std::uint32_t s) noexcept {
  return v.at(leaf + leaf_slots + std::uint64_t{s} * 16);
}

inline std::uint64_t inner_count(const view& v, std::uint64_t n) noexcept { return load(v.at(n)); }
inline std::uint64_t inner_prefix(const view& v, std::uint64_t n, std::uint64_t i) noexcept {
  return load(v.at(n + inner_prefixes + i * 8));
}
inline std::uint64_t inner_sep(const view& v, std::uint64_t n, std::uint64_t i) noexcept {
  return load(v.at(n + inner_seps + i * 8));
}
inline std::uint64_t inner_child(const view& v, std::uint64_t n, std::uint64_t i) noexcept {
  return load(v.at(n + inner_children + i * 8));
}

// A bound between two children, as found in an inner node.
struct separator {
  std::uint64_t prefix = 0, block = 0;
  bool set = false;
};
// The key a separator stands for; false if its block is implausible.
inline bool bound_key(const view& v, const separator& s, std::string& out) {
  if (s.block == 0) {
    out = bound_of_prefix(s.prefix);
    return true;
  }
  if (!v.plausible(s.block, 8)) return false;
  const std::uint64_t len = load(v.at(s.block));
  if (len >= max_key_block || !v.plausible(s.block, 8 + len)) return false;
  out.resize(len);
  read_bytes(v.at(s.block), 8, len, out.data());
  return true;
}

// Compares what a slot holds with `key` (entry minus key, as a sign); sets broken on garbage.
inline int compare_entry(const view& v, std::uint64_t prefix, std::uint64_t word, std::string_view key, std::uint64_t kprefix,
                  std::string& scratch, bool& broken) {
  if (prefix != kprefix) return prefix < kprefix ? -1 : 1;
  const std::uint64_t len = word >> 48;
  if (len <= 8 && key.size() <= 8) return len < key.size() ? -1 : (len > key.size() ? 1 : 0);
  if (!read_key(v, word & offset_mask, scratch)) {
    broken = true;
    return 0;
  }
  return sign(std::string_view(scratch).compare(key));
}
// The same for a separator (its bound minus key).
inline int compare_sep(const view& v, const separator& s, std::string_view key, std::uint64_t kprefix, std::string& scratch,
                bool& broken) {
  if (s.prefix != kprefix) return s.prefix < kprefix ? -1 : 1;
  if (s.block == 0) {
    // The bound is the shortest key with this prefix: at most key, equal when key is it.
    return key.size() <= 8 && bound_of_prefix(s.prefix).size() == key.size() ? 0 : -1;
  }
  if (!bound_key(v, s, scratch)) {
    broken = true;
    return 0;
  }
  return sign(std::string_view(scratch).compare(key));
}

enum class route { at, before, leftmost, rightmost };

struct step {
  std::uint64_t node = 0, index = 0;
};
struct descent {
  std::uint64_t leaf = 0;
  std::vector<step> path;  // the inner nodes from the root, with the child taken
  separator low, high;     // the leaf's bounds, where it has them
  bool broken = false;
};

// Descends from the root to the leaf whose range holds `key` (route::at: the keys at most key;
// route::before: the keys less than key). Readers validate the result with structure_seq.
inline thread_local std::uint64_t descent_nodes = 0;  // by this thread's descents (nodes_visited())

inline void descend(const view& v, std::uint64_t header, std::string_view key, route how, descent& d, bool keep_path) {
  descent_nodes += 1 + load(v.at(header + 16));
  d.path.clear();
  d.low = d.high = separator{};
  d.broken = false;
  std::uint64_t node = load(v.at(header + 8));
  const std::uint64_t height = load(v.at(header + 16));
  if (height > max_height) {
    d.broken = true;
    return;
  }
  const std::uint64_t kprefix = prefix_of(key);
  std::string scratch;
  for (std::uint64_t level = height; level > 0; --level) {
    if (!v.plausible(node, inner_size)) {
      d.broken = true;
      return;
    }
    const std::uint64_t count = inner_count(v, node);
    if (count == 0 || count > inner_cap) {
      d.broken = true;
      return;
    }
    std::uint64_t child;
    if (how == route::leftmost) {
      child = 0;
    } else if (how == route::rightmost) {
      child = count - 1;
    } else {
      // The first separator past the key (at: greater than key; before: at least key).
      std::uint64_t lo = 1, hi = count;
      while (lo < hi) {
        const std::uint64_t mid = (lo + hi) / 2;
        const separator s{inner_prefix(v, node, mid), inner_sep(v, node, mid), true};
        const int c = compare_sep(v, s, key, kprefix, scratch, d.broken);
        if (d.broken) return;
        if (how == route::at ? c > 0 : c >= 0) {
          hi = mid;
        } else {
          lo = mid + 1;
        }
      }
      child = lo - 1;
    }
    if (child > 0) d.low = separator{inner_prefix(v, node, child), inner_sep(v, node, child), true};
    if (child + 1 < count) d.high = separator{inner_prefix(v, node, child + 1), inner_sep(v, node, child + 1), true};
    if (keep_path) d.path.push_back({node, child});
    node = inner_child(v, node, child);
  }
  if (!v.plausible(node, leaf_size)) {
    d.broken = true;
    return;
  }
  d.leaf = node;
}

// Where key is in a leaf: the first position whose key is not less than it, and whether it is
// equal there.
struct position {
  std::uint32_t index = 0;
  bool found = false;
  bool broken = false;
};
inline position search_leaf(const view& v, std::uint64_t leaf, const order_line& o, std::string_view key) {
  position r;
  const std::uint64_t kprefix = prefix_of(key);
  std::string scratch;
  std::uint32_t lo = 0, hi = o.count();
  while (lo < hi) {
    const std::uint32_t mid = (lo + hi) / 2;
    const std::byte* s = slot_at(v, leaf, o.slot(mid));
    const int c = compare_entry(v, load(s), load(s + 8), key, kprefix, scratch, r.broken);
    if (r.broken) return r;
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  r.index = lo;
  if (lo < o.count()) {
    const std::byte* s = slot_at(v, leaf, o.slot(lo));
    r.found = compare_entry(v, load(s), load(s + 8), key, kprefix, scratch, r.broken) == 0;
  }
  return r;
}

// The descent a writer makes (holding the structure lock, so inner nodes hold still): checked,
// since a damaged map must fail cleanly.
inline void writer_descend(pool& p, const view& v, map_state& m, std::string_view key, descent& d) {
  descend(v, m.header, key, route::at, d, true);
  if (d.broken) broken_map(p);
}
inline order_line writer_order(pool& p, const view& v, std::uint64_t leaf) {
  order_line o = load_order(v, leaf);
  if (!o.valid()) broken_map(p);
  return o;
}


// The tree's structural changes (ordered_map_tree.cpp).
std::uint64_t new_leaf(transaction& tx);
// Splits the full leaf where `key` goes (and its parents, as they fill), in one block.
void split_leaf(pool& p, map_state& m, std::string_view key);
// Removes the empty leaf where `key` would go, with the inner nodes above it left with no
// other child, and lowers a root left with one child, in one block.
void remove_empty_leaf(pool& p, map_state& m, std::string_view key);

}  // namespace pobj::detail::omap
