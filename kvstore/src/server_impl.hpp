// What the server's files share (server.hpp): a connection's state, the syncer, the clock.
//
// Thread safety: a connection is the event loop's alone; the syncer's fields are guarded by its
// mutex (its thread and the loop share them).
// Crash consistency: as server.hpp states (nothing here is persistent).
#pragma once

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <pobj/pool.hpp>

#include "server.hpp"

namespace pobj::kv {

// A follower's relay of one client to the leader (forwarding.cpp).
struct server::upstream {
  int fd = -1;
  std::uint64_t leader = 0;    // the member it reaches
  bool connected = false;      // the non-blocking connect finished
  bool shut = false;           // the client half-closed: so did the relay
  std::uint32_t events = 0;    // registered with epoll
  std::string out;             // to the leader: [0, sent) sent
  std::size_t sent = 0;
  std::string in;              // from the leader, while the preamble's replies are skipped
  int skip = 0;                // the preamble's replies still to skip
};

struct server::connection {
  int fd = -1;
  session s;
  request_parser parser;
  std::string in;              // read, not yet consumed: [0, parsed) is consumed by commands run
  std::size_t parsed = 0;
  std::string out;             // replies: [0, sent) sent, [sent, committed) sendable, the rest waits
  std::size_t sent = 0;        //   for its batch to commit
  std::size_t committed = 0;
  // (where a batch's replies start in out, its durability ticket), oldest first: replies from
  // there on wait until the ticket is durable (page mode; empty in the other modes).
  std::deque<std::pair<std::size_t, std::uint64_t>> durability;
  bool reading = true;         // EPOLLIN registered
  bool writing = false;        // EPOLLOUT registered
  bool dead = false;           // the connection failed: close without sending
  bool eof = false;            // the peer sent all it will: answer what it sent, then close
  bool has_input = false;      // complete commands may be waiting in `in`
  std::unique_ptr<upstream> up;  // relayed to the leader (a follower's client): a pipe from now on
};

// The wall clock in milliseconds: a batch's `now`, clients' times.
inline std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A thread that makes committed batches durable (one journal sync at a time, each covering every
// batch committed before it started) and wakes the event loop through an eventfd when it has.
struct server::syncer {
  explicit syncer(pobj::pool& p) : pool(p) {
    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw std::runtime_error(fmt::format("eventfd: {}", std::strerror(errno)));
    // Shutdown signals go to the event loop's thread, whose epoll_wait they interrupt: the syncer
    // thread starts with them blocked.
    sigset_t block, before;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &before);
    thread = std::thread([this] { loop(); });
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
  }
  ~syncer() {
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    cv.notify_one();
    thread.join();
    ::close(fd);
  }
  void request(std::uint64_t ticket) {
    {
      std::lock_guard lock(mu);
      if (ticket <= wanted) return;
      wanted = ticket;
    }
    cv.notify_one();
  }
  void loop() {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return stop || wanted > done; });
      if (wanted <= done) return;  // stopping, and nothing left to sync
      const std::uint64_t target = wanted;
      lock.unlock();
      pool.sync(target);
      const std::uint64_t one = 1;
      [[maybe_unused]] auto w = ::write(fd, &one, sizeof(one));
      lock.lock();
      done = target;
    }
  }

  pobj::pool& pool;
  int fd = -1;
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t wanted = 0;  // GUARDED_BY(mu)
  std::uint64_t done = 0;    // GUARDED_BY(mu)
  bool stop = false;         // GUARDED_BY(mu)
  std::thread thread;
};

}  // namespace pobj::kv
