// The persistent layout of a pool, format 1. Specified in docs/format/pool.md; change both together.
// Every struct here has explicit padding and static_asserts on its size and offsets.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pobj::detail {

// 2.0: the heap type 0xffef (nodes whose keys or values may hold references) and the queue's
// references flags. A 1.x pool opens too: its plain map nodes and inline queue slots are traced
// as possible references (they may hold some that 1.x never traced); libraries of 1.x refuse 2.x.
inline constexpr std::uint32_t format_major = 2;
inline constexpr std::uint32_t format_minor = 0;
inline constexpr std::uint32_t oldest_format_major = 1;
inline constexpr char pool_magic[8] = {'P', 'O', 'B', 'J', 'P', 'O', 'O', 'L'};

inline constexpr std::size_t line_size = 64;
inline constexpr std::size_t page_size = 4096;
inline constexpr std::size_t chunk_size = 256 * 1024;
inline constexpr std::size_t zone_chunks = 16384;  // chunk 0 of a zone holds its chunk table
inline constexpr std::size_t zone_size = zone_chunks * chunk_size;

inline constexpr std::uint64_t header_offset = 0;
inline constexpr std::uint64_t superblock_offset = 4096;
inline constexpr std::uint64_t roots_offset = 8192;
inline constexpr std::uint64_t root_entries = 1024;

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

// Offset 0, immutable after create. checksum covers bytes [0, offsetof(checksum)).
struct pool_header {
  char magic[8];
  std::uint32_t format_major;
  std::uint32_t format_minor;
  std::uint8_t uuid[16];
  std::uint64_t create_time_ns;
  std::uint64_t superblock_offset;
  std::uint64_t roots_offset;
  std::uint64_t root_entries;
  std::uint64_t lanes_offset;
  std::uint32_t lane_count;
  std::uint32_t lane_log_size;  // bytes per log buffer; each lane has two
  std::uint64_t heap_offset;    // chunk-aligned start of zone 0
  std::uint64_t chunk_size;
  std::uint64_t zone_chunks;
  std::uint64_t min_size;       // smallest file size that holds the metadata and 8 chunks
  std::uint8_t reserved[3976];
  std::uint64_t checksum;
};
static_assert(sizeof(pool_header) == 4096);
static_assert(offsetof(pool_header, format_major) == 8);
static_assert(offsetof(pool_header, uuid) == 16);
static_assert(offsetof(pool_header, create_time_ns) == 32);
static_assert(offsetof(pool_header, lanes_offset) == 64);
static_assert(offsetof(pool_header, lane_count) == 72);
static_assert(offsetof(pool_header, heap_offset) == 80);
static_assert(offsetof(pool_header, min_size) == 104);
static_assert(offsetof(pool_header, reserved) == 112);
static_assert(offsetof(pool_header, checksum) == 4088);

// Offset 4096: the mutable words of the pool. Each is updated by one 8-byte durable store.
struct superblock {
  std::atomic<std::uint64_t> size;        // bytes of the file in use; the file may be longer
  std::atomic<std::uint64_t> gen_lease;   // allocation generations below this may have been used
  std::atomic<std::uint64_t> boot_count;  // incremented by every open
  std::uint64_t reserved[509];
};
static_assert(sizeof(superblock) == 4096);
static_assert(offsetof(superblock, gen_lease) == 8);
static_assert(offsetof(superblock, boot_count) == 16);

// Offset 8192: the named-root directory, root_entries entries of one line each. An entry is in
// use when object != 0; name is NUL-padded.
struct root_entry {
  char name[48];
  std::uint64_t object;
  std::uint16_t type;
  std::uint8_t reserved[6];
};
static_assert(sizeof(root_entry) == 64);
static_assert(offsetof(root_entry, object) == 48);

// Log lanes: lane_count lanes of two buffers of lane_log_size bytes. A buffer is an 8-byte state
// word, then log entries, then, once the block commits, an 8-byte commit word: the checksum of
// the entries and of every object the block allocated. A one-field block fits in one line.
struct log_buffer_header {
  std::atomic<std::uint64_t> state;  // (seq << 2) | log_state
};
static_assert(sizeof(log_buffer_header) == 8);
enum log_state : std::uint64_t { log_empty = 0, log_active = 1 };

enum class entry_kind : std::uint32_t {
  undo = 1,       // payload: bytes at offset before the block changed them
  redo = 2,       // payload: bytes at offset when the block committed
  alloc = 3,      // payload: u64 generation, u64 usable size, u64 requested size << 16 | type
  free = 4,       // payload: u64 generation, u64 size; offset = the object
  undo_redo = 6,  // payload: the old bytes, then the new ones (a set() of a known value)
};

struct log_entry_header {
  std::uint64_t seq;
  entry_kind kind;
  std::uint32_t size;  // payload bytes (the payload is padded to 8)
  std::uint64_t offset;
  std::uint64_t checksum;  // over this header (checksum = 0) and the payload
};
static_assert(sizeof(log_entry_header) == 32);

// Zone z starts at heap_offset + z * zone_size; its chunk 0 is a table of zone_chunks entries.
enum class chunk_state : std::uint8_t { free = 0, run = 1, extent = 2 };
struct chunk_entry {
  // bits 0-7 chunk_state, 8-15 size class (run), 32-63 chunk count (extent head)
  std::atomic<std::uint64_t> word;
  // extent head: allocation generation (bits 16-63) and type (bits 0-15)
  std::atomic<std::uint64_t> meta;
};
static_assert(sizeof(chunk_entry) == 16);
static_assert(zone_chunks * sizeof(chunk_entry) == chunk_size);

constexpr std::uint64_t chunk_word(chunk_state s, std::uint32_t cls, std::uint32_t n) {
  return static_cast<std::uint64_t>(s) | (static_cast<std::uint64_t>(cls) << 8) |
         (static_cast<std::uint64_t>(n) << 32);
}
constexpr chunk_state word_state(std::uint64_t w) { return static_cast<chunk_state>(w & 0xff); }
constexpr std::uint32_t word_class(std::uint64_t w) { return (w >> 8) & 0xff; }
constexpr std::uint32_t word_count(std::uint64_t w) { return static_cast<std::uint32_t>(w >> 32); }

constexpr std::uint64_t make_meta(std::uint64_t gen, std::uint16_t type) { return (gen << 16) | type; }
constexpr std::uint64_t meta_gen(std::uint64_t m) { return m >> 16; }
constexpr std::uint16_t meta_type(std::uint64_t m) { return static_cast<std::uint16_t>(m & 0xffff); }

// A run chunk: header line, allocation bitmap, per-block meta (make_meta), then the blocks.
inline constexpr std::uint32_t run_magic = 0x314e5552;  // "RUN1"
struct run_header {
  std::uint32_t magic;
  std::uint32_t size_class;
  std::uint32_t block_size;
  std::uint32_t block_count;
  std::uint32_t bitmap_offset;  // from the chunk start
  std::uint32_t meta_offset;
  std::uint32_t data_offset;
  std::uint32_t reserved[9];
};
static_assert(sizeof(run_header) == 64);

}  // namespace pobj::detail
