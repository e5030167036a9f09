// Internal: the byte-string engine of the queue (pobj/queue.hpp; pobj/src/types/queue.cpp), which the public templates
// call with their keys and values encoded (pobj/codec.hpp). Not an interface of its own.
//
// Thread safety: as the public header states. Crash consistency: as the public header states.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <pobj/pool.hpp>

namespace pobj {

class transaction;

namespace detail::containers {
struct queue_state;
}

namespace detail::pqueue {

using containers::queue_state;

// The engine stores byte strings: in the slot itself (inline queues: at most 8 bytes, returned
// as 8 bytes) or in a block.
std::uint64_t create(transaction& tx, bool inline_values, bool refs);
queue_state& attach(pool& p, std::uint64_t header, bool inline_values, bool refs);
void push(pool& p, queue_state& q, std::string_view value);
bool pop(pool& p, queue_state& q, std::string* value);
bool front(pool& p, queue_state& q, std::string* value);
std::uint64_t size(queue_state& q) noexcept;
void for_each(pool& p, queue_state& q, const std::function<void(std::string_view)>& fn);

template <class T>
inline constexpr bool stores_inline = !is_byte_string<T> && sizeof(T) <= 8;

}  // namespace detail::pqueue

}  // namespace pobj
