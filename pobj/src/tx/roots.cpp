// Writing the pool's root directory: set_root and remove_root, each a failure-atomic block (the
// reads are the pool layer's: pool/roots.cpp); and block_type, which knows a block's fresh objects.
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

#include <cstring>

#include <fmt/format.h>

#include "pool/pool_impl.hpp"
#include "tx/log_entries.hpp"
#include "tx/tx_impl.hpp"

namespace pobj {

using namespace detail;

namespace detail {

std::uint16_t block_type(pool& p, std::uint64_t object) {
  if (const std::uint16_t t = p.heap().type_of(object); t != 0) return t;
  thread_context& ctx = p.impl().local();
  if (ctx.tx == nullptr || ctx.tx->depth == 0) return 0;
  const std::ptrdiff_t i = fresh_at(*ctx.tx, object);
  return i < 0 ? 0 : ctx.tx->fresh[static_cast<std::size_t>(i)].type;
}

}  // namespace detail

void pool::set_root(std::string_view name, offset_t object) {
  check_root_name(name);
  // The block first, then the directory's lock: a thread waiting for a lane must never hold the
  // lock that a thread inside a block needs.
  transaction tx(*this);
  tx_state& st = impl_->tx->state();
  std::uint16_t type = 0;
  const std::ptrdiff_t at = object != 0 ? fresh_at(st, object) : -1;
  const bool fresh = at >= 0;
  if (fresh) type = st.fresh[static_cast<std::size_t>(at)].type;
  const bool freed = freed_here(st, object);
  if (object != 0 && !fresh && (freed || !heap().is_allocated(object))) {
    throw error(errc::invalid_argument,
                fmt::format("pobj: root '{}' cannot refer to {:#x}: not an allocated object", name, object));
  }
  if (object != 0 && !fresh) type = heap().type_of(object);
  lock_guard lock(impl_->roots_mu);
  root_entry* slot = nullptr;
  root_entry* free_slot = nullptr;
  for (std::uint64_t i = 0; i < impl_->header.root_entries; ++i) {
    root_entry& e = impl_->roots[i];
    if (e.object != 0 && entry_name(e) == name) {
      slot = &e;
      break;
    }
    // A slot emptied by a block that has not ended yet stays reserved: if that block rolls back,
    // it writes its old entry there again.
    if (e.object == 0 && free_slot == nullptr && !impl_->root_tombstones.contains(i)) free_slot = &e;
  }
  if (slot == nullptr) {
    if (object == 0) return;
    if (free_slot == nullptr) {
      throw error(errc::out_of_space, fmt::format("pobj: the root directory is full ({} names)", root_capacity));
    }
    slot = free_slot;
  }
  tx.snapshot(slot, sizeof(root_entry));
  std::memset(slot->name, 0, sizeof(slot->name));
  if (object != 0) std::memcpy(slot->name, name.data(), name.size());
  slot->type = type;
  slot->object = object;
  if (object == 0) {
    std::uint64_t index = static_cast<std::uint64_t>(slot - impl_->roots);
    ++impl_->root_tombstones[index];
    pool_impl* p = impl_.get();
    st.on_end.push_back([p, index] {
      lock_guard l(p->roots_mu);
      if (--p->root_tombstones[index] == 0) p->root_tombstones.erase(index);
    });
  }
}

bool pool::remove_root(std::string_view name) {
  if (root(name) == 0) return false;
  set_root(name, 0);
  return true;
}

}  // namespace pobj
