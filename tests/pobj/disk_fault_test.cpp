// pobj/src/media's fault seam (media::file_ops, pobj/testing/faulty_files.hpp): a page-mode
// workload with EIO, ENOSPC or a short write injected at every journal write and fdatasync it
// makes. Each run's files are then opened as a restart would find them: every write that was
// acknowledged (its call returned) must be there, and the pool must check clean.
#include <cstdio>
#include <filesystem>
#include <thread>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/hash_map.hpp>
#include <pobj/pool.hpp>
#include <pobj/testing/faulty_files.hpp>

#include "test_util.hpp"

namespace {

using pobj::testing::faulty_files;
using op = faulty_files::op;

constexpr std::uint64_t writes = 24;

std::uint64_t value_of(std::uint64_t k) { return k * 7 + 1; }

pobj::pool_options page_options(std::shared_ptr<pobj::media::file_ops> files) {
  pobj::pool_options o = pobj_test::small_options();
  o.mode = pobj::persist_mode::page;
  o.journal_size = 1 * pobj::MiB;
  // The pool file is never written after this open: what a restart finds is the file as made,
  // and the journal exactly as far as its records became durable.
  o.journal_apply = false;
  o.files = std::move(files);
  return o;
}

// A page-mode pool with an empty map at root "map", closed (so its file holds it).
void make_pool(const std::string& path) {
  pobj::pool_options o = pobj_test::small_options();
  o.mode = pobj::persist_mode::page;
  o.journal_size = 1 * pobj::MiB;
  pobj::pool p = pobj::pool::create(path, o);
  auto m = pobj::run_tx(p, [](pobj::transaction& tx) { return pobj::make_hash_map<std::uint64_t, std::uint64_t>(tx); });
  p.set_root("map", m.offset);
}

// Page mode as a server runs it (the journal applied to the pool file, checkpoints included).
pobj::pool_options create_options(std::shared_ptr<pobj::media::file_ops> files) {
  pobj::pool_options o = page_options(std::move(files));
  o.journal_apply = true;
  return o;
}

pobj::hash_map<std::uint64_t, std::uint64_t> map_of(pobj::pool& p) {
  return pobj::hash_map<std::uint64_t, std::uint64_t>{p.root("map")};
}

struct run_figures {
  std::uint64_t injected = 0;       // calls the faulty files failed (or cut short)
  std::uint64_t failed_writes = 0;  // journal record writes pobj saw fail and wrote again
  std::uint64_t acked = 0;          // writes acknowledged
  std::uint64_t lost = 0;           // acknowledged writes a restart did not find
  std::vector<std::string> corrupt;
};

// Makes a pool through `files`, then (with `rule` added, `rule.from` counted from the first call
// of the workload) inserts `writes` keys, one durable insert each; then opens a copy of the files
// as a restart would and checks it.
run_figures run(const std::shared_ptr<faulty_files>& files, faulty_files::rule rule) {
  pobj_test::scratch_path path("disk-fault");
  pobj_test::scratch_path copy("disk-fault-restart");
  run_figures f;
  std::vector<std::uint64_t> acked;
  {
    // A rule that fails nothing counts the calls on the journal from the start.
    files->add({rule.what, 1, 0, 0, false, ".journal"});
    make_pool(path);
    pobj::pool p = pobj::pool::open(path, page_options(files));
    auto m = map_of(p);
    rule.from += files->calls_on(rule.what, ".journal");
    if (rule.count > 0) files->add(rule);
    pobj::hash_map_ref<std::uint64_t, std::uint64_t> map(p, m);
    for (std::uint64_t k = 0; k < writes; ++k) {
      map.insert(k, value_of(k));
      acked.push_back(k);  // the insert returned: durable, acknowledged
    }
    f.failed_writes = p.journal_figures().failed_writes;
    f.injected = files->failures();
    // Power fails: what was not synced is lost; the files are then what a restart finds
    // (nothing else is written to them from here on: journal_apply is false).
    files->lose_unsynced();
    std::filesystem::copy_file(path.str(), copy.str());
    std::filesystem::copy_file(path.str() + ".journal", copy.str() + ".journal");
    p.close();
  }
  pobj::pool_options o = pobj_test::small_options();
  o.mode = pobj::persist_mode::page;
  pobj::pool restarted = pobj::pool::open(copy, o);
  pobj::hash_map_ref<std::uint64_t, std::uint64_t> map(restarted, map_of(restarted));
  for (std::uint64_t k : acked) {
    const auto v = map.find(k);
    if (!v || *v != value_of(k)) ++f.lost;
  }
  f.acked = acked.size();
  f.corrupt = restarted.heap().check().corrupt;
  return f;
}

}  // namespace

