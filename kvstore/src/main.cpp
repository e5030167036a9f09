// pobj-kv: a Redis-compatible server whose keyspace lives in a pobj pool. See kvstore/README.md
// and docs/kvstore.md.
//
//   pobj-kv [--config FILE] [--port N] [--pool PATH] ...   serve (pobj-kv --help lists the settings)
//   pobj-kv --check POOL                                  verify a pool offline
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <chrono>
#include <cstdlib>
#include <atomic>
#include <csignal>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pobj/pobj.hpp>
#include <pobj/testing/faulty_files.hpp>

#include "config.hpp"
#include "engine.hpp"
#include "log.hpp"
#include "server.hpp"
#ifdef POBJ_KV_REPLICATION
#include "replica.hpp"
#include "transport.hpp"
#endif

namespace {

std::atomic<pobj::kv::server*> running{nullptr};
std::atomic<bool> stop_before_running{false};  // SIGTERM or SIGINT while starting (any thread takes it)

void on_signal(int) {
  if (pobj::kv::server* s = running.load()) s->request_shutdown();
  else stop_before_running.store(true);
}

pobj::pool_options pool_options_of(const pobj::kv::config& cfg) {
  pobj::pool_options o;
  o.mode = cfg.mode;
  o.size = cfg.pool_size;
  o.max_size = std::max(cfg.pool_max_size, cfg.pool_size);
  // One thread runs commands: a few lanes suffice, each with room for a batch of commands.
  o.lanes = 4;
  o.lane_log_size = 4 * pobj::MiB;
  // Tests only: file operations through pobj's fault seam (pobj/testing/faulty_files.hpp).
  // POBJ_KV_TEST_FAULTS fails chosen calls (tests/kvstore/disk_fault_test.py);
  // POBJ_KV_TEST_SYNC_DELAY_US holds every fdatasync back, so that a reply sent before its batch
  // is durable would be lost by a kill (tests/kvstore/kill_test.py).
  const char* faults = std::getenv("POBJ_KV_TEST_FAULTS");
  const char* delay = std::getenv("POBJ_KV_TEST_SYNC_DELAY_US");
  if ((faults != nullptr && *faults != '\0') || (delay != nullptr && *delay != '\0')) {
    auto files = pobj::testing::faulty_files::from_spec(faults != nullptr ? faults : "");
    if (delay != nullptr && *delay != '\0') files->delay_fdatasync(std::chrono::microseconds(std::strtol(delay, nullptr, 10)));
    o.files = std::move(files);
  }
  return o;
}

// Loads the libraries of users' shared classes (never unloaded: the registries keep pointers into
// them). Before the pool opens, so that open checks their classes against the pool's records.
// Returns an error message, or nothing.
std::optional<std::string> load_objects_libraries(const pobj::kv::config& cfg) {
  std::vector<std::string> loaded;
  for (const auto& path : cfg.objects_libraries) {
    // Named twice (in the config file and a flag, say): loaded once.
    if (std::find(loaded.begin(), loaded.end(), path) != loaded.end()) continue;
    loaded.push_back(path);
    const std::size_t before = pobj::shared_classes().size();
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL) == nullptr) {
      return fmt::format("cannot load objects library '{}': {}", path, dlerror());
    }
    const std::vector<const pobj::shared_class*> all = pobj::shared_classes();
    if (all.size() == before) {
      return fmt::format("objects library '{}' registered no new shared classes (it needs classes with POBJ_SHARED "
                         "methods, their pobj-gen output compiled in, the same libpobj as pobj-kv, and classes no other "
                         "library loaded has)",
                         path);
    }
    for (std::size_t i = before; i < all.size(); ++i) {
      pobj::kv::log::notice("objects library {}: class {} ({} shared methods)", path, all[i]->info->name,
                            all[i]->methods.size());
    }
  }
  return std::nullopt;
}

