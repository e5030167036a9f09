#include <pobj/media.hpp>

#include <cstdlib>
#include <cstring>

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <pobj/error.hpp>
#include <pobj/sim.hpp>
#include <unistd.h>

#include "test_util.hpp"

using namespace pobj;

namespace {
int make_file(const std::string& path, std::size_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, static_cast<off_t>(size)) == 0);
  return fd;
}
}  // namespace

TEST_CASE("persistence modes parse and print", "[media]") {
  for (auto m : {persist_mode::auto_detect, persist_mode::byte, persist_mode::cache_line, persist_mode::page,
                 persist_mode::sim}) {
    CHECK(parse_persist_mode(to_string(m)) == m);
  }
  try {
    parse_persist_mode("flash");
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.code() == errc::invalid_argument);
    CHECK(std::string(e.what()).find("flash") != std::string::npos);
  }
}

TEST_CASE("a domain maps, flushes in every mode, and grows without moving", "[media]") {
  pobj_test::scratch_path path("media");
  for (auto mode : {persist_mode::byte, persist_mode::cache_line, persist_mode::page}) {
    int fd = make_file(path, 1 << 20);
    {
      media::domain::options o;
      o.mode = mode;
      o.reserve = 64 << 20;
      media::domain d(fd, path, 1 << 20, o);
      CHECK(d.mode() == mode);
      std::byte* base = d.base();
      std::memset(base, 0x5a, 4096);
      auto before = media::thread_counters();
      d.flush(base, 4096);
      d.flush(base + 100, 8);
      d.drain();
      auto after = media::thread_counters();
      CHECK(after.flushes - before.flushes == 2);
      CHECK(after.drains - before.drains == 1);
      d.grow(4 << 20);
      CHECK(d.base() == base);
      CHECK(d.size() == (4u << 20));
      CHECK(base[0] == std::byte{0x5a});
      base[(4 << 20) - 1] = std::byte{7};  // the new part is mapped
      d.persist(base + (4 << 20) - 1, 1);
      CHECK_THROWS_AS(d.grow(128 << 20), error);
    }
    ::close(fd);
  }
}

TEST_CASE("auto mode reports what libpmem2 detects and POBJ_PERSIST_MODE overrides the option", "[media]") {
  pobj_test::scratch_path path("media-env");
  int fd = make_file(path, 1 << 20);
  {
    media::domain d(fd, path, 1 << 20, {});
    // A file on tmpfs or a disk file system is not DAX: libpmem2 says page granularity, unless
    // PMEM2_FORCE_GRANULARITY says otherwise.
    if (std::getenv("PMEM2_FORCE_GRANULARITY") == nullptr) CHECK(d.mode() == persist_mode::page);
  }
  {
    struct env_guard {  // the override must not leak into later tests, whatever happens here
      env_guard() { setenv("POBJ_PERSIST_MODE", "byte", 1); }
      ~env_guard() { unsetenv("POBJ_PERSIST_MODE"); }
    } guard;
    media::domain::options o;
    o.mode = persist_mode::page;
    media::domain d(fd, path, 1 << 20, o);
    CHECK(d.mode() == persist_mode::byte);
  }
  media::domain::options o;
  o.mode = persist_mode::sim;
  CHECK_THROWS_AS(media::domain(fd, path, 1 << 20, o), error);
  ::close(fd);
}
