// A heap file that includes the transaction layer: the layers test must refuse it.
#include "tx/tx_impl.hpp"
