// Coordination primitives: pobj-kv's shared objects against the usual Redis recipes for the same
// primitives, with 1, 10 and 100 clients (threads, one connection each). Run by
// bench/kv/run_objects.sh against a pobj-kv and a redis-server started side by side.
//
//   objects --port P --server pobj|redis [--seconds S] [--clients 1,10,100] [--no-once] [--reserve]
//
// Per primitive and client count: operations per second (all clients) and the latency of one
// operation (p50, p99). One operation:
//   counter     pobj-kv: ONCE id INCR (exactly-once, as the clients send it); Redis: INCR
//   barrier     one await of a barrier of all the clients (a round is one await by each);
//               Redis: INCR of the round's counter, the last arrival RPUSHes a token per waiter,
//               the others BLPOP one
//   semaphore   acquire then release, permits = clients / 2 (at least 1); Redis: BLPOP of a token
//               list, then RPUSH
//   future      set a fresh future, then get it (two commands); Redis: LPUSH, then BRPOPLPUSH of
//               the list onto itself (the value stays for every reader)
//   reserve     (--reserve; the server loaded examples/serverless/objects/box_office) a user
//               object's method: OBJ.CALL office reserve customer 1, which checks the seats left,
//               adds to the customer's seats in a map and counts the sale; Redis: the same in a
//               Lua script (EVALSHA), the usual recipe for a multi-step atomic update
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pobjkv/client.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

struct settings {
  int port = 0;
  bool pobj = true;
  bool once = true;
  bool reserve = false;
  std::string reserve_sha;  // Redis: the Lua script's
  double seconds = 2.0;
  std::vector<int> clients{1, 10, 100};
  std::string run = std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
};

struct result {
  std::uint64_t ops = 0;
  double seconds = 0;
  std::vector<double> latencies_us;
};

pobjkv::reply mutate(pobjkv::client& c, const settings& s, std::vector<std::string> args) {
  return s.pobj && s.once ? c.call(std::move(args)) : c.read(std::move(args));
}

// One client's loop for `primitive`; returns when `stop` is set (a barrier finishes its round).
void client_loop(const settings& s, const std::string& primitive, int clients, int me, std::atomic<bool>& stop,
                 std::atomic<std::int64_t>& last_round, result& out, std::mutex& mu) {
  pobjkv::options o;
  o.port = s.port;
  o.pool_size = 1;
  pobjkv::client c(o);
  const std::string base = "bench:" + s.run + ":" + primitive + ":" + std::to_string(clients);
  std::vector<double> lat;
  std::uint64_t round = 0;
  while (true) {
    // A barrier's clients must all stop after the same round, or the last waiters wait for ever:
    // the first to see `stop` names the round after the one all have just completed.
    if (primitive == "barrier") {
      const std::int64_t last = last_round.load();
      if (last >= 0 && static_cast<std::int64_t>(round) >= last) break;
    } else if (stop.load()) {
      break;
    }
    const auto t0 = clock_type::now();
    if (primitive == "counter") {
      mutate(c, s, {"INCR", base});
    } else if (primitive == "barrier") {
      if (s.pobj) {
        mutate(c, s, {"BARRIER.AWAIT", base, std::to_string(clients)});
      } else {
        const std::string r = base + ":" + std::to_string(round);
        const auto n = c.read({"INCR", r}).integer;
        if (n == clients) {
          std::vector<std::string> push{"RPUSH", r + ":go"};
          for (int i = 1; i < clients; ++i) push.emplace_back("1");
          if (clients > 1) c.read(push);
        } else {
          c.read({"BLPOP", r + ":go", "0"});
        }
      }
      ++round;
    } else if (primitive == "semaphore") {
      if (s.pobj) {
        mutate(c, s, {"SEM.ACQUIRE", base});
        mutate(c, s, {"SEM.RELEASE", base});
      } else {
        c.read({"BLPOP", base, "0"});
        c.read({"RPUSH", base, "1"});
      }
    } else if (primitive == "reserve") {
      const std::string customer = "customer-" + std::to_string(me);
      if (s.pobj) {
        mutate(c, s, {"OBJ.CALL", base, "reserve", customer, "1"});
      } else {
        c.read({"EVALSHA", s.reserve_sha, "2", base, base + ":holders", customer, "1"});
      }
    } else if (primitive == "future") {
      const std::string key = base + ":" + std::to_string(me) + ":" + std::to_string(round++);
      if (s.pobj) {
        mutate(c, s, {"FUTURE.SET", key, "value"});
        c.read({"FUTURE.GET", key});
      } else {
        c.read({"LPUSH", key, "value"});
        c.read({"BRPOPLPUSH", key, key, "0"});
      }
    }
    lat.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    if (primitive == "barrier" && stop.load()) {
      std::int64_t none = -1;
      last_round.compare_exchange_strong(none, static_cast<std::int64_t>(round) + 1);
    }
  }
  std::lock_guard lock(mu);
  out.ops += lat.size();
  out.latencies_us.insert(out.latencies_us.end(), lat.begin(), lat.end());
}