// --check: the heap's reachability check and a read of every entry, on the pool opened read-only
// (nothing in the pool or its journal changes). 0 healthy, 1 problems, 2 unusable or not a
// pobj-kv pool.
int check(const std::string& path) {
  pobj::pool p;
  try {
    pobj::pool_options options;
    options.read_only = true;
    p = pobj::pool::open(path, options);
  } catch (const pobj::error& e) {
    fmt::print(stderr, "pobj-kv --check: {}\n", e.what());
    return 2;
  }
  const pobj::kv::store::pool_survey survey = pobj::kv::store::survey(p);
  using kind = pobj::kv::store::pool_kind;
  if (survey.kind == kind::fresh || survey.kind == kind::foreign) {
    fmt::print(stderr, "pobj-kv --check: '{}' is not a pobj-kv pool (a pobj pool {})\n", path,
               survey.kind == kind::fresh ? std::string("with no keyspace")
                                          : fmt::format("with another program's roots: {}", fmt::join(survey.others, ", ")));
    return 2;
  }
  int status = 0;
  if (survey.kind == kind::damaged) {
    fmt::print("keyspace: damaged: the roots {} are missing (a damaged root name?)\n", fmt::join(survey.missing, ", "));
    status = 1;
  } else {
    try {
      pobj::kv::store db(p);
      std::uint64_t keys = 0, with_ttl = 0;
      for (std::uint64_t cursor = 0;;) {
        cursor = db.scan(cursor, 0, [&](std::string_view, const pobj::kv::entry& e) {
          ++keys;
          with_ttl += e.expires_ms != 0 ? 1 : 0;
        });
        if (cursor == 0) break;
      }
      fmt::print("keyspace: {} keys ({} with a time to live), every entry readable\n", keys, with_ttl);
    } catch (const std::exception& e) {
      fmt::print("keyspace: {}\n", e.what());
      status = 1;
    }
  }
  const pobj::check_report r = p.heap().check();
  fmt::print("heap: {} objects ({} bytes) reachable, {} unreachable, {} inconsistencies\n", r.reachable_objects,
             r.reachable_bytes, r.unreachable.size(), r.corrupt.size());
  for (const auto& line : r.corrupt) fmt::print("  corrupt: {}\n", line);
  return r.ok() ? status : 1;
}

// Throws, before the pool is opened writable (which would record the boot and the classes), if an
// existing pool is another program's or a damaged pobj-kv pool: nothing in it changes.
void refuse_unless_ours(const std::string& path) {
  pobj::pool_options options;
  options.read_only = true;
  pobj::pool p;
  try {
    p = pobj::pool::open(path, options);
  } catch (const pobj::error& e) {
    // Missing: open_or_create makes it. Anything else (the pool would have to grow to record a
    // new library's classes, say): the writable open below says what it finds, and the store
    // still refuses another program's pool or a damaged one, having changed only the boot count.
    if (e.code() != pobj::errc::not_found) {
      pobj::kv::log::verbose("read-only look at {} failed ({}); opening it writable", path, e.what());
    }
    return;
  }
  const pobj::kv::store::pool_survey s = pobj::kv::store::survey(p);
  if (s.kind == pobj::kv::store::pool_kind::foreign || s.kind == pobj::kv::store::pool_kind::damaged) {
    pobj::kv::store refused(p);  // throws with what is wrong
  }
}

}  // namespace

