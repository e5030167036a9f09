// What the coordination objects' files share (objects.cpp: CAS, barriers, latches, futures and
// the table; semaphores.cpp): the encodings of their states inline in keyspace entries, and the
// steps every object command takes (load, save, options, waiting). docs/kvstore.md, "Shared
// objects", and the top of objects.cpp describe the objects.
//
// Thread safety: the executor's thread only, as every command handler.
// Crash consistency: save() writes an object's state into its keyspace entry within the caller's
// block: all of a command's changes to it, or none, survive a crash.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "../engine.hpp"

namespace pobj::kv::objects {

enum class kind : std::uint8_t { barrier = 1, latch = 2, semaphore = 3, future = 4 };

// ---- encoding of the states ------------------------------------------------------------------

struct writer {
  std::string out;
  void u8(std::uint8_t v) { out.push_back(static_cast<char>(v)); }
  void u64(std::uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
  void str(std::string_view s) {
    u64(s.size());
    out.append(s);
  }
};

struct reader {
  std::string_view in;
  std::size_t at = 1;  // after the kind byte
  void need(std::size_t n) const {
    if (in.size() - at < n) throw pobj::error(pobj::errc::corrupt, "pobj-kv: a damaged coordination object");
  }
  std::uint64_t u64() {
    need(8);
    std::uint64_t v;
    std::memcpy(&v, in.data() + at, 8);
    at += 8;
    return v;
  }
  std::string str() {
    const std::uint64_t n = u64();
    need(n);
    std::string s(in.substr(at, n));
    at += n;
    return s;
  }
  std::vector<std::uint64_t> u64s() {
    const std::uint64_t n = u64();
    need(n * 8);
    std::vector<std::uint64_t> v(n);
    for (auto& x : v) x = u64();
    return v;
  }
};

// A barrier knows its waiters by a 64-bit hash of their IDs (FNV-1a: the same on every machine
// and every run), so that an arrival rewrites 8 bytes per waiter, not the IDs.
inline std::uint64_t waiter_hash(std::string_view id) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : id) h = (h ^ ch) * 0x100000001b3ULL;
  return h;
}
struct arrival {
  std::uint64_t waiter;      // waiter_hash of its id
  std::int64_t deadline_ms;  // when it is taken back (0: never)
};
struct barrier_state {
  std::uint64_t parties = 0, generation = 0;
  std::vector<arrival> arrived;         // this generation's waiters, in arrival order
  std::vector<std::uint64_t> previous;  // the last completed generation's
};
struct lease {
  std::string id;
  std::uint64_t permits = 0;
  std::int64_t expires_ms = 0;
};
struct semaphore_state {
  std::int64_t available = 0;
  std::uint64_t next_lease = 1;
  std::vector<lease> leases;
};

inline std::string encode(const barrier_state& b) {
  writer w;
  w.u8(static_cast<std::uint8_t>(kind::barrier));
  w.u64(b.parties);
  w.u64(b.generation);
  w.u64(b.arrived.size());
  for (const auto& a : b.arrived) {
    w.u64(a.waiter);
    w.u64(static_cast<std::uint64_t>(a.deadline_ms));
  }
  w.u64(b.previous.size());
  for (const auto t : b.previous) w.u64(t);
  return std::move(w.out);
}
inline barrier_state decode_barrier(std::string_view p) {
  reader r{p};
  barrier_state b;
  b.parties = r.u64();
  b.generation = r.u64();
  const std::uint64_t n = r.u64();
  r.need(n * 16);
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t waiter = r.u64();
    b.arrived.push_back({waiter, static_cast<std::int64_t>(r.u64())});
  }
  b.previous = r.u64s();
  return b;
}
inline std::string encode_count(kind k, std::uint64_t n) {
  writer w;
  w.u8(static_cast<std::uint8_t>(k));
  w.u64(n);
  return std::move(w.out);
}
inline std::string encode(const semaphore_state& s) {
  writer w;
  w.u8(static_cast<std::uint8_t>(kind::semaphore));
  w.u64(static_cast<std::uint64_t>(s.available));
  w.u64(s.next_lease);
  w.u64(s.leases.size());
  for (const auto& l : s.leases) {
    w.str(l.id);
    w.u64(l.permits);
    w.u64(static_cast<std::uint64_t>(l.expires_ms));
  }
  return std::move(w.out);
}
inline semaphore_state decode_semaphore(std::string_view p) {
  reader r{p};
  semaphore_state s;
  s.available = static_cast<std::int64_t>(r.u64());
  s.next_lease = r.u64();
  const std::uint64_t n = r.u64();
  r.need(n * 24);
  for (std::uint64_t i = 0; i < n; ++i) {
    lease l;
    l.id = r.str();
    l.permits = r.u64();
    l.expires_ms = static_cast<std::int64_t>(r.u64());
    s.leases.push_back(std::move(l));
  }
  return s;
}
inline std::string encode_future(bool set, std::string_view value) {
  writer w;
  w.u8(static_cast<std::uint8_t>(kind::future));
  w.u8(set ? 1 : 0);
  w.out.append(value);
  return std::move(w.out);
}

