// What pobj's concurrent containers (hash_map.cpp, ordered_map.cpp) share: word access for
// optimistic readers, the key-value node format, offsets checked before a reader follows them,
// and the DRAM stripes that order writers and validate readers.
//
//   node      [lengths][key][value], padded to 8; lengths is one u32 (bit 31 clear: key length in
//             bits 0-7, value length in bits 8-30) when the key is under 256 bytes and the value
//             under 8 MiB, else two (the key's with bit 31 set, then the value's)
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <pobj/codec.hpp>
#include <pobj/error.hpp>
#include <pobj/heap.hpp>
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

#include "object/schema_impl.hpp"  // collect_container
#include "pool/pool_impl.hpp"

namespace pobj::detail::containers {

// Every load a reader makes is an acquire (free on x86): the sequence number it checks last
// cannot be read before the data, with no fence (ThreadSanitizer does not model fences).
inline std::uint64_t load(const void* p) noexcept {
  return __atomic_load_n(static_cast<const std::uint64_t*>(p), __ATOMIC_ACQUIRE);
}
inline void store(void* p, std::uint64_t v) noexcept {
  __atomic_store_n(static_cast<std::uint64_t*>(p), v, __ATOMIC_RELAXED);
}
inline void store_release(void* p, std::uint64_t v) noexcept {
  __atomic_store_n(static_cast<std::uint64_t*>(p), v, __ATOMIC_RELEASE);
}

inline constexpr std::uint64_t offset_mask = (std::uint64_t{1} << 48) - 1;

struct lengths {
  std::uint32_t key = 0, value = 0, header = 4;
  std::size_t size() const noexcept { return (header + std::size_t{key} + value + 7) & ~std::size_t{7}; }
};
inline lengths lengths_for(std::size_t k, std::size_t v) noexcept {
  if (k < 256 && v < (std::size_t{1} << 23)) return {static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(v), 4};
  return {static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(v), 8};
}
// The lengths a node's first word gives (a reader may be looking at garbage: callers check
// size() against the pool before reading further).
inline lengths parse(std::uint64_t w) noexcept {
  const auto low = static_cast<std::uint32_t>(w);
  if ((low & 0x80000000u) == 0) return {low & 0xff, low >> 8, 4};
  return {low & 0x7fffffffu, static_cast<std::uint32_t>(w >> 32), 8};
}
inline std::uint64_t encode(const lengths& l) noexcept {
  if (l.header == 4) return l.key | (std::uint64_t{l.value} << 8);
  return (l.key | 0x80000000u) | (std::uint64_t{l.value} << 32);
}

// Copies n bytes at `from` (inside an 8-aligned block) with word loads.
inline void read_bytes(const std::byte* block, std::size_t from, std::size_t n, char* out) noexcept {
  std::size_t at = from;
  while (n > 0) {
    const std::size_t word = at & ~std::size_t{7};
    const std::uint64_t w = load(block + word);
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
  pool& get_pool() const noexcept { return p_; }

 private:
  pool& p_;
  std::byte* base_;
};

// A node's key, or its key and value; false if the node does not look like one (a reader's
// garbage, or damage a writer must report).
inline bool read_key(const view& v, std::uint64_t node, std::string& key) {
  if (!v.plausible(node, 8)) return false;
  const lengths l = parse(load(v.at(node)));
  if (!v.plausible(node, l.size())) return false;
  key.resize(l.key);
  read_bytes(v.at(node), l.header, l.key, key.data());
  return true;
}
inline bool read_value(const view& v, std::uint64_t node, std::string& value) {
  if (!v.plausible(node, 8)) return false;
  const lengths l = parse(load(v.at(node)));
  if (!v.plausible(node, l.size())) return false;
  value.resize(l.value);
  read_bytes(v.at(node), l.header + l.key, l.value, value.data());
  return true;
}

// A new node holding key and value, in the block (fresh: written in place, never logged).
// `what` names the container in errors.
inline std::uint64_t make_node(transaction& tx, std::uint16_t type, std::string_view key, std::string_view value,
                               const char* what) {
  if (key.size() >= (std::size_t{1} << 31) || value.size() > 0xffffffffu) {
    throw error(errc::invalid_argument,
                std::string("pobj: ") + what + " keys hold less than 2 GiB and values at most 4 GiB - 1 bytes");
  }
  const lengths l = lengths_for(key.size(), value.size());
  const std::size_t size = l.size();
  allocation a = tx.alloc(size, type);
  if (a.offset > offset_mask) {
    throw error(errc::out_of_space, std::string("pobj: ") + what + " nodes must lie in the first 256 TiB");
  }
  std::vector<std::uint64_t> image(size / 8, 0);
  image[0] = encode(l);
  auto* bytes = reinterpret_cast<char*>(image.data()) + l.header;
  if (!key.empty()) std::memcpy(bytes, key.data(), key.size());  // (an empty view may hold null)
  if (!value.empty()) std::memcpy(bytes + key.size(), value.data(), value.size());
  auto* words = static_cast<std::byte*>(a.pointer);
  for (std::size_t i = 0; i < image.size(); ++i) store(words + i * 8, image[i]);
  return a.offset;
}

// Maps whose values are containers they own (pobj/containers.hpp) give their nodes a heap type of
// their own, whose tracer follows the value; so do containers whose keys or values may hold
// references (pobj::ref, records, arrays and structs of them: codec.hpp's may_hold_refs), whose
// tracer reads every 8 bytes of the key and value as a possible reference.
inline std::uint16_t node_type_for(bool owning, bool refs) noexcept {
  return owning ? heap_type::map_node_owning : refs ? heap_type::map_node_refs : heap_type::map_node;
}
// Reports every 8-byte window of a node's key and value, at every byte, as a possible reference:
// a reference's bytes are copied into the node at whatever alignment the key or value has there.
inline void trace_possible_refs(const std::byte* node, std::size_t block, const reference_visitor& visit) {
  const lengths l = parse(load(node));
  const std::size_t end = std::min<std::size_t>(block, std::size_t{l.header} + l.key + l.value);
  for (std::size_t at = l.header; at + 8 <= end; ++at) {
    std::uint64_t w;
    std::memcpy(&w, node + at, 8);
    if (w != 0) visit.maybe(w);
  }
}
// The container a node of an owning map holds (its value: the container's 8-byte storage).
inline std::uint64_t owned_by(const std::byte* node) noexcept {
  const lengths l = parse(load(node));
  std::uint64_t w = 0;
  read_bytes(node, l.header + l.key, std::min<std::uint32_t>(l.value, 8), reinterpret_cast<char*>(&w));
  return w;
}
// In an owning map, destroys the container a node holds, unless `keep` is that container (a
// value assigned again to its own key), in the block.
inline void release_owned(transaction& tx, const view& v, std::uint64_t node, std::string_view keep = {}) {
  const std::uint64_t c = owned_by(v.at(node));
  std::uint64_t k = 0;
  if (!keep.empty()) std::memcpy(&k, keep.data(), std::min<std::size_t>(keep.size(), 8));
  if (c != 0 && c != k) destroy_container(tx, c);
}

// Appends a node (in an owning map, with the blocks of the container it holds) to `out`.
inline void collect_node(pool& p, const view& v, std::uint64_t node, bool owning, std::vector<std::uint64_t>& out) {
  if (owning) {
    if (const std::uint64_t c = owned_by(v.at(node)); c != 0) collect_container(p, c, out);
  }
  out.push_back(node);
}

// Frees a node (in an owning map, with the container it holds), in the block.
inline void free_node(transaction& tx, const view& v, std::uint64_t node, bool owning) {
  if (owning) release_owned(tx, v, node);
  tx.free(node);
}

// Rewrites a node's value in place with one of the same length (logged), whole words at a time
// so that readers, which load words, never race with byte stores.
inline void rewrite_value(transaction& tx, const view& v, std::uint64_t node, std::string_view value) {
  if (value.empty()) return;
  const lengths l = parse(load(v.at(node)));
  const std::size_t from = (l.header + l.key) & ~std::size_t{7};
  const std::size_t to = l.size();
  std::vector<std::uint64_t> image((to - from) / 8);
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = load(v.at(node + from + i * 8));
  std::memcpy(reinterpret_cast<char*>(image.data()) + (l.header + l.key - from), value.data(), value.size());
  tx.snapshot(v.at(node + from), to - from);
  for (std::size_t i = 0; i < image.size(); ++i) store(v.at(node + from + i * 8), image[i]);
}

inline constexpr std::size_t in_place_max = 256;

// Replaces the value of the node `*slot` names, in the block: in place when the length is the
// same, else a new node, whose slot word slot_of(new node) gives, and the old node freed. In an
// owning map the container the old value held is destroyed (unless it is the new value).
template <class SlotOf>
void replace_value(transaction& tx, const view& v, std::byte* slot, std::uint64_t node, std::string_view key,
                   std::string_view value, bool owning, std::uint16_t node_type, const char* what,
                   SlotOf&& slot_of) {
  if (owning) release_owned(tx, v, node, value);
  // In place only when the value is small: the log holds what a rewrite changes, twice.
  // A node of another heap type (a plain node of a format-1 pool, now in a map whose values may
  // hold references) is made anew, so that the check traces it from now on.
  if (parse(load(v.at(node))).value == value.size() && value.size() <= in_place_max &&
      tx.get_pool().heap().type_of(node) == node_type) {
    rewrite_value(tx, v, node, value);
    return;
  }
  const std::uint64_t fresh = make_node(tx, node_type, key, value, what);
  tx.snapshot(slot, 8);
  store_release(slot, slot_of(fresh));
  tx.free(node);
}


// A lock and sequence number (odd while a writer is at work) shared by the blocks whose offsets
// fall in it: writers hold the lock from before their first store until their commit fence;
// readers take no lock and retry when the number moved.
struct alignas(64) stripe {
  std::atomic<bool> locked{false};
  std::atomic<std::uint64_t> seq{0};
};

// A word of a block that writers of `s` change, read between them (never a value one of them
// has stored but not yet committed).
inline std::uint64_t stable_load(const stripe& s, const std::byte* word) noexcept {
  for (;;) {
    const std::uint64_t q = s.seq.load(std::memory_order_acquire);
    if (q & 1) {
      std::this_thread::yield();
      continue;
    }
    const std::uint64_t w = load(word);
    if (s.seq.load(std::memory_order_acquire) == q) return w;
  }
}

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

// Marks a structure change: the counter is odd from construction to destruction.
class seq_writer {
 public:
  explicit seq_writer(std::atomic<std::uint64_t>& s) noexcept : s_(s) { s_.fetch_add(1, std::memory_order_acq_rel); }
  ~seq_writer() { s_.fetch_add(1, std::memory_order_release); }
  seq_writer(const seq_writer&) = delete;
  seq_writer& operator=(const seq_writer&) = delete;

 private:
  std::atomic<std::uint64_t>& s_;
};

// Container operations are blocks of their own: inside the caller's block, its abort could
// restore words other writers have changed since, and readers would see changes before they
// commit.
// Map operations are blocks of their own, unless the caller passed its block (`joining`): then
// that block must be open on this thread.
inline void check_block(pool& p, const transaction* joining, const char* what) {
  if (joining != nullptr) {
    if (!transaction::active(p) || &joining->get_pool() != &p) {
      throw error(errc::invalid_argument, std::string("pobj: a ") + what +
                                              " operation given a block that is not open on this thread and pool");
    }
    return;
  }
  if (transaction::active(p)) {
    throw error(errc::invalid_argument, std::string("pobj: a ") + what +
                                            " operation inside a failure-atomic block (each operation is durable "
                                            "and atomic on its own)");
  }
}

}  // namespace pobj::detail::containers
