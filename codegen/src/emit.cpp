// pobj-gen's emitters (emit.hpp).
#include "emit.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace pobj_gen {

namespace {

std::string hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%016llxULL", static_cast<unsigned long long>(v));
  return buf;
}

std::string identifier(const std::string& qualified) {
  std::string out;
  for (char ch : qualified) out += ch == ':' ? '_' : ch;
  while (out.find("__") != std::string::npos) out.replace(out.find("__"), 2, "_");
  return out;
}

// Where the last field ends: the bytes an object of the class holds (its header records this).
std::uint64_t data_size(const persistent_class& c) {
  std::uint64_t end = 0;
  for (const auto& f : c.fields) end = std::max(end, f.offset + f.size);
  return end;
}

// The layout as the pool records it (pobj/src/object/schema.cpp writes the same text): its hash is the
// schema hash.
std::string schema_text(const persistent_class& c) {
  std::string out = "pobj-schema 1\nclass " + c.qualified + "\nbase " + (c.base.empty() ? "-" : c.base) +
                    "\nsize " + std::to_string(c.size) + "\n";
  for (const auto& f : c.fields) {
    out += "field " + f.name + " " + kind_code(f.k) + " " + std::to_string(f.offset) + " " + std::to_string(f.size) +
           " " + f.type + f.array + "\n";
  }
  return out;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

// The type a getter returns for a field.
std::string getter_type(const field& f) {
  switch (f.k) {
    case kind::string: return "std::string_view";
    case kind::bytes: return "std::span<const std::byte>";
    default: return f.type;
  }
}

void emit_layouts(std::ostringstream& o, const persistent_class& c) {
  std::string id = identifier(c.qualified);
  o << "\n// ::" << c.qualified << (c.base.empty() ? "" : " : ::" + c.base) << "\n"
    << "struct " << id << "_layout {\n";
  std::uint64_t at = 0;
  int pad = 0;
  for (const auto& f : c.fields) {
    if (f.offset > at) o << "  std::uint8_t pad" << pad++ << "_[" << f.offset - at << "];  // offset " << at << "\n";
    o << "  " << f.type << " " << f.name << f.array << ";  // offset " << f.offset << ", " << f.size
      << (f.size == 1 ? " byte" : " bytes") << (f.owner != c.qualified ? ", from ::" + f.owner : "") << "\n";
    at = f.offset + f.size;
  }
  if (c.size > at) o << "  std::uint8_t pad" << pad++ << "_[" << c.size - at << "];  // offset " << at << "\n";
  o << "};\n"
    << "static_assert(sizeof(" << id << "_layout) == " << c.size << ");\n"
    << "static_assert(alignof(" << id << "_layout) == " << c.align << ");\n"
    << "static_assert(sizeof(::" << c.qualified << ") == " << c.size << ");\n"
    << "static_assert(alignof(::" << c.qualified << ") == " << c.align << ");\n"
    << "static_assert(!std::is_polymorphic_v<::" << c.qualified << ">, \"a persistent class has no vtable\");\n";
  if (!c.base.empty()) {
    // A class with fields in a base and in itself is not standard-layout; offsetof still works on
    // it (no virtual bases are allowed), but GCC warns.
    o << "#pragma GCC diagnostic push\n#pragma GCC diagnostic ignored \"-Winvalid-offsetof\"\n";
  }
  for (const auto& f : c.fields) {
    o << "static_assert(offsetof(" << id << "_layout, " << f.name << ") == " << f.offset << ");\n"
      << "static_assert(offsetof(::" << c.qualified << ", " << f.name << ") == " << f.offset << ");\n";
  }
  if (!c.base.empty()) o << "#pragma GCC diagnostic pop\n";
  for (const auto& f : c.fields) {
    if (f.k == kind::value && f.owner == c.qualified && f.type.rfind("::", 0) == 0) {
      o << "static_assert(std::is_trivially_copyable_v<" << f.type << ">, \"value records are trivially copyable\");\n";
    }
  }
  o << "inline constexpr std::uint64_t " << id << "_class_id = " << hex(fnv1a(c.qualified)) << ";\n"
    << "inline constexpr std::uint64_t " << id << "_schema_hash = " << hex(fnv1a(schema_text(c))) << ";\n"
    << "inline constexpr std::size_t " << id << "_reference_offsets[] = {";
  bool first = true;
  for (const auto& f : c.fields) {
    if (kind_code(f.k) == 'v') continue;
    o << (first ? "" : ", ") << f.offset;
    first = false;
  }
  if (first) o << "static_cast<std::size_t>(-1)";  // none (an empty array is not allowed)
  o << "};\n";
  if (!c.fields.empty()) {
    o << "inline constexpr pobj::detail::field_info " << id << "_fields[] = {\n";
    for (const auto& f : c.fields) {
      o << "    {" << quoted(f.name) << ", " << quoted(f.type + f.array) << ", '" << kind_code(f.k) << "', " << f.offset
        << ", " << f.size << ", " << (f.appended ? "true" : "false") << "},\n";
    }
    o << "};\n";
  }
  o << "inline constexpr pobj::detail::class_info " << id << "_info{" << id << "_class_id, " << id << "_schema_hash, "
    << quoted(c.qualified) << ", " << (c.base.empty() ? "0" : identifier(c.base) + "_class_id") << ", "
    << quoted(c.base) << ", " << c.size << ", " << data_size(c) << ", " << c.align << ", "
    << (c.fields.empty() ? "{}" : id + "_fields") << "};\n"
    << "// Registered before main; pool::open checks it against the pool's record.\n"
    << "inline const bool " << id << "_registered = pobj::detail::register_class(" << id << "_info);\n";
}

void emit_proxy(std::ostringstream& o, const persistent_class& c) {
  std::string id = identifier(c.qualified);
  std::string self = "::" + c.qualified;
  std::string parent = c.base.empty() ? "pobj::detail::proxy_base" : identifier(c.base) + "_proxy";
  o << "\n// A proxy of a ::" << c.qualified << " in a pool: two words, made on dereference, never allocated.\n"
    << "class " << id << "_proxy : public " << parent << " {\n public:\n"
    << "  " << id << "_proxy(pobj::pool& p, void* object) noexcept : " << parent << "(p, object) {}\n"
    << "  const " << self << "* get() const noexcept { return static_cast<const " << self << "*>(object_); }\n"
    << "  pobj::ref<" << self << "> ref() const noexcept {\n    return pobj::ref<" << self
    << ">(pool_->offset_of(object_) - pobj::object_header_size);\n  }\n";
  for (const auto& f : c.fields) {
    if (f.owner != c.qualified) continue;  // the base's proxy has it
    // Only fields marked POBJ_APPENDED can be missing from an object (the pool checks the marks
    // when it opens), so only they pay for the check.
    std::string end = std::to_string(f.offset + f.size);
    auto missing = [&](const std::string& fallback) {
      return f.appended ? "    if (stored_size() < " + end + ") [[unlikely]] return " + fallback + ";\n" : std::string();
    };
    const std::string fallback = "pobj::detail::defaults<" + self + ">()." + f.name;
    std::string require = f.appended ? "    if (stored_size() < " + end +
                                           ") [[unlikely]] pobj::detail::throw_field_too_new(" + quoted(c.qualified) +
                                           ", " + quoted(f.name) + ", stored_size());\n"
                                     : "";
    o << "\n  // " << f.name << ": " << f.type << f.array << "\n";
    switch (f.k) {
      case kind::array:
      case kind::reference_array: {
        const std::uint64_t count = std::stoull(f.array.substr(1));
        const std::uint64_t element = f.size / count;
        const bool single_element = element == 1 || element == 2 || element == 4 || element == 8;
        const std::string bounds = "    if (i >= " + std::to_string(count) +
                                   ") [[unlikely]] pobj::detail::throw_index(" + quoted(c.qualified) + ", " +
                                   quoted(f.name) + ", i, " + std::to_string(count) + ");\n";
        o << "  const " << f.type << " (&" << f.name << "() const noexcept)" << f.array << " {\n" << missing(fallback)
          << "    return self()->" << f.name << ";\n  }\n"
          << "  void set_" << f.name << "(pobj::transaction& tx, const " << f.type << " (&value)" << f.array << ") {\n"
          << require << "    tx.snapshot(&self()->" << f.name << ", sizeof(self()->" << f.name << "));\n"
          << "    for (std::size_t i = 0; i < std::size(value); ++i) self()->" << f.name << "[i] = value[i];\n  }\n";
        // Elements one at a time (bounds-checked).
        if (single_element) {
          o << "  void set_" << f.name << "(std::size_t i, const " << f.type << "& value) {\n" << require << bounds
            << "    pobj::detail::store_field(*pool_, self()->" << f.name << "[i], value);\n  }\n";
        }
        o << "  void set_" << f.name << "(pobj::transaction& tx, std::size_t i, const " << f.type << "& value) {\n"
          << require << bounds << "    tx.set(self()->" << f.name << "[i], value);\n  }\n";
        if (f.k == kind::reference_array) {
          o << "  // The object element i of " << f.name << " refers to. REQUIRES: it is not null.\n"
            << "  pobj::proxy<::" << f.target << "> " << f.name << "_object(std::size_t i) const noexcept {\n"
            << "    return pobj::deref(*pool_, " << f.name << "()[i]);\n  }\n";
        }
        continue;
      }
      case kind::atomic:
      case kind::atomic_reference:
        // Operations through the handle are durable linearizable on their own (pobj/atomic.hpp);
        // there are no setters, and no block may change the field.
        o << "  // Durable linearizable: load, store, exchange, compare_exchange, fetch_add.\n"
          << "  auto " << f.name << "() const {\n" << require << "    return pobj::atomic_ref(*pool_, self()->" << f.name
          << ");\n  }\n";
        continue;
      case kind::container:
        // The object owns the container: it starts empty, set_ installs one (destroying the one
        // it replaces), and destroying the object destroys it.
        o << "  " << f.type << " " << f.name << "() const noexcept {\n" << missing("{}") << "    return self()->" << f.name
          << ";\n  }\n"
          << "  // A handle on the container; errc::invalid_argument while the field is null (never set).\n"
          << "  auto " << f.name << "_ref() const {\n"
          << "    if (" << f.name << "().offset == 0) pobj::detail::null_container_field(\"'" << f.owner << "'\", \""
          << f.name << "\", \"" << make_call(f.type) << "\");\n"
          << "    return pobj::handle(*pool_, " << f.name << "());\n  }\n"
          << "  void set_" << f.name << "(pobj::transaction& tx, " << f.type << " value) {\n" << require
          << "    pobj::detail::replace_container(tx, self()->" << f.name << ".offset, value.offset);\n  }\n";
        continue;
      case kind::string:
      case kind::bytes: {
        bool bytes = f.k == kind::bytes;
        o << "  " << getter_type(f) << " " << f.name << "() const noexcept {\n" << missing("{}")
          << "    " << (bytes ? "return pobj::as_bytes_view(" : "return ") << "pobj::detail::read_string(*pool_, self()->"
          << f.name << ".word)" << (bytes ? ")" : "") << ";\n  }\n"
          << "  void set_" << f.name << "(pobj::transaction& tx, " << getter_type(f) << " value) {\n" << require
          << "    pobj::detail::assign_string(tx, self()->" << f.name << ".word, "
          << (bytes ? "pobj::as_string_view(value)" : "value") << ");\n  }\n";
        continue;
      }
      default:
        break;
    }
    bool single = (f.size == 1 || f.size == 2 || f.size == 4 || f.size == 8) && f.offset % f.size == 0;
    o << "  " << f.type << " " << f.name << "() const noexcept {\n" << missing(fallback) << "    return self()->" << f.name
      << ";\n  }\n";
    if (single) {
      o << "  void set_" << f.name << "(const " << f.type << "& value) {\n" << require
        << "    pobj::detail::store_field(*pool_, self()->" << f.name << ", value);\n  }\n";
    }
    o << "  void set_" << f.name << "(pobj::transaction& tx, const " << f.type << "& value) {\n" << require
      << "    tx.set(self()->" << f.name << ", value);\n  }\n";
    if (f.k == kind::reference) {
      o << "  // The object " << f.name << " refers to. REQUIRES: " << f.name << "() is not null.\n"
        << "  pobj::proxy<::" << f.target << "> " << f.name << "_object() const noexcept;\n";
    } else if (f.k == kind::record) {
      o << "  // The record " << f.name << " holds. REQUIRES: " << f.name << "() is not null.\n"
        << "  const " << f.target << "& " << f.name << "_value() const noexcept { return pobj::get(*pool_, " << f.name
        << "()); }\n";
    }
  }
  for (const auto& m : c.methods) {
    std::string params, args, tx_params = "pobj::transaction& tx";
    for (const auto& [type, name] : m.params) {
      // type_identity_t makes any type (function pointers, array references) a plain declarator.
      const std::string decl = "std::type_identity_t<" + type + "> " + name;
      params += (params.empty() ? "" : ", ") + decl;
      args += ", std::forward<" + type + ">(" + name + ")";
      tx_params += ", " + decl;
    }
    std::string cq = m.is_const ? " const" : "";
    if (m.failure_atomic) {
      o << "\n  // " << m.name << ": failure-atomic. Defined by the user as\n  //   " << m.result << " " << id
        << "_proxy::" << m.name << "(" << tx_params << ")" << cq << "\n"
        << "  // and run here in a block of its own (or as part of the caller's).\n"
        << "  " << m.result << " " << m.name << "(" << params << ")" << cq << " {\n"
        << "    pobj::transaction tx(*pool_);\n    return " << m.name << "(tx"
        << args << ");\n  }\n"
        << "  " << m.result << " " << m.name << "(" << tx_params << ")" << cq << ";\n";
    } else {
      o << "\n  // " << m.name << ": defined by the user as " << m.result << " " << id << "_proxy::" << m.name << "("
        << params << ")" << cq << "\n"
        << "  " << m.result << " " << m.name << "(" << params << ")" << cq << ";\n";
    }
  }
  bool owns_blocks = false;  // or holds atomics, which a block must not write
  for (const auto& f : c.fields) {
    owns_blocks = owns_blocks || f.k == kind::string || f.k == kind::bytes || f.k == kind::atomic ||
                  f.k == kind::atomic_reference || f.k == kind::container;
  }
  if (!owns_blocks) {
    // Up to the end of the last field only: a derived class may keep its fields in this class's
    // tail padding.
    const std::string n = std::to_string(data_size(c));
    o << "\n  // Every field at once, in the block: one snapshot of the object. Throws for an object made\n"
      << "  // before fields were appended to the class.\n"
      << "  void assign(pobj::transaction& tx, const " << self << "& value) {\n"
      << (std::any_of(c.fields.begin(), c.fields.end(), [](const field& f) { return f.appended; })
              ? "    if (stored_size() < " + n + ") [[unlikely]] pobj::detail::throw_field_too_new(" +
                    quoted(c.qualified) + ", " + quoted(c.fields.back().name) + ", stored_size());\n"
              : std::string())
      << "    tx.snapshot(object_, " << n << ");\n"
      << "    std::memcpy(object_, &value, " << n << ");\n  }\n";
  } else {
    o << "\n  // Not for a class that owns strings (they would be shared) or holds atomics (a block must not\n"
      << "  // write them): set the fields one by one.\n"
      << "  void assign(pobj::transaction& tx, const " << self << "& value) = delete;\n";
  }
  o << "\n  // Field by field (strings by content, references by offset), whether or not a and b are the\n"
    << "  // same object.\n"
    << "  friend bool operator==([[maybe_unused]] const " << id << "_proxy& a, [[maybe_unused]] const " << id
    << "_proxy& b) noexcept {\n"
    << "    return true";
  // Getters are called through the class that declares them, so a derived class's member of the
  // same name cannot stand in for them.
  auto getter = [](const field& f) { return identifier(f.owner) + "_proxy::" + f.name + "()"; };
  for (const auto& f : c.fields) {
    o << "\n        && pobj::detail::field_equal(a." << getter(f) << ", b." << getter(f) << ")";
  }
  o << ";\n  }\n";
  o << "\n  template <class Out>\n  Out format_to(Out out) const {\n"
    << "    out = fmt::format_to(out, \"" << c.qualified << "{{\");\n";
  bool first_field = true;
  for (const auto& f : c.fields) {
    o << "    out = pobj::detail::format_field(fmt::format_to(out, \"" << (first_field ? "" : ", ") << f.name
      << ": \"), " << getter(f) << ");\n";
    first_field = false;
  }
  o << "    return fmt::format_to(out, \"}}\");\n  }\n";
  o << "\n private:\n  " << self << "* self() const noexcept { return static_cast<" << self << "*>(object_); }\n};\n"
    << "static_assert(sizeof(" << id << "_proxy) == 2 * sizeof(void*));\n";
}

void emit_builder(std::ostringstream& o, const persistent_class& c) {
  std::string id = identifier(c.qualified);
  std::string self = "::" + c.qualified;
  o << "\n// Builds a ::" << c.qualified << " field by field in DRAM, then makes it in a block:\n"
    << "//   pobj::builder<::" << c.qualified << ">()";
  for (std::size_t i = 0; i < c.fields.size() && i < 2; ++i) o << "." << c.fields[i].name << "(...)";
  o << ".make(tx)\n"
    << "class " << id << "_builder {\n public:\n";
  for (const auto& f : c.fields) {
    switch (f.k) {
      case kind::array:
      case kind::reference_array:
        o << "  " << id << "_builder& " << f.name << "(const " << f.type << " (&value)" << f.array << ") {\n"
          << "    for (std::size_t i = 0; i < std::size(value); ++i) pobj_value_." << f.name << "[i] = value[i];\n"
          << "    return *this;\n  }\n";
        break;
      case kind::string:
        o << "  " << id << "_builder& " << f.name << "(std::string_view value) {\n    pobj_" << f.name
          << "_.assign(value);\n    return *this;\n  }\n";
        break;
      case kind::bytes:
        o << "  " << id << "_builder& " << f.name << "(std::span<const std::byte> value) {\n    pobj_" << f.name
          << "_.assign(pobj::as_string_view(value));\n    return *this;\n  }\n";
        break;
      case kind::container:  // set on the made object: set_f(tx, container)
        break;
      default:
        o << "  " << id << "_builder& " << f.name << "(const " << f.type << "& value) {\n    pobj_value_." << f.name
          << " = value;\n    return *this;\n  }\n";
    }
  }
  o << "  // The object, made in the block (it exists only if the block commits).\n"
    << "  " << id << "_proxy make(pobj::transaction& tx) const {\n"
    << "    " << id << "_proxy object = pobj::make<" << self << ">(tx, pobj_value_);\n";
  for (const auto& f : c.fields) {
    if (f.k != kind::string && f.k != kind::bytes) continue;
    o << "    if (!pobj_" << f.name << "_.empty()) object.set_" << f.name << "(tx, "
      << (f.k == kind::bytes ? "pobj::as_bytes_view(pobj_" + f.name + "_)" : "pobj_" + f.name + "_") << ");\n";
  }
  o << "    return object;\n  }\n\n private:\n  " << self << " pobj_value_{};\n";
  for (const auto& f : c.fields) {
    if (f.k == kind::string || f.k == kind::bytes) o << "  std::string pobj_" << f.name << "_;\n";
  }
  o << "};\n";
}

// Whether c or one of its bases has shared methods (then c is a shared class: a server can make
// objects of it and call its methods and its bases').
bool shares(const persistent_class& c, const std::vector<persistent_class>& classes) {
  for (const persistent_class* k = &c; k != nullptr;) {
    if (std::any_of(k->methods.begin(), k->methods.end(), [](const method& m) { return m.shared; })) return true;
    auto base = std::find_if(classes.begin(), classes.end(), [&](const persistent_class& b) { return b.qualified == k->base; });
    k = k->base.empty() || base == classes.end() ? nullptr : &*base;
  }
  return false;
}

// The class's shared methods, each a function that parses the arguments and runs the method on
// an object, and the registration that lets a server find them (pobj/shared.hpp).
void emit_shared(std::ostringstream& o, const persistent_class& c) {
  const std::string id = identifier(c.qualified);
  const std::string self = "::" + c.qualified;
  o << "\n// ::" << c.qualified << " as a shared class: its POBJ_SHARED methods, run by name with arguments as text.\n";
  bool any = false;
  for (const auto& m : c.methods) {
    if (!m.shared) continue;
    any = true;
    o << "inline void " << id << "_shared_call_" << m.name << "(pobj::shared_call& call) {\n";
    std::string args = m.failure_atomic ? "call.tx()" : "";
    for (std::size_t i = 0; i < m.params.size(); ++i) {
      o << "  auto a" << i << " = call.arg<" << m.shared_params[i] << ">(" << i << ", " << quoted(m.params[i].second) << ");\n";
      args += std::string(args.empty() ? "" : ", ") + "std::move(a" + std::to_string(i) + ")";
    }
    o << "  call.started();\n"
      << "  " << (m.is_const ? "const " : "") << id << "_proxy object(call.get_pool(), call.fields());\n";
    if (m.shared_result == "void") {
      o << "  object." << m.name << "(" << args << ");\n";
    } else {
      o << "  call.set_result(object." << m.name << "(" << args << "));\n";
    }
    o << "}\n";
  }
  if (any) {
    o << "inline const pobj::shared_method " << id << "_shared_methods[] = {\n";
    for (const auto& m : c.methods) {
      if (!m.shared) continue;
      std::string signature = m.name + "(";
      for (std::size_t i = 0; i < m.params.size(); ++i) {
        signature += (i == 0 ? "" : ", ") + m.shared_params[i] + " " + m.params[i].second;
      }
      signature += std::string(")") + (m.is_const ? " const" : "") +
                   (m.shared_result == "void" ? std::string() : " -> " + m.shared_result);
      o << "    {" << quoted(m.name) << ", " << quoted(signature) << ", " << m.params.size() << ", "
        << (m.failure_atomic ? "true" : "false") << ", " << id << "_shared_call_" << m.name << "},\n";
    }
    o << "};\n";
  }
  o << "inline std::uint64_t " << id << "_shared_make(pobj::transaction& tx) { return pobj::make<" << self
    << ">(tx).ref().offset; }\n"
    << "inline std::string " << id << "_shared_describe(pobj::pool& p, void* fields) {\n"
    << "  std::string out;\n  " << id << "_proxy(p, fields).format_to(std::back_inserter(out));\n  return out;\n}\n"
    << "inline const pobj::shared_class " << id << "_shared{&" << id << "_info, "
    << (any ? id + "_shared_methods" : "std::span<const pobj::shared_method>{}") << ", " << id << "_shared_make, " << id
    << "_shared_describe};\n"
    << "inline const bool " << id << "_shared_registered = pobj::detail::register_shared_class(" << id << "_shared);\n";
}

// The shared classes' registrations name every shared method, so a program that includes the
// header must link their definitions; one that only reads the objects defines
// POBJ_NO_SHARED_METHODS first and gets none of this.
void emit_shared_all(std::ostringstream& o, const std::vector<persistent_class>& classes) {
  o << "\n#ifndef POBJ_NO_SHARED_METHODS\n";
  for (const auto& c : classes) {
    if (shares(c, classes)) emit_shared(o, c);
  }
  o << "#endif  // POBJ_NO_SHARED_METHODS\n";
}

}  // namespace

