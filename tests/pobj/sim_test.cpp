#include <pobj/sim.hpp>

#include <cstring>

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <pobj/media.hpp>
#include <unistd.h>

#include "test_util.hpp"

using namespace pobj;

namespace {
struct sim_domain {
  pobj_test::scratch_path path{"sim"};
  int fd;
  std::shared_ptr<sim::simulator> s = std::make_shared<sim::simulator>();
  std::unique_ptr<media::domain> d;
  sim_domain() {
    fd = ::open(path.str().c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(ftruncate(fd, 1 << 16) == 0);
    media::domain::options o;
    o.mode = persist_mode::sim;
    o.simulator = s;
    d = std::make_unique<media::domain>(fd, path, 1 << 16, o);
  }
  ~sim_domain() {
    d.reset();
    ::close(fd);
  }
  std::uint64_t* word(std::size_t i) { return reinterpret_cast<std::uint64_t*>(d->base()) + i; }
  // The value of word i in an image.
  static std::uint64_t read(const sim::crash_image& img, std::size_t i) {
    for (auto& [line, bytes] : img.lines) {
      if (line == i * 8 / 64) {
        std::uint64_t v;
        std::memcpy(&v, bytes.data() + (i * 8) % 64, 8);
        return v;
      }
    }
    std::uint64_t v;
    std::memcpy(&v, img.base->data() + i * 8, 8);
    return v;
  }
};
}  // namespace

TEST_CASE("the simulator keeps a window of versions per line", "[sim]") {
  sim_domain t;
  *t.word(0) = 1;
  t.d->persist(t.word(0), 8);  // guaranteed
  *t.word(0) = 2;
  t.d->flush(t.word(0), 8);    // captured, not fenced
  *t.word(0) = 3;              // not even flushed
  *t.word(16) = 9;             // another line, never flushed

  auto oldest = t.s->image_now(sim::image_policy::oldest, 1);
  auto newest = t.s->image_now(sim::image_policy::newest, 1);
  CHECK(sim_domain::read(oldest, 0) == 1);
  CHECK(sim_domain::read(oldest, 16) == 0);
  CHECK(sim_domain::read(newest, 0) == 3);
  CHECK(sim_domain::read(newest, 16) == 9);
  bool seen[4] = {};
  for (std::uint64_t seed = 0; seed < 64; ++seed) {
    auto img = t.s->image_now(sim::image_policy::random, seed);
    std::uint64_t v = sim_domain::read(img, 0);
    REQUIRE(v >= 1);
    REQUIRE(v <= 3);
    seen[v] = true;
  }
  CHECK((seen[1] && seen[2] && seen[3]));

  t.d->drain();  // the captured version 2 becomes guaranteed; 3 is still only in the cache
  auto after = t.s->image_now(sim::image_policy::oldest, 1);
  CHECK(sim_domain::read(after, 0) == 2);
}

TEST_CASE("the simulator captures images at requested fences and counts redundant flushes", "[sim]") {
  sim_domain t;
  std::vector<sim::crash_image> images;
  t.s->capture_at({{1, 2}, {sim::image_policy::oldest}, 7}, [&](sim::crash_image img) { images.push_back(std::move(img)); });
  for (std::uint64_t v = 1; v <= 3; ++v) {
    *t.word(0) = v;
    t.d->persist(t.word(0), 8);  // fences 0, 1, 2
  }
  REQUIRE(images.size() == 2);
  CHECK(images[0].fence_index == 1);
  CHECK(sim_domain::read(images[0], 0) == 1);  // the crash at fence 1 precedes it
  CHECK(sim_domain::read(images[1], 0) == 2);
  t.d->flush(t.word(0), 8);  // nothing new since the last fence
  CHECK(t.s->stats().redundant_flushes == 1);
  CHECK(t.s->fence_count() == 3);

  pobj_test::scratch_path out("sim-image");
  images[1].materialize(out);
  auto bytes = pobj_test::read_file(out);
  REQUIRE(bytes.size() == (1u << 16));
  std::uint64_t v;
  std::memcpy(&v, bytes.data(), 8);
  CHECK(v == 2);
}
