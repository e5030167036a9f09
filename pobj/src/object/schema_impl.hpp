// The class table of an open pool (docs/format/pool.md, "Classes"): persistent records under the
// root "pobj.classes", and their DRAM image that proxies consult for downcasts.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <pobj/object.hpp>
#include <pobj/pool.hpp>

#include "common/sync.hpp"

namespace pobj::detail {

inline constexpr char class_table_root[] = "pobj.classes";
inline constexpr std::uint64_t class_table_magic = 0x31534c434a424f50ULL;  // "POBJCLS1"
inline constexpr std::uint16_t class_table_type = heap_type::class_table;
inline constexpr std::uint32_t max_classes = 4096;
static_assert(max_classes < heap_type::first_reserved, "class numbers are heap types below the reserved ones");

// One class as the pool records it (40 bytes).
struct class_record {
  std::uint64_t class_id;
  std::uint64_t schema_hash;
  std::uint64_t base_id;
  std::uint64_t schema;  // a string word (string.hpp): the layout as text, see schema.cpp
  std::uint32_t size;
  std::uint32_t min_size;  // the size when first recorded: no object of the class is smaller
};
static_assert(sizeof(class_record) == 40);

struct class_table {
  std::uint64_t magic;
  std::uint32_t count;
  std::uint32_t capacity;
  class_record records[1];  // capacity of them
};

struct recorded_field {
  std::string name, type;
  char kind = 'v';
  std::uint32_t offset = 0, size = 0;
};

struct class_entry {
  std::uint64_t class_id = 0, base_id = 0, schema_hash = 0;
  std::uint32_t size = 0, min_size = 0;
  std::string name;
  std::string base_name;
  std::vector<recorded_field> fields;
  std::vector<std::uint64_t> ancestors;  // the class itself, then its bases
};

struct class_state {
  mutex mu;  // serializes registration
  // entries[key - 1], published before count; an upgrade replaces an entry, and the old one stays
  // alive (in owned) for readers that still hold it.
  std::array<std::atomic<const class_entry*>, max_classes> entries{};
  std::atomic<std::uint32_t> count{0};
  std::vector<std::unique_ptr<class_entry>> owned POBJ_GUARDED_BY(mu);
  std::uint64_t table POBJ_GUARDED_BY(mu) = 0;  // offset of the class_table block, 0 if none

  const class_entry& entry(std::uint32_t i) const noexcept { return *entries[i].load(std::memory_order_acquire); }
};

// Loads the pool's class table, checks the program's classes against it (throwing
// errc::schema_mismatch before changing anything), then records new classes and upgrades
// additive ones. Called by pool::create and pool::open.
void attach_classes(pool& p);

// Appends the blocks an object owns (its out-of-line strings, the blocks of its containers) and
// then its own block to `out`: what destroy_object frees, for a reclamation batch (containers.cpp).
void collect_object(pool& p, std::uint64_t block, std::vector<std::uint64_t>& out);

// A hook this layer declares and the types layer (types/containers.cpp) defines: appends every
// block of the container at `header` (and of the containers it owns) to `out`, the header first,
// reading only. An object's container fields reach their blocks through it.
namespace containers {
void collect_container(pool& p, std::uint64_t header, std::vector<std::uint64_t>& out);
}  // namespace containers

}  // namespace pobj::detail
