// Compile-and-run tests of pobj-gen's output: the generated headers build (their static_asserts
// check the layouts against the compiler's), and proxies, builders, strings, records, methods,
// inheritance and the class table behave as docs/objects.md says.
#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <pobj/pobj.hpp>

#include "bank.pobj.hpp"
#include "catalogue.pobj.hpp"
#include "ledger.pobj.hpp"
#include "library.pobj.hpp"
#include "shapes.pobj.hpp"

#include "../test_util.hpp"

namespace gen = pobj::generated;

// The persistent methods the classes declare (pobj-gen declares them on the proxies).
void gen::bank_account_proxy::deposit(pobj::transaction& tx, std::int64_t cents) {
  if (frozen()) throw std::runtime_error("frozen");
  set_balance(tx, balance() + cents);
  if (balance() < 0) throw std::runtime_error("overdrawn");
}
bool gen::bank_account_proxy::overdrawn() const { return balance() < limit().cents * -1; }
void gen::bank_branch_proxy::rename(pobj::transaction& tx, std::string&& name) { set_name(tx, name); }
void gen::shapes_shape_proxy::move_by(pobj::transaction& tx, std::int32_t dx, std::int32_t dy) {
  set_x(tx, x() + dx);
  set_y(tx, y() + dy);
}
void gen::shapes_square_proxy::grow(pobj::transaction& tx, double by) {
  set_width(tx, width() + by);
  set_height(tx, height() + by);
}

TEST_CASE("generated layouts match the classes and list their references", "[codegen]") {
  CHECK(sizeof(gen::bank_account_layout) == sizeof(bank::account));
  CHECK(gen::bank_account_class_id != gen::bank_branch_class_id);
  CHECK(std::size(gen::bank_account_reference_offsets) == 4);  // home, next, key, last_statement
  CHECK(gen::bank_account_reference_offsets[0] == offsetof(bank::account, home));
  CHECK(gen::bank_account_reference_offsets[1] == offsetof(bank::account, next));
  CHECK(gen::bank_branch_reference_offsets[0] == offsetof(bank::branch, name));
  CHECK(gen::shapes_square_info.base_id == gen::shapes_rectangle_class_id);
  CHECK(gen::shapes_square_info.fields.size() == 7);  // the bases' fields first
  CHECK(std::string_view(gen::shapes_square_info.fields[0].name) == "x");
}

TEST_CASE("the pool records each class and traces objects through their references only", "[codegen]") {
  pobj_test::scratch_path path("codegen");
  pobj::offset_t decoy = 0;
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    CHECK(p.root("pobj.classes") != 0);
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      auto b = pobj::make<bank::branch>(tx);
      b.set_name(tx, "a name long enough to need a block of its own");
      pobj::allocation d = tx.alloc(64);  // reachable only if a balance were mistaken for a reference
      decoy = d.offset;
      auto a = pobj::make<bank::account>(tx);
      a.set_home(tx, b.ref());
      a.set_balance(tx, static_cast<std::int64_t>(d.offset));
      a.set_last_statement(tx, pobj::make_record(tx, bank::money{1, 2}));
      pobj::set_root(p, "account", a.ref());
    });
    auto report = p.heap().check();
    CHECK(report.corrupt.empty());
    CHECK(report.unreachable == std::vector<pobj::offset_t>{decoy});
  }
  // Reopened, the recorded classes trace the same way.
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  CHECK(p.heap().check().unreachable == std::vector<pobj::offset_t>{decoy});
}

TEST_CASE("proxies read and write persistent objects durably", "[codegen]") {
  pobj_test::scratch_path path("proxies");
  pobj::ref<bank::account> first;
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    first = pobj::run_tx(p, [&](pobj::transaction& tx) {
      auto branch = pobj::make<bank::branch>(tx);
      branch.set_balance(tx, 1000);
      branch.set_name(tx, "main street");
      const char code[8] = "MS01";
      branch.set_code(tx, code);
      auto a = pobj::make<bank::account>(tx);
      a.set_balance(tx, 10);
      a.set_home(tx, branch.ref());
      auto b = pobj::make<bank::account>(tx);
      b.set_balance(tx, 20);
      b.set_next(tx, a.ref());
      a.set_next(tx, b.ref());  // a cycle
      b.set_limit(tx, bank::money{500, 978});
      pobj::set_root(p, "first", a.ref());
      return a.ref();
    });
    static_assert(sizeof(pobj::proxy<bank::account>) == 2 * sizeof(void*));
    auto a = pobj::deref(p, first);
    std::uint64_t before = pobj::media::thread_counters().drains;
    a.set_rate(0.25);  // one durable store outside a block
    a.set_frozen(true);
    CHECK(pobj::media::thread_counters().drains - before <= 3);
    // Inside a block, the same setter joins it and is rolled back with it.
    try {
      pobj::run_tx(p, [&](pobj::transaction&) {
        a.set_balance(999);
        throw std::runtime_error("roll back");
      });
    } catch (const std::runtime_error&) {
    }
    CHECK(a.balance() == 10);
  }
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  auto a = *pobj::root<bank::account>(p, "first");
  CHECK(a.ref() == first);
  CHECK(a.balance() == 10);
  CHECK(a.rate() == 0.25);
  CHECK(a.frozen());
  CHECK(a.home_object().balance() == 1000);
  CHECK(a.home_object().name() == "main street");
  CHECK(std::string_view(a.home_object().code()) == "MS01");
  auto b = a.next_object();
  CHECK(b.balance() == 20);
  CHECK(b.limit().cents == 500);
  CHECK(b.next_object().ref() == a.ref());
  CHECK(p.heap().check().ok());
  CHECK_FALSE(pobj::root<bank::account>(p, "no such root"));
  CHECK_THROWS_MATCHES(pobj::root<bank::branch>(p, "first"), pobj::error,
                       Catch::Matchers::Predicate<pobj::error>([](const pobj::error& e) {
                         return e.code() == pobj::errc::wrong_class &&
                                std::string(e.what()).find("'bank::account', not a 'bank::branch'") != std::string::npos;
                       }));
}

