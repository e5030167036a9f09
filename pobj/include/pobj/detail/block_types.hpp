// Part of the pool's on-media format (docs/format/pool.md, "Heap types"): the block types pobj
// itself uses. A block's type is the low 16 bits of its meta word; it picks the tracer `check`
// runs on the block. Changing a value here changes the format.
//
// Thread safety: constants only. Crash consistency: not applicable (no state).
#pragma once

#include <cstdint>

namespace pobj {

// The heap types (the `type` of reserve() and transaction::alloc(), heap::type_of()) pobj itself
// uses, each with a tracer set when a pool opens; 1 .. 4095 are the classes of the pool's class
// table (pobj/object.hpp); 0 is untyped (traced conservatively). docs/format/pool.md lists them.
namespace heap_type {
inline constexpr std::uint16_t first_reserved = 0xffe0;
inline constexpr std::uint16_t map_node_refs = 0xffef;  // a node whose key or value may hold references
inline constexpr std::uint16_t reclaim_batch = 0xfff0;  // blocks of destroyed containers awaiting their free
inline constexpr std::uint16_t map_node_owning = 0xfff1;  // a node whose value is a container it owns
inline constexpr std::uint16_t queue_segment = 0xfff2;
inline constexpr std::uint16_t queue_header = 0xfff3;
inline constexpr std::uint16_t tree_leaf = 0xfff4;
inline constexpr std::uint16_t tree_inner = 0xfff5;
inline constexpr std::uint16_t tree_header = 0xfff6;
inline constexpr std::uint16_t vector_header = 0xfff7;
inline constexpr std::uint16_t map_node = 0xfff8;
inline constexpr std::uint16_t map_segment = 0xfff9;
inline constexpr std::uint16_t map_directory = 0xfffa;
inline constexpr std::uint16_t map_header = 0xfffb;
inline constexpr std::uint16_t record = 0xfffc;
inline constexpr std::uint16_t class_table = 0xfffd;
inline constexpr std::uint16_t string = 0xfffe;
}  // namespace heap_type

}  // namespace pobj
