// The ordered map engine (pobj/ordered_map.hpp): a B+ tree entirely in the pool.
// The layout and the helpers the files share are in ordered_map_impl.hpp.
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

#include "types/ordered_map_impl.hpp"
namespace pobj::detail::omap {

namespace {

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