TEST_CASE("strings and byte strings: inline when short, a block of their own when long, never leaked",
          "[codegen]") {
  pobj_test::scratch_path path("strings");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto used = [&] { return p.heap().stats().bytes_used; };
  auto b = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make<bank::branch>(tx); });
  pobj::set_root(p, "b", b.ref());
  const std::size_t base = used();
  CHECK(b.name().empty());
  pobj::run_tx(p, [&](pobj::transaction& tx) { b.set_name(tx, "seven!!"); });
  CHECK(b.name() == "seven!!");
  CHECK(used() == base);  // inline
  const std::string long_name(300, 'n');
  pobj::run_tx(p, [&](pobj::transaction& tx) { b.set_name(tx, long_name); });
  CHECK(b.name() == long_name);
  CHECK(used() > base);
  pobj::run_tx(p, [&](pobj::transaction& tx) { b.set_name(tx, "x"); });  // the old block is freed
  CHECK(used() == base);
  try {
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      b.set_name(tx, long_name);
      throw std::runtime_error("roll back");
    });
  } catch (const std::runtime_error&) {
  }
  CHECK(b.name() == "x");
  CHECK(used() == base);
  CHECK(p.heap().check().ok());

  auto a = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make<bank::account>(tx); });
  pobj::set_root(p, "a", a.ref());
  const std::byte key[3] = {std::byte{0}, std::byte{0xff}, std::byte{7}};
  pobj::run_tx(p, [&](pobj::transaction& tx) { a.set_key(tx, key); });
  REQUIRE(a.key().size() == 3);
  CHECK(a.key()[1] == std::byte{0xff});
  CHECK(fmt::format("{}", a).find("key: x\"00ff07\"") != std::string::npos);
  // Destroying an object frees the strings it owns.
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    b.set_name(tx, long_name);
    p.remove_root("b");
    pobj::destroy(tx, b);
  });
  CHECK(p.heap().check().ok());
}

TEST_CASE("value records are stored whole and hash, compare and format by their fields", "[codegen]") {
  pobj_test::scratch_path path("records");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto a = pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto made = pobj::make<bank::account>(tx);
    made.set_last_statement(tx, pobj::make_record(tx, bank::money{12345, 840}));
    return made;
  });
  pobj::set_root(p, "a", a.ref());
  const bank::money& m = a.last_statement_value();
  CHECK(m.cents == 12345);
  CHECK(pobj::equal_records(m, bank::money{12345, 840}));
  CHECK_FALSE(pobj::equal_records(m, bank::money{12345, 978}));
  CHECK(pobj::hash_record(m) == pobj::hash_record(bank::money{12345, 840}));
  CHECK(pobj::hash_record(m) != pobj::hash_record(bank::money{12346, 840}));
  CHECK(pobj::format_record(m) == "{12345, 840}");
  // Records nest: equality, hashing and formatting follow them.
  const bank::dated d1{7, {5, 978}}, d2{7, {6, 978}};
  CHECK(pobj::equal_records(d1, d1));
  CHECK_FALSE(pobj::equal_records(d1, d2));
  CHECK(pobj::hash_record(d1) != pobj::hash_record(d2));
  CHECK(pobj::format_record(d2) == "{7, {6, 978}}");
  // Replacing a record is a new record and a swapped handle, in one block.
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto old = a.last_statement();
    a.set_last_statement(tx, pobj::make_record(tx, bank::money{1, 840}));
    pobj::free_record(tx, old);
  });
  CHECK(a.last_statement_value().cents == 1);
  CHECK(p.heap().check().ok());
}

