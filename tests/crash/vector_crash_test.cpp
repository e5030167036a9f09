// pobj::vector under the crash simulator: push_back (with growth), set and pop_back at every
// fence; the recovered vector equals the completed operations, plus the one in flight or not.
#include <vector>

#include <catch2/catch.hpp>
#include <pobj/testing/crash_harness.hpp>
#include <pobj/vector.hpp>

namespace {

struct op {
  int what;  // 0 push_back, 1 set, 2 pop_back
  std::uint64_t index, value;
};

void apply(std::vector<std::uint64_t>& m, const op& o) {
  if (o.what == 0) m.push_back(o.value);
  else if (o.what == 1) m[o.index] = o.value;
  else m.pop_back();
}

}  // namespace

TEST_CASE("vector operations are atomic and durable at every fence", "[crash][vector]") {
  std::vector<op> ops;
  for (std::uint64_t i = 0; i < 10; ++i) ops.push_back({0, 0, 100 + i});  // grows at 4 and 8
  ops.push_back({1, 3, 7});
  ops.push_back({2, 0, 0});
  ops.push_back({0, 0, 999});
  pobj::testing::crash_test t;
  t.name = "vector";
  t.options.size = 16 * pobj::MiB;
  t.options.lanes = 2;
  t.setup = [](pobj::pool& p) {
    pobj::run_tx(p, [&](pobj::transaction& tx) { p.set_root("v", pobj::make_vector<std::uint64_t>(tx).offset); });
  };
  t.workload = [ops](pobj::testing::crash_context& ctx) {
    pobj::vector_ref<std::uint64_t> v(ctx.pool(), pobj::vector<std::uint64_t>{ctx.pool().root("v")});
    for (const op& o : ops) {
      ctx.begin_op();
      if (o.what == 0) v.push_back(o.value);
      else if (o.what == 1) v.set(o.index, o.value);
      else v.pop_back();
      ctx.end_op();
    }
  };
  t.verify = [ops](pobj::pool& p, const pobj::testing::crash_point& pt) {
    std::vector<std::uint64_t> done;
    for (std::size_t i = 0; i < pt.ops_completed; ++i) apply(done, ops[i]);
    std::vector<std::uint64_t> with_next = done;
    if (pt.ops_completed < ops.size()) apply(with_next, ops[pt.ops_completed]);
    pobj::vector_ref<std::uint64_t> v(p, pobj::vector<std::uint64_t>{p.root("v")});
    const std::vector<std::uint64_t> got(v.begin(), v.end());
    pobj::testing::expect(got == done || (pt.op_in_flight && got == with_next), "{} elements after {} operations",
                          got.size(), pt.ops_completed);
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  CHECK(result.points == result.fences);
  REQUIRE(result.ok());
}
