// The hash map engine (pobj/hash_map.hpp): extendible hashing over open-addressed segments.
//
//   header    [u64 magic "POBJHMP1"][u64 directory]
//   directory [u64 depth][u64 segment] x 2^depth      (segment for the top `depth` bits of a hash)
//   segment   [u32 local depth][u32 0][u64 count][u64 slot] x 128
//   slot      0 (empty), or tag << 48 | node offset; the tag's low 7 bits are the entry's home
//             slot (the hash's low 7 bits), its other 9 bits more of the hash (bits 39..47)
//   node      [lengths][key][value], padded to 8; lengths is one u32 (bit 31 clear: key length in
//             bits 0-7, value length in bits 8-30) when the key is under 256 bytes and the value
//             under 8 MiB, else two (the key's with bit 31 set, then the value's)
//
// A replacement with a value of the same length rewrites the node's value in place (logged);
// otherwise it writes a new node into the slot and frees the old one.
// Linear probing from the home slot; an erase shifts the rest of its cluster back (no
// tombstones); a segment splits at 96 entries (75%) into two fresh segments, copying slots (the
// nodes never change, so a split logs only the directory). Readers load every word with relaxed
// atomic loads: a node they read may be freed and reused under them, which the sequence numbers
// then reveal (and every offset they follow is checked against the pool's size first). Writers
// store the words readers load with atomic stores.
#include <pobj/hash_map.hpp>

#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pobj/heap.hpp>

#include "types/containers_impl.hpp"
#include "types/entry_node.hpp"
#include "pool/pool_impl.hpp"

namespace pobj::detail::hmap {

namespace {

using namespace containers;

constexpr std::uint64_t header_magic = 0x31504d484a424f50ULL;  // "POBJHMP1"
constexpr std::uint64_t owning_magic = 0x314f4d484a424f50ULL;  // "POBJHMO1": values are containers it owns
constexpr std::uint16_t header_type = heap_type::map_header, directory_type = heap_type::map_directory,
                        segment_type = heap_type::map_segment;
constexpr std::uint32_t slots = 128;
constexpr std::uint32_t split_at = 96;  // entries in a segment (75%)
constexpr std::uint32_t max_depth = 40;
constexpr std::size_t header_size = 16, directory_base = 8, segment_base = 16;

// Whether the map's values are containers it owns (its header says).
bool owns(const view& v, const map_state& m) noexcept { return load(v.at(m.header)) == owning_magic; }

std::byte* slot_at(const view& v, std::uint64_t segment, std::uint32_t i) noexcept {
  return v.at(segment + segment_base + std::uint64_t{i % slots} * 8);
}

// A stable 64-bit hash of a byte string (the map's layout depends on it: never change it).
std::uint64_t hash_of(std::string_view s) noexcept {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ (s.size() * 0xff51afd7ed558ccdULL);
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ (w * 0xbf58476d1ce4e5b9ULL)) * 0x94d049bb133111ebULL;
    h ^= h >> 29;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ (tail * 0xbf58476d1ce4e5b9ULL)) * 0x94d049bb133111ebULL;
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ULL;
  h ^= h >> 32;
  return h;
}

std::uint64_t tag_of(std::uint64_t hash) noexcept { return (hash & 0x7f) | ((hash >> 32) & 0xff80); }
std::uint32_t home_of(std::uint64_t slot) noexcept { return static_cast<std::uint32_t>((slot >> 48) & 0x7f); }
std::uint64_t slot_for(std::uint64_t hash, std::uint64_t node) noexcept { return tag_of(hash) << 48 | node; }

stripe& stripe_of(pool& p, std::uint64_t segment) noexcept { return containers_of(p).stripe_of(segment); }

[[noreturn]] void broken_map(pool& p) {
  throw error(errc::corrupt, fmt::format("pobj: a hash map in pool '{}' is damaged", p.path()));
}