TEST_CASE("proxies compare field by field and format with fmt", "[codegen]") {
  pobj_test::scratch_path path("format");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    bank::account init{};
    init.balance = 42;
    init.type = bank::kind::savings;
    init.limit = bank::money{700, 978};
    init.rate = 1.5;
    auto a = pobj::make<bank::account>(tx, init);  // all fields at once
    auto b = pobj::make<bank::account>(tx, init);
    CHECK(a == b);  // different objects, equal fields
    b.set_rate(tx, 2.5);
    CHECK_FALSE(a == b);
    a.set_next(tx, b.ref());
    CHECK(fmt::format("{}", b) ==
          "bank::account{balance: 42, type: 1, frozen: false, home: null, next: null, limit: {700, 978}, rate: 2.5, "
          "key: x\"\", last_statement: null, opened: {0, {0, 0}}}");
    CHECK(fmt::format("{}", a).find(fmt::format("next: @{:#x}", b.ref().offset)) != std::string::npos);
    auto br = pobj::make<bank::branch>(tx);
    br.set_name(tx, "dock");
    auto br2 = pobj::make<bank::branch>(tx);
    br2.set_name(tx, "a long name that lives in a block");
    CHECK_FALSE(br == br2);
    br2.set_name(tx, "dock");
    CHECK(br == br2);  // strings compare by content
    CHECK(fmt::format("{}", br) ==
          "bank::branch{balance: 0, code: \"\", name: \"dock\", visits: 0, hits: 0, newest: null}");
    br.set_visits(3);  // long long: its own setters
    br.rename(tx, std::string("renamed by a method with an rvalue parameter"));
    CHECK(br.name() == "renamed by a method with an rvalue parameter");
    auto m = pobj::make<bank::marker>(tx);  // a class without fields
    CHECK(m == m);
    CHECK(fmt::format("{}", m) == "bank::marker{}");
  });
}

TEST_CASE("builders make objects with every field, strings included", "[codegen]") {
  pobj_test::scratch_path path("builder");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  const char code[8] = "B7";
  auto b = pobj::run_tx(p, [&](pobj::transaction& tx) {
    return pobj::builder<bank::branch>().balance(77).code(code).name("built by a builder, long enough").make(tx);
  });
  pobj::set_root(p, "b", b.ref());
  CHECK(b.balance() == 77);
  CHECK(std::string_view(b.code()) == "B7");
  CHECK(b.name() == "built by a builder, long enough");
  CHECK(p.heap().check().ok());
}

TEST_CASE("failure-atomic methods run in a block of their own, or join the caller's", "[codegen]") {
  pobj_test::scratch_path path("methods");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto a = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::builder<bank::account>().balance(100).make(tx); });
  a.deposit(50);
  CHECK(a.balance() == 150);
  CHECK_THROWS_WITH(a.deposit(-500), "overdrawn");  // the whole method is rolled back
  CHECK(a.balance() == 150);
  try {
    pobj::run_tx(p, [&](pobj::transaction&) {
      a.deposit(10);  // joins this block
      throw std::runtime_error("caller aborts");
    });
  } catch (const std::runtime_error&) {
  }
  CHECK(a.balance() == 150);
  CHECK_FALSE(a.overdrawn());
}

