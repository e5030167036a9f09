// pobj-gen: reads a header of classes marked POBJ_PERSISTENT (pobj/annotate.hpp) with libclang and
// writes, for each, the persistent layout with explicit padding and static_asserts on size,
// alignment and every offset (of the layout and of the user's class, so a compiler that lays the
// class out differently from libclang fails to build), the class id, the schema hash and the
// offsets of the references (for the heap's check).
//
//   pobj-gen [-I DIR]... [-D NAME[=VALUE]]... -o OUT.pobj.hpp INPUT.hpp
//
// Unsupported fields are reported as `file:line:col: error: ...` with the reason and a hint, and
// pobj-gen exits with status 1 without writing OUT. Status 2: bad arguments or unparsable input.
#include <clang-c/Index.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

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

struct field {
  std::string name;
  std::string type;       // the element type for arrays
  std::string array;      // "[N]" or empty
  std::uint64_t offset = 0, size = 0;
  bool reference = false;  // a pobj::ref<T>
  std::string target;      // for references: the qualified persistent class
};

struct persistent_class {
  std::string name;       // as written
  std::string qualified;  // with namespaces
  std::string base;       // qualified name of a persistent base class, or empty
  std::uint64_t size = 0, align = 0;
  std::vector<field> fields;
};

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
    case CXType_Long:
    case CXType_LongLong: return "std::int" + std::to_string(clang_Type_getSizeOf(c) * 8) + "_t";
    case CXType_UChar:
    case CXType_UShort:
    case CXType_UInt:
    case CXType_ULong:
    case CXType_ULongLong: return "std::uint" + std::to_string(clang_Type_getSizeOf(c) * 8) + "_t";
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

// Why a type cannot be stored in a persistent field, with a hint; empty if it can.
std::pair<std::string, std::string> unsupported(CXType t, bool* is_ref) {
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
      if (scalar(e)) return {};
      return {"an array of '" + str(clang_getTypeSpelling(e)) + "'; arrays may hold integers, floating point and enums",
              "use a pobj container (durable types) for anything else"};
    }
    case CXType_Record: {
      CXCursor decl = clang_getTypeDeclaration(c);
      std::string qualified = qualified_name(decl);
      if (qualified == "pobj::ref") {
        CXType target = clang_Type_getTemplateArgumentAsType(c, 0);
        CXCursor target_decl = clang_getTypeDeclaration(clang_getCanonicalType(target));
        if (!has_annotation(target_decl, "pobj::persistent")) {
          return {"a reference to '" + str(clang_getTypeSpelling(target)) + "', which is not a persistent class",
                  "mark that class POBJ_PERSISTENT, or store its value"};
        }
        *is_ref = true;
        return {};
      }
      if (qualified.rfind("std::", 0) == 0) {
        return {"'" + spelled + "', a standard-library type whose bytes point into the memory of the process",
                "use the pobj durable types (pobj::string, pobj::vector, ...) instead"};
      }
      if (has_annotation(decl, "pobj::persistent")) {
        return {"the persistent class '" + spelled + "' by value", "store a reference: pobj::ref<" + spelled + ">"};
      }
      if (!clang_isPODType(c)) {
        return {"'" + spelled + "', which is not a plain trivially copyable aggregate",
                "store plain value records (trivially copyable aggregates) or persistent classes by reference"};
      }
      // A value record: each of its fields must be storable too.
      struct check {
        std::pair<std::string, std::string> why;
      } k;
      clang_Type_visitFields(
          c,
          [](CXCursor f, CXClientData data) {
            auto* state = static_cast<check*>(data);
            bool r = false;
            auto why = unsupported(clang_getCursorType(f), &r);
            if (!why.first.empty()) {
              state->why = {"a value record whose field '" + str(clang_getCursorSpelling(f)) + "' is " + why.first, why.second};
              return CXVisit_Break;
            }
            return CXVisit_Continue;
          },
          &k);
      return k.why;
    }
    default:
      if (scalar(t)) return {};
      return {"'" + spelled + "', which pobj cannot store",
              "persistent fields are bool, fixed-width integers, float, double, enums, arrays of these, "
              "value records and pobj::ref<T>"};
  }
}

struct parse_state {
  diagnostics* diag;
  std::string main_file;
  std::vector<persistent_class> classes;
};