std::string generate(const std::vector<persistent_class>& classes, const std::string& include) {
  const bool any_shared = std::any_of(classes.begin(), classes.end(), [&](const persistent_class& c) { return shares(c, classes); });
  std::ostringstream o;
  o << "// generated by pobj-gen, do not edit\n"
    << "// from " << include << "\n"
    << "#pragma once\n\n#include <cstddef>\n#include <cstdint>\n#include <cstring>\n#include <iterator>\n#include <span>\n"
    << "#include <string>\n#include <string_view>\n#include <type_traits>\n#include <utility>\n\n"
    << "#include <pobj/containers.hpp>\n#include <pobj/object.hpp>\n#include <pobj/record.hpp>\n#include <pobj/ref.hpp>\n"
    << (any_shared ? "#include <pobj/shared.hpp>\n" : "") << "#include <pobj/string.hpp>\n\n"
    << "#include \"" << include << "\"\n\n"
    << "namespace pobj::generated {\n";
  for (const auto& c : classes) emit_layouts(o, c);
  o << "\n}  // namespace pobj::generated\n";

  // Proxies and builders are declared first, then the traits that name them, then the proxies,
  // the members that return another class's proxy (which must be complete there), and the
  // builders.
  o << "\nnamespace pobj::generated {\n";
  for (const auto& c : classes) {
    o << "class " << identifier(c.qualified) << "_proxy;\nclass " << identifier(c.qualified) << "_builder;\n";
  }
  o << "}  // namespace pobj::generated\n";
  for (const auto& c : classes) {
    std::string id = identifier(c.qualified);
    o << "\ntemplate <>\nstruct pobj::persistent_traits<::" << c.qualified << "> {\n"
      << "  static constexpr std::uint64_t class_id = pobj::generated::" << id << "_class_id;\n"
      << "  static constexpr std::uint64_t schema_hash = pobj::generated::" << id << "_schema_hash;\n"
      << "  static constexpr std::size_t size = " << c.size << ";\n"
      << "  using proxy = pobj::generated::" << id << "_proxy;\n"
      << "  using builder = pobj::generated::" << id << "_builder;\n"
      << "  static const pobj::detail::class_info& info() noexcept { return pobj::generated::" << id << "_info; }\n"
      << "};\n";
  }
  o << "\nnamespace pobj::generated {\n";
  for (const auto& c : classes) emit_proxy(o, c);
  for (const auto& c : classes) {
    for (const auto& f : c.fields) {
      if (f.k != kind::reference || f.owner != c.qualified) continue;
      o << "\ninline pobj::proxy<::" << f.target << "> " << identifier(c.qualified) << "_proxy::" << f.name
        << "_object() const noexcept {\n  return pobj::deref(*pool_, " << f.name << "());\n}\n";
    }
  }
  for (const auto& c : classes) emit_builder(o, c);
  if (any_shared) emit_shared_all(o, classes);
  o << "\n}  // namespace pobj::generated\n";
  for (const auto& c : classes) {
    std::string id = identifier(c.qualified);
    o << "\ntemplate <>\nstruct fmt::formatter<pobj::generated::" << id << "_proxy> : fmt::formatter<std::string_view> {\n"
      << "  template <class Context>\n"
      << "  auto format(const pobj::generated::" << id << "_proxy& p, Context& ctx) const { return p.format_to(ctx.out()); }\n"
      << "};\n";
  }
  return o.str();
}

}  // namespace pobj_gen