TEST_CASE("a reference to a base holds derived objects: checked downcasts and dispatch", "[codegen]") {
  pobj_test::scratch_path path("shapes");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  pobj::ref<shapes::shape> head = pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto c = pobj::builder<shapes::circle>().x(1).y(2).radius(3).label("circle").make(tx);
    auto s = pobj::builder<shapes::square>().width(4).height(4).label("a square with a long label").make(tx);
    auto r = pobj::builder<shapes::rectangle>().width(2).height(5).make(tx);
    c.set_next(tx, s.ref());  // ref<square> converts to ref<shape>
    s.set_next(tx, r.ref());
    pobj::ref<shapes::shape> h = c.ref();
    pobj::set_root(p, "shapes", h);
    return h;
  });
  std::vector<std::string> seen;
  double area = 0;
  for (auto r = head; r; r = pobj::deref(p, r).next()) {
    auto s = pobj::deref(p, r);
    seen.emplace_back(s.label());
    area += pobj::visit<shapes::circle, shapes::square, shapes::rectangle>(s, [](auto shape) -> double {
      if constexpr (requires { shape.radius(); }) {
        return 3 * shape.radius() * shape.radius();
      } else {
        return shape.width() * shape.height();
      }
    });
  }
  CHECK(seen == std::vector<std::string>{"circle", "a square with a long label", ""});
  CHECK(area == 27 + 16 + 10);

  auto first = pobj::deref(p, head);
  CHECK(pobj::is<shapes::circle>(first));
  CHECK(pobj::is<shapes::shape>(first));
  CHECK_FALSE(pobj::is<shapes::rectangle>(first));
  CHECK(pobj::as<shapes::circle>(first)->radius() == 3);
  CHECK_FALSE(pobj::as<shapes::square>(first));
  auto sq = pobj::deref(p, first.next());
  CHECK(pobj::is<shapes::rectangle>(sq));  // a square is a rectangle
  CHECK(pobj::cast<shapes::rectangle>(sq).width() == 4);
  CHECK_THROWS_AS(pobj::cast<shapes::circle>(sq), pobj::error);
  // Methods of the base run on derived objects; the derived class's own methods too.
  first.move_by(10, 10);
  CHECK(pobj::cast<shapes::circle>(first).x() == 11);
  pobj::cast<shapes::square>(sq).grow(1);
  CHECK(pobj::cast<shapes::square>(sq).width() == 5);
  CHECK(fmt::format("{}", pobj::cast<shapes::square>(sq)) ==
        "shapes::square{x: 0, y: 0, label: \"a square with a long label\", next: " +
            fmt::format("@{:#x}", sq.next().offset) + ", width: 5, height: 5, rotated: 0}");
  // Destroying through the base frees what the derived object owns.
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    first.set_next(tx, sq.next());
    pobj::destroy(tx, sq);
  });
  CHECK(p.heap().check().ok());
  // Reopened, the class table still knows which class each object is.
  p.close();
  p = pobj::pool::open(path, pobj_test::small_options());
  auto again = *pobj::root<shapes::shape>(p, "shapes");
  CHECK(pobj::is<shapes::circle>(again));
  CHECK(pobj::is<shapes::rectangle>(pobj::deref(p, again.next())));
  CHECK_FALSE(pobj::is<shapes::square>(pobj::deref(p, again.next())));
}

TEST_CASE("arrays of references and scalars: whole or element by element, bounds-checked", "[codegen]") {
  pobj_test::scratch_path path("arrays");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto d = pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto drawing = pobj::make<shapes::drawing>(tx);
    drawing.set_layers(tx, 2, pobj::make<shapes::circle>(tx).ref());
    return drawing;
  });
  pobj::set_root(p, "d", d.ref());
  d.set_depth(1, 7);  // one durable store
  CHECK(d.depth()[1] == 7);
  CHECK(pobj::is<shapes::circle>(d.layers_object(2)));
  CHECK_FALSE(d.layers()[0]);
  CHECK_THROWS_AS(d.set_depth(4, 1), pobj::error);
  CHECK(p.heap().check().ok());  // the circle is reachable through the array
}

TEST_CASE("threads make, read and dispatch objects of several classes at once", "[codegen][threads]") {
  pobj_test::scratch_path path("threads");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  constexpr int threads = 4, per_thread = 200;
  std::vector<std::vector<pobj::ref<shapes::shape>>> made(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        made[t].push_back(pobj::run_tx(p, [&](pobj::transaction& tx) -> pobj::ref<shapes::shape> {
          if (i % 2 == 0) return pobj::builder<shapes::circle>().x(t).radius(i).make(tx).ref();
          return pobj::builder<shapes::square>().x(t).width(i).label("a label long enough for a block").make(tx).ref();
        }));
        auto s = pobj::deref(p, made[t].back());
        const bool circle = pobj::visit<shapes::circle, shapes::square>(s, [](auto c) {
          return std::is_same_v<decltype(c), pobj::proxy<shapes::circle>>;
        });
        if (circle != (i % 2 == 0) || s.x() != t) throw std::runtime_error("wrong object");
      }
    });
  }
  for (auto& w : workers) w.join();
  for (int t = 0; t < threads; ++t) {
    for (int i = 0; i < per_thread; ++i) {
      auto s = pobj::deref(p, made[t][static_cast<std::size_t>(i)]);
      CHECK(pobj::is<shapes::circle>(s) == (i % 2 == 0));
      CHECK(s.x() == t);
    }
  }
}

TEST_CASE("atomic fields: durable linearizable through the proxy, shared by threads", "[codegen][threads]") {
  pobj_test::scratch_path path("atomic-fields");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto b = pobj::run_tx(p, [&](pobj::transaction& tx) {
    return pobj::builder<bank::branch>().hits(pobj::atomic<std::uint64_t>::of(10)).make(tx);
  });
  pobj::set_root(p, "b", b.ref());
  CHECK(b.hits().load() == 10);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) b.hits().fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(b.hits().load() == 1510);
  auto a = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make<bank::account>(tx); });
  pobj::ref<bank::account> none;
  CHECK(b.newest().compare_exchange(none, a.ref()));
  CHECK(fmt::format("{}", b).find(fmt::format("hits: 1510, newest: @{:#x}", a.ref().offset)) != std::string::npos);
  CHECK(p.heap().check().ok());  // the account is reachable through the atomic reference
  CHECK_THROWS_AS(pobj::run_tx(p, [&](pobj::transaction&) { b.hits().fetch_add(1); }), pobj::error);
}

