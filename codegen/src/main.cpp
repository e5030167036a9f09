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
//
// The parts: frontend.cpp (libclang into the model), checks.cpp (what may be stored, and the
// diagnostics), model.hpp, emit.cpp (the generated header); this file is the command line.
#include <clang-c/Index.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "emit.hpp"
#include "frontend.hpp"

#ifndef POBJ_VERSION
#error "the build defines POBJ_VERSION (meson's project version)"
#endif
#ifndef POBJ_CLANG_RESOURCE_DIR
#error "the build defines POBJ_CLANG_RESOURCE_DIR (clang's builtin headers)"
#endif

using namespace pobj_gen;

namespace {

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

