// pobj-gen's checks (checks.hpp): the storable types, and why the others are not.
#include "checks.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "frontend.hpp"

namespace pobj_gen {

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

}  // namespace pobj_gen
