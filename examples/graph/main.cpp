// graph: a network of places (cities, stations, airports: one persistent base class, three
// derived ones) linked by references to the base. The first run builds it; every run lists the
// places, dispatching on each one's concrete class without virtual functions in the pool, finds
// the shortest route between two places, and counts the visit in the pool.
//
//   graph [--pool PATH] [FROM TO]      (PATH defaults to graph.pool; FROM and TO name places)
#include <cstring>
#include <limits>
#include <map>
#include <queue>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pobj/pobj.hpp>

#include "graph.pobj.hpp"

namespace {

using place_ref = pobj::ref<transit::place>;

pobj::proxy<transit::network> build(pobj::pool& p) {
  return pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto net = pobj::make<transit::network>(tx);
    std::map<std::string, place_ref> by_name;
    auto add = [&](auto made) {
      made.set_next(tx, net.places());
      net.set_places(tx, made.ref());
      net.set_count(tx, net.count() + 1);
      by_name[std::string(made.name())] = made.ref();
    };
    add(pobj::builder<transit::city>().name("Paris").population(2102650).make(tx));
    add(pobj::builder<transit::city>().name("Lyon").population(522250).make(tx));
    add(pobj::builder<transit::city>().name("Marseille").population(873076).make(tx));
    add(pobj::builder<transit::station>().name("Gare de Lyon").lines(5).step_free(true).make(tx));
    add(pobj::builder<transit::station>().name("Lyon Part-Dieu").lines(3).step_free(true).make(tx));
    add(pobj::builder<transit::airport>().name("Orly").code({'O', 'R', 'Y', 0}).make(tx));
    add(pobj::builder<transit::airport>().name("Marseille Provence").code({'M', 'R', 'S', 0}).make(tx));
    auto connect = [&](const char* a, const char* b, double km) {
      for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
        auto origin = pobj::deref(p, by_name.at(from));
        auto l = pobj::builder<transit::link>().to(by_name.at(to)).km(km).next(origin.links()).make(tx);
        origin.set_links(tx, l.ref());
      }
    };
    connect("Paris", "Gare de Lyon", 3);
    connect("Paris", "Orly", 14);
    connect("Gare de Lyon", "Lyon Part-Dieu", 427);
    connect("Lyon Part-Dieu", "Lyon", 4);
    connect("Lyon", "Marseille", 314);
    connect("Orly", "Marseille Provence", 661);
    connect("Marseille Provence", "Marseille", 27);
    pobj::set_root(p, "network", net.ref());
    return net;
  });
}

// One line per place, by its concrete class.
std::string describe(pobj::proxy<transit::place> place) {
  return pobj::visit<transit::city, transit::station, transit::airport>(place, [](auto concrete) {
    using proxy = decltype(concrete);
    if constexpr (std::is_same_v<proxy, pobj::proxy<transit::city>>) {
      return fmt::format("city     {:<20} population {}", concrete.name(), concrete.population());
    } else if constexpr (std::is_same_v<proxy, pobj::proxy<transit::station>>) {
      return fmt::format("station  {:<20} {} lines{}", concrete.name(), concrete.lines(),
                         concrete.step_free() ? ", step-free" : "");
    } else {
      return fmt::format("airport  {:<20} {}", concrete.name(), concrete.code());
    }
  });
}

}  // namespace

int main(int argc, char** argv) try {
  std::string path = "graph.pool";
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--pool") == 0 && i + 1 < argc) path = argv[++i];
    else names.emplace_back(argv[i]);
  }
  if (names.empty()) names = {"Paris", "Marseille"};
  if (names.size() != 2) {
    fmt::print(stderr, "usage: graph [--pool PATH] [FROM TO]\n");
    return 2;
  }
  pobj::pool p = pobj::pool::open_or_create(path);
  auto found = pobj::root<transit::network>(p, "network");
  auto net = found ? *found : build(p);

  std::map<std::string, place_ref> by_name;
  fmt::print("{} places:\n", net.count());
  for (place_ref r = net.places(); r; r = pobj::deref(p, r).next()) {
    auto place = pobj::deref(p, r);
    by_name[std::string(place.name())] = r;
    fmt::print("  {}   ({} visits)\n", describe(place), place.visits());
  }
  for (const auto& n : names) {
    if (!by_name.contains(n)) throw std::invalid_argument(fmt::format("no place is called '{}'", n));
  }

  // Dijkstra over the links; references to the base hold every kind of place.
  std::map<std::uint64_t, double> distance;
  std::map<std::uint64_t, place_ref> previous;
  using item = std::pair<double, std::uint64_t>;
  std::priority_queue<item, std::vector<item>, std::greater<>> queue;
  const place_ref from = by_name[names[0]], to = by_name[names[1]];
  distance[from.offset] = 0;
  queue.emplace(0, from.offset);
  while (!queue.empty()) {
    auto [d, at] = queue.top();
    queue.pop();
    if (d > distance[at]) continue;
    for (auto l = pobj::deref(p, place_ref(at)).links(); l; l = pobj::deref(p, l).next()) {
      auto edge = pobj::deref(p, l);
      double nd = d + edge.km();
      if (!distance.contains(edge.to().offset) || nd < distance[edge.to().offset]) {
        distance[edge.to().offset] = nd;
        previous[edge.to().offset] = place_ref(at);
        queue.emplace(nd, edge.to().offset);
      }
    }
  }
  if (!distance.contains(to.offset)) throw std::runtime_error("no route");
  std::vector<place_ref> route{to};
  while (route.back() != from) route.push_back(previous[route.back().offset]);

  // Count the visits, all in one failure-atomic block.
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    for (auto r : route) pobj::deref(p, r).set_visits(tx, pobj::deref(p, r).visits() + 1);
    net.set_routes(tx, net.routes() + 1);
  });
  fmt::print("shortest route {} -> {}, {:.0f} km:", names[0], names[1], distance[to.offset]);
  for (auto it = route.rbegin(); it != route.rend(); ++it) fmt::print(" {}", pobj::deref(p, *it).name());
  fmt::print("\n{} routes computed in this pool so far\n", net.routes());
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "graph: {}\n", e.what());
  return 1;
}
