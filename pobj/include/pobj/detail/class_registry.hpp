// Internal, part of <pobj/object.hpp> (which includes it where it needs it; include that, not
// this): what pobj-gen emits for each class (field_info, class_info) and the
// registry calls its code makes to record, check, visit and destroy objects.
//
// Thread safety: as pobj/object.hpp states. Crash consistency: as pobj/object.hpp states.
#pragma once

namespace pobj {

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

}  // namespace pobj
