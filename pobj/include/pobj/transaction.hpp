// pobj/transaction: failure-atomic blocks and publication of fresh objects.
//
// A `transaction` is an RAII scope: every change made through it is all-or-nothing across a
// crash. Declare a range before changing it in place (snapshot or set); objects allocated inside
// the block are written in place and never logged; frees take effect only if the block commits.
// Leaving the scope normally commits; leaving it by an exception aborts (rolls back) and lets the
// exception propagate. Scopes nest and flatten: only the outermost one commits, and an abort in
// any of them aborts the whole block.
//
// Cost (docs/transactions.md): one fence per snapshot()/set() call (several ranges passed to one
// snapshot() call share it) and one fence at commit, whatever the number of ranges; an
// allocation or free adds one fence only if no snapshot follows it. A one-field update therefore
// costs two fences. publish() costs two fences for any number of objects and links. In page
// mode, where persistence is ordered (pobj/media), the fences before the commit cost nothing: a
// block waits for the disk once, at commit, and blocks of many threads share that wait.
//
// Thread safety: a transaction belongs to the thread that opened it. Blocks on different threads
// run concurrently (each thread uses its own log lane); they do not isolate from each other, so
// data shared between threads needs the caller's locks, taken before the block and released
// after it.
// Crash consistency: when the outermost scope returns, the block is persistent. A crash before
// that leaves none of it after recovery. Other threads can see a block's in-place stores before
// it commits; the caller's locks make that unobservable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <utility>

#include <pobj/heap.hpp>
#include <pobj/pool.hpp>

namespace pobj {

namespace detail {
struct tx_state;
}

struct byte_range {
  const void* pointer;
  std::size_t size;
};

// An allocation made inside a block.
struct allocation {
  offset_t offset = 0;
  void* pointer = nullptr;
  std::size_t size = 0;
};

// One store that publish() makes together with the publication: *word = value.
struct publish_link {
  std::uint64_t* word;
  std::uint64_t value;
};

class transaction {
 public:
  explicit transaction(pool& p);
  ~transaction() noexcept;
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

  // Logs the current contents of the ranges, so they can be restored if the block aborts. Call it
  // before the first store to a range; ranges inside objects allocated by this block, and ranges
  // already logged by it, are skipped at no cost.
  void snapshot(const void* p, std::size_t n);
  void snapshot(std::initializer_list<byte_range> ranges);
  void snapshot(std::span<const byte_range> ranges);

  // Stores `value` into `field` failure-atomically. The log records both the old and the new
  // value, so a commit need not copy the range again.
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void set(T& field, const T& value) {
    T copy = value;  // `value` may alias `field`
    log_set(&field, &copy, sizeof(T));
    field = copy;
  }

  // Allocates an object that exists only if the block commits. Its contents are unspecified.
  allocation alloc(std::size_t size, std::uint16_t type = 0);
  // Frees an object when (and only if) the block commits.
  void free(offset_t object);
  // Makes a reservation part of this block (as if allocated by alloc).
  void adopt(reservation& r);

  // Commits the whole block now (outermost scope only); the scope then ends with nothing to do.
  void commit();
  // Commits without waiting for the block to be persistent, where persistence is ordered (page
  // mode): the block is still all-or-nothing across a crash, and every later block that may see
  // its effects persists after it. Returns a ticket: pool.media().durable(ticket) says whether
  // the block is persistent yet and sync(ticket) waits for it, so a server can run the next
  // commands while the disk syncs and acknowledge these once it has. Elsewhere the same as
  // commit() (the ticket is always durable). REQUIRES: the outermost scope.
  std::uint64_t commit_deferred();
  // Rolls the whole block back now; later calls on it throw errc::transaction_aborted.
  void abort() noexcept;

  // Whether the block changed anything so far (a store logged, an object allocated or freed): a
  // block that only read can be rolled back for nothing. False once it has ended.
  bool changed() const noexcept;

  pool& get_pool() const noexcept { return *pool_; }
  // True if the calling thread has a block open on `p`.
  static bool active(const pool& p) noexcept;

 private:
  void adopt(reservation& r, std::size_t requested);
  void log_set(void* field, const void* value, std::size_t n);
  void log(std::span<const byte_range> ranges, const void* const* values);
  // commit() and commit_deferred(): the outermost scope's commit.
  void commit_outermost(bool deferred);
  friend void publish(pool&, std::span<reservation>, std::span<const publish_link>);
  friend class pool;
  pool* pool_;
  detail::tx_state* state_;
  int uncaught_;
  bool done_ = false;
};

// Runs fn(tx) inside a failure-atomic block and returns what it returns.
template <class F>
decltype(auto) run_tx(pool& p, F&& fn) {
  transaction tx(p);
  return std::forward<F>(fn)(tx);
}

// Makes reserved objects persistent and links them in, all or nothing: when it returns, the
// objects' contents (as filled by the caller), their allocation and every link are persistent.
// Two fences, whatever the count. Inside an open block on the same thread, it joins the block.
void publish(pool& p, std::span<reservation> objects, std::span<const publish_link> links);
inline void publish(pool& p, reservation& object, std::uint64_t* link_word) {
  publish_link l{link_word, object.offset};
  publish(p, std::span<reservation>(&object, 1), std::span<const publish_link>(&l, 1));
}

}  // namespace pobj