void collect_class(CXCursor c, parse_state& ps) {
  persistent_class pc;
  pc.name = str(clang_getCursorSpelling(c));
  pc.qualified = qualified_name(c);
  CXType t = clang_getCursorType(c);
  pc.size = static_cast<std::uint64_t>(clang_Type_getSizeOf(t));
  pc.align = static_cast<std::uint64_t>(clang_Type_getAlignOf(t));
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
            } else {
              x->pc->base = qualified_name(base);
            }
            break;
          }
          case CXCursor_CXXMethod:
            if (clang_CXXMethod_isVirtual(child)) {
              d.error(child, "persistent class '" + x->pc->name + "' declares the virtual function '" +
                                 str(clang_getCursorSpelling(child)) + "'; a vtable pointer in a pool is meaningless "
                                 "after a restart",
                      "dispatch on the concrete class with pobj's class ids instead");
            }
            break;
          case CXCursor_FieldDecl: {
            std::string name = str(clang_getCursorSpelling(child));
            if (clang_Cursor_isBitField(child)) {
              d.error(child, "field '" + name + "' of persistent class '" + x->pc->name +
                                 "' is a bit-field, whose layout differs between compilers",
                      "use a whole integer field and mask it");
              break;
            }
            CXType ft = clang_getCursorType(child);
            bool is_ref = false;
            auto [why, hint] = unsupported(ft, &is_ref);
            if (!why.empty()) {
              d.error(child, "field '" + name + "' of persistent class '" + x->pc->name + "' is " + why, hint);
              break;
            }
            field f;
            f.name = name;
            f.reference = is_ref;
            if (is_ref) {
              CXType target = clang_Type_getTemplateArgumentAsType(clang_getCanonicalType(ft), 0);
              f.target = qualified_name(clang_getTypeDeclaration(clang_getCanonicalType(target)));
            }
            CXType spelled = ft;
            if (clang_getCanonicalType(ft).kind == CXType_ConstantArray) {
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

std::string generate(const std::vector<persistent_class>& classes, const std::string& include) {
  std::ostringstream o;
  o << "// generated by pobj-gen, do not edit\n"
    << "// from " << include << "\n"
    << "#pragma once\n\n#include <cstddef>\n#include <cstdint>\n#include <iterator>\n\n#include <pobj/object.hpp>\n#include <pobj/ref.hpp>\n\n"
    << "#include \"" << include << "\"\n\n"
    << "namespace pobj::generated {\n";
  for (const auto& c : classes) {
    std::string id = identifier(c.qualified);
    std::string schema = c.qualified + "|" + c.base + "|" + std::to_string(c.size);
    for (const auto& f : c.fields) schema += "|" + f.name + ":" + f.type + f.array + "@" + std::to_string(f.offset);
    o << "\n// ::" << c.qualified << (c.base.empty() ? "" : " : ::" + c.base) << "\n"
      << "struct " << id << "_layout {\n";
    std::uint64_t at = 0;
    int pad = 0;
    for (const auto& f : c.fields) {
      if (f.offset > at) o << "  std::uint8_t pad" << pad++ << "_[" << f.offset - at << "];  // offset " << at << "\n";
      if (f.offset < at) at = f.offset;  // a base's fields come first; never here for single inheritance
      o << "  " << f.type << " " << f.name << f.array << ";  // offset " << f.offset << ", " << f.size
        << (f.size == 1 ? " byte\n" : " bytes\n");
      at = f.offset + f.size;
    }
    if (c.fields.empty() && c.size > 0) at = 0;
    if (c.size > at) o << "  std::uint8_t pad" << pad++ << "_[" << c.size - at << "];  // offset " << at << "\n";
    o << "};\n"
      << "static_assert(sizeof(" << id << "_layout) == " << c.size << ");\n"
      << "static_assert(alignof(" << id << "_layout) == " << c.align << ");\n"
      << "static_assert(sizeof(::" << c.qualified << ") == " << c.size << ");\n"
      << "static_assert(alignof(::" << c.qualified << ") == " << c.align << ");\n";
    for (const auto& f : c.fields) {
      o << "static_assert(offsetof(" << id << "_layout, " << f.name << ") == " << f.offset << ");\n"
        << "static_assert(offsetof(::" << c.qualified << ", " << f.name << ") == " << f.offset << ");\n";
    }
    o << "inline constexpr std::uint64_t " << id << "_class_id = " << hex(fnv1a(c.qualified)) << ";\n"
      << "inline constexpr std::uint64_t " << id << "_schema_hash = " << hex(fnv1a(schema)) << ";\n"
      << "inline constexpr std::size_t " << id << "_reference_offsets[] = {";
    bool first = true;
    for (const auto& f : c.fields) {
      if (!f.reference) continue;
      o << (first ? "" : ", ") << f.offset;
      first = false;
    }
    if (first) o << "static_cast<std::size_t>(-1)";  // none (an empty array is not allowed)
    o << "};\n";
  }
  o << "\n}  // namespace pobj::generated\n";

  // Proxies are declared first, then the traits that name them, then the proxies, and last the
  // members that return another class's proxy (which must be complete there).
  o << "\nnamespace pobj::generated {\n";
  for (const auto& c : classes) o << "class " << identifier(c.qualified) << "_proxy;\n";
  o << "}  // namespace pobj::generated\n";
  for (const auto& c : classes) {
    std::string id = identifier(c.qualified);
    o << "\ntemplate <>\nstruct pobj::persistent_traits<::" << c.qualified << "> {\n"
      << "  static constexpr std::uint64_t class_id = pobj::generated::" << id << "_class_id;\n"
      << "  static constexpr std::uint64_t schema_hash = pobj::generated::" << id << "_schema_hash;\n"
      << "  static constexpr std::size_t size = " << c.size << ";\n"
      << "  using proxy = pobj::generated::" << id << "_proxy;\n"
      << "};\n";
  }
  o << "\nnamespace pobj::generated {\n";
  for (const auto& c : classes) {
    std::string id = identifier(c.qualified);
    std::string self = "::" + c.qualified;
    o << "\n// A proxy of a ::" << c.qualified << " in a pool: two words, made on dereference, never allocated.\n"
      << "class " << id << "_proxy {\n public:\n"
      << "  " << id << "_proxy(pobj::pool& p, " << self << "* object) noexcept : pool_(&p), object_(object) {}\n"
      << "  pobj::pool& pool() const noexcept { return *pool_; }\n"
      << "  const " << self << "* get() const noexcept { return object_; }\n"
      << "  pobj::ref<" << self << "> ref() const noexcept { return pobj::ref<" << self
      << ">(pool_->offset_of(object_)); }\n";
    for (const auto& f : c.fields) {
      bool single = f.array.empty() && (f.size == 1 || f.size == 2 || f.size == 4 || f.size == 8) &&
                    f.offset % f.size == 0;
      o << "\n  // " << f.name << ": " << f.type << f.array << "\n";
      if (!f.array.empty()) {
        o << "  const " << f.type << " (&" << f.name << "() const noexcept)" << f.array << " { return object_->" << f.name
          << "; }\n"
          << "  void set_" << f.name << "(pobj::transaction& tx, const " << f.type << " (&value)" << f.array
          << ") {\n    tx.snapshot(&object_->" << f.name << ", sizeof(object_->" << f.name << "));\n"
          << "    for (std::size_t i = 0; i < std::size(value); ++i) object_->" << f.name << "[i] = value[i];\n  }\n";
        continue;
      }
      o << "  " << f.type << " " << f.name << "() const noexcept { return object_->" << f.name << "; }\n";
      if (single) {
        o << "  void set_" << f.name << "(const " << f.type << "& value) { pobj::detail::store_field(*pool_, object_->"
          << f.name << ", value); }\n";
      }
      o << "  void set_" << f.name << "(pobj::transaction& tx, const " << f.type << "& value) { tx.set(object_->"
        << f.name << ", value); }\n";
      if (f.reference) {
        o << "  // The object " << f.name << " refers to. REQUIRES: " << f.name << "() is not null.\n"
          << "  pobj::proxy<::" << f.target << "> " << f.name << "_object() const noexcept;\n";
      }
    }
    o << "\n  // Field by field (references by offset), whether or not a and b are the same object.\n"
      << "  friend bool operator==(const " << id << "_proxy& a, const " << id << "_proxy& b) noexcept {\n"
      << "    return true";
    for (const auto& f : c.fields) {
      o << "\n        && pobj::detail::field_equal(a.object_->" << f.name << ", b.object_->" << f.name << ")";
    }
    o << ";\n  }\n";
    o << "\n  template <class Out>\n  Out format_to(Out out) const {\n"
      << "    out = fmt::format_to(out, \"" << c.qualified << "{{\");\n";
    bool first_field = true;
    for (const auto& f : c.fields) {
      o << "    out = pobj::detail::format_field(fmt::format_to(out, \"" << (first_field ? "" : ", ") << f.name
        << ": \"), object_->" << f.name << ");\n";
      first_field = false;
    }
    o << "    return fmt::format_to(out, \"}}\");\n  }\n";
    o << "\n private:\n  pobj::pool* pool_;\n  " << self << "* object_;\n};\n"
      << "static_assert(sizeof(" << id << "_proxy) == 2 * sizeof(void*));\n";
  }
  for (const auto& c : classes) {
    for (const auto& f : c.fields) {
      if (!f.reference) continue;
      o << "\ninline pobj::proxy<::" << f.target << "> " << identifier(c.qualified) << "_proxy::" << f.name
        << "_object() const noexcept {\n  return pobj::deref(*pool_, object_->" << f.name << ");\n}\n";
    }
  }
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

int usage() {
  std::fprintf(stderr, "usage: pobj-gen [-I DIR]... [-D NAME[=VALUE]]... -o OUT.pobj.hpp INPUT.hpp\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args{"-x", "c++", "-std=c++20", "-resource-dir", POBJ_CLANG_RESOURCE_DIR};
  std::string input, output;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
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