TEST_CASE("containers as fields: owned, traced, destroyed with the object; maps of maps", "[codegen][containers]") {
  pobj_test::scratch_path path("gen-containers");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  const std::size_t used_before = p.heap().stats().bytes_used;
  auto cat = pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto c = pobj::make<library::catalog>(tx);
    c.set_by_isbn(tx, pobj::make_hash_map<pobj::string, pobj::bytes>(tx));
    c.set_by_year(tx, pobj::make_ordered_map<std::int64_t, pobj::string>(tx));
    c.set_tags(tx, pobj::make_set<pobj::string>(tx));
    c.set_requests(tx, pobj::make_queue<std::uint64_t>(tx));
    c.set_counts(tx, pobj::make_vector<std::uint32_t>(tx));
    c.set_shelves(tx, pobj::make_hash_map<pobj::string, pobj::ordered_map<std::uint64_t, pobj::string>>(tx));
    p.set_root("catalog", c.ref().offset);
    return c;
  });
  cat.by_isbn_ref().insert("978-0", std::string(30, 'b'));
  cat.by_year_ref().insert(-300, "Elements");
  cat.by_year_ref().insert(1687, "Principia");
  cat.tags_ref().insert("math");
  cat.requests_ref().push(42);
  cat.counts_ref().push_back(7);
  auto shelves = cat.shelves_ref();
  for (const char* name : {"a", "b", "c"}) {
    auto shelf = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_ordered_map<std::uint64_t, pobj::string>(tx); });
    CHECK(shelves.insert(name, shelf));
    auto books = pobj::handle(p, shelf);
    for (std::uint64_t i = 0; i < 100; ++i) books.insert(i, std::string(20, name[0]));
  }
  // Everything is reachable through the object and the maps (nothing leaked, nothing dangling).
  CHECK(p.heap().check().ok());
  CHECK(pobj::handle(p, *shelves.find("b")).size() == 100);
  // Erasing an entry destroys the map it held; replacing one destroys the old map.
  const std::size_t with_three = p.heap().stats().bytes_used;
  CHECK(shelves.erase("a"));
  auto fresh = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make_ordered_map<std::uint64_t, pobj::string>(tx); });
  CHECK_FALSE(shelves.insert_or_assign("b", fresh));
  CHECK(shelves.insert_or_assign("c", *shelves.find("c")) == false);  // the same map again: kept
  CHECK(pobj::handle(p, *shelves.find("c")).size() == 100);
  CHECK(p.heap().stats().bytes_used < with_three);
  CHECK(p.heap().check().ok());
  // A handle of the wrong kind is refused.
  using plain = pobj::hash_map<pobj::string, std::uint64_t>;
  CHECK_THROWS_AS(pobj::handle(p, plain{cat.shelves().offset}), pobj::error);
  // Replacing a field's container destroys the old one; destroying the object destroys them all.
  pobj::run_tx(p, [&](pobj::transaction& tx) { cat.set_tags(tx, pobj::make_set<pobj::string>(tx)); });
  CHECK(cat.tags_ref().empty());
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::destroy(tx, cat);
    p.remove_root("catalog");
  });
  CHECK(p.heap().stats().bytes_used == used_before);
  CHECK(p.heap().check().ok());

  // As a field: an object owns the objects in its map, and destroying it destroys them.
  const std::size_t empty = p.heap().stats().bytes_used;
  auto d = pobj::run_tx(p, [&](pobj::transaction& tx) {
    auto made = pobj::make<ledger::drawer>(tx);
    made.set_items(tx, pobj::make_hash_map<pobj::string, pobj::owned_object>(tx));
    for (const char* name : {"x", "y"}) {
      auto a = pobj::make<ledger::account>(tx);
      a.set_owner(tx, std::string(40, name[0]));
      made.items_ref().insert(tx, name, pobj::owned_object{a.ref().offset});
    }
    p.set_root("drawer", made.ref().offset);
    return made;
  });
  CHECK(p.heap().check().ok());  // the accounts, reached through the drawer's map only
  CHECK(pobj::deref(p, pobj::ref<ledger::account>(d.items_ref().find("y")->offset)).owner() == std::string(40, 'y'));
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::destroy(tx, d);
    p.remove_root("drawer");
  });
  CHECK(p.heap().stats().bytes_used == empty);
  CHECK(p.heap().check().ok());
}

namespace {

// Runs a shared method the way a server does: by name, with arguments as text, in the block.
pobj::shared_value call_shared(pobj::pool& p, pobj::transaction& tx, std::uint64_t object, std::string_view method,
                               std::vector<std::string_view> args, bool* started = nullptr) {
  const pobj::shared_class* c = pobj::find_shared_class(pobj::class_id_of(p, object));
  REQUIRE(c != nullptr);
  const pobj::shared_method* m = pobj::find_shared_method(*c, method);
  REQUIRE(m != nullptr);
  REQUIRE(m->arity == args.size());
  pobj::shared_call call(p, object, tx, method, args);
  try {
    m->invoke(call);
  } catch (...) {
    if (started != nullptr) *started = call.has_started();
    throw;
  }
  return call.result();
}

}  // namespace

