// The durable-linearizability oracle the map crash tests share (hash_map, ordered_map): a list of
// inserts, replacements and erases run under the crash simulator; after each recovery the map
// must hold exactly the completed operations, plus the one in flight or not, and agree with its
// size(). The harness checks the heap after each recovery.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <pobj/string.hpp>
#include <pobj/testing/crash_harness.hpp>
#include <pobj/transaction.hpp>

namespace map_oracle {

template <class Key>
struct op {
  enum kind { insert, assign, erase } what;
  Key key;
  std::string value;
};

template <class Key>
using model = std::map<Key, std::string>;

template <class Key>
void apply(model<Key>& m, const op<Key>& o) {
  if (o.what == op<Key>::erase) m.erase(o.key);
  else if (o.what == op<Key>::assign || !m.contains(o.key)) m[o.key] = o.value;
}

// Map is pobj::hash_map<Key, pobj::bytes> or pobj::ordered_map<Key, pobj::bytes> (root "map"),
// Ref its handle, made by make(tx); check(handle, contents) adds checks of its own.
template <class Map, class Ref, class Key>
pobj::testing::crash_test map_test(const std::string& name, std::vector<op<Key>> prefix, std::vector<op<Key>> ops,
                                   std::function<Map(pobj::transaction&)> make,
                                   std::function<void(Ref&, const model<Key>&)> check = {}) {
  pobj::testing::crash_test t;
  t.name = name;
  t.options.size = 16 * pobj::MiB;
  t.options.lanes = 2;
  t.setup = [prefix, make](pobj::pool& p) {
    const Map m = pobj::run_tx(p, [&](pobj::transaction& tx) {
      Map made = make(tx);
      p.set_root("map", made.offset);
      return made;
    });
    Ref handle(p, m);
    for (const auto& o : prefix) {
      if (o.what == op<Key>::erase) {
        handle.erase(o.key);
      } else if (o.what == op<Key>::assign) {
        handle.insert_or_assign(o.key, o.value);
      } else {
        handle.insert(o.key, o.value);
      }
    }
  };
  t.workload = [ops](pobj::testing::crash_context& ctx) {
    Ref handle(ctx.pool(), Map{ctx.pool().root("map")});
    for (const auto& o : ops) {
      ctx.begin_op();
      switch (o.what) {
        case op<Key>::insert: handle.insert(o.key, o.value); break;
        case op<Key>::assign: handle.insert_or_assign(o.key, o.value); break;
        case op<Key>::erase: handle.erase(o.key); break;
      }
      ctx.end_op();
    }
  };
  t.verify = [prefix, ops, check](pobj::pool& p, const pobj::testing::crash_point& pt) {
    model<Key> done;
    for (const auto& o : prefix) apply(done, o);
    for (std::size_t i = 0; i < pt.ops_completed; ++i) apply(done, ops[i]);
    model<Key> with_next = done;
    if (pt.ops_completed < ops.size()) apply(with_next, ops[pt.ops_completed]);
    Ref handle(p, Map{p.root("map")});
    model<Key> got;
    handle.for_each([&](const Key& k, const std::string& v) { got[k] = v; });
    pobj::testing::expect(got == done || (pt.op_in_flight && got == with_next),
                          "{} entries after {} operations{} (expected {} or {})", got.size(), pt.ops_completed,
                          pt.op_in_flight ? " and one in flight" : "", done.size(), with_next.size());
    pobj::testing::expect(handle.size() == got.size(), "size() says {}, the walk finds {}", handle.size(), got.size());
    if (check) check(handle, got);
  };
  return t;
}

}  // namespace map_oracle
