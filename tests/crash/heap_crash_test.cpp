// Allocation and free under the crash simulator: no leak and no double allocation after any
// crash (the harness runs heap().check() on every recovered image).
#include <catch2/catch.hpp>

#include "workloads.hpp"

using namespace crash_workloads;

namespace {
constexpr std::size_t slots = 16;
struct step {
  std::size_t slot;
  std::size_t size;  // 0: free the slot
};

std::vector<step> heap_steps(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<bool> full(slots);
  std::vector<step> out;
  const std::size_t sizes[] = {16, 64, 100, 700, 5000, 70000, 300000};
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t s = rng() % slots;
    out.push_back({s, full[s] ? 0 : sizes[rng() % 7]});
    full[s] = !full[s];
  }
  return out;
}

// Slot contents after the first k steps: 0 or the step index + 1 that filled it.
std::vector<std::size_t> heap_expected(const std::vector<step>& steps, std::size_t k) {
  std::vector<std::size_t> state(slots);
  for (std::size_t i = 0; i < k; ++i) state[steps[i].slot] = steps[i].size == 0 ? 0 : i + 1;
  return state;
}
}  // namespace

TEST_CASE("allocations and frees leak nothing and never double-allocate", "[crash][heap]") {
  auto steps = heap_steps(60, 5);
  pobj::testing::crash_test t;
  t.name = "heap alloc/free";
  t.options = crash_options();
  t.seed = 5;
  t.setup = [](pool& p) {
    run_tx(p, [&](transaction& tx) {
      allocation a = tx.alloc(slots * 8);
      std::memset(a.pointer, 0, slots * 8);
      p.set_root("slots", a.offset);
    });
  };
  t.workload = [steps](crash_context& ctx) {
    pool& p = ctx.pool();
    auto* s = p.at<std::uint64_t>(p.root("slots"));
    for (std::size_t i = 0; i < steps.size(); ++i) {
      ctx.begin_op();
      const step& st = steps[i];
      if (st.size == 0) {
        run_tx(p, [&](transaction& tx) {
          tx.free(s[st.slot]);
          tx.set(s[st.slot], std::uint64_t{0});
        });
      } else {
        // Half the allocations go through reserve + publish, half through a block; a third
        // reservation is abandoned each time (it must not leak).
        reservation lost = p.heap().reserve(st.size);
        (void)lost;
        if (i % 2 == 0) {
          reservation r = p.heap().reserve(st.size);
          std::memset(r.pointer, 0, st.size);
          *static_cast<std::uint64_t*>(r.pointer) = i + 1;
          publish(p, r, &s[st.slot]);
        } else {
          run_tx(p, [&](transaction& tx) {
            allocation a = tx.alloc(st.size);
            std::memset(a.pointer, 0, st.size);
            *static_cast<std::uint64_t*>(a.pointer) = i + 1;
            tx.set(s[st.slot], a.offset);
          });
        }
      }
      ctx.end_op();
    }
  };
  t.verify = [steps](pool& p, const crash_point& pt) {
    auto* s = p.at<std::uint64_t>(p.root("slots"));
    std::vector<std::size_t> got(slots);
    for (std::size_t i = 0; i < slots; ++i) {
      if (s[i] == 0) continue;
      expect(p.heap().is_allocated(s[i]), "slot {} refers to a free block", i);
      got[i] = *p.at<std::uint64_t>(s[i]);
    }
    bool match = got == heap_expected(steps, pt.ops_completed) ||
                 (pt.op_in_flight && got == heap_expected(steps, pt.ops_completed + 1));
    expect(match, "slots match neither {} completed steps nor one more", pt.ops_completed);
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  REQUIRE(result.ok());
}