TEST_CASE("shared methods run by name with arguments as text, and find their bases' methods", "[codegen][shared]") {
  pobj_test::scratch_path path("shared");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  // Registered with their classes; classes without shared methods are not.
  const pobj::shared_class* account = pobj::find_shared_class("ledger::account");
  REQUIRE(account != nullptr);
  CHECK(pobj::find_shared_class("ledger::plain") == nullptr);
  CHECK(pobj::find_shared_class(gen::ledger_savings_class_id) != nullptr);
  CHECK(pobj::find_shared_method(*account, "not_shared") == nullptr);
  const pobj::shared_method* withdraw = pobj::find_shared_method(*account, "withdraw");
  REQUIRE(withdraw != nullptr);
  CHECK(std::string_view(withdraw->signature) == "withdraw(std::int64_t cents, std::string payee) -> bool");
  CHECK(withdraw->changes);
  CHECK_FALSE(pobj::find_shared_method(*account, "summary")->changes);

  const std::uint64_t a = pobj::run_tx(p, [&](pobj::transaction& tx) {
    const std::uint64_t o = account->make(tx);
    p.set_root("account", o);
    return o;
  });
  CHECK(pobj::class_id_of(p, a) == gen::ledger_account_class_id);
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    CHECK(call_shared(p, tx, a, "deposit", {"150"}) == pobj::shared_value(std::int64_t{150}));
    CHECK(call_shared(p, tx, a, "withdraw", {"100", "rent"}) == pobj::shared_value(true));
    CHECK(call_shared(p, tx, a, "withdraw", {"100", "rent"}) == pobj::shared_value(false));
    CHECK(call_shared(p, tx, a, "withdraw", {"20", "rent"}) == pobj::shared_value(true));
    CHECK(call_shared(p, tx, a, "rename", {"a long owner name, stored in a block of its own"}) ==
          pobj::shared_value(std::monostate{}));
  });
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    CHECK(call_shared(p, tx, a, "summary", {}) ==
          pobj::shared_value(std::string("a long owner name, stored in a block of its own: 30")));
    CHECK(call_shared(p, tx, a, "limit", {}) == pobj::shared_value(std::string("18446744073709551615")));
    CHECK(call_shared(p, tx, a, "sign", {"-7", "TRUE"}) == pobj::shared_value(std::int64_t{1}));
    CHECK(call_shared(p, tx, a, "sign", {"0", "0"}) == pobj::shared_value(std::int64_t{0}));
  });
  auto proxy = pobj::deref(p, pobj::ref<ledger::account>(a));
  CHECK(proxy.operations() == 1);
  CHECK(*proxy.by_payee_ref().find("rent") == 120);
  CHECK(account->describe(p, p.base() + a + pobj::object_header_size).rfind("ledger::account{balance: 30, operations: 1", 0) == 0);

  // Bad arguments are refused before the method runs, naming the parameter.
  const auto refused = [&](std::string_view method, std::vector<std::string_view> args, std::string_view says) {
    bool started = true;
    pobj::transaction tx(p);
    try {
      call_shared(p, tx, a, method, args, &started);
      FAIL("accepted");
    } catch (const pobj::shared_argument_error& e) {
      CHECK_THAT(e.what(), Catch::Contains(std::string(says)));
    }
    CHECK_FALSE(started);
  };
  refused("deposit", {"12x"}, "argument 1 ('cents') of deposit: '12x' is not an integer");
  refused("deposit", {""}, "is not an integer");
  refused("deposit", {"99999999999999999999"}, "is not an integer in range");
  refused("sign", {"300", "1"}, "is not an integer in range");
  refused("sign", {"1", "maybe"}, "argument 2 ('flip') of sign: 'maybe' is not a boolean");
  refused("add_operations", {"-1"}, "argument 1 ('count') of add_operations: '-1' is not a non-negative integer");
  refused("add_operations", {"+1"}, "is not an integer");
  refused("add_operations", {" 1"}, "is not an integer");
  CHECK(std::string_view(pobj::find_shared_method(*account, "checked_balance")->signature) ==
        "checked_balance(std::int64_t at_least) const -> std::int64_t");

  // A method that throws after changing the object: the block undoes the change.
  {
    bool started = false;
    CHECK_THROWS_WITH(pobj::run_tx(p, [&](pobj::transaction& tx) { call_shared(p, tx, a, "fail_after", {"1000"}, &started); }),
                      "refused after the change");
    CHECK(started);
  }
  CHECK(proxy.balance() == 30);

  // A derived class: its own methods and its base's.
  const std::uint64_t s = pobj::run_tx(p, [&](pobj::transaction& tx) {
    const std::uint64_t o = pobj::find_shared_class("ledger::savings")->make(tx);
    p.set_root("savings", o);
    pobj::deref(p, pobj::ref<ledger::savings>(o)).set_rate(tx, 0.5);
    return o;
  });
  {
    pobj::transaction tx(p);
    CHECK_THROWS_WITH(call_shared(p, tx, s, "accrue", {"inf", "0"}), Catch::Contains("'inf' is not a finite number"));
    CHECK_THROWS_WITH(call_shared(p, tx, s, "accrue", {"1", "nan"}), Catch::Contains("'nan' is not a finite number"));
  }
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    CHECK(call_shared(p, tx, s, "deposit", {"100"}) == pobj::shared_value(std::int64_t{100}));
    CHECK(call_shared(p, tx, s, "accrue", {"2", "0.25"}) == pobj::shared_value(100.25));
  });
  CHECK(pobj::deref(p, pobj::ref<ledger::savings>(s)).balance() == 200);
  CHECK(p.heap().check().ok());
}