// ---- common steps ------------------------------------------------------------------------------

// The object of kind k at key: false after a WRONGTYPE reply; `payload` empty if absent.
inline bool load(command_context& c, std::string_view key, kind k, std::optional<entry>& e) {
  if (!typed_entry(c, key, value_type::object, e)) return false;
  if (e && (e->payload.empty() || static_cast<std::uint8_t>(e->payload[0]) != static_cast<std::uint8_t>(k))) {
    wrong_type(c);
    return false;
  }
  return true;
}

inline void save(command_context& c, std::string_view key, const std::optional<entry>& before, std::string payload) {
  c.db.put(c.tx, key, entry{value_type::object, before ? before->expires_ms : 0, std::move(payload)});
  c.server.touch(key);
}

// Options after the fixed arguments: TIMEOUT ms, DEADLINE ms-since-epoch (what a waiting call
// runs again with), ID waiter-id, PERMITS n, LEASE ms. False after an error reply.
struct options {
  std::int64_t deadline_ms = 0;  // 0: no time limit
  bool rerun = false;            // DEADLINE given: a parked call running again
  std::string id;
  std::int64_t permits = 1;
  std::int64_t lease_ms = 0;
};
inline bool parse_options(command_context& c, std::size_t from, std::initializer_list<std::string_view> allowed, options& o) {
  for (std::size_t i = from; i < c.argv.size(); i += 2) {
    const std::string name = lower(c.argv[i]);
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end() || i + 1 >= c.argv.size()) {
      syntax_error(c);
      return false;
    }
    const std::string_view v = c.argv[i + 1];
    std::int64_t n = 0;
    if (name == "id") {
      o.id = std::string(v);
      continue;
    }
    if (!parse_integer(c, v, n)) return false;
    if (name == "timeout") {
      if (n < 0) {
        c.reply.error("ERR timeout is negative");
        return false;
      }
      o.deadline_ms = n == 0 ? 0 : c.now_ms + n;
    } else if (name == "deadline") {
      o.deadline_ms = n;
      o.rerun = true;
    } else if (name == "permits") {
      if (n < 1) {
        c.reply.error("ERR permits must be positive");
        return false;
      }
      o.permits = n;
    } else if (name == "lease") {
      if (n < 1) {
        c.reply.error("ERR lease must be a positive number of milliseconds");
        return false;
      }
      o.lease_ms = n;
    }
  }
  return true;
}

// A waiter ID for this call: the caller's, ONCE's request id, or one unique to this server's life.
inline std::string waiter_id(command_context& c, const options& o) {
  if (!o.id.empty()) return o.id;
  if (!c.client.request_id.empty()) return "once:" + c.client.request_id;
  return fmt::format("b{}.s{}.{}", c.db.pool().recovery().boot_count, c.client.id, ++c.client.tokens);
}

inline bool timed_out(const command_context& c, const options& o) { return o.deadline_ms != 0 && c.now_ms >= o.deadline_ms; }

// Parks the caller until `key` is signalled or `wake_ms` (0: never); then `retry` runs again.
inline void wait(command_context& c, std::string_view key, std::int64_t wake_ms, std::vector<std::string> retry) {
  session::blocking& b = c.client.blocked;
  b.active = true;
  b.keys.assign(1, std::string(key));
  b.deadline_ms = wake_ms;
  b.retry = std::move(retry);
}

inline std::ptrdiff_t index_of(const std::vector<std::uint64_t>& v, std::uint64_t s) {  // -1 if absent
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == s) return static_cast<std::ptrdiff_t>(i);
  }
  return -1;
}

// The semaphore commands (semaphores.cpp).
void sem_create(command_context& c);
void sem_acquire(command_context& c);
void sem_release(command_context& c);
void sem_renew(command_context& c);
void sem_available(command_context& c);

}  // namespace pobj::kv::objects
