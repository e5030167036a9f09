// pobj errors: one style for the whole public API.
//
// Every expected failure (bad path, foreign or corrupt pool, out of space, misuse detectable at
// run time) is reported by throwing pobj::error, which carries a machine-readable code and a
// message that names the cause and, where there is one, the fix. Broken internal invariants are
// assertions, not errors.
//
// Thread safety: error objects are immutable values.
// Crash consistency: a call that throws pobj::error has left the pool as it found it (opening
// changes nothing on disk; a failed transaction is rolled back).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace pobj {

enum class errc {
  not_found = 1,        // the pool file does not exist
  already_exists,       // create() on a path that exists
  not_a_pool,           // the file is not a pobj pool (bad magic)
  truncated,            // the file is shorter than its header says
  corrupt,              // checksum mismatch or impossible metadata
  version_mismatch,     // the pool was written by another format version
  locked,               // the pool is open in another process (or another handle)
  too_small,            // requested or found size below the minimum
  out_of_space,         // the pool reached its maximum size
  transaction_too_large,// a failure-atomic block outgrew its lane's log
  transaction_aborted,  // use of a block that an inner scope already aborted
  invalid_argument,     // bad option or argument
  io_error,             // the operating system refused an operation
  schema_mismatch,      // the pool holds a class with another layout than the program's
  wrong_class,          // a checked downcast or typed root found an object of another class
};

std::string_view to_string(errc code) noexcept;

class error : public std::runtime_error {
 public:
  error(errc code, const std::string& message);
  errc code() const noexcept { return code_; }

 private:
  errc code_;
};

}  // namespace pobj