TEST_CASE("maps own objects: traced through the map, destroyed with their entries, moved by release",
          "[codegen][shared][containers]") {
  pobj_test::scratch_path path("owned-objects");
  pobj::offset_t map_offset = 0;
  std::size_t used_before = 0;
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    used_before = p.heap().stats().bytes_used;
    using objects = pobj::hash_map<pobj::string, pobj::owned_object>;
    const objects m = pobj::run_tx(p, [&](pobj::transaction& tx) {
      const objects made = pobj::make_hash_map<pobj::string, pobj::owned_object>(tx);
      p.set_root("objects", made.offset);
      return made;
    });
    map_offset = m.offset;
    auto map = pobj::handle(p, m);
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      for (const char* name : {"a", "b", "c"}) {
        auto a = pobj::make<ledger::account>(tx);
        a.set_owner(tx, std::string(40, name[0]));  // a string block the object owns
        a.set_by_payee(tx, pobj::make_hash_map<pobj::string, std::int64_t>(tx));
        a.by_payee_ref().insert(tx, "x", 1);
        map.insert(tx, name, pobj::owned_object{a.ref().offset});
      }
    });
    CHECK(p.heap().check().ok());  // each object, its string and its map reached through the map
    const std::size_t with_three = p.heap().stats().bytes_used;
    // Erasing an entry destroys its object, with the string and the map it owns.
    pobj::run_tx(p, [&](pobj::transaction& tx) { CHECK(map.erase(tx, "a")); });
    CHECK(p.heap().stats().bytes_used < with_three);
    CHECK(p.heap().check().ok());
    // release: out of the map without being destroyed, into another entry in the same block.
    const std::uint64_t b = map.find("b")->offset;
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      const auto held = map.release(tx, "b");
      REQUIRE(held);
      CHECK(held->offset == b);
      CHECK(map.insert(tx, "b2", *held));
    });
    CHECK_FALSE(map.contains("b"));
    CHECK(map.find("b2")->offset == b);
    CHECK(pobj::deref(p, pobj::ref<ledger::account>(b)).owner() == std::string(40, 'b'));
    CHECK(p.heap().check().ok());
  }
  // Reopened: still traced; destroying the map destroys the objects left in it.
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  CHECK(p.heap().check().ok());
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::destroy(tx, pobj::hash_map<pobj::string, pobj::owned_object>{map_offset});
    p.remove_root("objects");
  });
  CHECK(p.heap().stats().bytes_used == used_before);
  CHECK(p.heap().check().ok());
}

