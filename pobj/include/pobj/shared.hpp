// pobj/shared: the methods of persistent classes that a server runs for its clients (method
// shipping, as Crucial's @Shared objects).
//
// A method of a persistent class marked POBJ_SHARED (pobj/annotate.hpp) is one a server may run on
// an object it holds, by name, with arguments that arrive as text: pobj-kv's
// `OBJ.CALL key method arg...` (docs/kvstore.md). pobj-gen emits, for each class with such
// methods, a shared_class: the class, a way to make a value-initialized object of it, and, per
// method, a function that parses the arguments, runs the method on an object, and returns its
// result as a shared_value. Generated headers register their shared classes before main, or when
// the library that holds them is loaded (dlopen), as they register the classes themselves; so a
// program that includes a generated header with shared methods links their definitions, unless it
// defines POBJ_NO_SHARED_METHODS first (it then only reads and writes the objects).
//
// Parameters are integers (any fixed width; range-checked), bool (0, 1, true, false), float and
// double, and strings (std::string_view, valid for the call, or std::string). Results are those,
// or void. A method that does not change the object is const and is given no block (a server may
// still run it inside one); one that does is defined with a pobj::transaction& first, as a
// failure-atomic method, and runs in the caller's block: a server runs it in the block of the batch it belongs to, so that its effect
// and the reply are durable together, and an exception thrown from it undoes its whole block.
//
// Shared methods must be deterministic functions of the object and the arguments (no clock, no
// random numbers, no I/O): a server may run a method again after a failure rolled its block back,
// and a replicated server replays them.
//
// Thread safety: registration is internally synchronized; the lookups return descriptions that
// live as long as the program (a library that registers classes must never be unloaded). Calls
// need what the method needs: a server runs them one at a time.
// Crash consistency: what a method changes joins the caller's block.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <pobj/error.hpp>
#include <pobj/object.hpp>
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

namespace pobj {

// A shared method's result: nothing (void), a boolean, an integer, a floating point number or a
// string.
using shared_value = std::variant<std::monostate, bool, std::int64_t, double, std::string>;

// A bad argument, found before the method ran (nothing was changed).
class shared_argument_error : public error {
 public:
  explicit shared_argument_error(const std::string& message) : error(errc::invalid_argument, message) {}
};

// One call of a shared method: the object, the block, the arguments as text, and the result.
class shared_call {
 public:
  shared_call(pool& p, std::uint64_t object, transaction& tx, std::string_view method,
              std::span<const std::string_view> args) noexcept
      : pool_(&p), object_(object), tx_(&tx), method_(method), args_(args) {}

  pool& get_pool() const noexcept { return *pool_; }
  // The object's fields (its block's offset + the header): what a proxy is made from.
  void* fields() const noexcept { return pool_->base() + object_ + object_header_size; }
  transaction& tx() const noexcept { return *tx_; }
  std::span<const std::string_view> args() const noexcept { return args_; }

  // Argument i as the method's parameter `name` of type T; throws shared_argument_error naming the
  // method and the parameter if the text is not one.
  template <class T>
  T arg(std::size_t i, const char* name) const;

  // Called by the generated code once every argument is parsed, right before the method runs:
  // an exception after this point may have changed the object.
  void started() noexcept { started_ = true; }
  bool has_started() const noexcept { return started_; }

  void set_result(bool v) { result_ = v; }
  // Integers as integers; an unsigned one above INT64_MAX as its decimal text.
  template <class T>
    requires std::is_integral_v<T> && (!std::is_same_v<T, bool>)
  void set_result(T v) {
    if constexpr (std::is_signed_v<T>) {
      result_ = static_cast<std::int64_t>(v);
    } else {
      set_unsigned(static_cast<std::uint64_t>(v));
    }
  }
  void set_result(double v) { result_ = v; }
  void set_result(float v) { result_ = static_cast<double>(v); }
  void set_result(std::string v) { result_ = std::move(v); }
  void set_result(std::string_view v) { result_ = std::string(v); }
  const shared_value& result() const noexcept { return result_; }

 private:
  void set_unsigned(std::uint64_t v);
  [[noreturn]] void bad_argument(std::size_t i, const char* name, std::string_view wanted) const;
  bool parse_bool(std::string_view s, bool& out) const noexcept;

  pool* pool_;
  std::uint64_t object_;
  transaction* tx_;
  std::string_view method_;
  std::span<const std::string_view> args_;
  bool started_ = false;
  shared_value result_;
};

struct shared_method {
  const char* name;
  const char* signature;  // as declared: "deposit(std::int64_t cents) -> std::int64_t"
  std::size_t arity;      // arguments after the method's name
  bool changes;           // not const: runs in the caller's block with its transaction
  void (*invoke)(shared_call& call);
};

struct shared_class {
  const detail::class_info* info;
  std::span<const shared_method> methods;  // the class's own; its bases' are found through them
  // A value-initialized object of the class, made in the block; returns its block's offset.
  std::uint64_t (*make)(transaction& tx);
  // The object's fields as text ("bank::account{balance: 3, ...}").
  std::string (*describe)(pool& p, void* fields);
};

namespace detail {
// Called by generated headers before main (or at dlopen); returns true.
bool register_shared_class(const shared_class& c) noexcept;
}  // namespace detail

// The shared class named `qualified_name` ("bank::account"), or of that id; nullptr if none is
// registered.
const shared_class* find_shared_class(std::string_view qualified_name) noexcept;
const shared_class* find_shared_class(std::uint64_t class_id) noexcept;
// The method `name` of class `c` or of its nearest persistent base that has one; nullptr if none.
const shared_method* find_shared_method(const shared_class& c, std::string_view name) noexcept;
// The shared class c's persistent base is, if it is one; nullptr otherwise. Its methods are c's too.
const shared_class* shared_base(const shared_class& c) noexcept;
// Every registered shared class, in registration order.
std::vector<const shared_class*> shared_classes();

// The class of the object at `block` in p: its id (the pool's class table names it); 0 if the
// block holds no object of a known class.
std::uint64_t class_id_of(const pool& p, std::uint64_t block) noexcept;

template <class T>
T shared_call::arg(std::size_t i, const char* name) const {
  const std::string_view s = args_[i];
  if constexpr (std::is_same_v<T, std::string_view>) {
    return s;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return std::string(s);
  } else if constexpr (std::is_same_v<T, bool>) {
    bool v = false;
    if (!parse_bool(s, v)) bad_argument(i, name, "a boolean (0, 1, true or false)");
    return v;
  } else if constexpr (std::is_integral_v<T>) {
    T v{};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) {
      if (std::is_unsigned_v<T> && !s.empty() && s[0] == '-') bad_argument(i, name, "a non-negative integer");
      bad_argument(i, name, ec == std::errc::result_out_of_range ? "an integer in range" : "an integer");
    }
    return v;
  } else if constexpr (std::is_floating_point_v<T>) {
    T v{};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty() || !std::isfinite(v)) {
      bad_argument(i, name, "a finite number");
    }
    return v;
  } else {
    static_assert(sizeof(T) == 0, "shared methods take integers, floating point numbers, bool or strings");
  }
}

}  // namespace pobj
