// The ordered map's structural changes (ordered_map_impl.hpp): new leaves, leaf and inner-node
// splits with their separators, and the removal of empty leaves and of the nodes above them.
#include <algorithm>
#include <string>
#include <vector>

#include <pobj/transaction.hpp>

#include "types/ordered_map_impl.hpp"

namespace pobj::detail::omap {

std::uint64_t new_leaf(transaction& tx) {
  allocation a = tx.alloc(leaf_size, leaf_type);
  for (std::size_t i = 0; i < leaf_slots; i += 8) store(static_cast<std::byte*>(a.pointer) + i, 0);
  return a.offset;
}

namespace {

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

}  // namespace

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
}  // namespace pobj::detail::omap
