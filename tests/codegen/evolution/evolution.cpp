// One program per version of evo::item (EVO_VERSION 1, 2, 0 for the incompatible one, 3 for version
// 2 without its POBJ_APPENDED marks), driven by
// evolution_test.sh:  evo-vN create|open POOL. Exit status 0 when everything the version expects
// holds; messages on stderr otherwise.
#include <cstdio>
#include <cstring>
#include <string>

#include <pobj/pobj.hpp>

#include EVO_GENERATED

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "evo-v%d: FAILED: %s\n", EVO_VERSION, what);
    ++failures;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: evo-vN create|open POOL\n");
    return 2;
  }
  const std::string command = argv[1], path = argv[2];
  pobj::pool_options options;
  options.size = 16 * pobj::MiB;
  options.lanes = 4;
  try {
    if (command == "create") {
      pobj::pool p = pobj::pool::create(path, options);
      pobj::run_tx(p, [&](pobj::transaction& tx) {
        auto it = pobj::builder<evo::item>().id(1).count(10).make(tx);
        pobj::set_root(p, "old", it.ref());
      });
      return 0;
    }
    pobj::pool p = pobj::pool::open(path, options);
#if EVO_VERSION == 2
    auto old = *pobj::root<evo::item>(p, "old");
    expect(old.id() == 1 && old.count() == 10, "the old fields keep their values");
    expect(old.stored_size() == 12, "the old object keeps the size it was made with (where its last field ends)");
    expect(old.weight() == 2.5, "an appended field reads its default in an old object");
    expect(old.rank() == 9, "an appended field in the old layout's tail padding reads its default too");
    expect(old.note().empty(), "an appended string reads empty in an old object");
    try {
      old.set_weight(1.0);
      expect(false, "setting an appended field of an old object throws");
    } catch (const pobj::error& e) {
      expect(e.code() == pobj::errc::schema_mismatch && std::strstr(e.what(), "'weight'") != nullptr,
             "the error names the field");
    }
    const bool first_run = !pobj::root<evo::item>(p, "new");
    if (first_run) {
      pobj::run_tx(p, [&](pobj::transaction& tx) {
        auto it = pobj::builder<evo::item>().id(2).weight(4.0).note("made by version 2 of the class").make(tx);
        pobj::set_root(p, "new", it.ref());
      });
    }
    auto fresh = *pobj::root<evo::item>(p, "new");
    expect(fresh.rank() == 9 && fresh.weight() == (first_run ? 4.0 : 5.0) &&
               fresh.note() == "made by version 2 of the class",
           "new objects hold new fields, across reopening");
    fresh.set_weight(5.0);
    expect(fresh.weight() == 5.0, "new objects set new fields");
    expect(p.heap().check().ok(), "the heap check finds nothing wrong");
    std::printf("evo-v2: upgraded in place; old object reads weight %.1f\n", old.weight());
#else
    expect(false, "opening succeeds");
#endif
  } catch (const pobj::error& e) {
    // Versions 0 and 3 expect to be refused, and 1 after version 2 upgraded the pool.
    std::printf("%s\n", e.what());
    return e.code() == pobj::errc::schema_mismatch && EVO_VERSION != 2 ? 3 : 1;
  }
  return failures == 0 ? 0 : 1;
}