// The segment a hash falls in; 0 if the directory looks damaged (a reader's garbage).
std::uint64_t segment_for(const view& v, std::uint64_t directory, std::uint64_t hash) noexcept {
  if (!v.plausible(directory, directory_base)) return 0;
  const std::uint64_t depth = load(v.at(directory));
  if (depth > max_depth) return 0;
  const std::uint64_t index = depth == 0 ? 0 : hash >> (64 - depth);
  if (!v.plausible(directory, directory_base + (index + 1) * 8)) return 0;
  return load(v.at(directory + directory_base + index * 8));
}

struct located {
  std::uint32_t slot = 0;  // where the key is, or the first empty slot of its probe
  std::uint64_t node = 0;  // 0 if absent
  bool full = false;       // absent, and no empty slot (cannot happen below split_at)
  bool broken = false;     // a reader saw garbage
};

// Probes for `key`. Under the segment's stripe lock (writers) the result is exact; without it
// (readers) the caller validates it with the sequence numbers.
located probe(const view& v, std::uint64_t segment, std::uint64_t hash, std::string_view key) {
  located r;
  const std::uint64_t tag = tag_of(hash);
  std::string scratch;
  for (std::uint32_t i = 0; i < slots; ++i) {
    const std::uint32_t at = static_cast<std::uint32_t>((hash + i) % slots);
    const std::uint64_t w = load(slot_at(v, segment, at));
    if (w == 0) {
      r.slot = at;
      return r;
    }
    if ((w >> 48) != tag) continue;
    const std::uint64_t n = w & offset_mask;
    if (!v.plausible(n, 8)) {
      r.broken = true;
      return r;
    }
    const lengths l = parse(load(v.at(n)));
    if (!v.plausible(n, l.size())) {
      r.broken = true;
      return r;
    }
    if (l.key != key.size()) continue;
    scratch.resize(l.key);
    read_bytes(v.at(n), l.header, l.key, scratch.data());
    if (scratch == key) {
      r.slot = at;
      r.node = n;
      return r;
    }
  }
  r.full = true;
  return r;
}

std::uint64_t new_segment(transaction& tx, std::uint32_t depth) {
  allocation a = tx.alloc(segment_base + slots * 8, segment_type);
  auto* s = static_cast<std::byte*>(a.pointer);
  store(s, depth);
  for (std::size_t i = 8; i < segment_base + slots * 8; i += 8) store(s + i, 0);
  return a.offset;
}

std::uint64_t new_directory(transaction& tx, std::uint64_t depth) {
  allocation a = tx.alloc(directory_base + (std::size_t{8} << depth), directory_type);
  store(a.pointer, depth);
  return a.offset;
}

// Splits the segment the hash falls in, if it is still full. REQUIRES: m.structure held exclusively.
void split(pool& p, map_state& m, std::uint64_t hash) {
  view v(p);
  const std::uint64_t directory = load(v.at(m.header + 8));
  const std::uint64_t depth = load(v.at(directory));
  const std::uint64_t old = segment_for(v, directory, hash);
  if (!v.plausible(old, segment_base + slots * 8) || depth > max_depth) broken_map(p);
  const auto local = static_cast<std::uint32_t>(load(v.at(old)));
  if (local > depth) broken_map(p);
  if (load(v.at(old + 8)) < split_at || local >= max_depth) return;
  // Other writers are excluded by the structure lock; readers see the sequence odd and retry.
  seq_writer changing(m.structure_seq);

  run_tx(p, [&](transaction& tx) {
    // Two fresh halves: entries whose hash bit (63 - local) is 0 go to `low`, the others to
    // `high`, each into the first free slot from its home. Nodes do not change.
    const std::uint64_t halves[2] = {new_segment(tx, local + 1), new_segment(tx, local + 1)};
    std::uint64_t counts[2] = {0, 0};
    std::string key;
    for (std::uint32_t i = 0; i < slots; ++i) {
      const std::uint64_t w = load(slot_at(v, old, i));
      if (w == 0) continue;
      if (!read_key(v, w & offset_mask, key)) broken_map(p);
      const std::uint64_t h = hash_of(key);
      const int half = static_cast<int>((h >> (63 - local)) & 1);
      std::uint32_t at = home_of(w);
      while (load(slot_at(v, halves[half], at)) != 0) at = (at + 1) % slots;
      store(slot_at(v, halves[half], at), w);
      ++counts[half];
    }
    store(v.at(halves[0] + 8), counts[0]);
    store(v.at(halves[1] + 8), counts[1]);

    if (local == depth) {  // the directory doubles
      const std::uint64_t fresh = new_directory(tx, depth + 1);
      for (std::uint64_t i = 0; i < (std::uint64_t{1} << depth); ++i) {
        const std::uint64_t s = load(v.at(directory + directory_base + i * 8));
        store(v.at(fresh + directory_base + (2 * i) * 8), s == old ? halves[0] : s);
        store(v.at(fresh + directory_base + (2 * i + 1) * 8), s == old ? halves[1] : s);
      }
      tx.snapshot(v.at(m.header + 8), 8);
      store_release(v.at(m.header + 8), fresh);
      tx.free(directory);
    } else {  // the 2^(depth - local) entries of the old segment: first half low, second high
      const std::uint64_t span = std::uint64_t{1} << (depth - local);
      const std::uint64_t first = (hash >> (64 - depth)) & ~(span - 1);
      std::byte* entries = v.at(directory + directory_base + first * 8);
      tx.snapshot(entries, span * 8);
      for (std::uint64_t i = 0; i < span; ++i) store_release(entries + i * 8, i < span / 2 ? halves[0] : halves[1]);
    }
    tx.free(old);
  });
}

