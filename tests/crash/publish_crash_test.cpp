// Publication of fresh objects (reserve, fill, publish) under the crash simulator.
#include <catch2/catch.hpp>

#include "workloads.hpp"

using namespace crash_workloads;

namespace {
struct node {
  std::uint64_t next;
  std::uint64_t value;
  std::uint64_t pattern[6];  // value * 0x0101010101010101 each: a torn fill shows
};

struct list_head {
  std::uint64_t head;
  std::uint64_t count;  // published by the same publish() as the node(s)
};

void fill(node* n, std::uint64_t next, std::uint64_t value) {
  n->next = next;
  n->value = value;
  for (auto& w : n->pattern) w = value * 0x0101010101010101ULL;
}
}  // namespace

TEST_CASE("published objects appear whole, with their links, or not at all", "[crash][publish]") {
  constexpr std::size_t ops = 40;
  pobj::testing::crash_test t;
  t.name = "publish";
  t.options = crash_options();
  t.setup = [](pool& p) {
    run_tx(p, [&](transaction& tx) {
      allocation a = tx.alloc(sizeof(list_head));
      *static_cast<list_head*>(a.pointer) = {0, 0};
      p.set_root("list", a.offset);
    });
  };
  t.workload = [](crash_context& ctx) {
    pool& p = ctx.pool();
    auto* l = p.at<list_head>(p.root("list"));
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < ops; ++i) {
      ctx.begin_op();
      if (i % 3 == 2) {
        // Two objects and two links in one publication.
        reservation r[2] = {p.heap().reserve(sizeof(node)), p.heap().reserve(sizeof(node))};
        fill(static_cast<node*>(r[0].pointer), l->head, ++value);
        fill(static_cast<node*>(r[1].pointer), r[0].offset, ++value);
        publish_link links[2] = {{&l->head, r[1].offset}, {&l->count, l->count + 2}};
        publish(p, r, links);
      } else {
        reservation r = p.heap().reserve(sizeof(node));
        fill(static_cast<node*>(r.pointer), l->head, ++value);
        publish_link links[2] = {{&l->head, r.offset}, {&l->count, l->count + 1}};
        publish(p, std::span<reservation>(&r, 1), links);
      }
      ctx.end_op();
    }
  };
  auto values_after = [](std::size_t k) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < k; ++i) v += i % 3 == 2 ? 2 : 1;
    return v;
  };
  t.verify = [values_after](pool& p, const crash_point& pt) {
    auto* l = p.at<list_head>(p.root("list"));
    std::uint64_t walked = 0, expect_value = 0;
    for (auto* n = p.at<node>(l->head); n != nullptr; n = p.at<node>(n->next), ++walked) {
      expect(p.heap().is_allocated(p.offset_of(n)), "node {} is linked but not allocated", walked);
      if (walked == 0) expect_value = n->value;
      expect(n->value == expect_value - walked, "node {} holds value {}", walked, n->value);
      for (auto w : n->pattern) expect(w == n->value * 0x0101010101010101ULL, "node {} is torn", walked);
    }
    expect(walked == l->count, "the list has {} nodes but its count says {}", walked, l->count);
    expect(walked == 0 || expect_value == walked, "the newest node holds {} but the list has {} nodes", expect_value,
           walked);
    bool match = walked == values_after(pt.ops_completed) ||
                 (pt.op_in_flight && walked == values_after(pt.ops_completed + 1));
    expect(match, "{} nodes after {} completed publications", walked, pt.ops_completed);
  };
  auto result = pobj::testing::run(t);
  INFO(result.summary());
  REQUIRE(result.ok());
}
