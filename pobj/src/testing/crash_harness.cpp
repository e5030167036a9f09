#include <pobj/testing/crash_harness.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include <pobj/heap.hpp>

namespace pobj::testing {

namespace fs = std::filesystem;

namespace {

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : fallback;
}

std::string_view policy_name(sim::image_policy p) {
  switch (p) {
    case sim::image_policy::random: return "random";
    case sim::image_policy::oldest: return "oldest";
    case sim::image_policy::newest: return "newest";
  }
  return "?";
}

struct captured {
  sim::crash_image image;
  crash_point point;
};

pool_options sim_options(const crash_test& t, std::shared_ptr<sim::simulator> s) {
  pool_options o = t.options;
  o.mode = persist_mode::sim;
  o.simulator = std::move(s);
  return o;
}

// Runs the workload once on a fresh copy of the base file; fills `ctx` counters.
void run_workload(const crash_test& t, const std::string& base, const std::string& work,
                  const std::shared_ptr<sim::simulator>& s, crash_context& ctx,
                  const std::function<void()>& at_end = {}) {
  fs::remove(work);
  if (!t.create_in_workload) {
    fs::copy_file(base, work, fs::copy_options::overwrite_existing);
    ctx.owned = pool::open(work, sim_options(t, s));
    ctx.set_pool(&ctx.owned);
  }
  t.workload(ctx);
  if (ctx.owned.is_open() && ctx.owned.mode() != persist_mode::sim) {
    throw std::runtime_error("crash harness: the pool is not in sim mode; nothing would be simulated");
  }
  if (at_end) at_end();
  ctx.owned.close();
}

// Removes the scratch directory however run() ends, unless asked to keep a failing run's files.
struct scratch_dir {
  std::string path;
  const crash_result* result;
  ~scratch_dir() {
    std::error_code ec;
    if (result->ok() || std::getenv("POBJ_CRASH_KEEP") == nullptr) fs::remove_all(path, ec);
  }
};

}  // namespace

std::string crash_point::describe() const {
  std::string s = fmt::format("fence {} ({} image, seed {:#x}), {} ops completed{}", fence, policy_name(policy),
                              seed, ops_completed, op_in_flight ? ", one in flight" : "");
  if (during_recovery) s += fmt::format(", then a crash at fence {} of its recovery", recovery_fence);
  return s;
}

pool& crash_context::create() {
  owned = pool::create(path_, options_);
  pool_ = &owned;
  return owned;
}

std::string crash_result::summary() const {
  std::string s = fmt::format("{} fences, {} crash points, {} images, {} recoveries crashed in {} images, {} failures",
                              fences, points, images, recoveries_crashed, recovery_images, failures.size());
  for (std::size_t i = 0; i < failures.size() && i < 10; ++i) s += "\n  " + failures[i];
  if (failures.size() > 10) s += fmt::format("\n  ... and {} more", failures.size() - 10);
  return s;
}

