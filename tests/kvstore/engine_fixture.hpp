// The fixture the engine tests share (tests/kvstore/commands/*_test.cpp, engine_test.cpp): an
// engine on a fresh pool, each command run in a block of its own at a time the test chooses, its
// raw RESP reply returned to be checked against Redis's.
#pragma once

#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "engine.hpp"
#include "test_util.hpp"

namespace kv_test {

struct harness {
  pobj_test::scratch_path path{"kv-engine"};
  pobj::pool pool = pobj::pool::create(path, pobj_test::small_options());
  pobj::kv::config cfg;
  pobj::kv::engine eng{pool, cfg};
  pobj::kv::session s;
  std::int64_t now = 1'700'000'000'000;  // ms since the epoch

  harness() { s.authenticated = true; }

  std::string run(std::initializer_list<std::string_view> args) { return run(s, args); }

  // A whole SCAN-style walk (cursor from 0 back to 0): the elements of the replies, which must
  // hold one string per element (no values). `calls` counts the commands.
  std::set<std::string> walk(std::vector<std::string> before, std::vector<std::string> after, int* calls = nullptr) {
    std::set<std::string> seen;
    std::string cursor = "0";
    int n = 0;
    do {
      std::vector<std::string> args = before;
      args.push_back(cursor);
      args.insert(args.end(), after.begin(), after.end());
      std::string r;
      {
        pobj::kv::reply_writer w(r, s.protocol);
        std::vector<std::string_view> argv(args.begin(), args.end());
        pobj::transaction tx(pool);
        eng.execute(s, argv, w, tx, now);
        tx.commit();
      }
      // *2\r\n$<n>\r\n<cursor>\r\n*<k>\r\n($<n>\r\n<element>\r\n)*
      std::size_t at = r.find("\r\n", 4) + 2;
      const std::size_t end = r.find("\r\n", at);
      cursor = r.substr(at, end - at);
      at = r.find("\r\n", end + 2) + 2;
      while (at < r.size()) {
        const std::size_t line = r.find("\r\n", at);
        const std::size_t len = std::stoul(r.substr(at + 1, line - at - 1));
        seen.insert(r.substr(line + 2, len));
        at = line + 2 + len + 2;
      }
      ++n;
    } while (cursor != "0" && n < 100000);
    if (calls != nullptr) *calls = n;
    return seen;
  }
  std::string run(pobj::kv::session& who, std::initializer_list<std::string_view> args) {
    std::string out;
    pobj::kv::reply_writer w(out, who.protocol);
    std::vector<std::string_view> argv(args);
    pobj::transaction tx(pool);
    eng.execute(who, argv, w, tx, now);
    tx.commit();
    return out;
  }
};


// Runs a parked session's retry command (what the server does when its key is signalled).
inline std::string run_retry(harness& h, pobj::kv::session& who) {
  REQUIRE(who.blocked.active);
  std::vector<std::string> retry = who.blocked.retry;
  who.blocked = pobj::kv::session::blocking{};
  std::string out;
  pobj::kv::reply_writer w(out, who.protocol);
  std::vector<std::string_view> argv(retry.begin(), retry.end());
  pobj::transaction tx(h.pool);
  h.eng.execute(who, argv, w, tx, h.now);
  tx.commit();
  return out;
}

}  // namespace kv_test
