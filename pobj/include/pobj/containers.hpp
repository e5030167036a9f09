// pobj/containers: every durable container, and what they share as parts of other objects.
//
// A container's storage (pobj::hash_map<K, V>, ordered_map<K, V>, set<K>, queue<T>,
// vector<T>) is one 8-byte word, the offset of its header block, and it owns everything it
// holds. It may be
//   - a named root: pool::set_root(name, c.offset);
//   - a field of a persistent class: pobj-gen traces it, `f()` returns the storage, `f_ref()` a
//     handle, `set_f(tx, c)` installs one (destroying the one it replaces), and destroying the
//     object destroys it; it starts null (0: no container), since two objects must never share
//     one, and f_ref() on a null field throws errc::invalid_argument naming the field and what
//     to call;
//   - a value in a hash_map or ordered_map: the map owns it, and an erase or a replacement of
//     the entry destroys it, in the same block.
// pobj::handle(pool, c) gives the handle of any container storage.
//
// Thread safety: as each container's header says; handle() may be called from any thread.
// Crash consistency: as each container's header says; destroying is failure-atomic with the block.
#pragma once

#include <cstdint>
#include <type_traits>

#include <pobj/hash_map.hpp>
#include <pobj/ordered_map.hpp>
#include <pobj/queue.hpp>
#include <pobj/transaction.hpp>
#include <pobj/vector.hpp>

namespace pobj {

// Destroying a container (pobj::destroy, an erase or replacement in a map that owns it, set_f, or
// destroying the object holding it) frees it in the destroying block when it is small (up to
// about 160 blocks with the default lane_log_size). A larger one is listed instead in a
// reclamation batch that the destroying block makes, so that block's log stays small whatever the
// container holds; right after that block commits, the same thread frees the listed blocks, ~640
// per failure-atomic block, before the call that ended the block returns. A crash in between
// leaves the rest listed (and traced by the heap check): reclaim() frees it, resuming where the
// crash stopped it, and returns how many blocks it freed; reclaim_pending() counts them. Neither
// runs inside a block (reclaim() throws errc::invalid_argument there).
std::uint64_t reclaim(pool& p);
std::uint64_t reclaim_pending(pool& p);

namespace detail {
// Throws errc::invalid_argument: the container field `field` of `cls` is null (pobj-gen's f_ref()
// calls it); `make` is the call that makes one, for the message.
[[noreturn]] void null_container_field(const char* cls, const char* field, const char* make);
}  // namespace detail

template <class K, class V>
hash_map_ref<K, V> handle(pool& p, hash_map<K, V> c) {
  return hash_map_ref<K, V>(p, c);
}
template <class K, class V>
ordered_map_ref<K, V> handle(pool& p, ordered_map<K, V> c) {
  return ordered_map_ref<K, V>(p, c);
}
template <class K>
set_ref<K> handle(pool& p, set<K> c) {
  return set_ref<K>(p, c);
}
template <class T>
queue_ref<T> handle(pool& p, queue<T> c) {
  return queue_ref<T>(p, c);
}
template <class T>
vector_ref<T> handle(pool& p, vector<T> c) {
  return vector_ref<T>(p, c);
}

}  // namespace pobj
