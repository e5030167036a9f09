// pobj/object: what the classes pobj-gen generates build on: traits, dereference, construction,
// and the durable store behind a proxy's setters.
//
// For a class T marked POBJ_PERSISTENT, pobj-gen emits persistent_traits<T> and a proxy: two
// words (the pool and the object's address) made when a reference is dereferenced, never
// allocated. Getters read the mapped object directly. A setter of a field of 1, 2, 4 or 8
// naturally aligned bytes is one durable store outside a block (and joins the block when one is
// open on the thread); setters of larger fields take the transaction, so a store that could not be
// made durable on its own does not compile.
//
// Thread safety: proxies are values; concurrent access to one object needs the caller's locks,
// except that single-store setters on different fields never lose each other's stores.
// Crash consistency: a single-store setter is durable and linearizable when it returns; setters
// that take a transaction are part of its block.
#pragma once

#include <cstdint>
#include <new>
#include <type_traits>

#include <pobj/pool.hpp>
#include <pobj/ref.hpp>
#include <pobj/transaction.hpp>

namespace pobj {

// Specialized by pobj-gen for each persistent class: class_id, schema_hash, size, proxy.
template <class T>
struct persistent_traits;

template <class T>
concept persistent = requires { typename persistent_traits<T>::proxy; };

template <persistent T>
using proxy = typename persistent_traits<T>::proxy;

// The proxy of the object `r` names. REQUIRES: r is not null and names a T in p.
template <persistent T>
proxy<T> deref(pool& p, ref<T> r) noexcept {
  return proxy<T>(p, p.at<T>(r.offset));
}

// A new T (value-initialized) allocated in the block: it exists only if the block commits.
template <persistent T>
proxy<T> make(transaction& tx) {
  allocation a = tx.alloc(sizeof(T));
  return proxy<T>(tx.get_pool(), ::new (a.pointer) T{});
}

namespace detail {
template <class F>
void store_field(pool& p, F& field, const F& value) {
  static_assert(std::is_trivially_copyable_v<F> && (sizeof(F) == 1 || sizeof(F) == 2 || sizeof(F) == 4 || sizeof(F) == 8),
                "a single durable store holds 1, 2, 4 or 8 bytes");
  p.durable_store(&field, &value, sizeof(F));
}
}  // namespace detail

}  // namespace pobj
