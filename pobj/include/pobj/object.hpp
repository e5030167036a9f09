// pobj/object: what the classes pobj-gen generates build on: the object header, class
// registration and schema checks, construction, dereference, checked downcasts and dispatch, and
// the durable store behind a proxy's setters.
//
// For a class T marked POBJ_PERSISTENT, pobj-gen emits persistent_traits<T> and a proxy: two
// words (the pool and the object's address) made when a reference is dereferenced, never
// allocated. Getters read the mapped object directly. A setter of a field of 1, 2, 4 or 8
// naturally aligned bytes is one durable store outside a block (and joins the block when one is
// open on the thread); setters of larger fields take the transaction, so a store that could not be
// made durable on its own does not compile.
//
// An object of a persistent class is a heap block: an 8-byte object_header, then the fields in
// the layout the compiler gives T. A ref<T> holds the offset of the block. The header names the
// concrete class (its number in the pool's class table) and the size of the layout the object was
// made with, so a reference to a base may hold a derived object (is/cast/visit below), and an
// object made before fields were appended (marked POBJ_APPENDED) reads their defaults
// (docs/objects.md).
//
// Classes: every class whose generated header is linked into the program registers itself before
// main. Opening a pool checks each one against the layout the pool recorded for it: equal layouts
// open, a layout with fields appended at the end (and marked POBJ_APPENDED) upgrades the record in
// place, anything else fails with errc::schema_mismatch naming the class and the field, before the
// pool is changed.
//
// Thread safety: proxies are values; concurrent access to one object needs the caller's locks,
// except that single-store setters on different fields never lose each other's stores. Class
// registration is internally synchronized.
// Crash consistency: a single-store setter is durable when it returns; like pool::durable_store,
// another thread may read the new value before it is persistent, so values other threads act on
// need the caller's lock held across the call. Setters that take a transaction are part of its
// block; make() and destroy() take effect only if the block commits. Registering a class or
// upgrading its record is one failure-atomic block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/pfr.hpp>
#include <fmt/format.h>

#include <pobj/atomic.hpp>
#include <pobj/pool.hpp>
#include <pobj/ref.hpp>
#include <pobj/string.hpp>
#include <pobj/transaction.hpp>

namespace pobj {

// The 8 bytes in front of every object of a persistent class.
struct object_header {
  std::uint16_t key;    // the concrete class: its number in the pool's class table (1-based)
  std::uint16_t flags;  // reserved, 0
  std::uint32_t size;   // where the last field of the layout the object was made with ends
};
static_assert(sizeof(object_header) == 8);
inline constexpr std::size_t object_header_size = sizeof(object_header);

// Specialized by pobj-gen for each persistent class: class_id, schema_hash, size, proxy, builder,
// info().
template <class T>
struct persistent_traits;

}  // namespace pobj

// What generated code calls to register, check and visit classes (internal).
#include <pobj/detail/class_registry.hpp>

namespace pobj {

// Registers every class linked into the program that p does not know yet (classes of a library
// loaded after the pool was opened; open() registers the others). Outside a block only.
void register_classes(pool& p);


template <class T>
concept persistent = requires { typename persistent_traits<T>::proxy; };

template <persistent T>
using proxy = typename persistent_traits<T>::proxy;
template <persistent T>
using builder = typename persistent_traits<T>::builder;

// This class's number in p (cached per thread and pool).
template <persistent T>
std::uint16_t class_key(pool& p) {
  thread_local std::uint64_t cached_pool = 0;
  thread_local std::uint16_t cached_key = 0;
  if (cached_pool != p.instance_id()) {
    cached_key = detail::class_key(p, persistent_traits<T>::info());
    cached_pool = p.instance_id();
  }
  return cached_key;
}

// The proxy of the object `r` names. REQUIRES: r is not null and names a T (or a class derived
// from T) in p. Costs an addition: nothing is read.
template <persistent T>
proxy<T> deref(pool& p, ref<T> r) noexcept {
  return proxy<T>(p, p.base() + r.offset + object_header_size);
}

// A new T allocated in the block, value-initialized or a copy of `init` (all fields at once; its
// string fields must be empty, set them after or use the builder): it exists only if the block
// commits. Written in place, never logged.
template <persistent T>
proxy<T> make(transaction& tx, const T& init = T{}) {
  pool& p = tx.get_pool();
  const std::uint16_t key = class_key<T>(p);
  allocation a = tx.alloc(object_header_size + sizeof(T), key);
  ::new (a.pointer) object_header{key, 0, persistent_traits<T>::info().data_size};
  T* object = ::new (static_cast<std::byte*>(a.pointer) + object_header_size) T(init);
  for (const auto& f : persistent_traits<T>::info().fields) {
    if (f.kind == 's' || f.kind == 'c') std::memset(reinterpret_cast<std::byte*>(object) + f.offset, 0, 8);
  }
  return proxy<T>(p, object);
}

// Frees the object in the block, with the strings it owns (not the objects it refers to).
// Uses the concrete class, so a derived object destroyed through a base proxy frees all it owns.
template <class Proxy>
  requires requires(const Proxy& x) { x.ref(); x.pool(); }
void destroy(transaction& tx, const Proxy& object) {
  detail::destroy_object(tx, object.ref().offset);
}

// The class of the object behind a proxy or reference: is it a D (or derived from D)?
template <persistent D, class Proxy>
bool is(const Proxy& object) noexcept {
  return detail::is_a(object.pool(), detail::header_of(object.get()).key, persistent_traits<D>::class_id);
}

// Checked downcast: the object as a D; nullopt if it is not one.
template <persistent D, class Proxy>
std::optional<proxy<D>> as(const Proxy& object) noexcept {
  if (!is<D>(object)) return std::nullopt;
  return proxy<D>(object.pool(), const_cast<void*>(static_cast<const void*>(object.get())));
}

// Checked downcast: the object as a D; throws errc::wrong_class naming both classes if it is not.
template <persistent D, class Proxy>
proxy<D> cast(const Proxy& object) {
  if (!is<D>(object)) {
    detail::throw_wrong_class(object.pool(), detail::header_of(object.get()).key, persistent_traits<D>::info().name);
  }
  return proxy<D>(object.pool(), const_cast<void*>(static_cast<const void*>(object.get())));
}

// Dispatch over the concrete class, without virtual functions in the pool: calls fn with the
// object as the first of Classes it is (list derived classes before their bases) and returns what
// fn returns. Throws errc::wrong_class if it is none of them.
template <persistent... Classes, class Proxy, class F>
auto visit(const Proxy& object, F&& fn) {
  const std::uint16_t key = detail::header_of(object.get()).key;
  void* raw = const_cast<void*>(static_cast<const void*>(object.get()));
  return detail::visit_in<Classes...>(object.pool(), key, raw, fn);
}

// A named root typed as T: the proxy of the object `name` names, nullopt if the name is unknown;
// throws errc::wrong_class if the object is not a T.
template <persistent T>
std::optional<proxy<T>> root(pool& p, std::string_view name) {
  offset_t off = p.root(name);
  if (off == 0) return std::nullopt;
  return cast<T>(deref(p, ref<T>(off)));
}

template <persistent T>
void set_root(pool& p, std::string_view name, ref<T> object) {
  p.set_root(name, object.offset);
}

}  // namespace pobj

// The support generated proxies build on (internal).
#include <pobj/detail/proxy_support.hpp>