// The segment of a hash, for a writer (which holds the structure lock): checked, since nothing is
// rebuilt when a pool opens and a damaged map must fail cleanly.
std::uint64_t writer_segment(pool& p, const view& v, map_state& m, std::uint64_t hash) {
  const std::uint64_t segment = segment_for(v, load(v.at(m.header + 8)), hash);
  if (!v.plausible(segment, segment_base + slots * 8)) broken_map(p);
  return segment;
}

}  // namespace

std::uint64_t create(transaction& tx, bool owning) {
  allocation h = tx.alloc(header_size, header_type);
  const std::uint64_t directory = new_directory(tx, 0);
  store(static_cast<std::byte*>(tx.get_pool().base()) + directory + directory_base, new_segment(tx, 0));
  store(h.pointer, owning ? owning_magic : header_magic);
  store(static_cast<std::byte*>(h.pointer) + 8, directory);
  return h.offset;
}

map_state& attach(pool& p, std::uint64_t header, bool owning, bool refs) {
  return attach_map(p, header, header_type, header_magic, owning_magic, owning, refs, "a hash map");
}

bool find(pool& p, map_state& m, std::string_view key, std::string* value) {
  view v(p);
  const std::uint64_t hash = hash_of(key);
  for (int attempt = 0;; ++attempt) {
    if (attempt > 16) std::this_thread::yield();
    const std::uint64_t d1 = m.structure_seq.load(std::memory_order_acquire);
    if (d1 & 1) continue;
    const std::uint64_t segment = segment_for(v, load(v.at(m.header + 8)), hash);
    // A directory being replaced can give garbage: the sequence check tells (and if it passes,
    // the map is damaged).
    if (!v.plausible(segment, segment_base + slots * 8)) {
      if (m.structure_seq.load(std::memory_order_acquire) == d1) broken_map(p);
      continue;
    }
    stripe& s = stripe_of(p, segment);
    const std::uint64_t q1 = s.seq.load(std::memory_order_acquire);
    if (q1 & 1) continue;
    located r = probe(v, segment, hash, key);
    std::string copy;
    if (r.node != 0 && value != nullptr && !r.broken) r.broken = !read_value(v, r.node, copy);
    // The data loads above are acquires, so these loads come after them.
    if (s.seq.load(std::memory_order_acquire) != q1 || m.structure_seq.load(std::memory_order_acquire) != d1) continue;
    if (r.broken) broken_map(p);  // validated: not a race, damage
    if (r.node != 0 && value != nullptr) *value = std::move(copy);
    return r.node != 0;
  }
}

