// kvstore/log: pobj-kv's log lines on stderr, in Redis's shape
// ("pid:M 29 Nov 2026 17:50:00.123 * message"), through fmt.
//
// Thread safety: safe from any thread; each line is one fmt::print under stdio's lock on stderr,
// so lines never interleave.
// Crash consistency: not applicable (stderr, nothing persistent).
#pragma once

#include <chrono>
#include <ctime>
#include <string_view>
#include <unistd.h>

#include <fmt/format.h>

namespace pobj::kv::log {

enum class level { debug = 0, verbose = 1, notice = 2, warning = 3 };

inline level& threshold() {
  static level l = level::notice;
  return l;
}

inline void set_threshold(std::string_view name) {
  threshold() = name == "debug" ? level::debug : name == "verbose" ? level::verbose : name == "warning" ? level::warning
                                                                                                        : level::notice;
}

template <class... Args>
void write(level l, fmt::format_string<Args...> format, Args&&... args) {
  if (l < threshold()) return;
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%d %b %Y %H:%M:%S", &tm);
  static constexpr char marks[] = {'.', '-', '*', '#'};
  fmt::print(stderr, "{}:M {}.{:03} {} {}\n", getpid(), stamp, ms, marks[static_cast<int>(l)],
             fmt::format(format, std::forward<Args>(args)...));
}

template <class... Args>
void notice(fmt::format_string<Args...> f, Args&&... a) {
  write(level::notice, f, std::forward<Args>(a)...);
}
template <class... Args>
void warning(fmt::format_string<Args...> f, Args&&... a) {
  write(level::warning, f, std::forward<Args>(a)...);
}
template <class... Args>
void verbose(fmt::format_string<Args...> f, Args&&... a) {
  write(level::verbose, f, std::forward<Args>(a)...);
}

}  // namespace pobj::kv::log
