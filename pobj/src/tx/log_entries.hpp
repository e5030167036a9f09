// What the transaction layer's files share: the log's entry format helpers, the commit word,
// this thread's last invalidation, and the fence with the ordering rule.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/checksum.hpp"
#include "pool/pool_impl.hpp"
#include "tx/tx_impl.hpp"

namespace pobj::detail {

inline constexpr std::size_t entry_header_size = sizeof(log_entry_header);
inline constexpr std::size_t commit_word_size = 8;
constexpr std::size_t pad8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

// The invalidation this thread stored and flushed last: its own fences order that flush, so the
// ordering rule need not write it back again when this thread is the one that fences.
struct own_invalidation {
  std::uint64_t pool_id = 0;
  const lane* ln = nullptr;
  std::uint64_t value = 0;
};
extern thread_local own_invalidation tl_own_invalidation;  // lanes.cpp

inline std::uint64_t entry_checksum(const log_entry_header& h, const std::byte* payload) {
  log_entry_header copy = h;
  copy.checksum = 0;
  checksum64 c;
  c.add(&copy, sizeof(copy));
  c.add(payload, h.size);
  return c.value();
}

struct alloc_payload {
  std::uint64_t gen;
  std::uint64_t usable;
  std::uint64_t requested_and_type;  // requested << 16 | type
};

// The commit word: a checksum over the checksums of the block's entries (each covers its own
// bytes) and over every object the block allocated (and did not free again), so a commit whose
// entries or objects did not all reach the medium never validates.
template <class Objects>
std::uint64_t commit_checksum(const checksum64& entries, const pool_impl& p, const Objects& objects) {
  checksum64 c = entries;
  for (const auto& [off, requested] : objects) {
    c.add_u64(off);
    c.add(p.at<std::byte>(off), requested);
  }
  return c.value();
}

inline std::byte* log_data(tx_state& st) { return st.log + sizeof(log_buffer_header); }

// A fence that also makes every pending log invalidation durable (the ordering rule; lanes.cpp).
void fence_with_rule(tx_manager& m, tx_state& st);

// The index in st.fresh of the live fresh object at `object`, or -1; whether the block freed
// `object` (transaction.cpp).
std::ptrdiff_t fresh_at(const tx_state& st, std::uint64_t object);
bool freed_here(const tx_state& st, std::uint64_t object);

}  // namespace pobj::detail
