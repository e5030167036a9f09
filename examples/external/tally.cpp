// The tally's shared methods (tally.hpp), run by pobj-kv in the block of the call's batch.
#include "tally.pobj.hpp"

std::int64_t pobj::generated::shop_tally_proxy::add(pobj::transaction& tx, std::string_view item, std::int64_t cents) {
  set_total(tx, total() + cents);
  set_count(tx, count() + 1);
  set_last(tx, item);
  return total();
}

double pobj::generated::shop_tally_proxy::mean() const {
  return count() == 0 ? 0.0 : static_cast<double>(total()) / static_cast<double>(count());
}
