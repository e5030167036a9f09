// pobj-gen's model: what the front end (frontend.cpp) reads from a header and the emitters
// (emit.cpp) write out: persistent classes, their fields and methods. No libclang here.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pobj_gen {

// FNV-1a, stable across builds and platforms: class ids and schema hashes are persistent.
inline std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

enum class kind { value, array, reference, reference_array, record, string, bytes, atomic, atomic_reference, container };

inline char kind_code(kind k) {
  switch (k) {
    case kind::reference:
    case kind::reference_array:
    case kind::atomic_reference:
    case kind::record: return 'r';
    case kind::string:
    case kind::bytes: return 's';
    case kind::container: return 'c';
    default: return 'v';
  }
}

struct field {
  std::string name;
  std::string type;        // the element type for arrays
  std::string array;       // "[N]" or empty
  std::uint64_t offset = 0, size = 0;
  kind k = kind::value;
  std::string target;      // references: the qualified persistent class; records: the value type
  std::string owner;       // the qualified class that declares it
  bool appended = false;   // marked POBJ_APPENDED: getters check the object is new enough
};

struct method {
  std::string name, result;
  std::vector<std::pair<std::string, std::string>> params;  // type, name
  bool is_const = false, failure_atomic = false;
  // POBJ_SHARED: a server may run it by name (pobj/shared.hpp). The types its arguments are parsed
  // as, and its result's ("void" for none).
  bool shared = false;
  std::vector<std::string> shared_params;
  std::string shared_result;
};

struct persistent_class {
  std::string name;       // as written
  std::string qualified;  // with namespaces
  std::string base;       // qualified name of a persistent base class, or empty
  std::uint64_t size = 0, align = 0;
  std::vector<field> fields;  // every field: the base's first, then its own
  std::vector<method> methods;
};

// The call that makes a container of a field's type ("::pobj::hash_map<K, V>" gives
// "pobj::make_hash_map<K, V>"), for the message of a null container field.
inline std::string make_call(std::string type) {
  if (type.rfind("::", 0) == 0) type.erase(0, 2);
  if (type.rfind("pobj::", 0) == 0) type.insert(6, "make_");
  return type;
}

}  // namespace pobj_gen
