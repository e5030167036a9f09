// A YCSB-style driver for Redis-protocol servers (pobj-kv, redis-server), through hiredis.
//
//   ycsb --port N [--host H] [--records R] [--ops O] [--threads T] [--pipeline P] [--seed S]
//        (load | run A|B|C|D|F)
//
// Records are hashes of 10 fields of 100 bytes ("user<hash>" -> field0..field9), as YCSB's
// CoreWorkload stores them in Redis. `load` inserts R records with HSET (pipelined). `run` runs
// O operations split over T threads, each with its own connection and P requests in flight:
//   A  50% read (HGETALL), 50% update (HSET of one field)          zipfian
//   B  95% read, 5% update                                         zipfian
//   C  100% read                                                   zipfian
//   D  95% read of recent records, 5% insert                       latest
//   F  50% read, 50% read-modify-write (HGETALL, then HSET)        zipfian
// The zipfian generator is YCSB's (theta 0.99, the key scrambled by FNV-1a so that popular keys
// spread over the keyspace). Prints one line: operations per second and the mean latency of a
// request. Exit status 1 if a reply is an error.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <hiredis/hiredis.h>

namespace {

std::uint64_t fnv(std::uint64_t v) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < 8; ++i) {
    h ^= v & 0xff;
    h *= 0x100000001b3ULL;
    v >>= 8;
  }
  return h;
}

// YCSB's ZipfianGenerator (Gray et al., "Quickly generating billion-record synthetic databases").
class zipfian {
 public:
  zipfian(std::uint64_t n, double theta = 0.99) : n_(n), theta_(theta) {
    zeta2_ = zeta(2);
    zetan_ = zeta(n);
    alpha_ = 1.0 / (1.0 - theta_);
    eta_ = (1 - std::pow(2.0 / static_cast<double>(n_), 1 - theta_)) / (1 - zeta2_ / zetan_);
  }
  std::uint64_t next(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    const double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, theta_)) return 1;
    return static_cast<std::uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1, alpha_)) % n_;
  }

 private:
  double zeta(std::uint64_t n) const {
    double s = 0;
    for (std::uint64_t i = 1; i <= n; ++i) s += 1.0 / std::pow(static_cast<double>(i), theta_);
    return s;
  }
  std::uint64_t n_;
  double theta_, zeta2_, zetan_, alpha_, eta_;
};

std::string key_of(std::uint64_t i) { return "user" + std::to_string(fnv(i)); }

struct options {
  std::string host = "127.0.0.1";
  int port = 7379;
  std::uint64_t records = 100000, ops = 200000;
  int threads = 4, pipeline = 8;
  std::uint64_t seed = 1;
  std::string mode, workload;
};

std::atomic<bool> failed{false};

void check(redisReply* r) {
  if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
    if (!failed.exchange(true)) std::fprintf(stderr, "ycsb: %s\n", r != nullptr ? r->str : "connection lost");
  }
  if (r != nullptr) freeReplyObject(r);
}

redisContext* connect(const options& o) {
  redisContext* c = redisConnect(o.host.c_str(), o.port);
  if (c == nullptr || c->err) {
    std::fprintf(stderr, "ycsb: cannot connect to %s:%d\n", o.host.c_str(), o.port);
    std::exit(2);
  }
  return c;
}

void append_insert(redisContext* c, std::uint64_t i, const std::string& value) {
  const std::string k = key_of(i);
  std::vector<const char*> argv{"HSET", k.c_str()};
  std::vector<std::size_t> lens{4, k.size()};
  static const char* fields[] = {"field0", "field1", "field2", "field3", "field4",
                                 "field5", "field6", "field7", "field8", "field9"};
  for (const char* f : fields) {
    argv.push_back(f);
    lens.push_back(std::strlen(f));
    argv.push_back(value.c_str());
    lens.push_back(value.size());
  }
  redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
}