int put(pool& p, map_state& m, std::string_view key, std::string_view value, bool overwrite, transaction* joining) {
  check_block(p, joining, "hash_map");
  view v(p);
  const std::uint64_t hash = hash_of(key);
  for (;;) {
    bool split_first = false;
    {
      std::shared_lock structure(m.structure);
      const std::uint64_t segment = writer_segment(p, v, m, hash);
      stripe_guard lock(stripe_of(p, segment));
      located r = probe(v, segment, hash, key);
      if (r.broken) broken_map(p);
      if (r.node != 0 && !overwrite) return 1;
      std::byte* count = v.at(segment + 8);
      // Full (other writers filled it while a split waited): split first, then try again.
      const bool can_split = load(v.at(segment)) < max_depth;
      split_first = r.node == 0 && can_split && (r.full || load(count) >= split_at);
      if (r.node == 0 && r.full && !can_split) {
        throw error(errc::out_of_space, fmt::format("pobj: a hash map segment in pool '{}' is full and at the "
                                                    "deepest split (keys with these hashes collide)",
                                                    p.path()));
      }
      std::byte* slot = slot_at(v, segment, r.slot);
      const bool owning = owns(v, m);
      if (r.node != 0) {
        run_tx(p, [&](transaction& tx) {
          replace_value(tx, v, slot, r.node, key, value, owning, m.node_type(owning), "hash_map",
                        [&](std::uint64_t fresh) { return slot_for(hash, fresh); });
        });
        return 2;
      }
      bool full = false;
      if (!split_first) run_tx(p, [&](transaction& tx) {
        const std::uint64_t fresh = make_node(tx, m.node_type(owning), key, value, "hash_map");
        tx.snapshot({byte_range{slot, 8}, byte_range{count, 8}});
        store(count, load(count) + 1);
        store_release(slot, slot_for(hash, fresh));
        full = load(count) >= split_at;
      });
      if (!split_first && !full) return 0;
    }
    if (split_first) {
      std::unique_lock structure(m.structure);
      split(p, m, hash);
      continue;
    }
    // The insert has committed; split its segment now if that succeeds (if it does not, the
    // next insert into the segment splits it first, and reports why). In a caller's block, a
    // failure has rolled that block back: the caller must hear of it.
    try {
      std::unique_lock structure(m.structure);
      split(p, m, hash);
    } catch (const error&) {
      if (joining != nullptr) throw;
    }
    return 0;
  }
}

bool erase(pool& p, map_state& m, std::string_view key, transaction* joining, bool keep_owned) {
  check_block(p, joining, "hash_map");
  view v(p);
  const std::uint64_t hash = hash_of(key);
  std::shared_lock structure(m.structure);
  const std::uint64_t segment = writer_segment(p, v, m, hash);
  stripe_guard lock(stripe_of(p, segment));
  located r = probe(v, segment, hash, key);
  if (r.broken) broken_map(p);
  if (r.node == 0) return false;
  // The cluster after the hole: its entries may move back into it (backward-shift deletion).
  std::uint32_t end = r.slot;
  while (load(slot_at(v, segment, end + 1)) != 0 && (end + 1) % slots != r.slot) ++end;
  run_tx(p, [&](transaction& tx) {
    std::vector<byte_range> ranges{{v.at(segment + 8), 8}};
    const std::uint32_t first = r.slot % slots, last = end % slots;
    if (first <= last) {
      ranges.push_back({slot_at(v, segment, first), (last - first + 1) * 8});
    } else {  // the cluster wraps around
      ranges.push_back({slot_at(v, segment, first), (slots - first) * 8});
      ranges.push_back({slot_at(v, segment, 0), (last + 1) * 8});
    }
    tx.snapshot(std::span<const byte_range>(ranges));
    std::uint32_t hole = r.slot;
    for (std::uint32_t j = r.slot + 1; j <= end; ++j) {
      const std::uint64_t w = load(slot_at(v, segment, j));
      const std::uint32_t home = home_of(w);
      // The entry at j may fill the hole if its home is not cyclically in (hole, j].
      const std::uint32_t d_home = (j - home + slots) % slots, d_hole = (j - hole + slots) % slots;
      if (d_home >= d_hole) {
        store_release(slot_at(v, segment, hole), w);
        hole = j;
      }
    }
    store_release(slot_at(v, segment, hole), 0);
    store(v.at(segment + 8), load(v.at(segment + 8)) - 1);
    free_node(tx, v, r.node, owns(v, m) && !keep_owned);
  });
  return true;
}

