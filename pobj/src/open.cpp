// The composition root: brings the layers up, bottom first, when a pool is created or opened,
// and takes them down in the reverse order when it closes. It is the one file that includes
// every layer's internals; each layer below knows only the layers under it, and a hook a lower
// layer needs from an upper one is an interface the lower layer declares and this file connects
// (pool_impl::ordering). docs/tree.md maps the layers.
//
//   media   the mapping and the persistence domain (map_pool makes it; its journal is replayed
//           before: open_file)
//   pool    the file, header, superblock and roots (create_file / open_file, map_pool)
//   heap    the allocator's DRAM state, rebuilt from the zone tables
//   tx      recovery of failure-atomic blocks (which may change allocation state: the heap is
//           then rebuilt), and the ordering rule for the heap
//   object  the program's classes checked against the pool's and recorded
//   types   the containers' DRAM state and tracers
#include <chrono>

#include <unistd.h>

#include <pobj/heap.hpp>
#include <pobj/pool.hpp>
#include <pobj/transaction.hpp>

#include "heap/heap_impl.hpp"
#include "object/schema_impl.hpp"
#include "pool/pool_impl.hpp"
#include "tx/tx_impl.hpp"
#include "types/containers_impl.hpp"

namespace pobj {

using namespace detail;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The heap and the transaction layer on a mapped pool, with recovery.
void bring_up(pool_impl& p) {
  p.heap = std::make_unique<heap_impl>(p);
  p.heap_handle = std::make_unique<pobj::heap>(*p.heap);
  p.tx = std::make_unique<tx_manager>(p);
  p.ordering = p.tx.get();
  p.report = p.tx->recover();
  if (p.report.blocks_rolled_back + p.report.blocks_rolled_forward > 0) {
    p.heap = std::make_unique<heap_impl>(p);  // recovery changed allocation state
    p.heap_handle = std::make_unique<pobj::heap>(*p.heap);
  }
  register_pool(p);
}

// The last step of create and open: the program's classes are checked against the pool's (which
// throws, changing nothing, if one is incompatible) and recorded, the containers attach, then the
// boot is counted.
pool finish_open(pool opened, std::chrono::steady_clock::time_point t0) {
  attach_classes(opened);
  containers::attach_pool(opened);
  count_boot(opened.impl());
  opened.impl().report.open_ms = ms_since(t0);
  return opened;
}

}  // namespace

pool_impl::pool_impl() : id(new_pool_id()) {}

pool_impl::~pool_impl() {
  unregister_pool(*this);
  ordering = nullptr;
  tx.reset();
  heap_handle.reset();
  heap.reset();
  domain.reset();
  if (fd >= 0) files().close(fd);  // releases the lock
}

pool pool::create(const std::string& path, const pool_options& options) {
  auto t0 = std::chrono::steady_clock::now();
  auto p = std::make_unique<pool_impl>();
  p->path = path;
  p->options = options;
  const std::uint64_t size = create_file(*p);
  try {
    map_pool(*p, size, true);
    bring_up(*p);
  } catch (...) {
    // No half-made pool is left behind: the file (its header may be missing) and its journal go.
    // Removed while this process still holds the file's lock: no other process can have opened
    // it as a pool in the meantime. The journal first, the pool file last.
    media::file_ops& files = p->files();
    try {
      media::domain::remove_journal(path, files);
    } catch (const error&) {  // the first error is the one to report
    }
    files.unlink(path.c_str());
    throw;
  }
  return finish_open(pool(std::move(p)), t0);
}

pool pool::open(const std::string& path, const pool_options& options) {
  auto t0 = std::chrono::steady_clock::now();
  auto p = std::make_unique<pool_impl>();
  p->path = path;
  p->options = options;
  opened_file f = open_file(*p);
  map_pool(*p, f.size, false, f.pieces);
  bring_up(*p);
  p->report.journal_records = f.journal_records;
  return finish_open(pool(std::move(p)), t0);
}

pool pool::open_or_create(const std::string& path, const pool_options& options) {
  try {
    return open(path, options);
  } catch (const error& e) {
    if (e.code() != errc::not_found) throw;
  }
  return create(path, options);
}

void pool::close() {
  if (impl_ == nullptr) return;
  if (transaction::active(*this)) {
    throw error(errc::invalid_argument, "pobj: close() inside a failure-atomic block on this pool; end it first");
  }
  impl_.reset();
  base_ = nullptr;
}

}  // namespace pobj
