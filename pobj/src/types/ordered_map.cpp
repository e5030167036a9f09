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
// nodes change only while the map's structure lock is held exclusively and its structure_seq is odd.
#include <pobj/ordered_map.hpp>

#include <algorithm>
#include <array>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pobj/heap.hpp>

#include "types/containers_impl.hpp"
#include "types/entry_node.hpp"
#include "pool/pool_impl.hpp"

namespace pobj::detail::omap {

namespace {

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
bool owns(const view& v, const map_state& m) noexcept { return load(v.at(m.header)) == owning_magic; }

std::uint64_t prefix_of(std::string_view key) noexcept {
  std::uint64_t p = 0;
  const std::size_t n = std::min<std::size_t>(8, key.size());
  for (std::size_t i = 0; i < n; ++i) p |= std::uint64_t{static_cast<unsigned char>(key[i])} << (56 - 8 * i);
  return p;
}
// The shortest key with this prefix.
std::string bound_of_prefix(std::uint64_t prefix) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((prefix >> (56 - 8 * i)) & 0xff));
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}
int sign(int c) noexcept { return (c > 0) - (c < 0); }

[[noreturn]] void broken_map(pool& p) {
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
order_line load_order(const view& v, std::uint64_t leaf) noexcept {
  order_line o;
  for (std::size_t w = 0; w < 8; ++w) {
    const std::uint64_t x = load(v.at(leaf + w * 8));
    std::memcpy(o.b.data() + w * 8, &x, 8);
  }
  return o;
}
// Writes the words of `now` that differ from `before` (the order line was logged).
void store_order(const view& v, std::uint64_t leaf, const order_line& before, const order_line& now) noexcept {
  for (std::size_t w = 0; w < 8; ++w) {
    std::uint64_t a, b;
    std::memcpy(&a, before.b.data() + w * 8, 8);
    std::memcpy(&b, now.b.data() + w * 8, 8);
    if (a != b) store_release(v.at(leaf + w * 8), b);
  }
}
std::byte* slot_at(const view& v, std::uint64_t leaf, std::uint32_t s) noexcept {
  return v.at(leaf + leaf_slots + std::uint64_t{s} * 16);
}

std::uint64_t inner_count(const view& v, std::uint64_t n) noexcept { return load(v.at(n)); }
std::uint64_t inner_prefix(const view& v, std::uint64_t n, std::uint64_t i) noexcept {
  return load(v.at(n + inner_prefixes + i * 8));
}
std::uint64_t inner_sep(const view& v, std::uint64_t n, std::uint64_t i) noexcept {
  return load(v.at(n + inner_seps + i * 8));
}
std::uint64_t inner_child(const view& v, std::uint64_t n, std::uint64_t i) noexcept {
  return load(v.at(n + inner_children + i * 8));
}

// A bound between two children, as found in an inner node.
struct separator {
  std::uint64_t prefix = 0, block = 0;
  bool set = false;
};
// The key a separator stands for; false if its block is implausible.
bool bound_key(const view& v, const separator& s, std::string& out) {
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
int compare_entry(const view& v, std::uint64_t prefix, std::uint64_t word, std::string_view key, std::uint64_t kprefix,
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
int compare_sep(const view& v, const separator& s, std::string_view key, std::uint64_t kprefix, std::string& scratch,
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
thread_local std::uint64_t descent_nodes = 0;  // by this thread's descents (nodes_visited())

void descend(const view& v, std::uint64_t header, std::string_view key, route how, descent& d, bool keep_path) {
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
position search_leaf(const view& v, std::uint64_t leaf, const order_line& o, std::string_view key) {
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
void writer_descend(pool& p, const view& v, map_state& m, std::string_view key, descent& d) {
  descend(v, m.header, key, route::at, d, true);
  if (d.broken) broken_map(p);
}
order_line writer_order(pool& p, const view& v, std::uint64_t leaf) {
  order_line o = load_order(v, leaf);
  if (!o.valid()) broken_map(p);
  return o;
}

std::uint64_t new_leaf(transaction& tx) {
  allocation a = tx.alloc(leaf_size, leaf_type);
  for (std::size_t i = 0; i < leaf_slots; i += 8) store(static_cast<std::byte*>(a.pointer) + i, 0);
  return a.offset;
}

std::uint64_t new_key_block(transaction& tx, std::string_view key) {
  allocation a = tx.alloc(8 + key.size(), key_type);
  auto* b = static_cast<std::byte*>(a.pointer);
  std::vector<std::uint64_t> image((8 + key.size() + 7) / 8, 0);
  image[0] = key.size();
  std::memcpy(reinterpret_cast<char*>(image.data()) + 8, key.data(), key.size());
  for (std::size_t i = 0; i < image.size(); ++i) store(b + i * 8, image[i]);
  return a.offset;
}

struct inner_entry {
  std::uint64_t prefix = 0, sep = 0, child = 0;
};
std::vector<inner_entry> read_inner(const view& v, std::uint64_t n) {
  std::vector<inner_entry> e(inner_count(v, n));
  for (std::uint64_t i = 0; i < e.size(); ++i) e[i] = {inner_prefix(v, n, i), inner_sep(v, n, i), inner_child(v, n, i)};
  return e;
}
// Writes entries into an inner node (logged first unless fresh).
void write_inner(transaction& tx, const view& v, std::uint64_t n, const std::vector<inner_entry>& e, bool fresh) {
  if (!fresh) {
    tx.snapshot({byte_range{v.at(n), 8}, byte_range{v.at(n + inner_prefixes), 8 * inner_cap},
                 byte_range{v.at(n + inner_seps), 8 * inner_cap}, byte_range{v.at(n + inner_children), 8 * inner_cap}});
  }
  store(v.at(n), e.size());
  if (fresh) store(v.at(n + 8), 0);  // reserved (an existing node's is 0 already)
  for (std::uint64_t i = 0; i < inner_cap; ++i) {
    const inner_entry x = i < e.size() ? e[i] : inner_entry{};
    store(v.at(n + inner_prefixes + i * 8), i == 0 ? 0 : x.prefix);
    store(v.at(n + inner_seps + i * 8), i == 0 ? 0 : x.sep);
    store_release(v.at(n + inner_children + i * 8), x.child);
  }
}

// Puts (prefix, sep, right) after the child at path[depth] (the left half of a split), splitting
// inner nodes upwards as they fill, and a new root if the root split.
void insert_separator(transaction& tx, const view& v, std::uint64_t header, const std::vector<step>& path,
                      std::size_t depth, std::uint64_t left, inner_entry up) {
  if (depth == 0) {  // left was the root
    const std::uint64_t root = tx.alloc(inner_size, inner_type).offset;
    write_inner(tx, v, root, {inner_entry{0, 0, left}, up}, true);
    tx.snapshot(v.at(header + 8), 16);
    store_release(v.at(header + 8), root);
    store_release(v.at(header + 16), load(v.at(header + 16)) + 1);
    return;
  }
  const step& at = path[depth - 1];
  std::vector<inner_entry> e = read_inner(v, at.node);
  e.insert(e.begin() + static_cast<std::ptrdiff_t>(at.index + 1), up);
  if (e.size() <= inner_cap) {
    write_inner(tx, v, at.node, e, false);
    return;
  }
  // Split: entries [0, half) stay, [half, n) move to a fresh node; entry half's separator goes up.
  const std::size_t half = e.size() / 2;
  std::vector<inner_entry> right(e.begin() + static_cast<std::ptrdiff_t>(half), e.end());
  e.resize(half);
  const inner_entry raised{right[0].prefix, right[0].sep, 0};
  const std::uint64_t fresh = tx.alloc(inner_size, inner_type).offset;
  write_inner(tx, v, fresh, right, true);
  write_inner(tx, v, at.node, e, false);
  insert_separator(tx, v, header, path, depth - 1, at.node, inner_entry{raised.prefix, raised.sep, fresh});
}

// Splits the leaf key falls in, if it is still full. REQUIRES: m.structure held exclusively.
void split_leaf(pool& p, map_state& m, std::string_view key) {
  view v(p);
  descent d;
  writer_descend(p, v, m, key, d);
  const order_line o = writer_order(p, v, d.leaf);
  if (o.count() < leaf_cap) return;
  seq_writer changing(m.structure_seq);
  run_tx(p, [&](transaction& tx) {
    const std::uint32_t n = o.count();
    std::vector<std::uint64_t> prefix(n), word(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::byte* s = slot_at(v, d.leaf, o.slot(i));
      prefix[i] = load(s);
      word[i] = load(s + 8);
    }
    // Split where the prefixes differ, as near the middle as possible: the separator is then a
    // prefix alone. Otherwise the separator is the first right key, in a block of its own.
    std::uint32_t at = 0;
    for (std::uint32_t delta = 0; delta <= n / 4 && at == 0; ++delta) {
      for (const std::uint32_t s : {n / 2 - delta, n / 2 + delta}) {
        if (s > 0 && s < n && prefix[s - 1] != prefix[s]) {
          at = s;
          break;
        }
      }
    }
    std::uint64_t block = 0;
    if (at == 0) {
      at = n / 2;
      std::string first;
      if (!read_key(v, word[at] & offset_mask, first)) broken_map(p);
      block = new_key_block(tx, first);
    }
    const std::uint64_t right = new_leaf(tx);
    order_line ro;
    ro.b[0] = static_cast<std::uint8_t>(n - at);
    for (std::uint32_t i = at; i < n; ++i) {
      std::byte* s = slot_at(v, right, i - at);
      store(s, prefix[i]);
      store(s + 8, word[i]);
      ro.b[1 + i - at] = static_cast<std::uint8_t>(i - at);
    }
    store_order(v, right, order_line{}, ro);
    order_line lo = o;
    lo.b[0] = static_cast<std::uint8_t>(at);
    for (std::uint32_t i = at; i < n; ++i) lo.b[1 + i] = 0;
    tx.snapshot(v.at(d.leaf), leaf_slots);
    store_order(v, d.leaf, o, lo);
    insert_separator(tx, v, m.header, d.path, d.path.size(), d.leaf, inner_entry{prefix[at], block, right});
  });
}

// Removes an empty leaf (the one key falls in) from the tree, with the inner nodes above it that
// have no other child: the subtree goes from the lowest ancestor that has other children, whose
// neighbouring child takes its range. A root left with one child gives way to that child (the
// tree gets lower). Without this, inner nodes with a single empty leaf would pile up where a
// queue-like map is erased from one end, and every search for its first key would walk them.
// A map whose only leaf is empty keeps it. REQUIRES: m.structure held exclusively.
void remove_empty_leaf(pool& p, map_state& m, std::string_view key) {
  view v(p);
  descent d;
  writer_descend(p, v, m, key, d);
  if (d.path.empty() || writer_order(p, v, d.leaf).count() != 0) return;
  // The lowest ancestor with another child: the subtree under it, down to the leaf, goes.
  std::size_t keep = d.path.size();
  while (keep > 0 && inner_count(v, d.path[keep - 1].node) < 2) --keep;
  seq_writer changing(m.structure_seq);
  run_tx(p, [&](transaction& tx) {
    std::vector<std::uint64_t> gone{d.leaf};  // the leaf and the single-child inner nodes above it
    for (std::size_t i = keep; i < d.path.size(); ++i) gone.push_back(d.path[i].node);
    if (keep == 0) {
      // Every inner node on the path has one child: the empty leaf becomes the root.
      gone.erase(gone.begin());
      tx.snapshot(v.at(m.header + 8), 16);
      store_release(v.at(m.header + 8), d.leaf);
      store_release(v.at(m.header + 16), 0);
    } else {
      // The subtree's range joins its left neighbour's; the first child's joins its right one's
      // (whose separator then goes: the first entry has none).
      const step at = d.path[keep - 1];
      std::vector<inner_entry> e = read_inner(v, at.node);
      const std::uint64_t dropped = at.index == 0 ? e[1].sep : e[at.index].sep;
      e.erase(e.begin() + static_cast<std::ptrdiff_t>(at.index));
      write_inner(tx, v, at.node, e, false);
      if (dropped != 0) tx.free(dropped);
      // A root with one child left: the child is the root (again while that holds).
      std::uint64_t root = load(v.at(m.header + 8)), height = load(v.at(m.header + 16));
      if (height > 0 && inner_count(v, root) == 1) {
        tx.snapshot(v.at(m.header + 8), 16);
        while (height > 0 && inner_count(v, root) == 1) {
          gone.push_back(root);
          root = inner_child(v, root, 0);
          --height;
        }
        store_release(v.at(m.header + 8), root);
        store_release(v.at(m.header + 16), height);
      }
    }
    for (const std::uint64_t block : gone) tx.free(block);
  });
}

// Calls on_leaf(leaf) for every leaf under node and on_inner(node) for every inner node after
// its children, checking each (inner nodes hold still: the caller holds the structure lock or
// owns the map).
template <class Leaf, class Inner>
void each_node(pool& p, const view& v, std::uint64_t node, std::uint64_t level, Leaf& on_leaf, Inner& on_inner) {
  if (level == 0) {
    if (!v.plausible(node, leaf_size)) broken_map(p);
    on_leaf(node);
    return;
  }
  if (!v.plausible(node, inner_size)) broken_map(p);
  const std::uint64_t count = inner_count(v, node);
  if (count == 0 || count > inner_cap) broken_map(p);
  for (std::uint64_t i = 0; i < count; ++i) each_node(p, v, inner_child(v, node, i), level - 1, on_leaf, on_inner);
  on_inner(node, count);
}
// The same from the map's root.
template <class Leaf, class Inner>
void walk_tree(pool& p, const view& v, std::uint64_t header, Leaf& on_leaf, Inner& on_inner) {
  const std::uint64_t height = load(v.at(header + 16));
  if (height > max_height) broken_map(p);
  each_node(p, v, load(v.at(header + 8)), height, on_leaf, on_inner);
}

// Runs read(view, descent, order line) on the leaf that `key` routes to (by `how`) as one
// consistent snapshot, without a lock: again while a writer of the leaf or a structure change
// runs meanwhile. read returns false on garbage, which is damage once the sequence numbers
// confirm the snapshot (a race otherwise).
template <class Read>
void read_leaf(pool& p, map_state& m, std::string_view key, route how, Read&& read) {
  const view v(p);
  descent d;
  for (int attempt = 0;; ++attempt) {
    if (attempt > 16) std::this_thread::yield();
    const std::uint64_t t1 = m.structure_seq.load(std::memory_order_acquire);
    if (t1 & 1) continue;
    descend(v, m.header, key, how, d, false);
    if (d.broken) {
      if (m.structure_seq.load(std::memory_order_acquire) == t1) broken_map(p);
      continue;
    }
    stripe& s = containers_of(p).stripe_of(d.leaf);
    const std::uint64_t q1 = s.seq.load(std::memory_order_acquire);
    if (q1 & 1) continue;
    const order_line o = load_order(v, d.leaf);
    const bool ok = o.valid() && read(v, d, o);
    // The loads above are acquires, so these come after them.
    if (s.seq.load(std::memory_order_acquire) != q1 || m.structure_seq.load(std::memory_order_acquire) != t1) continue;
    if (!ok) broken_map(p);
    return;
  }
}

}  // namespace

std::uint64_t create(transaction& tx, bool owning) {
  allocation h = tx.alloc(header_size, header_type);
  const std::uint64_t leaf = new_leaf(tx);
  store(h.pointer, owning ? owning_magic : header_magic);
  store(static_cast<std::byte*>(h.pointer) + 8, leaf);
  store(static_cast<std::byte*>(h.pointer) + 16, 0);
  return h.offset;
}

std::uint64_t nodes_visited() noexcept { return descent_nodes; }

map_state& attach(pool& p, std::uint64_t header, bool owning, bool refs) {
  return attach_map(p, header, header_type, header_magic, owning_magic, owning, refs, "an ordered map");
}

bool find(pool& p, map_state& m, std::string_view key, std::string* value) {
  bool found = false;
  read_leaf(p, m, key, route::at, [&](const view& v, const descent& d, const order_line& o) {
    const position r = search_leaf(v, d.leaf, o, key);
    found = r.found;
    if (r.broken) return false;
    if (!r.found || value == nullptr) return true;
    return read_value(v, load(slot_at(v, d.leaf, o.slot(r.index)) + 8) & offset_mask, *value);
  });
  return found;
}

int put(pool& p, map_state& m, std::string_view key, std::string_view value, bool overwrite, transaction* joining) {
  check_block(p, joining, "ordered_map");
  view v(p);
  const std::uint64_t kprefix = prefix_of(key);
  const std::uint64_t klen = std::min<std::uint64_t>(key.size(), 0xffff) << 48;
  descent d;
  for (;;) {
    {
      std::shared_lock structure(m.structure);
      writer_descend(p, v, m, key, d);
      stripe_guard lock(containers_of(p).stripe_of(d.leaf));
      const order_line o = writer_order(p, v, d.leaf);
      const position r = search_leaf(v, d.leaf, o, key);
      if (r.broken) broken_map(p);
      if (r.found) {
        if (!overwrite) return 1;
        std::byte* s = slot_at(v, d.leaf, o.slot(r.index));
        const std::uint64_t node = load(s + 8) & offset_mask;
        if (!v.plausible(node, 8)) broken_map(p);
        run_tx(p, [&](transaction& tx) {
          replace_value(tx, v, s + 8, node, key, value, owns(v, m), m.node_type(owns(v, m)), "ordered_map",
                        [&](std::uint64_t fresh) { return klen | fresh; });
        });
        return 2;
      }
      if (o.count() < leaf_cap) {
        std::array<bool, leaf_cap> used{};
        for (std::uint32_t i = 0; i < o.count(); ++i) used[o.slot(i)] = true;
        const auto free_slot = static_cast<std::uint32_t>(std::find(used.begin(), used.end(), false) - used.begin());
        std::byte* s = slot_at(v, d.leaf, free_slot);
        run_tx(p, [&](transaction& tx) {
          const std::uint64_t fresh = make_node(tx, m.node_type(owns(v, m)), key, value, "ordered_map");
          tx.snapshot({byte_range{v.at(d.leaf), leaf_slots}, byte_range{s, 16}});
          store(s, kprefix);
          store(s + 8, klen | fresh);
          order_line now = o;
          std::copy_backward(o.b.begin() + 1 + r.index, o.b.begin() + 1 + o.count(), now.b.begin() + 2 + o.count());
          now.b[1 + r.index] = static_cast<std::uint8_t>(free_slot);
          now.b[0] = static_cast<std::uint8_t>(o.count() + 1);
          store_order(v, d.leaf, o, now);
        });
        return 0;
      }
    }
    // The leaf is full: split it (under the exclusive lock), then try again.
    std::unique_lock structure(m.structure);
    split_leaf(p, m, key);
  }
}

bool erase(pool& p, map_state& m, std::string_view key, transaction* joining) {
  check_block(p, joining, "ordered_map");
  view v(p);
  bool emptied = false;
  {
    std::shared_lock structure(m.structure);
    descent d;
    writer_descend(p, v, m, key, d);
    stripe_guard lock(containers_of(p).stripe_of(d.leaf));
    const order_line o = writer_order(p, v, d.leaf);
    const position r = search_leaf(v, d.leaf, o, key);
    if (r.broken) broken_map(p);
    if (!r.found) return false;
    const std::uint64_t node = load(slot_at(v, d.leaf, o.slot(r.index)) + 8) & offset_mask;
    run_tx(p, [&](transaction& tx) {
      tx.snapshot(v.at(d.leaf), leaf_slots);
      order_line now = o;
      std::copy(o.b.begin() + 2 + r.index, o.b.begin() + 1 + o.count(), now.b.begin() + 1 + r.index);
      now.b[o.count()] = 0;
      now.b[0] = static_cast<std::uint8_t>(o.count() - 1);
      store_order(v, d.leaf, o, now);
      free_node(tx, v, node, owns(v, m));
    });
    emptied = o.count() == 1 && !d.path.empty();
  }
  if (emptied) {
    // The erase has committed; reclaim the leaf if that succeeds (if it does not, an empty leaf
    // stays, which is harmless).
    try {
      std::unique_lock structure(m.structure);
      remove_empty_leaf(p, m, key);
    } catch (const error&) {
      if (joining != nullptr) throw;  // it rolled the caller's block back: say so
    }
  }
  return true;
}

std::uint64_t size(pool& p, map_state& m) {
  view v(p);
  std::shared_lock structure(m.structure);
  std::uint64_t n = 0;
  auto count = [&](std::uint64_t leaf) {
    // A count a writer has changed but not yet committed could still be taken back.
    const std::uint64_t c = stable_load(containers_of(p).stripe_of(leaf), v.at(leaf)) & 0xff;
    if (c > leaf_cap) broken_map(p);
    n += c;
  };

  auto nothing = [](std::uint64_t, std::uint64_t) {};
  walk_tree(p, v, m.header, count, nothing);
  return n;
}

void next_batch(pool& p, map_state& m, cursor& c, std::vector<entry>& out, std::size_t limit) {
  if (c.done) return;
  const route how = !c.bounded ? (c.forward ? route::leftmost : route::rightmost)
                               : (c.forward || c.inclusive ? route::at : route::before);
  std::vector<entry> batch;
  std::string next;
  bool last = false;
  read_leaf(p, m, c.key, how, [&](const view& v, const descent& d, const order_line& o) {
    batch.clear();
    // Forward: the positions from the first key past the bound; backward: down from the last
    // key before it.
    std::uint32_t from = 0, to = o.count();
    if (c.bounded) {
      const position r = search_leaf(v, d.leaf, o, c.key);
      if (r.broken) return false;
      if (c.forward) {
        from = r.index + (r.found && !c.inclusive ? 1 : 0);
      } else {
        to = r.index + (r.found && c.inclusive ? 1 : 0);
      }
    }
    for (std::uint32_t i = from; i < to && batch.size() < limit; ++i) {
      const std::uint32_t at = c.forward ? i : to - 1 - (i - from);
      const std::uint64_t node = load(slot_at(v, d.leaf, o.slot(at)) + 8) & offset_mask;
      entry& e = batch.emplace_back();
      if (!read_key(v, node, e.key) || !read_value(v, node, e.value)) return false;
    }
    const separator& bound = c.forward ? d.high : d.low;
    last = !bound.set;
    return last || bound_key(v, bound, next);
  });
  const bool cut = batch.size() >= limit;
  for (auto& e : batch) out.push_back(std::move(e));
  if (last || cut) {
    c.done = true;
  } else {
    c.key = std::move(next);
    c.bounded = true;
    c.inclusive = c.forward;  // forward: from the next leaf's low bound; backward: below this one's
  }
}

void collect(pool& p, std::uint64_t header, std::vector<std::uint64_t>& out) {
  view v(p);
  const bool owning = load(v.at(header)) == owning_magic;
  out.push_back(header);  // first: a handle on the map is refused as soon as anything is freed
  auto leaf = [&](std::uint64_t node) {
    const order_line o = writer_order(p, v, node);
    for (std::uint32_t i = 0; i < o.count(); ++i) {
      collect_node(p, v, load(slot_at(v, node, o.slot(i)) + 8) & offset_mask, owning, out);
    }
    out.push_back(node);
  };
  auto inner = [&](std::uint64_t node, std::uint64_t count) {
    for (std::uint64_t i = 1; i < count; ++i) {
      if (const std::uint64_t sep = inner_sep(v, node, i); sep != 0) out.push_back(sep);
    }
    out.push_back(node);
  };
  walk_tree(p, v, header, leaf, inner);
}

void attach_pool(pool& p) {
  p.heap().set_tracer(header_type, [](const void* o, std::size_t, const reference_visitor& visit) {
    visit(load(static_cast<const std::byte*>(o) + 8));
  });
  p.heap().set_tracer(inner_type, [](const void* o, std::size_t, const reference_visitor& visit) {
    const auto* n = static_cast<const std::byte*>(o);
    const std::uint64_t count = std::min<std::uint64_t>(load(n), inner_cap);
    for (std::uint64_t i = 0; i < count; ++i) {
      if (i > 0) {
        if (const std::uint64_t s = load(n + inner_seps + i * 8); s != 0) visit(s);
      }
      visit(load(n + inner_children + i * 8));
    }
  });
  p.heap().set_tracer(leaf_type, [](const void* o, std::size_t, const reference_visitor& visit) {
    const auto* l = static_cast<const std::byte*>(o);
    order_line ord;
    std::memcpy(ord.b.data(), l, 64);
    const std::uint32_t count = std::min<std::uint32_t>(ord.count(), leaf_cap);
    for (std::uint32_t i = 0; i < count; ++i) {
      visit(load(l + leaf_slots + std::uint64_t{ord.slot(i) % leaf_cap} * 16 + 8) & offset_mask);
    }
  });
}

}  // namespace pobj::detail::omap
