// Must not compile: a reservation is move-only, so one block cannot be published twice.
#include <pobj/heap.hpp>

void misuse(pobj::heap& h) {
  pobj::reservation r = h.reserve(64);
  pobj::reservation copy = r;  // error: copy constructor is deleted
  (void)copy;
}
