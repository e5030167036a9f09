// guestbook: a persistent log that every run extends. It opens (or creates) a pool, prints what
// survived the previous runs, and adds one entry in a failure-atomic block.
//
//   guestbook [POOL] [MESSAGE]      (POOL defaults to guestbook.pool in the working directory)
//
// Kill it at any moment: the next run sees every entry that a finished run printed as added,
// and nothing half-written.
#include <chrono>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <pobj/pobj.hpp>

namespace {

// The root object, found again by name on every run.
struct book {
  std::uint64_t runs;        // finished runs
  pobj::offset_t newest;     // most recent entry, or 0
  std::uint64_t bytes;       // bytes of text in all entries
};

// One entry; entries form a list from the newest back to the first.
struct entry {
  pobj::offset_t older;
  std::uint64_t run;
  std::int64_t unix_ms;
  std::uint32_t length;
  char text[4];  // `length` bytes follow (the allocation is sized for them)
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) try {
  std::string path = argc > 1 ? argv[1] : "guestbook.pool";
  pobj::pool_options options;
  options.size = 16 * pobj::MiB;
  options.lanes = 4;
  pobj::pool pool = pobj::pool::open_or_create(path, options);
  const auto& rec = pool.recovery();
  fmt::print("pool {} (persistence mode {}), opened {} times, opened in {:.2f} ms", path,
             pobj::to_string(pool.mode()), rec.boot_count, rec.open_ms);
  if (rec.blocks_rolled_back + rec.blocks_rolled_forward > 0) {
    fmt::print(", recovered {} interrupted and {} committed blocks", rec.blocks_rolled_back, rec.blocks_rolled_forward);
  }
  fmt::print("\n");

  auto* b = pool.at<book>(pool.root("guestbook"));
  if (b == nullptr) {
    pobj::transaction tx(pool);
    pobj::allocation a = tx.alloc(sizeof(book));
    b = static_cast<book*>(a.pointer);
    *b = book{0, 0, 0};
    pool.set_root("guestbook", a.offset);
    fmt::print("a new guestbook\n");
  }

  fmt::print("{} earlier runs left {} bytes of entries; the latest:\n", b->runs, b->bytes);
  int shown = 0;
  for (auto* e = pool.at<entry>(b->newest); e != nullptr && shown < 5; e = pool.at<entry>(e->older), ++shown) {
    fmt::print("  run {:>4}  {}  {}\n", e->run, e->unix_ms, std::string_view(e->text, e->length));
  }

  std::string message = argc > 2 ? argv[2] : fmt::format("hello from run {}", b->runs + 1);
  {
    pobj::transaction tx(pool);
    pobj::allocation a = tx.alloc(offsetof(entry, text) + message.size());
    auto* e = static_cast<entry*>(a.pointer);  // fresh: written in place, never logged
    e->older = b->newest;
    e->run = b->runs + 1;
    e->unix_ms = now_ms();
    e->length = static_cast<std::uint32_t>(message.size());
    std::memcpy(e->text, message.data(), message.size());
    tx.snapshot(b, sizeof(book));
    b->newest = a.offset;
    b->runs += 1;
    b->bytes += message.size();
  }
  auto stats = pool.heap().stats();
  fmt::print("added run {}: \"{}\" ({} bytes in use, {} free)\n", b->runs, message, stats.bytes_used,
             stats.bytes_free);
  return 0;
} catch (const pobj::error& e) {
  fmt::print(stderr, "guestbook: {}\n", e.what());
  return 1;
}
