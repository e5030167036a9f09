// pobj: persistent objects for C++20. Include this header for the whole public API, or the
// headers of the concepts you use (pool, heap, transaction, media, object, string, record).
//
// Thread safety: as each included header states.
// Crash consistency: as each included header states.
#pragma once

#include <pobj/atomic.hpp>
#include <pobj/containers.hpp>
#include <pobj/error.hpp>
#include <pobj/hash_map.hpp>
#include <pobj/heap.hpp>
#include <pobj/media.hpp>
#include <pobj/object.hpp>
#include <pobj/ordered_map.hpp>
#include <pobj/pool.hpp>
#include <pobj/queue.hpp>
#include <pobj/record.hpp>
#include <pobj/shared.hpp>
#include <pobj/string.hpp>
#include <pobj/transaction.hpp>
#include <pobj/vector.hpp>
