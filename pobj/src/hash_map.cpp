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

#include "hash_map_impl.hpp"
#include "pool_impl.hpp"

namespace pobj::detail::hmap {

namespace {

constexpr std::uint64_t header_magic = 0x31504d484a424f50ULL;  // "POBJHMP1"
constexpr std::uint16_t header_type = heap_type::map_header, directory_type = heap_type::map_directory,
                        segment_type = heap_type::map_segment, node_type = heap_type::map_node;
constexpr std::uint32_t slots = 128;
constexpr std::uint32_t split_at = 96;  // entries in a segment (75%)
constexpr std::uint32_t max_depth = 40;
constexpr std::size_t header_size = 16, directory_base = 8, segment_base = 16;
constexpr std::uint64_t offset_mask = (std::uint64_t{1} << 48) - 1;

// Every load a reader makes is an acquire (free on x86): the sequence number it checks last
// cannot be read before the data, with no fence (ThreadSanitizer does not model fences).
std::uint64_t load(const void* p) noexcept { return __atomic_load_n(static_cast<const std::uint64_t*>(p), __ATOMIC_ACQUIRE); }
std::uint64_t load_acquire(const void* p) noexcept {
  return __atomic_load_n(static_cast<const std::uint64_t*>(p), __ATOMIC_ACQUIRE);
}
void store(void* p, std::uint64_t v) noexcept { __atomic_store_n(static_cast<std::uint64_t*>(p), v, __ATOMIC_RELAXED); }
void store_release(void* p, std::uint64_t v) noexcept {
  __atomic_store_n(static_cast<std::uint64_t*>(p), v, __ATOMIC_RELEASE);
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

struct lengths {
  std::uint32_t key = 0, value = 0, header = 4;
  std::size_t size() const noexcept { return (header + std::size_t{key} + value + 7) & ~std::size_t{7}; }
};
lengths lengths_for(std::size_t k, std::size_t v) noexcept {
  if (k < 256 && v < (std::size_t{1} << 23)) return {static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(v), 4};
  return {static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(v), 8};
}
// The lengths a node's first word gives (a reader may be looking at garbage: callers check
// size() against the pool before reading further).
lengths parse(std::uint64_t w) noexcept {
  const auto low = static_cast<std::uint32_t>(w);
  if ((low & 0x80000000u) == 0) return {low & 0xff, low >> 8, 4};
  return {low & 0x7fffffffu, static_cast<std::uint32_t>(w >> 32), 8};
}
std::uint64_t encode(const lengths& l) noexcept {
  if (l.header == 4) return l.key | (std::uint64_t{l.value} << 8);
  return (l.key | 0x80000000u) | (std::uint64_t{l.value} << 32);
}

pool_maps& maps_of(pool& p) { return *p.impl().maps; }
stripe& stripe_of(pool& p, std::uint64_t segment) noexcept {
  return maps_of(p).stripes[(segment >> 4) % pool_maps::stripe_count];
}

// A stripe held by a writer: its sequence number is odd from lock to unlock.
class stripe_guard {
 public:
  explicit stripe_guard(stripe& s) noexcept : s_(s) {
    for (int spin = 0; s_.locked.exchange(true, std::memory_order_acquire); ++spin) {
      if (spin > 64) std::this_thread::yield();
    }
    s_.seq.fetch_add(1, std::memory_order_acq_rel);  // acquire: no later store moves before it
  }
  ~stripe_guard() {
    s_.seq.fetch_add(1, std::memory_order_release);
    s_.locked.store(false, std::memory_order_release);
  }
  stripe_guard(const stripe_guard&) = delete;
  stripe_guard& operator=(const stripe_guard&) = delete;

 private:
  stripe& s_;
};

// Copies n bytes at `from` (inside a node, 8-aligned node) with word loads.
void read_bytes(const std::byte* node, std::size_t from, std::size_t n, char* out) noexcept {
  std::size_t at = from;
  while (n > 0) {
    const std::size_t word = at & ~std::size_t{7};
    const std::uint64_t w = load(node + word);
    const std::size_t skip = at - word;
    const std::size_t take = std::min<std::size_t>(8 - skip, n);
    std::memcpy(out, reinterpret_cast<const char*>(&w) + skip, take);
    out += take;
    at += take;
    n -= take;
  }
}

class view {
 public:
  explicit view(pool& p) : p_(p), base_(p.base()) {}
  std::byte* at(std::uint64_t off) const noexcept { return base_ + off; }
  // An offset a reader may follow: inside the heap, 8-aligned, and `len` bytes from it inside the
  // pool (a reader racing with writers may have loaded garbage; the sequence check rejects it).
  bool plausible(std::uint64_t off, std::uint64_t len) const noexcept {
    return off >= p_.impl().header.heap_offset && off % 8 == 0 && len <= p_.size() && off <= p_.size() - len;
  }
  std::byte* slot(std::uint64_t segment, std::uint32_t i) const noexcept {
    return at(segment + segment_base + std::uint64_t{i % slots} * 8);
  }

 private:
  pool& p_;
  std::byte* base_;
};

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
    const std::uint64_t w = load_acquire(v.slot(segment, at));
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

// A new node holding key and value, in the block (fresh: written in place, never logged).
std::uint64_t make_node(transaction& tx, std::string_view key, std::string_view value) {
  if (key.size() >= (std::size_t{1} << 31) || value.size() > 0xffffffffu) {
    throw error(errc::invalid_argument, "pobj: hash_map keys hold less than 2 GiB and values at most 4 GiB - 1 bytes");
  }
  const lengths l = lengths_for(key.size(), value.size());
  const std::size_t size = l.size();
  allocation a = tx.alloc(size, node_type);
  if (a.offset > offset_mask) throw error(errc::out_of_space, "pobj: hash_map nodes must lie in the first 256 TiB");
  std::vector<std::uint64_t> image(size / 8, 0);
  image[0] = encode(l);
  auto* bytes = reinterpret_cast<char*>(image.data()) + l.header;
  std::memcpy(bytes, key.data(), key.size());
  std::memcpy(bytes + key.size(), value.data(), value.size());
  auto* words = static_cast<std::byte*>(a.pointer);
  for (std::size_t i = 0; i < image.size(); ++i) store(words + i * 8, image[i]);
  return a.offset;
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

std::string key_of(const view& v, std::uint64_t node) {
  const lengths l = parse(load(v.at(node)));
  std::string key(l.key, '\0');
  read_bytes(v.at(node), l.header, l.key, key.data());
  return key;
}

[[noreturn]] void broken_map(pool& p) {
  throw error(errc::corrupt, fmt::format("pobj: a hash map in pool '{}' is damaged", p.path()));
}

// Splits the segment the hash falls in, if it is still full. REQUIRES: m.resize held exclusively.
void split(pool& p, map_state& m, std::uint64_t hash) {
  view v(p);
  const std::uint64_t directory = load(v.at(m.header + 8));
  const std::uint64_t depth = load(v.at(directory));
  const std::uint64_t old = segment_for(v, directory, hash);
  if (!v.plausible(old, segment_base + slots * 8) || depth > max_depth) broken_map(p);
  const auto local = static_cast<std::uint32_t>(load(v.at(old)));
  if (local > depth) broken_map(p);
  if (load(v.at(old + 8)) < split_at || local >= max_depth) return;
  // Other writers are excluded by the resize lock; readers see dir_seq odd and retry.
  m.dir_seq.fetch_add(1, std::memory_order_acq_rel);  // acquire: no later store moves before it
  struct seq_end {
    map_state& m;
    ~seq_end() { m.dir_seq.fetch_add(1, std::memory_order_release); }
  } end{m};

  run_tx(p, [&](transaction& tx) {
    // Two fresh halves: entries whose hash bit (63 - local) is 0 go to `low`, the others to
    // `high`, each into the first free slot from its home. Nodes do not change.
    const std::uint64_t halves[2] = {new_segment(tx, local + 1), new_segment(tx, local + 1)};
    std::uint64_t counts[2] = {0, 0};
    for (std::uint32_t i = 0; i < slots; ++i) {
      const std::uint64_t w = load(v.slot(old, i));
      if (w == 0) continue;
      const std::uint64_t h = hash_of(key_of(v, w & offset_mask));
      const int half = static_cast<int>((h >> (63 - local)) & 1);
      std::uint32_t at = home_of(w);
      while (load(v.slot(halves[half], at)) != 0) at = (at + 1) % slots;
      store(v.slot(halves[half], at), w);
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


// Map operations are blocks of their own: inside the caller's block, its abort could restore
// slots other writers have changed since, and readers would see changes before they commit.
void refuse_in_block(pool& p) {
  if (transaction::active(p)) {
    throw error(errc::invalid_argument,
                "pobj: a hash_map operation inside a failure-atomic block (each operation is durable and atomic "
                "on its own)");
  }
}

// The segment of a hash, for a writer (which holds the resize lock): checked, since nothing is
// rebuilt when a pool opens and a damaged map must fail cleanly.
std::uint64_t writer_segment(pool& p, const view& v, map_state& m, std::uint64_t hash) {
  const std::uint64_t segment = segment_for(v, load(v.at(m.header + 8)), hash);
  if (!v.plausible(segment, segment_base + slots * 8)) broken_map(p);
  return segment;
}

}  // namespace

std::uint64_t create(transaction& tx) {
  allocation h = tx.alloc(header_size, header_type);
  const std::uint64_t directory = new_directory(tx, 0);
  store(static_cast<std::byte*>(tx.get_pool().base()) + directory + directory_base, new_segment(tx, 0));
  store(h.pointer, header_magic);
  store(static_cast<std::byte*>(h.pointer) + 8, directory);
  return h.offset;
}

map_state& attach(pool& p, std::uint64_t header) {
  pool_maps& all = maps_of(p);
  lock_guard lock(all.mu);
  auto& slot = all.maps[header];
  if (!slot) {
    if (header == 0 || p.heap().usable_size(header) < header_size || load(p.base() + header) != header_magic) {
      throw error(errc::invalid_argument,
                  fmt::format("pobj: {:#x} in pool '{}' is not a hash map", header, p.path()));
    }
    slot = std::make_unique<map_state>();
    slot->header = header;
  }
  return *slot;
}

bool find(pool& p, map_state& m, std::string_view key, std::string* value) {
  view v(p);
  const std::uint64_t hash = hash_of(key);
  for (int attempt = 0;; ++attempt) {
    if (attempt > 16) std::this_thread::yield();
    const std::uint64_t d1 = m.dir_seq.load(std::memory_order_acquire);
    if (d1 & 1) continue;
    const std::uint64_t segment = segment_for(v, load_acquire(v.at(m.header + 8)), hash);
    // A directory being replaced can give garbage: the sequence check would fail too.
    if (!v.plausible(segment, segment_base + slots * 8)) continue;
    stripe& s = stripe_of(p, segment);
    const std::uint64_t q1 = s.seq.load(std::memory_order_acquire);
    if (q1 & 1) continue;
    located r = probe(v, segment, hash, key);
    std::string copy;
    if (r.node != 0 && value != nullptr && !r.broken) {
      const lengths l = parse(load(v.at(r.node)));
      if (!v.plausible(r.node, l.size())) {
        r.broken = true;
      } else {
        copy.resize(l.value);
        read_bytes(v.at(r.node), l.header + l.key, l.value, copy.data());
      }
    }
    // The data loads above are acquires, so these loads come after them.
    if (r.broken || s.seq.load(std::memory_order_acquire) != q1 || m.dir_seq.load(std::memory_order_acquire) != d1) {
      continue;
    }
    if (r.node != 0 && value != nullptr) *value = std::move(copy);
    return r.node != 0;
  }
}

int put(pool& p, map_state& m, std::string_view key, std::string_view value, bool overwrite) {
  refuse_in_block(p);
  view v(p);
  const std::uint64_t hash = hash_of(key);
  for (;;) {
    int result = 0;
    bool split_first = false;
    {
      std::shared_lock resize(m.resize);
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
      std::byte* slot = v.slot(segment, r.slot);
      if (!split_first && r.node != 0) {
        const lengths l = parse(load(v.at(r.node)));
        if (l.value == value.size()) {  // the same length: the value is rewritten in place
          run_tx(p, [&](transaction& tx) {
            // Whole words, so readers (which load words) never race with byte stores.
            const std::size_t from = (l.header + l.key) & ~std::size_t{7};
            const std::size_t to = l.size();
            std::vector<std::uint64_t> image((to - from) / 8);
            for (std::size_t i = 0; i < image.size(); ++i) image[i] = load(v.at(r.node + from + i * 8));
            std::memcpy(reinterpret_cast<char*>(image.data()) + (l.header + l.key - from), value.data(), value.size());
            tx.snapshot(v.at(r.node + from), to - from);
            for (std::size_t i = 0; i < image.size(); ++i) store(v.at(r.node + from + i * 8), image[i]);
          });
          return 2;
        }
      }
      bool full = false;
      if (!split_first) run_tx(p, [&](transaction& tx) {
        const std::uint64_t fresh = make_node(tx, key, value);
        if (r.node != 0) {  // replace: the new node in the old one's slot
          tx.snapshot(slot, 8);
          store_release(slot, slot_for(hash, fresh));
          tx.free(r.node);
          result = 2;
        } else {
          tx.snapshot({byte_range{slot, 8}, byte_range{count, 8}});
          store(count, load(count) + 1);
          store_release(slot, slot_for(hash, fresh));
          full = load(count) >= split_at;
        }
      });
      if (!split_first && !full) return result;
    }
    if (split_first) {
      std::unique_lock resize(m.resize);
      split(p, m, hash);
      continue;
    }
    // The insert has committed; split its segment now if that succeeds (if it does not, the
    // next insert into the segment splits it first, and reports why).
    try {
      std::unique_lock resize(m.resize);
      split(p, m, hash);
    } catch (const error&) {
    }
    return result;
  }
}

bool erase(pool& p, map_state& m, std::string_view key) {
  refuse_in_block(p);
  view v(p);
  const std::uint64_t hash = hash_of(key);
  std::shared_lock resize(m.resize);
  const std::uint64_t segment = writer_segment(p, v, m, hash);
  stripe_guard lock(stripe_of(p, segment));
  located r = probe(v, segment, hash, key);
  if (r.broken) broken_map(p);
  if (r.node == 0) return false;
  // The cluster after the hole: its entries may move back into it (backward-shift deletion).
  std::uint32_t end = r.slot;
  while (load(v.slot(segment, end + 1)) != 0 && (end + 1) % slots != r.slot) ++end;
  run_tx(p, [&](transaction& tx) {
    std::vector<byte_range> ranges{{v.at(segment + 8), 8}};
    const std::uint32_t first = r.slot % slots, last = end % slots;
    if (first <= last) {
      ranges.push_back({v.slot(segment, first), (last - first + 1) * 8});
    } else {  // the cluster wraps around
      ranges.push_back({v.slot(segment, first), (slots - first) * 8});
      ranges.push_back({v.slot(segment, 0), (last + 1) * 8});
    }
    tx.snapshot(std::span<const byte_range>(ranges));
    std::uint32_t hole = r.slot;
    for (std::uint32_t j = r.slot + 1; j <= end; ++j) {
      const std::uint64_t w = load(v.slot(segment, j));
      const std::uint32_t home = home_of(w);
      // The entry at j may fill the hole if its home is not cyclically in (hole, j].
      const std::uint32_t d_home = (j - home + slots) % slots, d_hole = (j - hole + slots) % slots;
      if (d_home >= d_hole) {
        store_release(v.slot(segment, hole), w);
        hole = j;
      }
    }
    store_release(v.slot(segment, hole), 0);
    store(v.at(segment + 8), load(v.at(segment + 8)) - 1);
    tx.free(r.node);
  });
  return true;
}

namespace {
// Each segment once (the directory repeats a segment 2^(depth - local) times in a row).
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
      fn(s);
    }
    previous = s;
  }
}
}  // namespace

std::uint64_t size(pool& p, map_state& m) {
  view v(p);
  std::shared_lock resize(m.resize);
  std::uint64_t n = 0;
  each_segment(p, v, load(v.at(m.header + 8)), [&](std::uint64_t s) {
    // A count a writer has raised but not yet committed could still be taken back: read it only
    // between writers of the segment, as find() does.
    stripe& st = stripe_of(p, s);
    for (;;) {
      const std::uint64_t q = st.seq.load(std::memory_order_acquire);
      if (q & 1) {
        std::this_thread::yield();
        continue;
      }
      const std::uint64_t count = load(v.at(s + 8));
      if (st.seq.load(std::memory_order_acquire) == q) {
        n += count;
        return;
      }
    }
  });
  return n;
}

void for_each(pool& p, map_state& m, const std::function<void(std::string_view, std::string_view)>& fn) {
  view v(p);
  std::shared_lock resize(m.resize);
  std::vector<std::string> entries;  // one segment's (key, value) pairs, copied under its lock
  std::vector<std::uint32_t> key_lengths;
  each_segment(p, v, load(v.at(m.header + 8)), [&](std::uint64_t s) {
    entries.clear();
    key_lengths.clear();
    {
      stripe_guard lock(stripe_of(p, s));
      for (std::uint32_t i = 0; i < slots; ++i) {
        const std::uint64_t w = load(v.slot(s, i));
        if (w == 0) continue;
        const std::uint64_t n = w & offset_mask;
        if (!v.plausible(n, 8)) broken_map(p);
        const lengths l = parse(load(v.at(n)));
        if (!v.plausible(n, l.size())) broken_map(p);
        std::string kv(std::size_t{l.key} + l.value, '\0');
        read_bytes(v.at(n), l.header, kv.size(), kv.data());
        entries.push_back(std::move(kv));
        key_lengths.push_back(l.key);
      }
    }
    // Outside the lock: fn may use this map or others (though it must not modify this one).
    for (std::size_t i = 0; i < entries.size(); ++i) {
      fn(std::string_view(entries[i]).substr(0, key_lengths[i]), std::string_view(entries[i]).substr(key_lengths[i]));
    }
  });
}

void destroy(transaction& tx, std::uint64_t header) {
  pool& p = tx.get_pool();
  view v(p);
  const std::uint64_t directory = load(v.at(header + 8));
  each_segment(p, v, directory, [&](std::uint64_t s) {
    for (std::uint32_t i = 0; i < slots; ++i) {
      if (const std::uint64_t w = load(v.slot(s, i)); w != 0) tx.free(w & offset_mask);
    }
    tx.free(s);
  });
  tx.free(directory);
  tx.free(header);
  // The map's DRAM state stays until the pool closes: handles may still name it.
}

void attach_pool(pool& p) {
  p.impl().maps = std::make_unique<pool_maps>();
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
  p.heap().set_tracer(node_type, [](const void*, std::size_t, const reference_visitor&) {});  // bytes only
}

}  // namespace pobj::detail::hmap
