// pobj/sim: the crash simulator behind the `sim` persistence mode.
//
// Killing a process on tmpfs loses nothing, so it cannot show what a power failure leaves. The
// simulator models the cache instead: for every 64-byte line of a mapped pool it keeps the last
// version that is guaranteed persistent and the versions captured by flushes since the last
// fence. A fence makes the latest captured version guaranteed. At a crash, every line may hold any
// version in its window: the guaranteed one, any captured one, or the current contents (a dirty
// line may be evicted at any time). 8-byte stores are atomic because lines never tear below a
// version.
//
// Thread safety: all members are safe to call concurrently (one internal mutex); the model treats a
// fence as covering every thread's flushes, which is exact for the single-threaded workloads the
// crash tests run.
// Crash consistency: not applicable (a test device).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pobj::sim {

// How the lines of a crash image are chosen within their windows.
enum class image_policy : std::uint8_t {
  random,  // each line independently, from the image's seed
  oldest,  // every line at its guaranteed version (nothing unfenced survived)
  newest,  // every line at its current contents (everything survived)
};

// A crash image: the file a power failure would leave, as differences from the contents the
// mapping had when the simulator attached.
struct crash_image {
  std::uint64_t fence_index = 0;  // the fence at which the crash happened (before it took effect)
  std::uint64_t seed = 0;         // what a random image's choices came from
  image_policy policy = image_policy::random;
  std::size_t file_size = 0;
  std::shared_ptr<const std::vector<std::byte>> base;
  std::vector<std::pair<std::uint64_t, std::array<std::byte, 64>>> lines;  // (line index, bytes)

  // Writes the image to `path` (created or replaced).
  void materialize(const std::string& path) const;
};

struct stats {
  std::uint64_t fences = 0;
  std::uint64_t flushed_lines = 0;
  std::uint64_t redundant_flushes = 0;  // flushes of a line with nothing new since its last capture
};

class simulator {
 public:
  simulator();
  ~simulator();
  simulator(const simulator&) = delete;
  simulator& operator=(const simulator&) = delete;

  // Called by media::domain. attach() snapshots the mapping as the guaranteed state.
  void attach(std::byte* base, std::size_t size);
  void grow(std::size_t size);
  void detach();
  void flush(const void* p, std::size_t n);
  void fence();

  // Crash points: before fence number i (counting from 0 at attach) takes effect, the simulator
  // records images as requested. `each` is called once per recorded image, synchronously.
  struct capture_request {
    std::vector<std::uint64_t> fences;  // sorted fence indices to crash at
    std::vector<image_policy> policies{image_policy::random};
    std::uint64_t seed = 1;
  };
  void capture_at(capture_request request, std::function<void(crash_image)> each);
  // Takes an image of the present moment (as if the crash happened now).
  crash_image image_now(image_policy policy, std::uint64_t seed);

  std::uint64_t fence_count() const;
  sim::stats stats() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace pobj::sim
