// pobj::queue under the crash simulator, with a durable-linearizability oracle: the recovered
// queue holds exactly what the completed pushes and pops leave, plus the effect of the one in
// flight or not. Pushes and pops across segment boundaries (a push that links a segment, a pop
// that frees one) at every fence, for values in slots and values in blocks; then a long mixed
// workload at seeded random fences. The harness checks the heap after each recovery.
#include <cstdlib>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/queue.hpp>
#include <pobj/testing/crash_harness.hpp>

namespace {

struct op {
  bool push;
  std::string value;
};
using model = std::deque<std::string>;

void apply(model& m, const op& o) {
  if (o.push) m.push_back(o.value);
  else if (!m.empty()) m.pop_front();
}

template <class T>
std::string as_string(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return v;
  } else {
    return std::to_string(v);
  }
}

// T is pobj::bytes (values in blocks) or std::uint64_t (values in slots; op values are numbers).
template <class T>
pobj::testing::crash_test queue_test(const std::string& name, std::vector<op> prefix, std::vector<op> ops) {
  using ref = pobj::queue_ref<T>;
  auto push = [](ref& q, const std::string& v) {
    if constexpr (std::is_same_v<T, pobj::bytes>) {
      q.push(v);
    } else {
      q.push(std::stoull(v));
    }
  };
  pobj::testing::crash_test t;
  t.name = name;
  t.options.size = 16 * pobj::MiB;
  t.options.lanes = 2;
  t.setup = [prefix, push](pobj::pool& p) {
    auto handle = pobj::run_tx(p, [&](pobj::transaction& tx) {
      auto q = pobj::make_queue<T>(tx);
      p.set_root("queue", q.offset);
      return q;
    });
    ref q(p, handle);
    for (const op& o : prefix) {
      if (o.push) push(q, o.value);
      else q.try_pop();
    }
  };
  t.workload = [ops, push](pobj::testing::crash_context& ctx) {
    ref q(ctx.pool(), pobj::queue<T>{ctx.pool().root("queue")});
    for (const op& o : ops) {
      ctx.begin_op();
      if (o.push) push(q, o.value);
      else q.try_pop();
      ctx.end_op();
    }
  };
  t.verify = [prefix, ops](pobj::pool& p, const pobj::testing::crash_point& pt) {
    model done;
    for (const op& o : prefix) apply(done, o);
    for (std::size_t i = 0; i < pt.ops_completed; ++i) apply(done, ops[i]);
    model with_next = done;
    if (pt.ops_completed < ops.size()) apply(with_next, ops[pt.ops_completed]);
    ref q(p, pobj::queue<T>{p.root("queue")});
    model got;
    q.for_each([&](const auto& v) { got.push_back(as_string(v)); });
    pobj::testing::expect(got == done || (pt.op_in_flight && got == with_next),
                          "{} values after {} operations{} (expected {} or {})", got.size(), pt.ops_completed,
                          pt.op_in_flight ? " and one in flight" : "", done.size(), with_next.size());
    pobj::testing::expect(q.size() == got.size(), "size() says {}, the walk finds {}", q.size(), got.size());
    // The recovered queue keeps working: pop it empty in order.
    for (const auto& want : got) {
      auto v = q.try_pop();
      pobj::testing::expect(v && as_string(*v) == want, "a pop after recovery returned another value");
    }
  };
  return t;
}

std::vector<op> pushes(int from, int to) {
  std::vector<op> v;
  for (int i = from; i < to; ++i) v.push_back({true, std::to_string(i)});
  return v;
}
std::vector<op> pops(int n) { return std::vector<op>(static_cast<std::size_t>(n), op{false, ""}); }

template <class T>
void at_every_fence(const std::string& name) {
  // 61 values fill all but one slot of the first segment: the workload's second push links a
  // segment. 60 pops first: the workload's third pop uses the first segment up and frees it.
  std::vector<op> prefix = pushes(0, 61);
  for (const op& o : pops(60)) prefix.push_back(o);
  std::vector<op> ops = pushes(61, 64);
  for (const op& o : pops(4)) ops.push_back(o);
  auto result = pobj::testing::run(queue_test<T>(name, prefix, ops));
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}

}  // namespace

TEST_CASE("queue pushes and pops across segments are atomic at every fence (values in blocks)", "[crash][queue]") {
  at_every_fence<pobj::bytes>("segments, blocks");
}

TEST_CASE("queue pushes and pops across segments are atomic at every fence (values in slots)", "[crash][queue]") {
  at_every_fence<std::uint64_t>("segments, slots");
}

TEST_CASE("a long mixed queue workload survives seeded random crashes", "[crash][queue]") {
  std::mt19937_64 rng(13);
  std::vector<op> ops;
  const char* n = std::getenv("POBJ_CRASH_LONG_OPS");
  const std::size_t count = n != nullptr ? std::strtoull(n, nullptr, 0) : 400;
  for (std::size_t i = 0; i < count; ++i) {
    if (rng() % 5 < 3) ops.push_back({true, std::to_string(i) + std::string(rng() % 20, 'q')});
    else ops.push_back({false, ""});
  }
  auto t = queue_test<pobj::bytes>("mixed", {}, ops);
  t.exhaustive_limit = 0;
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.fences > 500);
  REQUIRE(result.ok());
}
