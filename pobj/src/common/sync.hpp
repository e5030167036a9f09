// A mutex and lock guard annotated for clang's thread-safety analysis (-Wthread-safety), which a
// clang build in CI runs with warnings as errors. Under GCC the annotations compile to nothing.
#pragma once

#include <mutex>

#if defined(__clang__)
#define POBJ_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define POBJ_THREAD_ANNOTATION(x)
#endif

#define POBJ_CAPABILITY(x) POBJ_THREAD_ANNOTATION(capability(x))
#define POBJ_SCOPED_CAPABILITY POBJ_THREAD_ANNOTATION(scoped_lockable)
#define POBJ_GUARDED_BY(x) POBJ_THREAD_ANNOTATION(guarded_by(x))
#define POBJ_REQUIRES(...) POBJ_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define POBJ_ACQUIRE(...) POBJ_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define POBJ_RELEASE(...) POBJ_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define POBJ_EXCLUDES(...) POBJ_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define POBJ_NO_THREAD_SAFETY_ANALYSIS POBJ_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace pobj::detail {

class POBJ_CAPABILITY("mutex") mutex {
 public:
  void lock() POBJ_ACQUIRE() { m_.lock(); }
  void unlock() POBJ_RELEASE() { m_.unlock(); }
  bool try_lock() POBJ_THREAD_ANNOTATION(try_acquire_capability(true)) { return m_.try_lock(); }
  std::mutex& native() { return m_; }  // for condition variables

 private:
  std::mutex m_;
};

class POBJ_SCOPED_CAPABILITY lock_guard {
 public:
  explicit lock_guard(mutex& m) POBJ_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~lock_guard() POBJ_RELEASE() { m_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;

 private:
  mutex& m_;
};

}  // namespace pobj::detail
