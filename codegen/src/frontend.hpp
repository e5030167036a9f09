// pobj-gen's front end: reads an annotated header with libclang into the model (model.hpp),
// reporting what cannot be stored through the checks (checks.hpp) as `file:line:col: error:`.
#pragma once

#include <clang-c/Index.h>

#include <cstdio>
#include <string>
#include <vector>

#include "model.hpp"

namespace pobj_gen {

// A libclang string as a std::string (disposing of it).
std::string str(CXString s);

struct location {
  std::string file;
  unsigned line = 0, column = 0;
};

location where(CXCursor c);

// Errors found in the input: each printed at once, with its hint; counted.
struct diagnostics {
  int errors = 0;
  void error(CXCursor at, const std::string& message, const std::string& hint) {
    location l = where(at);
    std::fprintf(stderr, "%s:%u:%u: error: %s\n", l.file.c_str(), l.line, l.column, message.c_str());
    if (!hint.empty()) std::fprintf(stderr, "%s:%u:%u: note: hint: %s\n", l.file.c_str(), l.line, l.column, hint.c_str());
    ++errors;
  }
};

// Whether the declaration at `c` carries the annotation `what` (pobj/annotate.hpp).
bool has_annotation(CXCursor c, const char* what);

// The name the generated code uses for a type: fixed-width names for integers, fully qualified
// names for everything else (the generated code lives in another namespace).
std::string type_name(CXType t);
std::string qualified_name(CXCursor c);
bool scalar(CXType t);
std::string canonical(CXType t);

// What the visit collects: the persistent classes of the main file, in order.
struct parse_state {
  diagnostics* diag;
  std::string main_file;
  std::vector<persistent_class> classes;
};
const persistent_class* find_class(const parse_state& ps, const std::string& qualified);

// The visitor of the translation unit's cursors (clang_visitChildren's, with a parse_state).
CXChildVisitResult visit(CXCursor c, CXCursor parent, CXClientData data);

}  // namespace pobj_gen