namespace {
// Copies the segment's entries whose key hashes to `from` or more, each as key and value in one
// string, with the key's length beside it. REQUIRES: the segment's stripe lock.
void copy_segment(pool& p, const view& v, std::uint64_t segment, std::uint64_t from, std::vector<std::string>& entries,
                  std::vector<std::uint32_t>& key_lengths) {
  for (std::uint32_t i = 0; i < slots; ++i) {
    const std::uint64_t w = load(slot_at(v, segment, i));
    if (w == 0) continue;
    const std::uint64_t n = w & offset_mask;
    if (!v.plausible(n, 8)) broken_map(p);
    const lengths l = parse(load(v.at(n)));
    if (!v.plausible(n, l.size())) broken_map(p);
    std::string kv(std::size_t{l.key} + l.value, '\0');
    read_bytes(v.at(n), l.header, kv.size(), kv.data());
    if (from != 0 && hash_of(std::string_view(kv).substr(0, l.key)) < from) continue;
    entries.push_back(std::move(kv));
    key_lengths.push_back(l.key);
  }
}

// Each segment once (the directory repeats a segment 2^(depth - local) times in a row); fn may
// return false to stop.
template <class F>
void each_segment(pool& p, const view& v, std::uint64_t directory, F&& fn) {
  if (!v.plausible(directory, directory_base)) broken_map(p);
  const std::uint64_t depth = load(v.at(directory));
  if (depth > max_depth || !v.plausible(directory, directory_base + (std::uint64_t{8} << depth))) broken_map(p);
  std::uint64_t previous = 0;
  for (std::uint64_t i = 0; i < (std::uint64_t{1} << depth); ++i) {
    const std::uint64_t s = load(v.at(directory + directory_base + i * 8));
    if (s != previous) {
      if (!v.plausible(s, segment_base + slots * 8)) broken_map(p);
      if constexpr (std::is_same_v<std::invoke_result_t<F&, std::uint64_t>, bool>) {
        if (!fn(s)) return;
      } else {
        fn(s);
      }
    }
    previous = s;
  }
}
}  // namespace

std::uint64_t size(pool& p, map_state& m) {
  view v(p);
  std::shared_lock structure(m.structure);
  std::uint64_t n = 0;
  each_segment(p, v, load(v.at(m.header + 8)), [&](std::uint64_t s) {
    // A count a writer has raised but not yet committed could still be taken back.
    n += stable_load(stripe_of(p, s), v.at(s + 8));
  });
  return n;
}

bool empty(pool& p, map_state& m) {
  view v(p);
  std::shared_lock structure(m.structure);
  bool any = false;
  each_segment(p, v, load(v.at(m.header + 8)), [&](std::uint64_t s) {
    any = stable_load(stripe_of(p, s), v.at(s + 8)) != 0;
    return !any;  // stops at the first segment holding an entry
  });
  return !any;
}

void for_each(pool& p, map_state& m, const std::function<void(std::string_view, std::string_view)>& fn) {
  view v(p);
  std::shared_lock structure(m.structure);
  std::vector<std::string> entries;  // one segment's (key, value) pairs, copied under its lock
  std::vector<std::uint32_t> key_lengths;
  each_segment(p, v, load(v.at(m.header + 8)), [&](std::uint64_t s) {
    entries.clear();
    key_lengths.clear();
    {
      stripe_guard lock(stripe_of(p, s));
      copy_segment(p, v, s, 0, entries, key_lengths);
    }
    // Outside the lock: fn may use this map or others (though it must not modify this one).
    for (std::size_t i = 0; i < entries.size(); ++i) {
      fn(std::string_view(entries[i]).substr(0, key_lengths[i]), std::string_view(entries[i]).substr(key_lengths[i]));
    }
  });
}

