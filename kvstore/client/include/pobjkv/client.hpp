// pobjkv: the C++ client of pobj-kv's shared objects (docs/kvstore.md, "Shared objects").
//
// A client holds a small pool of connections to one server. call() runs a mutating command
// exactly once: it tags it with a fresh request id (the server's ONCE) and, if the connection
// drops or the server restarts, retries with the same id until the retry budget runs out, so an
// update is neither lost nor applied twice. read() runs a command that changes nothing, retried
// the same way. Typed handles mirror the standard library and Crucial: atomic_long, atomic_ref,
// cyclic_barrier, count_down_latch, semaphore, future<T>, map, list, queue.
//
// Errors: pobjkv::server_error for an error reply (-ERR, -WRONGTYPE, ...), pobjkv::unavailable
// when the server stayed unreachable for the whole retry budget.
// Thread safety: a client may be used by any number of threads at once (each call borrows a
// connection); handles are cheap values naming an object.
// Crash consistency: the client keeps nothing persistent; call() applies a mutation exactly once
// across a dropped connection or a server restart (ONCE), within its retry budget.
#pragma once

#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace pobjkv {

struct reply {
  enum class kind { status, error, integer, string, nil, array };
  kind type = kind::nil;
  std::string text;     // status, error, string
  std::int64_t integer = 0;
  std::vector<reply> elements;
  bool is_nil() const noexcept { return type == kind::nil; }
};

