// The queue engine (pobj/queue.hpp).
//
//   header   [u64 magic "POBJQUE1"][u64 flags: 1 = values inline, 2 = values may hold references]
//            ... padding to 64
//            @64  [u64 head segment][u64 pops]       (the consumers' line)
//            @128 [u64 tail segment][u64 pushes]     (the producers' line)
//   segment  [u64 next][u64 base | inline << 63 | refs << 62][u64 slot] x 62   (slot i holds push
//            base + i)
//   slot     the value (inline queues) or the offset of a node (the hash map's node format with
//            an empty key); a pop zeroes a node slot, so the heap check traces only live ones.
//            Values that may hold references (refs: pobj::ref, records...) are traced as possible
//            references: inline ones from the segment (refs << 62), others by their node's type
//            (heap_type::map_node_refs).
//
// The counts are what the two locks order: a producer holding the tail lock pushes at `pushes`,
// a consumer holding the head lock pops at `pops` while pops < the pushes that have committed
// (queue_state::pushed, raised after each push commits). A segment is used up when the count
// reaches its base + 62: the producer links a fresh one, the consumer frees it and moves on (the
// next one exists then, since a push beyond it has committed).
#include <pobj/queue.hpp>

#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <pobj/heap.hpp>

#include "types/containers_impl.hpp"
#include "types/entry_node.hpp"
#include "pool/pool_impl.hpp"

