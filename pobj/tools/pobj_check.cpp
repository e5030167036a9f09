// pobj-check: verify a pool offline, like fsck.
//
//   pobj-check [--repair] [--quiet] POOL
//
// Opens the pool (running recovery if its last user crashed), reports what recovery did, the
// heap's statistics, and a reachability check from the named roots. Without --repair the pool
// is opened read-only (pool_options::read_only): recovery runs in memory and neither the pool
// file nor its journal changes. With --repair, opens it writable, frees the objects no root
// reaches and finishes reclaiming destroyed containers. Exit status: 0 healthy (or repaired), 1
// problems found, 2 cannot open.
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <pobj/pobj.hpp>

int main(int argc, char** argv) {
  bool repair = false, quiet = false;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repair") == 0) repair = true;
    else if (std::strcmp(argv[i], "--quiet") == 0) quiet = true;
    else if (argv[i][0] == '-' || !path.empty()) {
      fmt::print(stderr, "usage: pobj-check [--repair] [--quiet] POOL\n");
      return 2;
    } else path = argv[i];
  }
  if (path.empty()) {
    fmt::print(stderr, "usage: pobj-check [--repair] [--quiet] POOL\n");
    return 2;
  }
  pobj::pool pool;
  try {
    pobj::pool_options options;
    options.read_only = !repair;
    pool = pobj::pool::open(path, options);
  } catch (const pobj::error& e) {
    fmt::print(stderr, "pobj-check: {} ({})\n", e.what(), pobj::to_string(e.code()));
    return 2;
  }
  const auto& rec = pool.recovery();
  const auto stats = pool.heap().stats();
  if (!quiet) {
    fmt::print("pool {}: {} bytes (maximum {}), opened {} times, {}, opened in {:.2f} ms\n", path, pool.size(),
               pool.max_size(), rec.boot_count - (repair ? 0 : 1),
               repair ? fmt::format("mode {}", pobj::to_string(pool.mode())) : std::string("read-only"), rec.open_ms);
    fmt::print("recovery{}: {} interrupted blocks rolled back, {} committed blocks completed, {} journal records\n",
               repair ? "" : " (in memory only)", rec.blocks_rolled_back, rec.blocks_rolled_forward,
               rec.journal_records);
    fmt::print("heap: {} bytes used, {} free; {} of {} chunks free; {} extents ({} bytes)\n", stats.bytes_used,
               stats.bytes_free, stats.chunks_free, stats.chunks_total, stats.extents, stats.extent_bytes);
    for (const auto& c : stats.classes) {
      fmt::print("  size class {:>6} B: {:>4} runs, {:>9} used, {:>9} free\n", c.block_size, c.runs, c.blocks_used,
                 c.blocks_free);
    }
    fmt::print("roots: {}\n", pool.roots().size());
  }
  // Blocks of destroyed containers that a crash left listed (pobj/containers.hpp); --repair frees
  // them. They are not a leak: the check traces them through their batch.
  try {
    if (const std::uint64_t pending = pobj::reclaim_pending(pool); pending != 0) {
      fmt::print("reclamation: {} blocks of destroyed containers not yet freed{}\n", pending,
                 repair ? fmt::format(", {} freed now", pobj::reclaim(pool)) : std::string(" (--repair frees them)"));
    }
  } catch (const pobj::error& e) {
    fmt::print("  corrupt: {}\n", e.what());
    return 1;
  }
  pobj::check_report report = repair ? pool.heap().repair() : pool.heap().check();
  fmt::print("check: {} objects ({} bytes) reachable, {} unreachable, {} inconsistencies{}\n",
             report.reachable_objects, report.reachable_bytes, report.unreachable.size(), report.corrupt.size(),
             repair ? fmt::format(", {} freed", report.repaired) : std::string());
  for (const auto& line : report.corrupt) fmt::print("  corrupt: {}\n", line);
  if (!quiet) {
    for (std::size_t i = 0; i < report.unreachable.size() && i < 20; ++i) {
      fmt::print("  unreachable: {:#x} ({} bytes)\n", report.unreachable[i], pool.heap().usable_size(report.unreachable[i]));
    }
  }
  if (!report.corrupt.empty()) return 1;
  return report.unreachable.empty() || repair ? 0 : 1;
}