// The box office's reserve (examples/serverless/objects/box_office.cpp) for Redis.
constexpr const char* reserve_script = R"(
local seats = tonumber(ARGV[2])
local left = tonumber(redis.call('HGET', KEYS[1], 'capacity')) - tonumber(redis.call('HGET', KEYS[1], 'sold'))
if seats > left then
  redis.call('HINCRBY', KEYS[1], 'refused', 1)
  return 0
end
redis.call('HINCRBY', KEYS[2], ARGV[1], seats)
redis.call('HINCRBY', KEYS[1], 'sold', seats)
return 1)";

result run_one(settings& s, const std::string& primitive, int clients) {
  const std::string base = "bench:" + s.run + ":" + primitive + ":" + std::to_string(clients);
  {
    pobjkv::options o;
    o.port = s.port;
    pobjkv::client setup(o);
    if (primitive == "semaphore") {
      const int permits = std::max(1, clients / 2);
      if (s.pobj) {
        setup.read({"SEM.CREATE", base, std::to_string(permits)});
      } else {
        std::vector<std::string> push{"RPUSH", base};
        for (int i = 0; i < permits; ++i) push.emplace_back("1");
        setup.read(push);
      }
    }
    if (primitive == "reserve") {  // seats enough for every reservation
      if (s.pobj) {
        setup.read({"OBJ.NEW", base, "tickets::box_office"});
        setup.read({"OBJ.CALL", base, "open", "bench", "1000000000000"});
      } else {
        s.reserve_sha = setup.read({"SCRIPT", "LOAD", reserve_script}).text;
        setup.read({"HSET", base, "capacity", "1000000000000", "sold", "0", "refused", "0"});
      }
    }
  }
  result r;
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> last_round{-1};
  std::vector<std::thread> ts;
  const auto t0 = clock_type::now();
  for (int i = 0; i < clients; ++i) {
    ts.emplace_back([&, i] { client_loop(s, primitive, clients, i, stop, last_round, r, mu); });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(s.seconds));
  stop.store(true);
  for (auto& t : ts) t.join();
  r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  return r;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const std::size_t at = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(at), v.end());
  return v[at];
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--port") {
      s.port = std::atoi(next().c_str());
    } else if (a == "--server") {
      s.pobj = next() == "pobj";
    } else if (a == "--seconds") {
      s.seconds = std::atof(next().c_str());
    } else if (a == "--no-once") {
      s.once = false;
    } else if (a == "--reserve") {
      s.reserve = true;
    } else if (a == "--clients") {
      s.clients.clear();
      const std::string list = next();
      for (std::size_t at = 0; at < list.size();) {
        const std::size_t comma = std::min(list.find(',', at), list.size());
        s.clients.push_back(std::atoi(list.substr(at, comma - at).c_str()));
        at = comma + 1;
      }
    } else {
      std::fprintf(stderr, "usage: objects --port P --server pobj|redis [--seconds S] [--clients 1,10,100] [--no-once] [--reserve]\n");
      return 2;
    }
  }
  if (s.port == 0) {
    std::fprintf(stderr, "objects: --port is required\n");
    return 2;
  }
  try {
    std::vector<std::string> primitives{"counter", "barrier", "semaphore", "future"};
    if (s.reserve) primitives.emplace_back("reserve");
    for (const std::string& primitive : primitives) {
      for (int clients : s.clients) {
        result r = run_one(s, primitive, clients);
        const double rate = static_cast<double>(r.ops) / r.seconds;
        std::printf("%s %-9s clients=%-3d ops/s=%-10.0f p50_us=%-8.1f p99_us=%.1f\n",
                    s.pobj ? (s.once ? "pobj-kv" : "pobj-kv(no-once)") : "redis", primitive.c_str(), clients, rate,
                    percentile(r.latencies_us, 0.5), percentile(r.latencies_us, 0.99));
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "objects: %s\n", e.what());
    return 1;
  }
  return 0;
}
