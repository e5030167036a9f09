// Compile-and-run test of pobj-gen's output: the generated header builds (its static_asserts
// check the layout against the compiler's), and its constants say what the classes hold.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <new>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <pobj/pobj.hpp>

#include "bank.pobj.hpp"

#include "../test_util.hpp"

namespace gen = pobj::generated;

TEST_CASE("generated layouts match the classes and list their references", "[codegen]") {
  CHECK(sizeof(gen::bank_account_layout) == sizeof(bank::account));
  CHECK(gen::bank_account_class_id != gen::bank_branch_class_id);
  CHECK(std::size(gen::bank_account_reference_offsets) == 2);
  CHECK(gen::bank_account_reference_offsets[0] == offsetof(bank::account, home));
  CHECK(gen::bank_account_reference_offsets[1] == offsetof(bank::account, next));
  CHECK(gen::bank_branch_reference_offsets[0] == static_cast<std::size_t>(-1));  // none
}

TEST_CASE("the generated reference map drives the heap's check", "[codegen]") {
  // Objects typed as accounts are traced through their reference fields only; the balance is
  // never taken for a reference, however it looks.
  pobj_test::scratch_path path("codegen");
  pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
  constexpr std::uint16_t account_type = 1, branch_type = 2;
  p.heap().set_tracer(account_type, [](const void* object, std::size_t, const pobj::reference_visitor& visit) {
    for (std::size_t off : gen::bank_account_reference_offsets) {
      std::uint64_t ref;
      std::memcpy(&ref, static_cast<const std::byte*>(object) + off, 8);
      visit(ref);
    }
  });
  pobj::offset_t decoy = 0;
  pobj::run_tx(p, [&](pobj::transaction& tx) {
    pobj::allocation b = tx.alloc(sizeof(bank::branch), branch_type);
    std::memset(b.pointer, 0, sizeof(bank::branch));
    pobj::allocation d = tx.alloc(64);  // reachable only if a balance were mistaken for a reference
    decoy = d.offset;
    pobj::allocation a = tx.alloc(sizeof(bank::account), account_type);
    auto* acc = new (a.pointer) bank::account{};
    acc->home = pobj::ref<bank::branch>(b.offset);
    acc->balance = static_cast<std::int64_t>(d.offset);
    p.set_root("account", a.offset);
  });
  auto report = p.heap().check();
  CHECK(report.reachable_objects == 2);
  CHECK(report.unreachable == std::vector<pobj::offset_t>{decoy});
}

TEST_CASE("proxies read and write persistent objects durably", "[codegen]") {
  pobj_test::scratch_path path("proxies");
  pobj::ref<bank::account> first;
  {
    pobj::pool p = pobj::pool::create(path, pobj_test::small_options());
    first = pobj::run_tx(p, [&](pobj::transaction& tx) {
      auto branch = pobj::make<bank::branch>(tx);
      branch.set_balance(tx, 1000);
      const char name[24] = "main street";
      branch.set_name(tx, name);
      auto a = pobj::make<bank::account>(tx);
      a.set_balance(tx, 10);
      a.set_home(tx, branch.ref());
      auto b = pobj::make<bank::account>(tx);
      b.set_balance(tx, 20);
      b.set_next(tx, a.ref());
      a.set_next(tx, b.ref());  // a cycle
      b.set_limit(tx, bank::money{500, 978});
      p.set_root("first", a.ref().offset);
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
  auto a = pobj::deref(p, pobj::ref<bank::account>(p.root("first")));
  CHECK(a.balance() == 10);
  CHECK(a.rate() == 0.25);
  CHECK(a.frozen());
  CHECK(a.home_object().balance() == 1000);
  CHECK(std::string_view(a.home_object().name()) == "main street");
  auto b = a.next_object();
  CHECK(b.balance() == 20);
  CHECK(b.limit().cents == 500);
  CHECK(b.next_object().ref() == a.ref());
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
          "bank::account{balance: 42, type: 1, frozen: false, home: null, next: null, limit: {700, 978}, rate: 2.5}");
    CHECK(fmt::format("{}", a).find(fmt::format("next: @{:#x}", b.ref().offset)) != std::string::npos);
    auto br = pobj::make<bank::branch>(tx);
    const char name[24] = "dock";
    br.set_name(tx, name);
    CHECK(fmt::format("{}", br) == "bank::branch{balance: 0, name: \"dock\"}");
  });
}