crash_result run(const crash_test& t) {
  crash_result result;
  const std::uint64_t seed = env_u64("POBJ_CRASH_SEED", t.seed);
  const std::size_t random_points = env_u64("POBJ_CRASH_POINTS", t.random_points);
  const char* only_env = std::getenv("POBJ_CRASH_FENCE");
  std::string root_dir = std::getenv("POBJ_CRASH_DIR") != nullptr ? std::getenv("POBJ_CRASH_DIR")
                         : fs::exists("/dev/shm")                 ? "/dev/shm"
                                                                  : fs::temp_directory_path().string();
  std::string tmpl = root_dir + "/pobj-crash-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("crash harness: cannot make a directory in " + root_dir);
  const std::string dir = tmpl;
  scratch_dir cleanup{dir, &result};
  const std::string base = dir + "/base.pool", work = dir + "/work.pool", image = dir + "/image.pool",
                    image2 = dir + "/recovery.pool";

  if (!t.create_in_workload) {
    pool_options o = t.options;
    o.mode = persist_mode::byte;
    pool p = pool::create(base, o);
    if (t.setup) t.setup(p);
  }

  // Dry run: how many fences does the workload issue?
  {
    auto s = std::make_shared<sim::simulator>();
    crash_context ctx(work, sim_options(t, s));
    run_workload(t, base, work, s, ctx);
    result.fences = s->fence_count();
  }
  if (result.fences == 0) {
    result.failures.push_back(fmt::format("{}: the workload issued no fence in sim mode; nothing was tested", t.name));
    return result;
  }

  std::vector<std::uint64_t> points;
  if (only_env != nullptr && *only_env != '\0') {
    points.push_back(std::strtoull(only_env, nullptr, 0));
  } else if (result.fences <= t.exhaustive_limit) {
    for (std::uint64_t f = 0; f < result.fences; ++f) points.push_back(f);
  } else {
    std::mt19937_64 rng(seed);
    std::set<std::uint64_t> chosen;
    while (chosen.size() < std::min<std::uint64_t>(random_points, result.fences)) chosen.insert(rng() % result.fences);
    points.assign(chosen.begin(), chosen.end());
  }
  result.points = points.size();

  std::vector<sim::image_policy> policies{sim::image_policy::oldest, sim::image_policy::newest};
  for (std::size_t k = 0; k < t.random_images; ++k) policies.push_back(sim::image_policy::random);

  auto failure = [&](const crash_point& pt, const std::string& what) {
    result.failures.push_back(fmt::format("{}: crash at {}: {}\n    replay: POBJ_CRASH_SEED={:#x} POBJ_CRASH_FENCE={}",
                                          t.name, pt.describe(), what, seed, pt.fence));
  };

  // Opens an image and checks it; returns false (after recording why) on a failure.
  auto verify_image = [&](const std::string& path, const crash_point& pt) {
    pool p;
    try {
      pool_options o = t.options;
      o.mode = persist_mode::byte;
      p = pool::open(path, o);
    } catch (const error& e) {
      if (t.open_may_fail && t.open_may_fail(e, pt)) return true;
      failure(pt, fmt::format("open failed: {}", e.what()));
      return false;
    }
    try {
      if (t.verify) t.verify(p, pt);
      if (t.check_heap) {
        check_report r = p.heap().check();
        if (!r.ok()) {
          failure(pt, fmt::format("heap check: {} unreachable objects{}{}", r.unreachable.size(),
                                  r.corrupt.empty() ? "" : ", corrupt: ", r.corrupt.empty() ? "" : r.corrupt.front()));
          return false;
        }
      }
    } catch (const std::exception& e) {
      failure(pt, e.what());
      return false;
    }
    return true;
  };

  // Crashes the recovery of an untouched image at each of its fences (oldest, newest and random
  // images of each), if that recovery has blocks to roll back or forward.
  std::size_t recovery_left = t.recovery_points;
  auto crash_recovery = [&](const sim::crash_image& img, const crash_point& pt) {
    img.materialize(image2);
    auto dry = std::make_shared<sim::simulator>();
    std::uint64_t fences = 0;
    try {
      pool p = pool::open(image2, sim_options(t, dry));
      if (p.recovery().blocks_rolled_back + p.recovery().blocks_rolled_forward == 0) return;
    } catch (const error&) {
      return;  // verify_image judged this open failure already
    }
    fences = dry->fence_count();
    --recovery_left;
    ++result.recoveries_crashed;
    std::vector<std::uint64_t> all(fences);
    for (std::uint64_t f = 0; f < fences; ++f) all[f] = f;
    std::vector<sim::crash_image> nested;
    img.materialize(image2);
    auto rs = std::make_shared<sim::simulator>();
    rs->capture_at({all, policies, seed ^ pt.seed}, [&](sim::crash_image ri) { nested.push_back(std::move(ri)); });
    { pool p = pool::open(image2, sim_options(t, rs)); }
    for (auto& ri : nested) {
      ri.materialize(image2);
      ++result.recovery_images;
      crash_point rp = pt;
      rp.during_recovery = true;
      rp.recovery_fence = ri.fence_index;
      verify_image(image2, rp);
    }
  };

  constexpr std::size_t batch = 24;
  for (std::size_t first = 0; first < points.size(); first += batch) {
    std::vector<std::uint64_t> these(points.begin() + static_cast<std::ptrdiff_t>(first),
                                     points.begin() + static_cast<std::ptrdiff_t>(std::min(points.size(), first + batch)));
    auto s = std::make_shared<sim::simulator>();
    crash_context ctx(work, sim_options(t, s));
    std::vector<captured> images;
    auto record = [&](sim::crash_image img) {
      crash_point pt;
      pt.fence = img.fence_index;
      pt.seed = img.seed;
      pt.policy = img.policy;
      pt.ops_completed = ctx.ops_completed();
      pt.op_in_flight = ctx.op_in_flight();
      images.push_back({std::move(img), pt});
    };
    s->capture_at({these, policies, seed}, record);
    // The first batch also crashes after the workload's last fence: everything completed.
    std::function<void()> at_end;
    if (first == 0 && only_env == nullptr) {
      at_end = [&] {
        for (std::size_t k = 0; k < policies.size(); ++k) record(s->image_now(policies[k], seed ^ (k + 1)));
      };
    }
    run_workload(t, base, work, s, ctx, at_end);
    std::size_t expected = these.size() * policies.size() + (at_end ? policies.size() : 0);
    if (images.size() != expected) {
      result.failures.push_back(fmt::format("{}: expected {} crash images in a rerun but captured {}: is the workload "
                                            "deterministic?",
                                            t.name, expected, images.size()));
    }
    for (std::size_t i = 0; i < images.size(); ++i) {
      auto& [img, pt] = images[i];
      img.materialize(image);
      ++result.images;
      if (!verify_image(image, pt)) continue;
      if (recovery_left > 0 && pt.op_in_flight) crash_recovery(img, pt);
    }
  }
  return result;
}

}  // namespace pobj::testing