TEST_CASE("the check follows references kept in containers, and repair frees only what none reaches",
          "[codegen][containers][check]") {
  using catalogue::book;
  using book_ref = pobj::ref<book>;
  pobj_test::scratch_path path("gen-refs");
  std::vector<std::pair<book_ref, std::string>> books;  // each reachable by one path only
  pobj::offset_t garbage = 0;
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    auto make_book = [&](std::uint64_t n) {
      return pobj::run_tx(p, [&](pobj::transaction& tx) {
        auto b = pobj::make<book>(tx);
        b.set_title(tx, fmt::format("book {} has a title long enough for a block of its own", n));
        b.set_year(tx, 1900 + n);
        books.emplace_back(b.ref(), std::string(b.title()));
        return b.ref();
      });
    };
    auto s = pobj::run_tx(p, [&](pobj::transaction& tx) {
      auto made = pobj::make<catalogue::shelves>(tx);
      made.set_by_isbn(tx, pobj::make_hash_map<std::uint64_t, book_ref>(tx));
      made.set_copies(tx, pobj::make_hash_map<book_ref, std::uint64_t>(tx));
      made.set_by_year(tx, pobj::make_ordered_map<std::int64_t, book_ref>(tx));
      made.set_loans(tx, pobj::make_ordered_map<std::int64_t, catalogue::loan>(tx));
      made.set_to_shelve(tx, pobj::make_queue<book_ref>(tx));
      made.set_returns(tx, pobj::make_queue<catalogue::loan>(tx));
      made.set_display(tx, pobj::make_vector<book_ref>(tx));
      made.set_pairs(tx, pobj::make_hash_map<std::uint64_t, std::array<book_ref, 2>>(tx));
      made.set_notes(tx, pobj::make_hash_map<pobj::string, pobj::record<catalogue::note>>(tx));
      p.set_root("shelves", made.ref().offset);
      return made;
    });
    std::uint64_t n = 0;
    for (int i = 0; i < 100; ++i) s.by_isbn_ref().insert(9780000000000 + i, make_book(n++));  // map values
    for (int i = 0; i < 100; ++i) s.copies_ref().insert(make_book(n++), 3);                   // map keys
    for (int i = 0; i < 200; ++i) s.by_year_ref().insert(i, make_book(n++));  // tree values (leaves split)
    for (int i = 0; i < 5; ++i) s.loans_ref().insert(i, catalogue::loan{make_book(n++), 30});  // in structs
    for (int i = 0; i < 70; ++i) s.to_shelve_ref().push(make_book(n++));  // inline queue items, 2 segments
    for (int i = 0; i < 5; ++i) s.returns_ref().push(catalogue::loan{make_book(n++), 7});  // queue nodes
    for (int i = 0; i < 5; ++i) s.display_ref().push_back(make_book(n++));                 // vector elements
    s.pairs_ref().insert(1, std::array<book_ref, 2>{make_book(n++), make_book(n++)});       // arrays in values
    const book_ref featured[2] = {make_book(n++), make_book(n++)};
    pobj::run_tx(p, [&](pobj::transaction& tx) {
      s.set_featured(tx, featured);  // an array field
      s.notes_ref().insert(tx, "first", pobj::make_record(tx, catalogue::note{12, 34}));  // a record in a map
      auto lost = pobj::make<book>(tx);  // reachable from nothing
      lost.set_title(tx, "a book nobody keeps, with a title long enough for a block of its own");
      garbage = lost.ref().offset;
    });
    const pobj::check_report report = p.heap().check();
    CHECK(report.corrupt.empty());
    REQUIRE(report.unreachable.size() == 2);  // the lost book and its title
    CHECK(std::count(report.unreachable.begin(), report.unreachable.end(), garbage) == 1);
  }
  // Reopened, with no container handle made (as pobj-check runs it): repair frees the lost book
  // and its title, nothing else.
  pobj::pool p = pobj::pool::open(path, pobj_test::small_options());
  const std::size_t used = p.heap().stats().bytes_used;
  const pobj::check_report repaired = p.heap().repair();
  CHECK(repaired.repaired == 2);
  CHECK(repaired.corrupt.empty());
  CHECK(p.heap().stats().bytes_used < used);
  CHECK(p.heap().check().ok());
  for (const auto& [b, title] : books) {
    REQUIRE(p.heap().is_allocated(b.offset));
    CHECK(pobj::deref(p, b).title() == title);
  }
  auto s = pobj::deref(p, pobj::ref<catalogue::shelves>(p.root("shelves")));
  CHECK(pobj::deref(p, *s.by_isbn_ref().find(9780000000042)).title() == books[42].second);
  CHECK(pobj::deref(p, s.loans_ref().find(2)->item).title() == books[402].second);
  CHECK(pobj::get(p, *s.notes_ref().find("first")).page == 34);
  CHECK(s.to_shelve_ref().size() == 70);
}

TEST_CASE("a container field starts null, and its handle says which field and how to set it", "[codegen][containers]") {
  pobj_test::scratch_path path("gen-null-field");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  auto c = pobj::run_tx(p, [&](pobj::transaction& tx) { return pobj::make<library::catalog>(tx); });
  CHECK(c.by_isbn().offset == 0);
  try {
    (void)c.by_isbn_ref();
    FAIL("a null container field gave a handle");
  } catch (const pobj::error& e) {
    CHECK(e.code() == pobj::errc::invalid_argument);
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("field 'by_isbn' of 'library::catalog'") != std::string::npos);
    CHECK(what.find("set_by_isbn(tx, pobj::make_hash_map<pobj::string, pobj::bytes>(tx))") != std::string::npos);
  }
  CHECK_THROWS_WITH(c.requests_ref(), Catch::Contains("pobj::make_queue<"));
  pobj::run_tx(p, [&](pobj::transaction& tx) { c.set_by_isbn(tx, pobj::make_hash_map<pobj::string, pobj::bytes>(tx)); });
  CHECK(c.by_isbn_ref().insert("978-0", "a book"));
}