std::uint64_t scan(pool& p, map_state& m, std::uint64_t cursor,
                   const std::function<void(std::string_view, std::string_view)>& fn) {
  view v(p);
  std::vector<std::string> entries;  // the segment's (key, value) pairs, copied under its lock
  std::vector<std::uint32_t> key_lengths;
  std::uint64_t next = 0;
  {
    std::shared_lock structure(m.structure);
    const std::uint64_t segment = writer_segment(p, v, m, cursor);
    // The segment holds the hashes whose first `local` bits are the cursor's: a range that only
    // ever splits, so the walk's boundaries stay boundaries.
    const std::uint64_t local = load(v.at(segment));
    if (local > max_depth) broken_map(p);
    const std::uint64_t span_bits = 64 - local;
    const std::uint64_t first = local == 0 ? 0 : (cursor >> span_bits) << span_bits;
    next = local == 0 ? 0 : first + (std::uint64_t{1} << span_bits);  // 0: past the last range
    stripe_guard lock(stripe_of(p, segment));
    copy_segment(p, v, segment, cursor, entries, key_lengths);
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    fn(std::string_view(entries[i]).substr(0, key_lengths[i]), std::string_view(entries[i]).substr(key_lengths[i]));
  }
  return next;
}

void collect(pool& p, std::uint64_t header, std::vector<std::uint64_t>& out) {
  view v(p);
  const std::uint64_t directory = load(v.at(header + 8));
  const bool owning = load(v.at(header)) == owning_magic;
  out.push_back(header);  // first: a handle on the map is refused as soon as anything is freed
  out.push_back(directory);
  each_segment(p, v, directory, [&](std::uint64_t s) {
    for (std::uint32_t i = 0; i < slots; ++i) {
      if (const std::uint64_t w = load(slot_at(v, s, i)); w != 0) collect_node(p, v, w & offset_mask, owning, out);
    }
    out.push_back(s);
  });
  // The map's DRAM state stays until the pool closes: handles may still name it.
}

void attach_pool(pool& p) {
  p.heap().set_tracer(header_type, [](const void* o, std::size_t, const reference_visitor& visit) {
    visit(load(static_cast<const std::byte*>(o) + 8));
  });
  p.heap().set_tracer(directory_type, [](const void* o, std::size_t size, const reference_visitor& visit) {
    const auto* d = static_cast<const std::byte*>(o);
    const std::uint64_t depth = load(d);
    if (depth > max_depth) return;
    const std::uint64_t n = std::min<std::uint64_t>(std::uint64_t{1} << depth, (size - directory_base) / 8);
    std::uint64_t previous = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t s = load(d + directory_base + i * 8);
      if (s != previous) visit(s);
      previous = s;
    }
  });
  p.heap().set_tracer(segment_type, [](const void* o, std::size_t, const reference_visitor& visit) {
    const auto* s = static_cast<const std::byte*>(o);
    for (std::uint32_t i = 0; i < slots; ++i) {
      if (std::uint64_t w = load(s + segment_base + i * 8); w != 0) visit(w & offset_mask);
    }
  });
  // Bytes only; but a pool of format 1 may hold references in plain nodes (it had no 0xffef).
  if (p.impl().header.format_major < 2) {
    p.heap().set_tracer(heap_type::map_node, [](const void* o, std::size_t size, const reference_visitor& visit) {
      trace_possible_refs(static_cast<const std::byte*>(o), size, visit);
    });
  } else {
    p.heap().set_tracer(heap_type::map_node, [](const void*, std::size_t, const reference_visitor&) {});
  }
  p.heap().set_tracer(heap_type::map_node_refs, [](const void* o, std::size_t size, const reference_visitor& visit) {
    trace_possible_refs(static_cast<const std::byte*>(o), size, visit);
  });
  p.heap().set_tracer(heap_type::map_node_owning, [](const void* o, std::size_t, const reference_visitor& visit) {
    visit(owned_by(static_cast<const std::byte*>(o)));
  });
}

}  // namespace pobj::detail::hmap
