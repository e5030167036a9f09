#include <pobj/sim.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>
#include <unordered_map>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <pobj/error.hpp>

#include "common/sync.hpp"

namespace pobj::sim {

using detail::lock_guard;
using detail::mutex;

namespace {
constexpr std::size_t line = 64;
using line_bytes = std::array<std::byte, line>;
}  // namespace

void crash_image::materialize(const std::string& path) const {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw error(errc::io_error, fmt::format("sim: cannot create '{}': {}", path, std::strerror(errno)));
  std::vector<std::byte> bytes(file_size);
  std::memcpy(bytes.data(), base->data(), std::min(base->size(), file_size));
  for (const auto& [index, data] : lines) {
    if ((index + 1) * line <= file_size) std::memcpy(bytes.data() + index * line, data.data(), line);
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      ::close(fd);
      throw error(errc::io_error, fmt::format("sim: cannot write '{}'", path));
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

struct simulator::impl {
  mutable mutex mu;
  std::byte* mem = nullptr;
  std::size_t size = 0;
  std::shared_ptr<std::vector<std::byte>> base;
  std::vector<std::byte> guaranteed;
  std::unordered_map<std::uint64_t, std::vector<line_bytes>> pending;
  std::uint64_t fences = 0;
  sim::stats st;
  capture_request request;
  std::size_t next_request = 0;
  std::function<void(crash_image)> each;

  const std::byte* base_line(std::uint64_t i) const {
    static const line_bytes zero{};
    return (i + 1) * line <= base->size() ? base->data() + i * line : zero.data();
  }

  crash_image image(image_policy policy, std::uint64_t seed) const {
    crash_image img;
    img.fence_index = fences;
    img.seed = seed;
    img.policy = policy;
    img.file_size = size;
    img.base = base;
    std::mt19937_64 rng(seed);
    const std::uint64_t count = size / line;
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::byte* g = guaranteed.data() + i * line;
      const std::byte* live = mem + i * line;
      auto p = pending.find(i);
      bool has_pending = p != pending.end() && !p->second.empty();
      if (!has_pending && std::memcmp(g, live, line) == 0) {
        if (std::memcmp(g, base_line(i), line) != 0) {
          line_bytes b;
          std::memcpy(b.data(), g, line);
          img.lines.emplace_back(i, b);
        }
        continue;
      }
      const std::byte* chosen = g;
      switch (policy) {
        case image_policy::oldest: chosen = g; break;
        case image_policy::newest: chosen = live; break;
        case image_policy::random: {
          std::size_t versions = 2 + (has_pending ? p->second.size() : 0);
          std::size_t pick = rng() % versions;
          if (pick == 0) chosen = g;
          else if (pick == versions - 1) chosen = live;
          else chosen = p->second[pick - 1].data();
          break;
        }
      }
      if (std::memcmp(chosen, base_line(i), line) != 0) {
        line_bytes b;
        std::memcpy(b.data(), chosen, line);
        img.lines.emplace_back(i, b);
      }
    }
    return img;
  }
};

simulator::simulator() : impl_(std::make_unique<impl>()) {}
simulator::~simulator() = default;

void simulator::attach(std::byte* base, std::size_t size) {
  lock_guard lock(impl_->mu);
  impl_->mem = base;
  impl_->size = size;
  impl_->base = std::make_shared<std::vector<std::byte>>(base, base + size);
  impl_->guaranteed.assign(base, base + size);
  impl_->pending.clear();
  // Fence numbers keep counting across attaches, so crash points stay where requested.
}

void simulator::grow(std::size_t size) {
  lock_guard lock(impl_->mu);
  // The new part of the file reads as zeros (posix_fallocate) until written.
  impl_->guaranteed.resize(size, std::byte{0});
  impl_->size = size;
}

void simulator::detach() {
  lock_guard lock(impl_->mu);
  impl_->mem = nullptr;
}

void simulator::flush(const void* p, std::size_t n) {
  lock_guard lock(impl_->mu);
  if (impl_->mem == nullptr) return;
  auto off = static_cast<std::size_t>(static_cast<const std::byte*>(p) - impl_->mem);
  for (std::uint64_t i = off / line; i * line < off + n && (i + 1) * line <= impl_->size; ++i) {
    const std::byte* live = impl_->mem + i * line;
    auto& versions = impl_->pending[i];
    const std::byte* last = versions.empty() ? impl_->guaranteed.data() + i * line : versions.back().data();
    ++impl_->st.flushed_lines;
    if (std::memcmp(last, live, line) == 0) {
      ++impl_->st.redundant_flushes;
      if (versions.empty()) impl_->pending.erase(i);
      continue;
    }
    line_bytes b;
    std::memcpy(b.data(), live, line);
    versions.push_back(b);
  }
}

void simulator::fence() {
  std::function<void(crash_image)> each;
  std::vector<crash_image> images;
  {
    lock_guard lock(impl_->mu);
    if (impl_->mem == nullptr) return;
    auto& req = impl_->request;
    while (impl_->next_request < req.fences.size() && req.fences[impl_->next_request] < impl_->fences) {
      ++impl_->next_request;
    }
    if (impl_->next_request < req.fences.size() && req.fences[impl_->next_request] == impl_->fences) {
      for (std::size_t k = 0; k < req.policies.size(); ++k) {
        std::uint64_t seed = req.seed ^ (impl_->fences * 0x9e3779b97f4a7c15ULL) ^ (k * 0xbf58476d1ce4e5b9ULL);
        images.push_back(impl_->image(req.policies[k], seed));
      }
      ++impl_->next_request;
      each = impl_->each;
    }
    for (auto& [i, versions] : impl_->pending) {
      if (!versions.empty()) std::memcpy(impl_->guaranteed.data() + i * line, versions.back().data(), line);
    }
    impl_->pending.clear();
    ++impl_->fences;
    ++impl_->st.fences;
  }
  if (each) {
    for (auto& img : images) each(std::move(img));
  }
}

void simulator::capture_at(capture_request request, std::function<void(crash_image)> each) {
  lock_guard lock(impl_->mu);
  std::sort(request.fences.begin(), request.fences.end());
  impl_->request = std::move(request);
  impl_->next_request = 0;
  impl_->each = std::move(each);
}

crash_image simulator::image_now(image_policy policy, std::uint64_t seed) {
  lock_guard lock(impl_->mu);
  return impl_->image(policy, seed);
}

std::uint64_t simulator::fence_count() const {
  lock_guard lock(impl_->mu);
  return impl_->fences;
}

sim::stats simulator::stats() const {
  lock_guard lock(impl_->mu);
  return impl_->st;
}

}  // namespace pobj::sim
