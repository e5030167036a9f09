#include <pobj/error.hpp>

namespace pobj {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::not_found: return "not_found";
    case errc::already_exists: return "already_exists";
    case errc::not_a_pool: return "not_a_pool";
    case errc::truncated: return "truncated";
    case errc::corrupt: return "corrupt";
    case errc::version_mismatch: return "version_mismatch";
    case errc::locked: return "locked";
    case errc::too_small: return "too_small";
    case errc::out_of_space: return "out_of_space";
    case errc::transaction_too_large: return "transaction_too_large";
    case errc::transaction_aborted: return "transaction_aborted";
    case errc::invalid_argument: return "invalid_argument";
    case errc::io_error: return "io_error";
    case errc::schema_mismatch: return "schema_mismatch";
    case errc::wrong_class: return "wrong_class";
  }
  return "unknown";
}

error::error(errc code, const std::string& message) : std::runtime_error(message), code_(code) {}

}  // namespace pobj