TEST_CASE("a fault at any journal write or fdatasync loses no acknowledged write and corrupts nothing",
          "[faults][media]") {
  // How many calls the workload makes of each operation on the journal.
  std::uint64_t workload_calls[2] = {};
  const op ops[2] = {op::pwrite, op::fdatasync};
  for (int i = 0; i < 2; ++i) {
    auto files = std::make_shared<faulty_files>();
    faulty_files::rule none{ops[i], 1, 0, EIO, false, ".journal"};
    pobj_test::scratch_path path("disk-fault-count");
    files->add(none);
    make_pool(path);
    pobj::pool p = pobj::pool::open(path, page_options(files));
    auto m = map_of(p);
    const std::uint64_t before = files->calls_on(ops[i], ".journal");
    pobj::hash_map_ref<std::uint64_t, std::uint64_t> map(p, m);
    for (std::uint64_t k = 0; k < writes; ++k) map.insert(k, value_of(k));
    workload_calls[i] = files->calls_on(ops[i], ".journal") - before;
    REQUIRE(workload_calls[i] >= writes);  // one record (a write and an fdatasync) per insert at least
  }

  run_figures total;
  std::uint64_t runs = 0, short_writes = 0;
  struct kind {
    op what;
    int error;
    bool short_write;
    std::uint64_t count;
  };
  const kind kinds[] = {
      {op::fdatasync, EIO, false, 1},     // one failed fdatasync
      {op::fdatasync, EIO, false, 3},     // the disk stays bad for three tries
      {op::pwrite, EIO, false, 1},
      {op::pwrite, ENOSPC, false, 2},
      {op::pwrite, 0, true, 1},           // a short write: the rest must still be written
  };
  for (const kind& k : kinds) {
    const std::uint64_t n = workload_calls[k.what == op::pwrite ? 0 : 1];
    for (std::uint64_t at = 1; at <= n; ++at) {
      auto files = std::make_shared<faulty_files>();
      faulty_files::rule r{k.what, at, k.count, k.error, k.short_write, ".journal"};
      run_figures f = run(files, r);
      INFO("fault " << (k.what == op::pwrite ? "pwrite" : "fdatasync") << " error " << k.error << " short "
                    << k.short_write << " at call " << at << " of the workload");
      CHECK(f.injected >= 1);
      CHECK(f.lost == 0);
      CHECK(f.acked == writes);
      CHECK(f.corrupt.empty());
      if (!k.short_write) CHECK(f.failed_writes >= 1);  // pobj saw the error and wrote the record again
      ++runs;
      if (k.short_write) short_writes += f.injected;
      total.injected += f.injected;
      total.failed_writes += f.failed_writes;
      total.acked += f.acked;
      total.lost += f.lost;
    }
  }
  std::printf("disk faults: %llu runs, %llu calls failed or cut short (%llu short writes), %llu failed record "
              "writes seen and written again, %llu writes acknowledged, %llu lost\n",
              static_cast<unsigned long long>(runs), static_cast<unsigned long long>(total.injected),
              static_cast<unsigned long long>(short_writes), static_cast<unsigned long long>(total.failed_writes),
              static_cast<unsigned long long>(total.acked), static_cast<unsigned long long>(total.lost));
  CHECK(total.lost == 0);
}

