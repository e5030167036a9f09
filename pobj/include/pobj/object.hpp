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

namespace detail {

// What pobj-gen emits for each class, so the library can record, check and trace it.
struct field_info {
  const char* name;
  const char* type;     // the C++ type, arrays with their bound ("std::int64_t[4]")
  char kind;            // 'v' value, 'r' reference (ref<T>, record<T>), 's' string or bytes, 'c' container
  std::uint32_t offset;
  std::uint32_t size;
  bool appended;        // marked POBJ_APPENDED: objects older than the field read its default
};

struct class_info {
  std::uint64_t class_id;     // FNV-1a of the qualified name
  std::uint64_t schema_hash;  // FNV-1a of the layout (name, base, size, every field)
  const char* name;           // qualified
  std::uint64_t base_id;      // the persistent base class, 0 if none
  const char* base_name;      // its qualified name, "" if none
  std::uint32_t size;       // sizeof the class
  std::uint32_t data_size;  // where its last field ends (object headers record this)
  std::uint32_t align;
  std::span<const field_info> fields;  // every field, the base's first
};

// Called by generated headers before main; returns true.
bool register_class(const class_info& info) noexcept;
// This class's number in p, registering it in p first if the pool does not know it yet.
std::uint16_t class_key(pool& p, const class_info& info);
// True if the class numbered `key` in p is the class `class_id` or derives from it.
bool is_a(const pool& p, std::uint16_t key, std::uint64_t class_id) noexcept;
// The qualified name of the class numbered `key` in p ("?" if p has no such class).
std::string class_name(const pool& p, std::uint16_t key);
// Frees the object whose block starts at `block`, and the strings it owns, in the block.
void destroy_object(transaction& tx, offset_t block);
[[noreturn]] void throw_wrong_class(const pool& p, std::uint16_t key, const char* wanted);
[[noreturn]] void throw_index(const char* cls, const char* field, std::size_t i, std::size_t count);
[[noreturn]] void throw_field_too_new(const char* cls, const char* field, std::uint32_t object_size);

template <class First, class... Rest, class F>
auto visit_in(pool& p, std::uint16_t key, void* raw, F& fn) -> std::invoke_result_t<F&, typename persistent_traits<First>::proxy> {
  if (is_a(p, key, persistent_traits<First>::class_id)) return fn(typename persistent_traits<First>::proxy(p, raw));
  if constexpr (sizeof...(Rest) == 0) {
    throw_wrong_class(p, key, "any of the classes visit() was given");
  } else {
    return visit_in<Rest...>(p, key, raw, fn);
  }
}

inline const object_header& header_of(const void* object) noexcept {
  return *(static_cast<const object_header*>(object) - 1);
}

// The value a field has in an object made before the field was appended: T's default.
template <class T>
const T& defaults() noexcept {
  static const T value{};
  return value;
}

}  // namespace detail

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

namespace detail {

// Field-wise equality and formatting for generated proxies: scalars and enums by value, arrays
// element by element, references by offset, value records field by field (Boost.PFR).
template <class F>
bool field_equal(const F& a, const F& b) noexcept {
  if constexpr (std::is_array_v<F>) {
    for (std::size_t i = 0; i < std::extent_v<F>; ++i) {
      if (!field_equal(a[i], b[i])) return false;
    }
    return true;
  } else if constexpr (std::is_arithmetic_v<F> || std::is_enum_v<F> || std::is_same_v<F, std::string_view>) {
    return a == b;
  } else if constexpr (std::is_same_v<F, std::span<const std::byte>>) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
  } else if constexpr (requires { a.load(); }) {  // an atomic: what it holds now
    return field_equal(a.load(), b.load());
  } else if constexpr (requires { a.offset; }) {
    return a.offset == b.offset;
  } else {  // a value record: field by field, nested records too
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (field_equal(boost::pfr::get<I>(a), boost::pfr::get<I>(b)) && ...);
    }(std::make_index_sequence<boost::pfr::tuple_size_v<F>>{});
  }
}

// Field-wise hashing on the same terms.
template <class F>
std::size_t hash_field(const F& v) noexcept {
  if constexpr (std::is_arithmetic_v<F> || std::is_enum_v<F>) {
    return std::hash<F>{}(v);
  } else if constexpr (requires { v.offset; }) {
    return std::hash<std::uint64_t>{}(v.offset);
  } else {
    std::size_t h = 0;
    boost::pfr::for_each_field(v, [&](const auto& f) { h ^= hash_field(f) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); });
    return h;
  }
}

template <class Out, class F>
Out format_field(Out out, const F& v) {
  if constexpr (std::is_array_v<F> && std::is_same_v<std::remove_extent_t<F>, char>) {
    std::size_t n = 0;
    while (n < std::extent_v<F> && v[n] != '\0') ++n;
    return fmt::format_to(out, "\"{}\"", std::string_view(v, n));
  } else if constexpr (std::is_array_v<F>) {
    out = fmt::format_to(out, "[");
    for (std::size_t i = 0; i < std::extent_v<F>; ++i) {
      if (i > 0) out = fmt::format_to(out, ", ");
      out = format_field(out, v[i]);
    }
    return fmt::format_to(out, "]");
  } else if constexpr (std::is_enum_v<F>) {
    return fmt::format_to(out, "{}", static_cast<std::underlying_type_t<F>>(v));
  } else if constexpr (std::is_arithmetic_v<F>) {
    return fmt::format_to(out, "{}", v);
  } else if constexpr (std::is_same_v<F, std::string_view>) {
    return fmt::format_to(out, "\"{}\"", v);
  } else if constexpr (std::is_same_v<F, std::span<const std::byte>>) {
    out = fmt::format_to(out, "x\"");
    for (std::byte b : v) out = fmt::format_to(out, "{:02x}", static_cast<unsigned>(b));
    return fmt::format_to(out, "\"");
  } else if constexpr (requires { v.offset; }) {
    return v.offset == 0 ? fmt::format_to(out, "null") : fmt::format_to(out, "@{:#x}", v.offset);
  } else if constexpr (requires { v.load(); }) {  // an atomic: what it holds now
    return format_field(out, v.load());
  } else {
    out = fmt::format_to(out, "{{");
    bool first = true;
    boost::pfr::for_each_field(v, [&](const auto& f) {
      if (!first) out = fmt::format_to(out, ", ");
      out = format_field(out, f);
      first = false;
    });
    return fmt::format_to(out, "}}");
  }
}

template <class F>
void store_field(pool& p, F& field, const F& value) {
  static_assert(std::is_trivially_copyable_v<F> && (sizeof(F) == 1 || sizeof(F) == 2 || sizeof(F) == 4 || sizeof(F) == 8),
                "a single durable store holds 1, 2, 4 or 8 bytes");
  p.durable_store(&field, &value, sizeof(F));
}

// What every generated proxy holds: the pool and the object (after its header).
class proxy_base {
 public:
  proxy_base(pobj::pool& p, void* object) noexcept : pool_(&p), object_(object) {}
  pobj::pool& pool() const noexcept { return *pool_; }
  // Where the last field of the layout this object was made with ends (before the end of the
  // class's if fields were appended since).
  std::uint32_t stored_size() const noexcept { return header_of(object_).size; }

 protected:
  pobj::pool* pool_;
  void* object_;
};

}  // namespace detail

}  // namespace pobj