class server_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct options {
  std::string host = "127.0.0.1";
  int port = 7379;
  std::string password;                            // AUTH on every new connection if set
  std::size_t pool_size = 8;                       // connections kept open at most
  std::chrono::milliseconds retry_for{60'000};     // how long a call retries an unreachable server
};

class atomic_long;
class atomic_ref;
class cyclic_barrier;
class count_down_latch;
class semaphore;
template <class T>
class future;
class map;
class list;
class queue;
class shared_object;

class client {
 public:
  explicit client(options o = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // Exactly once (ONCE with a fresh request id, or `request_id`), retried across failures.
  reply call(std::vector<std::string> args, std::string request_id = {});
  // As is, retried across failures (for commands that change nothing).
  reply read(std::vector<std::string> args);
  // Many calls in one round trip, each exactly once; the pipeline is retried whole.
  std::vector<reply> pipeline(const std::vector<std::vector<std::string>>& calls);

  atomic_long atomic_long_at(std::string name);
  atomic_ref atomic_ref_at(std::string name);
  cyclic_barrier barrier(std::string name, std::int64_t parties);
  count_down_latch latch(std::string name);
  semaphore semaphore_at(std::string name);
  template <class T>
  future<T> future_at(std::string name);
  map map_at(std::string name);
  list list_at(std::string name);
  queue queue_at(std::string name);
  // An object of a user's persistent class on the server (OBJ.NEW, OBJ.CALL); with class_name, it
  // is made if absent.
  shared_object object_at(std::string name, std::string class_name = {});

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// ---- handles -------------------------------------------------------------------------------------

class atomic_long {
 public:
  atomic_long(client& c, std::string name) : c_(&c), name_(std::move(name)) {}
  std::int64_t get() const;
  void set(std::int64_t v);
  std::int64_t add_and_get(std::int64_t delta);
  std::int64_t increment_and_get() { return add_and_get(1); }
  bool compare_and_set(std::int64_t expected, std::int64_t desired);
  const std::string& name() const noexcept { return name_; }

 private:
  client* c_;
  std::string name_;
};

class atomic_ref {
 public:
  atomic_ref(client& c, std::string name) : c_(&c), name_(std::move(name)) {}
  std::optional<std::string> get() const;
  void set(std::string_view v);
  // expected nullopt: only if absent.
  bool compare_and_set(const std::optional<std::string>& expected, std::string_view desired);

 private:
  client* c_;
  std::string name_;
};

class cyclic_barrier {
 public:
  cyclic_barrier(client& c, std::string name, std::int64_t parties) : c_(&c), name_(std::move(name)), parties_(parties) {}
  // The caller's arrival index (0 first); nullopt if `timeout` passed first (arrival withdrawn).
  std::optional<std::int64_t> await(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  std::int64_t waiting() const;

 private:
  client* c_;
  std::string name_;
  std::int64_t parties_;
};

class count_down_latch {
 public:
  count_down_latch(client& c, std::string name) : c_(&c), name_(std::move(name)) {}
  bool create(std::int64_t count);  // false if it already exists
  std::int64_t count_down();
  std::optional<std::int64_t> count() const;
  bool await(std::optional<std::chrono::milliseconds> timeout = std::nullopt);  // false on timeout

 private:
  client* c_;
  std::string name_;
};

class semaphore {
 public:
  semaphore(client& c, std::string name) : c_(&c), name_(std::move(name)) {}
  bool create(std::int64_t permits);
  // True once taken; false on timeout.
  bool acquire(std::int64_t permits = 1, std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // Leased permits come back by themselves after `lease`; returns the lease id (nullopt on timeout).
  std::optional<std::string> acquire_leased(std::chrono::milliseconds lease, std::int64_t permits = 1,
                                            std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  std::int64_t release(std::int64_t permits = 1);
  std::int64_t release_lease(const std::string& lease);
  bool renew(const std::string& lease, std::chrono::milliseconds lease_time);
  std::int64_t available() const;

 private:
  client* c_;
  std::string name_;
};

namespace detail {
std::string encode_value(std::string_view v);
std::string encode_value(std::int64_t v);
void decode_value(const std::string& s, std::string& out);
void decode_value(const std::string& s, std::int64_t& out);
std::optional<std::string> future_get(client& c, const std::string& name, std::optional<std::chrono::milliseconds> timeout);
bool future_set(client& c, const std::string& name, const std::string& value);
}  // namespace detail

// A value set once and read by anyone, waiting until it is set. T: std::string or std::int64_t.
template <class T>
class future {
 public:
  future(client& c, std::string name) : c_(&c), name_(std::move(name)) {}
  bool set(const T& v) { return detail::future_set(*c_, name_, detail::encode_value(v)); }
  // The value; nullopt if `timeout` passed first.
  std::optional<T> get(std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    auto s = detail::future_get(*c_, name_, timeout);
    if (!s) return std::nullopt;
    T v{};
    detail::decode_value(*s, v);
    return v;
  }

 private:
  client* c_;
  std::string name_;
};

class map {
 public:
  map(client& c, std::string name) : c_(&c), name_(std::move(name)) {}
  std::optional<std::string> get(std::string_view field) const;
  void put(std::string_view field, std::string_view value);
  bool erase(std::string_view field);
  std::int64_t size() const;
  std::vector<std::pair<std::string, std::string>> items() const;

 private:
  client* c_;
  std::string name_;
};

class list {
 public:
  list(client& c, std::string name) : c_(&c), name_(std::move(name)) {}
  std::int64_t push_back(std::string_view v);
  std::vector<std::string> range(std::int64_t from = 0, std::int64_t to = -1) const;
  std::int64_t size() const;

 private:
  client* c_;
  std::string name_;
};

class queue {
 public:
  queue(client& c, std::string name) : c_(&c), name_(std::move(name)) {}
  std::int64_t put(std::string_view v);
  std::optional<std::string> poll();  // exactly once: an element is taken by one call only
  std::int64_t size() const;

 private:
  client* c_;
  std::string name_;
};

// An object of a user's persistent class, whose POBJ_SHARED methods run on the server, atomically
// and durably, each call exactly once: obj.call("deposit", 100). Arguments are sent as text
// (integers, floating point numbers and strings as they are formatted); the reply is the method's
// result (void: status OK).
class shared_object {
 public:
  shared_object(client& c, std::string name) : c_(&c), name_(std::move(name)) {}
  template <class... Args>
  reply call(std::string_view method, const Args&... args) {
    return call_as({}, method, args...);
  }
  // The same with the caller's request id (a function run again passes the id of its first run).
  template <class... Args>
  reply call_as(std::string request_id, std::string_view method, const Args&... args) {
    std::vector<std::string> argv{"OBJ.CALL", name_, std::string(method)};
    (argv.push_back(text(args)), ...);
    return c_->call(std::move(argv), std::move(request_id));
  }
  std::optional<std::string> class_name() const;
  std::optional<std::string> fields() const;  // the object's fields, as text
  const std::string& name() const noexcept { return name_; }

 private:
  static std::string text(std::string_view s) { return std::string(s); }
  static std::string text(const char* s) { return s; }
  static std::string text(const std::string& s) { return s; }
  static std::string text(bool b) { return b ? "1" : "0"; }
  template <class T>
    requires std::is_arithmetic_v<T>
  static std::string text(T v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);  // the shortest text that reads back as v
    return std::string(buf, r.ptr);
  }
  client* c_;
  std::string name_;
};

template <class T>
future<T> client::future_at(std::string name) {
  return future<T>(*this, std::move(name));
}

}  // namespace pobjkv