TEST_CASE("while a journal write fails, no ticket past it is durable and failure() says why", "[faults][media]") {
  pobj_test::scratch_path path("disk-fault-ticket");
  auto files = std::make_shared<faulty_files>();
  make_pool(path);
  pobj::pool p = pobj::pool::open(path, page_options(files));
  auto m = map_of(p);
  CHECK(p.durability_failure() == 0);
  // The next 8 fdatasyncs of the journal fail: pobj retries with backoff (1, 2, 4 ... ms).
  files->add({op::fdatasync, 1, 0, 0, false, ".journal"});
  const std::uint64_t from = files->calls_on(op::fdatasync, ".journal") + 1;
  files->add({op::fdatasync, from, 8, EIO, false, ".journal"});
  std::uint64_t ticket = 0;
  {
    pobj::transaction tx(p);
    pobj::hash_map_ref<std::uint64_t, std::uint64_t> map(p, m);
    map.insert(tx, 1, 2);
    ticket = tx.commit_deferred();
  }
  std::thread syncer([&] { p.sync(ticket); });
  bool saw_failure = false;
  for (int i = 0; i < 2000 && !saw_failure; ++i) {
    // durable() first: the record's writer clears the failure before the ticket turns durable.
    const bool durable = p.durable(ticket);
    if (p.durability_failure() == EIO) {
      saw_failure = true;
      CHECK_FALSE(durable);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  syncer.join();
  CHECK(saw_failure);
  CHECK(p.durable(ticket));
  CHECK(p.durability_failure() == 0);
  CHECK(p.journal_figures().failed_writes == 8);
}

TEST_CASE("a fault at any call of create fails it with a clear error and leaves no file", "[faults][pool]") {
  const op ops[] = {op::open, op::pwrite, op::fdatasync, op::fsync, op::fallocate, op::rename, op::unlink};
  std::uint64_t failed_creates = 0;
  for (op o : ops) {
    // How many calls of `o` a create makes.
    std::uint64_t n = 0;
    {
      pobj_test::scratch_path path("disk-fault-create-count");
      auto files = std::make_shared<faulty_files>();
      files->add({o, 1, 0, 0, false, ""});
      pobj::pool p = pobj::pool::create(path, create_options(files));
      n = files->calls_on(o, "");
    }
    for (std::uint64_t at = 1; at <= n; ++at) {
      pobj_test::scratch_path path("disk-fault-create");
      auto files = std::make_shared<faulty_files>();
      // Twice running (the disk stays bad for a retry or a checkpoint at cleanup), but once for
      // unlink: a disk that refuses the cleanup's own unlink leaves the file, as it must.
      files->add({o, at, o == op::unlink ? 1u : 2u, EIO, false, ""});
      INFO("operation " << static_cast<int>(o) << ", call " << at << " of " << n);
      try {
        pobj::pool p = pobj::pool::create(path, create_options(files));
        p.close();
        CHECK(std::filesystem::exists(path.str()));  // a call whose failure create could absorb
      } catch (const pobj::error& e) {
        ++failed_creates;
        CHECK((e.code() == pobj::errc::io_error || e.code() == pobj::errc::out_of_space));
        CHECK_FALSE(std::filesystem::exists(path.str()));
        CHECK_FALSE(std::filesystem::exists(path.str() + ".journal"));
      }
    }
  }
  CHECK(failed_creates > 0);
}

TEST_CASE("after a failed fsync of a growth the pool grows no more until it is opened again", "[faults][pool]") {
  pobj_test::scratch_path path("disk-fault-grow");
  auto files = std::make_shared<faulty_files>();
  // The pool file's only fsync is the one that makes a growth durable (directories have no
  // ".pool" in their path; the journal uses fdatasync).
  files->add({op::fsync, 1, 1, EIO, false, ".pool"});
  auto grow_until_error = [](pobj::pool& p) -> pobj::errc {
    for (int i = 0; i < 64; ++i) {
      try {
        pobj::run_tx(p, [](pobj::transaction& tx) { (void)tx.alloc(1 * pobj::MiB, 0); });
      } catch (const pobj::error& e) {
        return e.code();
      }
    }
    return pobj::errc::invalid_argument;  // grew 64 MiB without an error
  };
  {
    pobj::pool p = pobj::pool::create(path, create_options(files));
    const std::size_t size = p.size();
    CHECK(grow_until_error(p) == pobj::errc::io_error);  // the fsync failed
    CHECK(files->failures() == 1);
    CHECK(grow_until_error(p) == pobj::errc::io_error);  // refused, though fsync would work now
    CHECK(files->failures() == 1);
    CHECK(p.size() == size);
  }
  pobj::pool_options o = pobj_test::small_options();
  o.mode = pobj::persist_mode::page;
  pobj::pool again = pobj::pool::open(path, o);
  const std::size_t before = again.size();
  for (int i = 0; i < 16; ++i) pobj::run_tx(again, [](pobj::transaction& tx) { (void)tx.alloc(1 * pobj::MiB, 0); });
  CHECK(again.size() > before);  // opened again, it grows
}
