// The layer above, including below: allowed.
#include "heap/heap_impl.hpp"