int main(int argc, char** argv) {
  pobj::kv::config cfg;
  if (auto err = pobj::kv::parse_arguments(cfg, std::vector<std::string>(argv + 1, argv + argc))) {
    fmt::print(stderr, "pobj-kv: {}\n", *err);
    return 2;
  }
  if (cfg.show_help) {
    fmt::print("{}", pobj::kv::usage());
    return 0;
  }
  if (cfg.show_version) {
    fmt::print("pobj-kv {} (pobj, Redis protocol 2 and 3)\n", POBJ_KV_VERSION);
    return 0;
  }
  if (!cfg.check_pool.empty()) return check(cfg.check_pool);
  // Our handlers from the start: the handler a library installs at load (libfabric's PSM
  // provider, through libinfinipath, installs one that calls exit()) must never run. A SIGTERM
  // that came during a start inside fi_getinfo exited into libfabric's destructor, which waited
  // for the lock fi_getinfo held: the process hung. A signal while starting stops the server as
  // soon as it runs. SA_ONSTACK: the process may host Go's runtime (replication), whose threads
  // run on stacks of their own; a handler without it can crash when the signal lands on one.
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // A member that restarted itself on an installed snapshot comes with both blocked, and one
  // pending if a stop came meanwhile (replica_snapshot.cpp): taken here, by the handler above.
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  sigprocmask(SIG_UNBLOCK, &stops, nullptr);
  pobj::kv::log::set_threshold(cfg.log_level);
#ifdef POBJ_KV_REPLICATION
  // A member loads libfabric first of all (transport.hpp, load_fabric: a single server never does).
  if (cfg.replica_id != 0 || !cfg.replicas.empty()) {
    try {
      pobj::repl::load_fabric();
    } catch (const std::exception& e) {
      pobj::kv::log::warning("pobj-kv: {}", e.what());
      return 1;
    }
  }
#endif
  if (auto err = load_objects_libraries(cfg)) {
    pobj::kv::log::warning("pobj-kv: {}", *err);
    return 1;
  }
  try {
    // The addresses first: a server that cannot listen makes no pool.
    auto [sockets, port] = pobj::kv::listen_on(cfg);
    struct closer {
      std::vector<int>* fds;
      ~closer() {
        if (fds != nullptr) for (const int fd : *fds) ::close(fd);
      }
    } close_sockets{&sockets};
    refuse_unless_ours(cfg.pool_path);
    pobj::pool p = pobj::pool::open_or_create(cfg.pool_path, pool_options_of(cfg));
    const auto& rec = p.recovery();
    pobj::kv::engine engine(p, cfg);
    pobj::kv::log::notice("pool {} opened in {:.3f} ms (mode {}, {} MiB of {} MiB, boot {}; recovery: {} blocks "
                          "rolled back, {} completed), {} keys",
                          cfg.pool_path, rec.open_ms, pobj::to_string(p.mode()), p.size() >> 20, p.max_size() >> 20,
                          rec.boot_count, rec.blocks_rolled_back, rec.blocks_rolled_forward, engine.db().size());
    if (const std::uint64_t freed = pobj::reclaim(p); freed != 0) {
      pobj::kv::log::notice("freed {} blocks of values deleted before a crash", freed);
    }
    pobj::kv::server srv(engine, cfg);
    std::unique_ptr<pobj::kv::replicated> member;
    if (cfg.replica_id != 0 || !cfg.replicas.empty()) {
      cfg.port = port;  // the port bound: where this member tells clients to reach it when it leads
#ifdef POBJ_KV_REPLICATION
      member = std::make_unique<pobj::kv::replica>(engine, cfg);
      srv.set_replicated(member.get());
#else
      throw std::runtime_error("this pobj-kv was built without replication (it needs golang-etcd-server-dev)");
#endif
    }
    close_sockets.fds = nullptr;  // the server's now
    srv.listen(std::move(sockets), port);
    cfg.port = srv.port();  // the port bound (port 0 asks the system for one)
    running = &srv;
    if (stop_before_running.load()) srv.request_shutdown();
    std::string where;
    for (const std::string& a : cfg.bind_addresses) {
      where += fmt::format("{}{}:{}", where.empty() ? "" : " ", a.find(':') != std::string::npos ? "[" + a + "]" : a,
                           srv.port());
    }
    pobj::kv::log::notice("pobj-kv ready to accept connections on {}", where);
    srv.run();
    running = nullptr;
  } catch (const std::exception& e) {
    pobj::kv::log::warning("pobj-kv: {}", e.what());
    return 1;
  }
  return 0;
}
