// pobj-gen's front end (frontend.hpp): libclang cursors and types into the model.
#include "frontend.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "checks.hpp"

namespace pobj_gen {

std::string str(CXString s) {
  const char* c = clang_getCString(s);
  std::string out = c != nullptr ? c : "";
  clang_disposeString(s);
  return out;
}

location where(CXCursor c) {
  CXFile file;
  location l;
  clang_getSpellingLocation(clang_getCursorLocation(c), &file, &l.line, &l.column, nullptr);
  l.file = file != nullptr ? str(clang_getFileName(file)) : "<unknown>";
  return l;
}

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

const persistent_class* find_class(const parse_state& ps, const std::string& qualified) {
  for (const auto& c : ps.classes) {
    if (c.qualified == qualified) return &c;
  }
  return nullptr;
}

std::string canonical(CXType t) { return str(clang_getTypeSpelling(clang_getCanonicalType(t))); }

namespace {

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

}  // namespace

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

}  // namespace pobj_gen