namespace pobj::detail::pqueue {

namespace {

using namespace containers;

constexpr std::uint64_t header_magic = 0x314555514a424f50ULL;  // "POBJQUE1"
constexpr std::uint16_t header_type = heap_type::queue_header, segment_type = heap_type::queue_segment,
                        node_type = heap_type::map_node;
constexpr std::uint64_t capacity = 62;
constexpr std::size_t header_size = 192, head_line = 64, tail_line = 128, segment_size = 16 + capacity * 8;
constexpr std::uint64_t inline_flag = std::uint64_t{1} << 63, refs_flag = std::uint64_t{1} << 62;

[[noreturn]] void broken_queue(pool& p) {
  throw error(errc::corrupt, fmt::format("pobj: a queue in pool '{}' is damaged", p.path()));
}

struct segment_ref {
  std::uint64_t offset, base;
};
segment_ref segment_at(pool& p, const view& v, std::uint64_t offset) {
  if (!v.plausible(offset, segment_size)) broken_queue(p);
  return {offset, load(v.at(offset + 8)) & ~(inline_flag | refs_flag)};
}
std::byte* slot_at(const view& v, const segment_ref& s, std::uint64_t count) noexcept {
  return v.at(s.offset + 16 + (count - s.base) * 8);
}

std::uint64_t new_segment(transaction& tx, std::uint64_t base, bool inline_values, bool refs) {
  allocation a = tx.alloc(segment_size, segment_type);
  auto* s = static_cast<std::byte*>(a.pointer);
  store(s, 0);
  store(s + 8, base | (inline_values ? inline_flag : 0) | (refs ? refs_flag : 0));
  for (std::size_t i = 16; i < segment_size; i += 8) store(s + i, 0);
  return a.offset;
}

bool is_inline(const view& v, std::uint64_t header) noexcept { return (load(v.at(header + 8)) & 1) != 0; }
bool holds_refs(const view& v, std::uint64_t header) noexcept { return (load(v.at(header + 8)) & 2) != 0; }

// Decodes a slot: the value's bytes (inline) or its node's value.
void read_slot(pool& p, const view& v, std::uint64_t header, std::uint64_t word, std::string& out) {
  if (is_inline(v, header)) {
    out.assign(reinterpret_cast<const char*>(&word), 8);
  } else if (!read_value(v, word, out)) {
    broken_queue(p);
  }
}

// The segment holding count `c`, starting from `from` (whose base is at most c).
segment_ref segment_for(pool& p, const view& v, segment_ref from, std::uint64_t c) {
  while (c - from.base >= capacity) {
    const std::uint64_t next = load(v.at(from.offset));
    if (next == 0) broken_queue(p);
    from = segment_at(p, v, next);
    if (from.base > c) broken_queue(p);
  }
  return from;
}

}  // namespace

std::uint64_t create(transaction& tx, bool inline_values, bool refs) {
  allocation h = tx.alloc(header_size, header_type);
  auto* b = static_cast<std::byte*>(h.pointer);
  for (std::size_t i = 0; i < header_size; i += 8) store(b + i, 0);
  const std::uint64_t first = new_segment(tx, 0, inline_values, refs);
  store(b, header_magic);
  store(b + 8, (inline_values ? 1 : 0) | (refs ? 2 : 0));
  store(b + head_line, first);
  store(b + tail_line, first);
  // A destroyed queue's state may wait at this offset, with its counts: the new queue's are 0.
  pool_containers& all = containers_of(tx.get_pool());
  lock_guard lock(all.mu);
  if (auto it = all.queues.find(h.offset); it != all.queues.end()) {
    it->second->pushed.store(0);
    it->second->popped.store(0);
  }
  return h.offset;
}

queue_state& attach(pool& p, std::uint64_t header, bool inline_values, bool refs) {
  // Checked on every call: a state outlives its queue, and the block of a destroyed queue (whose
  // magic is still there) may be free or hold something else now.
  const view v(p);
  if (header == 0 || p.heap().type_of(header) != header_type || load(v.at(header)) != header_magic) {
    throw error(errc::invalid_argument, fmt::format("pobj: {:#x} in pool '{}' is not a queue", header, p.path()));
  }
  // The references flag is not compared: a queue made by format 1 has none, whatever it holds.
  (void)refs;
  if (is_inline(v, header) != inline_values) {
    throw error(errc::invalid_argument,
                fmt::format("pobj: the queue at {:#x} in pool '{}' holds values of another type", header, p.path()));
  }
  pool_containers& all = containers_of(p);
  lock_guard lock(all.mu);
  auto& slot = all.queues[header];
  if (!slot) {
    slot = std::make_unique<queue_state>();
    slot->header = header;
    slot->pushed.store(load(v.at(header + tail_line + 8)));
    slot->popped.store(load(v.at(header + head_line + 8)));
  }
  return *slot;
}

void push(pool& p, queue_state& q, std::string_view value) {
  check_block(p, nullptr, "queue");
  const view v(p);
  std::byte* tail = v.at(q.header + tail_line);
  const bool inline_values = is_inline(v, q.header), refs = holds_refs(v, q.header);
  if (inline_values && value.size() > 8) {
    throw error(errc::invalid_argument, "pobj: an inline queue value is at most 8 bytes");
  }
  lock_guard lock(q.tail);
  const std::uint64_t t = load(tail + 8);
  segment_ref s = segment_at(p, v, load(tail));
  if (t < s.base || t - s.base > capacity) broken_queue(p);
  run_tx(p, [&](transaction& tx) {
    std::uint64_t word = 0;
    if (inline_values) {
      std::memcpy(&word, value.data(), value.size());
    } else {
      word = make_node(tx, refs ? heap_type::map_node_refs : node_type, {}, value, "queue");
    }
    if (t - s.base == capacity) {  // full: link a fresh segment (its slot is fresh, not logged)
      const std::uint64_t fresh = new_segment(tx, t, inline_values, refs);
      tx.snapshot({byte_range{v.at(s.offset), 8}, byte_range{tail, 16}});
      store_release(v.at(s.offset), fresh);
      store(tail, fresh);
      s = segment_ref{fresh, t};
    } else {
      tx.snapshot({byte_range{slot_at(v, s, t), 8}, byte_range{tail + 8, 8}});
    }
    store(slot_at(v, s, t), word);
    store(tail + 8, t + 1);
  });
  q.pushed.store(t + 1, std::memory_order_release);  // committed: consumers may take it now
}

bool pop(pool& p, queue_state& q, std::string* value) {
  check_block(p, nullptr, "queue");
  const view v(p);
  std::byte* head = v.at(q.header + head_line);
  lock_guard lock(q.head);
  const std::uint64_t h = load(head + 8);
  if (h >= q.pushed.load(std::memory_order_acquire)) return false;
  const segment_ref used = segment_at(p, v, load(head));
  if (h < used.base || h - used.base > capacity) broken_queue(p);
  const segment_ref s = segment_for(p, v, used, h);
  const std::uint64_t word = load(slot_at(v, s, h));
  read_slot(p, v, q.header, word, *value);
  const bool inline_values = is_inline(v, q.header);
  run_tx(p, [&](transaction& tx) {
    std::vector<byte_range> ranges{{head, 16}};
    if (!inline_values) ranges.push_back({slot_at(v, s, h), 8});
    tx.snapshot(std::span<const byte_range>(ranges));
    if (s.offset != used.offset) {  // the head segment is used up: free it, move to the next
      store(head, s.offset);
      tx.free(used.offset);
    }
    if (!inline_values) {
      store(slot_at(v, s, h), 0);
      tx.free(word);
    }
    store(head + 8, h + 1);
  });
  q.popped.store(h + 1, std::memory_order_release);
  return true;
}

bool front(pool& p, queue_state& q, std::string* value) {
  const view v(p);
  std::byte* head = v.at(q.header + head_line);
  lock_guard lock(q.head);
  const std::uint64_t h = load(head + 8);
  if (h >= q.pushed.load(std::memory_order_acquire)) return false;
  const segment_ref s = segment_for(p, v, segment_at(p, v, load(head)), h);
  read_slot(p, v, q.header, load(slot_at(v, s, h)), *value);
  return true;
}

std::uint64_t size(queue_state& q) noexcept {
  // Pops read after pushes: never more pops than pushes seen.
  const std::uint64_t popped = q.popped.load(std::memory_order_acquire);
  const std::uint64_t pushed = q.pushed.load(std::memory_order_acquire);
  return pushed > popped ? pushed - popped : 0;
}

void for_each(pool& p, queue_state& q, const std::function<void(std::string_view)>& fn) {
  const view v(p);
  std::byte* head = v.at(q.header + head_line);
  const std::uint64_t end = q.pushed.load(std::memory_order_acquire);
  std::uint64_t c = 0;
  segment_ref s{0, 0};
  std::vector<std::string> batch;
  for (;;) {
    batch.clear();
    {
      lock_guard lock(q.head);
      const std::uint64_t h = load(head + 8);
      if (c < h || s.offset == 0) {  // values were popped meanwhile (or this is the start)
        c = std::max(c, h);
        s = segment_at(p, v, load(head));
      }
      if (c >= end) return;
      // The segment holding c is still there: segments go only when the pops pass them.
      s = segment_for(p, v, s, c);
      const std::uint64_t stop = std::min(end, s.base + capacity);
      for (; c < stop; ++c) {
        batch.emplace_back();
        read_slot(p, v, q.header, load(slot_at(v, s, c)), batch.back());
      }
    }
    for (const auto& value : batch) fn(value);
  }
}

void collect(pool& p, std::uint64_t header, std::vector<std::uint64_t>& out) {
  const view v(p);
  const bool inline_values = is_inline(v, header);
  const std::uint64_t h = load(v.at(header + head_line + 8)), t = load(v.at(header + tail_line + 8));
  out.push_back(header);  // first: a handle on the queue is refused as soon as anything is freed
  segment_ref s = segment_at(p, v, load(v.at(header + head_line)));
  for (std::uint64_t c = h; c < t; ++c) {
    s = segment_for(p, v, s, c);
    if (!inline_values) out.push_back(load(slot_at(v, s, c)));
  }
  for (std::uint64_t seg = load(v.at(header + head_line)); seg != 0;) {
    out.push_back(seg);
    seg = load(v.at(seg));
  }
}

void attach_pool(pool& p) {
  p.heap().set_tracer(header_type, [](const void* o, std::size_t, const reference_visitor& visit) {
    visit(load(static_cast<const std::byte*>(o) + head_line));
  });
  // A pool of format 1 had no references flag: its inline values are all read as possible ones.
  const std::uint64_t legacy = p.impl().header.format_major < 2 ? refs_flag : 0;
  p.heap().set_tracer(segment_type, [legacy](const void* o, std::size_t, const reference_visitor& visit) {
    const auto* s = static_cast<const std::byte*>(o);
    visit(load(s));
    const std::uint64_t flags = load(s + 8) | legacy;
    for (std::uint64_t i = 0; i < capacity; ++i) {
      const std::uint64_t w = load(s + 16 + i * 8);
      if (w == 0) continue;
      if ((flags & inline_flag) == 0) {
        visit(w);
      } else if (flags & refs_flag) {
        visit.maybe(w);  // a value: a popped one may still be there (kept alive, never freed live)
      }
    }
  });
}

}  // namespace pobj::detail::pqueue
