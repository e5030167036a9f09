// pobj-gen: reads a header of classes marked POBJ_PERSISTENT (pobj/annotate.hpp) with libclang and
// writes, for each: the persistent layout with explicit padding and static_asserts on size,
// alignment and every offset (of the layout and of the user's class, so a compiler that lays the
// class out differently from libclang fails to build); the class id, the schema hash and the
// class description that registers the class with every pool the program opens; the proxy (typed
// getters and setters, references followed, strings as views, the user's persistent methods,
// equality, an fmt formatter); and a builder.
//
//   pobj-gen [-I DIR]... [-D NAME[=VALUE]]... -o OUT.pobj.hpp INPUT.hpp
//
// Unsupported fields are reported as `file:line:col: error: ...` with the reason and a hint, and
// pobj-gen exits with status 1 without writing OUT. Status 2: bad arguments or unparsable input.
#include <clang-c/Index.h>

#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#ifndef POBJ_VERSION
#error "the build defines POBJ_VERSION (meson's project version)"
#endif
#ifndef POBJ_CLANG_RESOURCE_DIR
#error "the build defines POBJ_CLANG_RESOURCE_DIR (clang's builtin headers)"
#endif

namespace {

std::string str(CXString s) {
  const char* c = clang_getCString(s);
  std::string out = c != nullptr ? c : "";
  clang_disposeString(s);
  return out;
}

struct location {
  std::string file;
  unsigned line = 0, column = 0;
};

location where(CXCursor c) {
  CXFile file;
  location l;
  clang_getSpellingLocation(clang_getCursorLocation(c), &file, &l.line, &l.column, nullptr);
  l.file = file != nullptr ? str(clang_getFileName(file)) : "<unknown>";
  return l;
}

struct diagnostics {
  int errors = 0;
  void error(CXCursor at, const std::string& message, const std::string& hint) {
    location l = where(at);
    std::fprintf(stderr, "%s:%u:%u: error: %s\n", l.file.c_str(), l.line, l.column, message.c_str());
    if (!hint.empty()) std::fprintf(stderr, "%s:%u:%u: note: hint: %s\n", l.file.c_str(), l.line, l.column, hint.c_str());
    ++errors;
  }
};

bool has_annotation(CXCursor c, const char* what) {
  struct search {
    const char* what;
    bool found = false;
  } s{what};
  clang_visitChildren(
      c,
      [](CXCursor child, CXCursor, CXClientData data) {
        auto* state = static_cast<search*>(data);
        if (clang_getCursorKind(child) == CXCursor_AnnotateAttr && str(clang_getCursorSpelling(child)) == state->what) {
          state->found = true;
          return CXChildVisit_Break;
        }
        return CXChildVisit_Continue;
      },
      &s);
  return s.found;
}

// FNV-1a, stable across builds and platforms: class ids and schema hashes are persistent.
std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

enum class kind { value, array, reference, reference_array, record, string, bytes, atomic, atomic_reference, container };

char kind_code(kind k) {
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
std::string make_call(std::string type) {
  if (type.rfind("::", 0) == 0) type.erase(0, 2);
  if (type.rfind("pobj::", 0) == 0) type.insert(6, "make_");
  return type;
}

// The name the generated code uses for a type: fixed-width names for integers, fully qualified
// names for everything else (the generated code lives in another namespace).
std::string type_name(CXType t) {
  CXType c = clang_getCanonicalType(t);
  switch (c.kind) {
    case CXType_Bool: return "bool";
    case CXType_Float: return "float";
    case CXType_Double: return "double";
    case CXType_Char_S:
    case CXType_Char_U: return "char";
    case CXType_SChar:
    case CXType_Short:
    case CXType_Int:
    case CXType_Long: return "std::int" + std::to_string(clang_Type_getSizeOf(c) * 8) + "_t";
    case CXType_LongLong: return "long long";  // a type of its own, even where it has long's size
    case CXType_UChar:
    case CXType_UShort:
    case CXType_UInt:
    case CXType_ULong: return "std::uint" + std::to_string(clang_Type_getSizeOf(c) * 8) + "_t";
    case CXType_ULongLong: return "unsigned long long";
    default: return "::" + str(clang_getTypeSpelling(c));
  }
}

std::string qualified_name(CXCursor c) {
  std::string name = str(clang_getCursorSpelling(c));
  for (CXCursor p = clang_getCursorSemanticParent(c); !clang_Cursor_isNull(p) &&
                                                      clang_getCursorKind(p) != CXCursor_TranslationUnit;
       p = clang_getCursorSemanticParent(p)) {
    name = str(clang_getCursorSpelling(p)) + "::" + name;
  }
  return name;
}

bool scalar(CXType t) {
  switch (clang_getCanonicalType(t).kind) {
    case CXType_Bool:
    case CXType_Char_S:
    case CXType_SChar:
    case CXType_Char_U:
    case CXType_UChar:
    case CXType_Short:
    case CXType_UShort:
    case CXType_Int:
    case CXType_UInt:
    case CXType_Long:
    case CXType_ULong:
    case CXType_LongLong:
    case CXType_ULongLong:
    case CXType_Float:
    case CXType_Double:
    case CXType_Enum:
      return true;
    default:
      return false;
  }
}

struct field_kind {
  kind k = kind::value;
  std::string target;
};

using why_not = std::pair<std::string, std::string>;  // reason and hint; empty if storable

// Why a type cannot be stored in a persistent field (or, with in_record, in a value record), with
// a hint; empty if it can, and then `out` says what kind of field it is.
why_not unsupported(CXType t, field_kind* out, bool in_record) {
  CXType c = clang_getCanonicalType(t);
  std::string spelled = str(clang_getTypeSpelling(t));
  switch (c.kind) {
    case CXType_Pointer:
    case CXType_LValueReference:
    case CXType_RValueReference:
    case CXType_MemberPointer:
      return {"a raw pointer or C++ reference, which means nothing once the process that wrote it is gone",
              "refer to persistent objects with pobj::ref<T>"};
    case CXType_LongDouble:
      return {"long double, whose size and format differ between compilers and machines", "use double"};
    case CXType_ConstantArray: {
      CXType e = clang_getArrayElementType(t);
      if (in_record) {
        return {"an array, which Boost.PFR cannot reflect in a value record",
                "give the record one field per element, or make the array a field of the persistent class"};
      }
      if (scalar(e)) {
        out->k = kind::array;
        return {};
      }
      CXCursor element = clang_getTypeDeclaration(clang_getCanonicalType(e));
      if (!in_record && qualified_name(element) == "pobj::ref") {
        auto why = unsupported(e, out, false);
        if (why.first.empty()) out->k = kind::reference_array;
        return why;
      }
      return {"an array of '" + str(clang_getTypeSpelling(e)) + "'; arrays may hold integers, floating point, enums "
              "and (in persistent classes) references",
              "use a pobj container (durable types) for anything else"};
    }
    case CXType_Record: {
      CXCursor decl = clang_getTypeDeclaration(c);
      std::string qualified = qualified_name(decl);
      if (qualified == "pobj::ref" || qualified == "pobj::record") {
        if (in_record) {
          return {"a reference, which the heap's check does not follow inside a value record",
                  "make the reference a field of the persistent class itself"};
        }
      }
      if (qualified == "pobj::ref") {
        CXType target = clang_Type_getTemplateArgumentAsType(c, 0);
        CXCursor target_decl = clang_getTypeDeclaration(clang_getCanonicalType(target));
        if (!has_annotation(target_decl, "pobj::persistent")) {
          return {"a reference to '" + str(clang_getTypeSpelling(target)) + "', which is not a persistent class",
                  "mark that class POBJ_PERSISTENT, or store its value"};
        }
        out->k = kind::reference;
        out->target = qualified_name(target_decl);
        return {};
      }
      if (qualified == "pobj::record") {
        CXType target = clang_Type_getTemplateArgumentAsType(c, 0);
        field_kind inner;
        auto why = unsupported(target, &inner, true);
        if (!why.first.empty()) return {"a record of " + why.first, why.second};
        if (inner.k != kind::value || clang_getCanonicalType(target).kind != CXType_Record) {
          return {"a pobj::record of '" + str(clang_getTypeSpelling(target)) + "', which is not a value record",
                  "store scalars as plain fields; records hold trivially copyable aggregates"};
        }
        out->k = kind::record;
        out->target = type_name(target);
        return {};
      }
      if (qualified == "pobj::atomic") {
        if (in_record) {
          return {"a pobj::atomic, which is shared state and cannot live in a value record (records are copied)",
                  "make it a field of the persistent class itself"};
        }
        CXType value = clang_Type_getTemplateArgumentAsType(c, 0);
        field_kind inner;
        if (clang_getCanonicalType(value).kind == CXType_Record) {
          auto why = unsupported(value, &inner, false);
          if (!why.first.empty()) return {"an atomic of " + why.first, why.second};
          out->k = kind::atomic_reference;
        } else {
          out->k = kind::atomic;
        }
        return {};
      }
      if (qualified == "pobj::hash_map" || qualified == "pobj::ordered_map" || qualified == "pobj::set" ||
          qualified == "pobj::queue" || qualified == "pobj::vector") {
        if (in_record) {
          return {"'" + qualified + "', a container that owns its blocks and so cannot live in a value record",
                  "make it a field of the persistent class itself"};
        }
        out->k = kind::container;
        return {};
      }
      if (qualified == "pobj::string" || qualified == "pobj::bytes") {
        if (in_record) {
          return {"'" + qualified + "', which owns a block of its own and so cannot live in a value record",
                  "make it a field of the persistent class itself"};
        }
        out->k = qualified == "pobj::string" ? kind::string : kind::bytes;
        return {};
      }
      if (qualified.rfind("std::", 0) == 0) {
        return {"'" + spelled + "', a standard-library type whose bytes point into the memory of the process",
                "use the pobj durable types (pobj::string, pobj::bytes, ...) instead"};
      }
      if (has_annotation(decl, "pobj::persistent")) {
        return {"the persistent class '" + spelled + "' by value", "store a reference: pobj::ref<" + spelled + ">"};
      }
      // A value record: a plain aggregate (no bases, constructors, destructor, copy assignment or
      // virtual functions; the generated code also asserts it is trivially copyable) whose fields
      // can all be stored in a record.
      struct check {
        why_not why;
        bool plain = true;
      } k;
      clang_visitChildren(
          decl,
          [](CXCursor m, CXCursor, CXClientData data) {
            auto* state = static_cast<check*>(data);
            switch (clang_getCursorKind(m)) {
              case CXCursor_CXXBaseSpecifier:
              case CXCursor_Constructor:
              case CXCursor_Destructor:
                state->plain = false;
                break;
              case CXCursor_CXXMethod:
                if (clang_CXXMethod_isVirtual(m) || str(clang_getCursorSpelling(m)) == "operator=") state->plain = false;
                break;
              default:
                break;
            }
            return CXChildVisit_Continue;
          },
          &k);
      clang_Type_visitFields(
          c,
          [](CXCursor f, CXClientData data) {
            auto* state = static_cast<check*>(data);
            field_kind ignored;
            if (clang_Cursor_isBitField(f)) {
              state->why = {"a value record whose field '" + str(clang_getCursorSpelling(f)) +
                                "' is a bit-field, whose layout differs between compilers",
                            "use a whole integer field and mask it"};
              return CXVisit_Break;
            }
            auto why = unsupported(clang_getCursorType(f), &ignored, true);
            if (!why.first.empty()) {
              state->why = {"a value record whose field '" + str(clang_getCursorSpelling(f)) + "' is " + why.first, why.second};
              return CXVisit_Break;
            }
            return CXVisit_Continue;
          },
          &k);
      out->k = kind::value;
      if (!k.why.first.empty()) return k.why;
      if (!k.plain) {
        return {"'" + spelled + "', which is not a plain aggregate (it has bases, constructors, a destructor, a copy "
                "assignment or virtual functions)",
                "store plain value records (trivially copyable aggregates) or persistent classes by reference"};
      }
      return {};
    }
    default:
      if (scalar(t)) return {};
      return {"'" + spelled + "', which pobj cannot store",
              "persistent fields are bool, fixed-width integers, float, double, enums, arrays of these, "
              "value records, pobj::string, pobj::bytes, pobj::record<T> and pobj::ref<T>"};
  }
}

struct parse_state {
  diagnostics* diag;
  std::string main_file;
  std::vector<persistent_class> classes;
};

const persistent_class* find_class(const parse_state& ps, const std::string& qualified) {
  for (const auto& c : ps.classes) {
    if (c.qualified == qualified) return &c;
  }
  return nullptr;
}

std::string canonical(CXType t) { return str(clang_getTypeSpelling(clang_getCanonicalType(t))); }

// What a shared method's parameter (or, with result, its result) arrives or leaves as: the type
// the generated code parses the text into, or empty if the type cannot be one. Parameters may be
// taken by value or by const reference.
std::string shared_type(CXType t, bool result) {
  CXType c = clang_getCanonicalType(t);
  if (!result && c.kind == CXType_LValueReference) {
    CXType to = clang_getPointeeType(c);
    if (!clang_isConstQualifiedType(to)) return {};
    c = clang_getCanonicalType(to);
  }
  switch (c.kind) {
    case CXType_Void: return result ? "void" : "";
    case CXType_Char_S:  // a character or a number? std::int8_t says
    case CXType_Char_U:
    case CXType_Enum:  // its values have no names on the wire
      return {};
    case CXType_Record: {
      // Exactly std::string and std::string_view (char, the standard traits and allocator): not
      // wide strings, nor strings with another allocator.
      std::string spelled = str(clang_getTypeSpelling(c));
      if (spelled.rfind("const ", 0) == 0) spelled.erase(0, 6);
      if (spelled == "std::basic_string_view<char>" || spelled == "std::basic_string_view<char, std::char_traits<char>>") {
        return "std::string_view";
      }
      for (const char* ns : {"std::", "std::__cxx11::"}) {
        const std::string base = std::string(ns) + "basic_string<char";
        if (spelled == base + ">" || spelled == base + ", std::char_traits<char>, std::allocator<char>>") return "std::string";
      }
      return {};
    }
    default:
      return scalar(c) ? type_name(c) : std::string();
  }
}

void collect_class(CXCursor c, parse_state& ps) {
  persistent_class pc;
  pc.name = str(clang_getCursorSpelling(c));
  pc.qualified = qualified_name(c);
  CXType t = clang_getCursorType(c);
  pc.size = static_cast<std::uint64_t>(clang_Type_getSizeOf(t));
  pc.align = static_cast<std::uint64_t>(clang_Type_getAlignOf(t));
  const int errors_before = ps.diag->errors;
  struct ctx {
    parse_state* ps;
    persistent_class* pc;
    CXType type;
    int bases = 0;
  } context{&ps, &pc, t};
  clang_visitChildren(
      c,
      [](CXCursor child, CXCursor, CXClientData data) {
        auto* x = static_cast<ctx*>(data);
        diagnostics& d = *x->ps->diag;
        switch (clang_getCursorKind(child)) {
          case CXCursor_CXXBaseSpecifier: {
            CXCursor base = clang_getTypeDeclaration(clang_getCanonicalType(clang_getCursorType(child)));
            ++x->bases;
            const persistent_class* known = find_class(*x->ps, qualified_name(base));
            if (clang_isVirtualBase(child)) {
              d.error(child, "persistent class '" + x->pc->name + "' has a virtual base class",
                      "use single, non-virtual inheritance between persistent classes");
            } else if (!has_annotation(base, "pobj::persistent")) {
              d.error(child, "persistent class '" + x->pc->name + "' derives from '" + qualified_name(base) +
                                 "', which is not a persistent class",
                      "mark the base POBJ_PERSISTENT too");
            } else if (x->bases > 1) {
              d.error(child, "persistent class '" + x->pc->name + "' has more than one base class",
                      "persistent classes use single inheritance");
            } else if (clang_getCXXAccessSpecifier(child) != CX_CXXPublic) {
              d.error(child, "persistent class '" + x->pc->name + "' derives from '" + qualified_name(base) +
                                 "' privately or protectedly",
                      "derive publicly, so a reference to the base may hold this class");
            } else if (known == nullptr) {
              d.error(child, "the base class '" + qualified_name(base) + "' of persistent class '" + x->pc->name +
                                 "' is not declared in this header",
                      "declare persistent classes and their persistent bases in one header");
            } else {
              x->pc->base = known->qualified;
              x->pc->fields = known->fields;  // the base's fields come first
            }
            break;
          }
          case CXCursor_Destructor:
            if (clang_CXXMethod_isVirtual(child)) {
              d.error(child, "persistent class '" + x->pc->name +
                                 "' declares a virtual destructor, which gives it a vtable; a vtable pointer in a "
                                 "pool is meaningless after a restart",
                      "remove 'virtual' (pobj::destroy frees an object through a base proxy by its concrete class)");
            }
            break;
          case CXCursor_CXXMethod: {
            std::string mname = str(clang_getCursorSpelling(child));
            if (clang_CXXMethod_isVirtual(child)) {
              d.error(child, "persistent class '" + x->pc->name + "' declares the virtual function '" + mname +
                                 "'; a vtable pointer in a pool is meaningless after a restart",
                      "dispatch on the concrete class with pobj::visit instead");
              break;
            }
            bool fa = has_annotation(child, "pobj::failure_atomic");
            const bool shared = has_annotation(child, "pobj::shared");
            if (!fa && !shared && !has_annotation(child, "pobj::method")) break;
            if (clang_CXXMethod_isStatic(child)) {
              d.error(child, "static method '" + mname + "' of persistent class '" + x->pc->name +
                                 "' is marked as a persistent method",
                      "only non-static methods run on an object; remove the mark");
              break;
            }
            method m;
            m.name = mname;
            m.is_const = clang_CXXMethod_isConst(child) != 0;
            // A shared method that changes the object runs in the caller's block, as a
            // failure-atomic method; one that does not is const and needs none.
            m.failure_atomic = fa || (shared && !m.is_const);
            m.shared = shared;
            m.result = canonical(clang_getCursorResultType(child));
            const std::string shared_hint =
                "a shared method's arguments arrive as text: it takes integers, floating point numbers, bool and "
                "strings (std::string_view or std::string, by value or const reference), and returns one of those "
                "or void";
            bool shared_ok = true;
            if (shared) {
              m.shared_result = shared_type(clang_getCursorResultType(child), true);
              if (m.shared_result.empty()) {
                d.error(child, "shared method '" + mname + "' of persistent class '" + x->pc->name + "' returns '" +
                                   str(clang_getTypeSpelling(clang_getCursorResultType(child))) + "'",
                        shared_hint);
                shared_ok = false;
              }
            }
            int n = clang_Cursor_getNumArguments(child);
            for (int i = 0; i < n; ++i) {
              CXCursor arg = clang_Cursor_getArgument(child, static_cast<unsigned>(i));
              std::string aname = str(clang_getCursorSpelling(arg));
              if (aname.empty()) aname = "arg" + std::to_string(i);
              m.params.emplace_back(canonical(clang_getCursorType(arg)), aname);
              if (shared) {
                std::string as = shared_type(clang_getCursorType(arg), false);
                if (as.empty()) {
                  d.error(arg, "shared method '" + mname + "' of persistent class '" + x->pc->name +
                                   "' takes parameter '" + aname + "' of type '" +
                                   str(clang_getTypeSpelling(clang_getCursorType(arg))) + "'",
                          shared_hint);
                  shared_ok = false;
                }
                m.shared_params.push_back(std::move(as));
              }
            }
            if (shared && std::any_of(x->pc->methods.begin(), x->pc->methods.end(),
                                      [&](const method& other) { return other.shared && other.name == mname; })) {
              d.error(child, "shared method '" + mname + "' of persistent class '" + x->pc->name + "' is overloaded",
                      "clients call shared methods by name: give each its own");
              shared_ok = false;
            }
            if (shared_ok) x->pc->methods.push_back(std::move(m));
            break;
          }
          case CXCursor_FieldDecl: {
            std::string name = str(clang_getCursorSpelling(child));
            if (clang_Cursor_isBitField(child)) {
              d.error(child, "field '" + name + "' of persistent class '" + x->pc->name +
                                 "' is a bit-field, whose layout differs between compilers",
                      "use a whole integer field and mask it");
              break;
            }
            CXType ft = clang_getCursorType(child);
            static const char* const reserved[] = {"get", "ref", "pool", "stored_size", "assign", "format_to", "self"};
            if (std::find_if(std::begin(reserved), std::end(reserved), [&](const char* r) { return name == r; }) !=
                std::end(reserved)) {
              d.error(child, "field '" + name + "' of persistent class '" + x->pc->name +
                                 "' has a name the generated proxy uses for itself",
                      "rename the field (get, ref, pool, stored_size, assign, format_to and self are taken)");
              break;
            }
            if (clang_isConstQualifiedType(ft) ||
                (clang_getCanonicalType(ft).kind == CXType_ConstantArray &&
                 clang_isConstQualifiedType(clang_getArrayElementType(ft)))) {
              d.error(child, "field '" + name + "' of persistent class '" + x->pc->name +
                                 "' is const, so no setter could write it",
                      "drop the const; a proxy is how the field is read and written");
              break;
            }
            field_kind fk;
            auto [why, hint] = unsupported(ft, &fk, false);
            if (!why.empty()) {
              d.error(child, "field '" + name + "' of persistent class '" + x->pc->name + "' is " + why, hint);
              break;
            }
            field f;
            f.name = name;
            f.appended = has_annotation(child, "pobj::appended");
            f.k = fk.k;
            f.target = fk.target;
            f.owner = x->pc->qualified;
            CXType spelled = ft;
            if (fk.k == kind::array || fk.k == kind::reference_array) {
              f.array = "[" + std::to_string(clang_getArraySize(clang_getCanonicalType(ft))) + "]";
              spelled = clang_getArrayElementType(ft);
            }
            f.type = type_name(spelled);
            f.offset = static_cast<std::uint64_t>(clang_Type_getOffsetOf(x->type, name.c_str())) / 8;  // bits
            f.size = static_cast<std::uint64_t>(clang_Type_getSizeOf(ft));
            x->pc->fields.push_back(std::move(f));
            break;
          }
          default:
            break;
        }
        return CXChildVisit_Continue;
      },
      &context);
  if (pc.align > 8 && ps.diag->errors == errors_before) {
    ps.diag->error(c, "persistent class '" + pc.name + "' needs " + std::to_string(pc.align) +
                          "-byte alignment; objects in a pool are 8-byte aligned",
                   "remove the alignas, or store the over-aligned data in a byte array");
  }
  ps.classes.push_back(std::move(pc));
}

CXChildVisitResult visit(CXCursor c, CXCursor, CXClientData data) {
  auto* ps = static_cast<parse_state*>(data);
  CXCursorKind k = clang_getCursorKind(c);
  if (k == CXCursor_Namespace) {
    clang_visitChildren(c, visit, data);
    return CXChildVisit_Continue;
  }
  if ((k == CXCursor_StructDecl || k == CXCursor_ClassDecl) && clang_isCursorDefinition(c) &&
      where(c).file == ps->main_file && has_annotation(c, "pobj::persistent")) {
    collect_class(c, *ps);
  }
  return CXChildVisit_Continue;
}

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

// The layout as the pool records it (pobj/src/schema.cpp writes the same text): its hash is the
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

constexpr const char* usage_line = "usage: pobj-gen [-I DIR]... [-D NAME[=VALUE]]... -o OUT.pobj.hpp INPUT.hpp\n";

int usage() {
  std::fprintf(stderr, "%s(pobj-gen --help says more)\n", usage_line);
  return 2;
}

int help() {
  std::printf(
      "pobj-gen: generates the persistent layout, proxy and builder of every class marked POBJ_PERSISTENT\n"
      "in a C++ header (docs/objects.md).\n\n%s\n"
      "  -I DIR            an include directory, as for the compiler (repeatable; -IDIR too)\n"
      "  -D NAME[=VALUE]   a macro, as for the compiler (repeatable; -DNAME too)\n"
      "  -o OUT.pobj.hpp   the header to write; include it after INPUT.hpp\n"
      "  --help            this text\n"
      "  --version         pobj-gen's version\n\n"
      "Example:\n"
      "  pobj-gen -I /usr/local/include -o catalog.pobj.hpp catalog.hpp\n\n"
      "Exit status: 0 written; 1 a class has something pobj cannot store (each reported as\n"
      "file:line:col: error: ... with a hint; nothing written); 2 bad arguments, a missing or\n"
      "unparsable input, or an output that cannot be written.\n",
      usage_line);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args{"-x", "c++", "-std=c++20", "-resource-dir", POBJ_CLANG_RESOURCE_DIR};
  std::string input, output;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") return help();
    if (a == "--version") {
      std::printf("pobj-gen %s (libclang: %s)\n", POBJ_VERSION, str(clang_getClangVersion()).c_str());
      return 0;
    }
    if ((a == "-I" || a == "-D" || a == "-o") && i + 1 < argc) {
      std::string v = argv[++i];
      if (a == "-o") output = v;
      else args.push_back(a + v);
    } else if (a.rfind("-I", 0) == 0 || a.rfind("-D", 0) == 0) {
      args.push_back(a);
    } else if (a[0] == '-' || !input.empty()) {
      return usage();
    } else {
      input = a;
    }
  }
  if (input.empty() || output.empty()) return usage();
  if (std::ifstream probe(input); !probe) {
    std::fprintf(stderr, "pobj-gen: %s: %s\n", input.c_str(), std::strerror(errno));
    return 2;
  }

  std::vector<const char*> cargs;
  for (const auto& a : args) cargs.push_back(a.c_str());
  CXIndex index = clang_createIndex(0, 0);
  CXTranslationUnit tu = nullptr;
  CXErrorCode rc = clang_parseTranslationUnit2(index, input.c_str(), cargs.data(), static_cast<int>(cargs.size()),
                                               nullptr, 0, CXTranslationUnit_SkipFunctionBodies, &tu);
  if (rc != CXError_Success || tu == nullptr) {
    std::fprintf(stderr, "pobj-gen: cannot parse %s\n", input.c_str());
    return 2;
  }
  bool compile_errors = false;
  for (unsigned i = 0; i < clang_getNumDiagnostics(tu); ++i) {
    CXDiagnostic d = clang_getDiagnostic(tu, i);
    if (clang_getDiagnosticSeverity(d) >= CXDiagnostic_Error) {
      std::fprintf(stderr, "%s\n", str(clang_formatDiagnostic(d, clang_defaultDiagnosticDisplayOptions())).c_str());
      compile_errors = true;
    }
    clang_disposeDiagnostic(d);
  }
  if (compile_errors) {
    clang_disposeTranslationUnit(tu);
    clang_disposeIndex(index);
    return 2;
  }
  diagnostics diag;
  parse_state ps{&diag, str(clang_getFileName(clang_getFile(tu, input.c_str()))), {}};
  clang_visitChildren(clang_getTranslationUnitCursor(tu), visit, &ps);
  clang_disposeTranslationUnit(tu);
  clang_disposeIndex(index);
  if (diag.errors > 0) return 1;

  std::string include = input.substr(input.find_last_of('/') + 1);
  std::ofstream out(output, std::ios::trunc);
  out << generate(ps.classes, include);
  if (!out) {
    std::fprintf(stderr, "pobj-gen: cannot write %s\n", output.c_str());
    return 2;
  }
  return 0;
}