void drain(redisContext* c, int n) {
  for (int i = 0; i < n; ++i) {
    void* r = nullptr;
    if (redisGetReply(c, &r) != REDIS_OK) {
      check(nullptr);
      return;
    }
    check(static_cast<redisReply*>(r));
  }
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--host") o.host = value();
    else if (a == "--port") o.port = std::atoi(value().c_str());
    else if (a == "--records") o.records = std::strtoull(value().c_str(), nullptr, 10);
    else if (a == "--ops") o.ops = std::strtoull(value().c_str(), nullptr, 10);
    else if (a == "--threads") o.threads = std::atoi(value().c_str());
    else if (a == "--pipeline") o.pipeline = std::atoi(value().c_str());
    else if (a == "--seed") o.seed = std::strtoull(value().c_str(), nullptr, 10);
    else if (o.mode.empty()) o.mode = a;
    else o.workload = a;
  }
  const std::string value(100, 'v');
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> inserted{o.records};
  std::vector<std::thread> workers;
  if (o.mode == "load") {
    for (int t = 0; t < o.threads; ++t) {
      workers.emplace_back([&, t] {
        redisContext* c = connect(o);
        int in_flight = 0;
        for (std::uint64_t i = static_cast<std::uint64_t>(t); i < o.records; i += static_cast<std::uint64_t>(o.threads)) {
          append_insert(c, i, value);
          if (++in_flight == o.pipeline) {
            drain(c, in_flight);
            in_flight = 0;
          }
        }
        drain(c, in_flight);
        redisFree(c);
      });
    }
  } else if (o.mode == "run" && o.workload.size() == 1 && std::strchr("ABCDF", o.workload[0]) != nullptr) {
    const char w = o.workload[0];
    const int read_percent = w == 'A' || w == 'F' ? 50 : w == 'C' ? 100 : 95;
    const zipfian keys(o.records);
    for (int t = 0; t < o.threads; ++t) {
      workers.emplace_back([&, t] {
        redisContext* c = connect(o);
        std::mt19937_64 rng(o.seed * 1000 + static_cast<std::uint64_t>(t));
        int in_flight = 0;
        for (std::uint64_t n = 0; n < o.ops / static_cast<std::uint64_t>(o.threads); ++n) {
          const bool read = static_cast<int>(rng() % 100) < read_percent;
          std::uint64_t i;
          if (w == 'D') {  // latest: zipfian back from the newest record
            const std::uint64_t newest = inserted.load();
            i = newest - 1 - std::min(keys.next(rng), newest - 1);
          } else {
            i = keys.next(rng);
          }
          const std::string k = key_of(i);
          if (read) {
            redisAppendCommand(c, "HGETALL %s", k.c_str());
          } else if (w == 'D') {
            append_insert(c, inserted.fetch_add(1), value);
          } else if (w == 'F') {  // read, then write what was read back modified
            redisAppendCommand(c, "HGETALL %s", k.c_str());
            drain(c, in_flight + 1);
            in_flight = 0;
            redisAppendCommand(c, "HSET %s field%d %b", k.c_str(), static_cast<int>(rng() % 10), value.data(), value.size());
          } else {
            redisAppendCommand(c, "HSET %s field%d %b", k.c_str(), static_cast<int>(rng() % 10), value.data(), value.size());
          }
          if (++in_flight >= o.pipeline) {
            drain(c, in_flight);
            in_flight = 0;
          }
        }
        drain(c, in_flight);
        redisFree(c);
      });
    }
  } else {
    std::fprintf(stderr, "usage: ycsb --port N [--records R] [--ops O] [--threads T] [--pipeline P] (load | run A|B|C|D|F)\n");
    return 2;
  }
  for (auto& th : workers) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double n = static_cast<double>(o.mode == "load" ? o.records : o.ops);
  std::printf("%s%s: %.0f ops/s (%.0f operations in %.2f s, %d threads x %d in flight)\n", o.mode.c_str(),
              o.workload.empty() ? "" : (" " + o.workload).c_str(), n / s, n, s, o.threads, o.pipeline);
  return failed.load() ? 1 : 0;
}
