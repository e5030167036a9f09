// The graph example's persistent classes: a transport network whose places are cities, stations
// and airports, all derived from one persistent base, linked by references that may hold any of
// them. pobj-gen reads this header and emits graph.pobj.hpp.
#pragma once

#include <cstdint>

#include <pobj/annotate.hpp>
#include <pobj/ref.hpp>
#include <pobj/string.hpp>

namespace transit {

struct link;

struct POBJ_PERSISTENT place {
  pobj::string name;
  std::uint64_t visits;      // how many routes passed here, over all runs
  pobj::ref<link> links;     // the links leaving this place
  pobj::ref<place> next;     // every place of the network, in a list
};

struct POBJ_PERSISTENT city : place {
  std::int64_t population;
};

struct POBJ_PERSISTENT station : place {
  std::uint8_t lines;
  bool step_free;
};

struct POBJ_PERSISTENT airport : place {
  char code[4];  // IATA code, NUL-terminated
};

struct POBJ_PERSISTENT link {
  pobj::ref<place> to;  // a city, a station or an airport
  double km;
  pobj::ref<link> next;
};

struct POBJ_PERSISTENT network {
  pobj::ref<place> places;
  std::uint32_t count;
  std::uint64_t routes;  // routes computed, over all runs
};

}  // namespace transit
