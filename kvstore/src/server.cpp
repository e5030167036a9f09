// pobj-kv's event loop, batching and group commit (server.hpp).
#include "server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <csignal>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "log.hpp"

namespace pobj::kv {

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
};

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string peer_of(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
    port = ntohs(v6->sin6_port);
  }
  return fmt::format("{}:{}", host, port);
}

// Whether a client connects from this machine's loopback: 127.0.0.0/8, ::1, or ::ffff:127.x.
bool is_loopback(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(&a)->sin_addr.s_addr) >> 24) == 127;
  }
  if (a.ss_family == AF_INET6) {
    const in6_addr& v6 = reinterpret_cast<const sockaddr_in6*>(&a)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace

// A thread that makes committed batches durable (one journal sync at a time, each covering every
// batch committed before it started) and wakes the event loop through an eventfd when it has.
struct server::syncer {
  explicit syncer(pobj::media::domain& d) : media(d) {
    // Tests only: hold every sync back this long, so that a reply sent before its batch is
    // durable would be lost by a kill (tests/kvstore/kill_test.py).
    if (const char* delay = std::getenv("POBJ_KV_TEST_SYNC_DELAY_US"); delay != nullptr) {
      delay_us = std::strtol(delay, nullptr, 10);
    }
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
      if (delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      media.sync(target);
      const std::uint64_t one = 1;
      [[maybe_unused]] auto w = ::write(fd, &one, sizeof(one));
      lock.lock();
      done = target;
    }
  }

  pobj::media::domain& media;
  int fd = -1;
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t wanted = 0;  // GUARDED_BY(mu)
  std::uint64_t done = 0;    // GUARDED_BY(mu)
  bool stop = false;         // GUARDED_BY(mu)
  long delay_us = 0;
  std::thread thread;
};

server::server(engine& e, config& cfg) : engine_(&e), config_(&cfg) {
  engine_->set_server(this);
  if (engine_->db().pool().media().ordered()) syncer_ = std::make_unique<syncer>(engine_->db().pool().media());
}

server::~server() {
  syncer_.reset();
  engine_->set_server(nullptr);
  for (auto& [fd, c] : connections_) ::close(fd);
  for (const int fd : listen_fds_) ::close(fd);
  if (spare_fd_ >= 0) ::close(spare_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

std::pair<std::vector<int>, int> listen_on(const config& cfg) {
  std::vector<int> fds;
  int bound_port = cfg.port;
  struct closer {
    std::vector<int>& fds;
    bool keep = false;
    ~closer() {
      if (!keep) for (const int fd : fds) ::close(fd);
    }
  } close_on_error{fds};
  for (const std::string& address : cfg.bind_addresses) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(bound_port);
    if (int rc = getaddrinfo(address.c_str(), port.c_str(), &hints, &found); rc != 0) {
      throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", address, port, gai_strerror(rc)));
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, freeaddrinfo);
    const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(fmt::format("socket: {}", std::strerror(errno)));
    fds.push_back(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (found->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    // Bound now, listening only once the pool is open (server::listen): until then a client
    // is refused at once rather than left waiting on a server that is still opening its pool.
    if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0) {
      throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", address, port, std::strerror(errno)));
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    bound_port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                             : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  close_on_error.keep = true;
  return {std::move(fds), bound_port};
}

void server::listen(std::vector<int> sockets, int port) {
  listen_fds_ = std::move(sockets);
  port_ = port;
  for (const int fd : listen_fds_) {
    if (::listen(fd, 511) != 0) throw std::runtime_error(fmt::format("listen: {}", std::strerror(errno)));
  }
  // As many descriptors as maxclients needs, if the system allows; else fewer clients.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    const rlim_t want = static_cast<rlim_t>(config_->maxclients) + 64;
    if (files.rlim_cur < want) {
      files.rlim_cur = std::min(want, files.rlim_max);
      setrlimit(RLIMIT_NOFILE, &files);
      getrlimit(RLIMIT_NOFILE, &files);
    }
    if (files.rlim_cur < want) {
      const int fit = static_cast<int>(std::max<rlim_t>(files.rlim_cur, 64) - 64 + 1);
      log::warning("maxclients {} lowered to {}: the process may open {} files", config_->maxclients, fit, files.rlim_cur);
      config_->maxclients = fit;
    }
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw std::runtime_error(fmt::format("epoll: {}", std::strerror(errno)));
  epoll_event ev{};
  ev.events = EPOLLIN;
  for (const int fd : listen_fds_) {
    ev.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  if (syncer_) {
    ev.data.fd = syncer_->fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, syncer_->fd, &ev);
  }
}

void server::run() {
  started_ms_ = wall_ms();
  std::vector<epoll_event> events(256);
  while (!stop_.load()) {
    bool input_waiting = false;
    for (auto& [fd, c] : connections_) input_waiting |= servable(*c);
    const std::int64_t now = wall_ms();
    const std::int64_t wake = std::min(next_expire_ms_, next_deadline());
    const int timeout = input_waiting ? 0 : static_cast<int>(std::clamp<std::int64_t>(wake - now, 0, 100));
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0 && errno != EINTR) throw std::runtime_error(fmt::format("epoll_wait: {}", std::strerror(errno)));
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (std::find(listen_fds_.begin(), listen_fds_.end(), fd) != listen_fds_.end()) {
        accept_clients(fd);
        continue;
      }
      if (syncer_ && fd == syncer_->fd) {  // batches became durable: their replies go out below
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(fd, &count, sizeof(count));
        continue;
      }
      auto it = connections_.find(fd);
      if (it == connections_.end()) continue;
      connection& c = *it->second;
      const std::uint32_t what = events[static_cast<std::size_t>(i)].events;
      if (what & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_from(c);
      if ((what & EPOLLOUT) && !c.dead) flush(c);
    }
    const std::int64_t batch_now = wall_ms();
    process(batch_now);
    time_out_blocked(batch_now);
    if (batch_now >= next_expire_ms_) {
      active_expire(batch_now);
      next_expire_ms_ = batch_now + 1000 / std::max(1, config_->hz);
    }
    pobj::media::domain& media = engine_->db().pool().media();
    if (syncer_ && !media.durable(last_ticket_)) syncer_->request(last_ticket_);
    for (auto& [fd, c] : connections_) {
      if (!c->dead && sendable(*c) > c->sent) flush(*c);
      const bool answered = c->sent == c->out.size() && (c->s.close_after_reply || !c->has_input);
      if (c->dead || ((c->s.close_after_reply || c->eof) && answered)) closing_.push_back(c.get());
    }
    for (connection* c : closing_) close(*c);
    closing_.clear();
  }
  // Everything committed is made persistent; what is still unsent is sent if it can be.
  engine_->db().pool().media().sync(last_ticket_);
  for (auto& [fd, c] : connections_) {
    if (!c->dead) flush(*c);
  }
  log::notice("pobj-kv is now ready to exit, bye bye...");
}

void server::accept_clients(int listen_fd) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    const int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
      // No descriptor left: the client would stay queued, and the loop would wake for it forever.
      // Give up the spare one to accept it, tell it why, and close it.
      ::close(spare_fd_);
      if (const int refused = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC); refused >= 0) {
        static constexpr std::string_view full = "-ERR max number of clients reached\r\n";
        [[maybe_unused]] auto w = ::write(refused, full.data(), full.size());
        ::close(refused);
        ++rejected_clients_;
      }
      spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      continue;
    }
    if (fd < 0) return;  // EAGAIN, or an error the next turn will see again
    if (config_->protected_mode && config_->requirepass.empty() && !is_loopback(peer)) {
      // As Redis: told why, then closed, before it can send anything.
      static constexpr std::string_view denied =
          "-DENIED pobj-kv is running in protected mode because protected mode is enabled and no password is "
          "set. In this mode connections are only accepted from the loopback interface. To accept others, set "
          "a password (requirepass), or disable protected mode (protected-mode no) if the network is trusted\r\n";
      [[maybe_unused]] auto w = ::write(fd, denied.data(), denied.size());
      ::close(fd);
      ++rejected_clients_;
      continue;
    }
    if (connections_.size() >= static_cast<std::size_t>(config_->maxclients)) {
      static constexpr std::string_view full = "-ERR max number of clients reached\r\n";
      [[maybe_unused]] auto w = ::write(fd, full.data(), full.size());
      ::close(fd);
      ++rejected_clients_;
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_unique<connection>();
    c->fd = fd;
    c->s.id = next_id_++;
    c->s.address = peer_of(peer);
    c->s.created_ms = c->s.last_ms = wall_ms();
    c->s.authenticated = config_->requirepass.empty();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    connections_.emplace(fd, std::move(c));
  }
}

void server::read_from(connection& c) {
  if (c.dead) return;
  // At most a few MiB a turn, so one busy client cannot starve the others. Reads land in a
  // scratch buffer and only what arrived is appended (growing `in` to read into it would clear
  // the new space first, for nothing).
  static thread_local std::vector<char> scratch(256 * 1024);
  for (std::size_t total = 0; total < (4u << 20);) {
    if (c.in.size() - c.parsed > max_unparsed && c.parser.bytes_wanted() == 0) break;
    const ssize_t n = ::read(c.fd, scratch.data(), scratch.size());
    if (n > 0) {
      if (c.in.size() - c.parsed + static_cast<std::size_t>(n) > max_query_buffer) {
        log::warning("closing client {}: its query buffer passed {} bytes", c.s.address, max_query_buffer);
        c.dead = true;
        return;
      }
      if (c.in.capacity() < c.in.size() + static_cast<std::size_t>(n) && c.parser.bytes_wanted() > 0) {
        c.in.reserve(c.in.size() + std::min<std::size_t>(c.parser.bytes_wanted(), 64u << 20));
      }
      c.in.append(scratch.data(), static_cast<std::size_t>(n));
      total += static_cast<std::size_t>(n);
      c.has_input = true;
      if (c.in.size() - c.parsed > max_unparsed && c.parser.bytes_wanted() == 0) break;
      continue;
    }
    if (n == 0) {
      c.eof = true;
      update_events(c);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      c.dead = true;
    }
    return;
  }
}

bool server::servable(const connection& c) const {
  return c.has_input && !c.dead && !c.s.close_after_reply && !c.s.blocked.active &&
         c.out.size() - c.sent <= max_output;
}

void server::process(std::int64_t now) {
  for (auto& [fd, c] : connections_) {
    if (servable(*c)) serve(*c, now);
  }
  commit_batch();
  // Nothing refers to the consumed input or the sent output any more (the batch has committed):
  // drop them when that is cheap (all of it) or worth it (much of it), not at every turn.
  for (auto& [fd, c] : connections_) {
    if (c->parsed > 0 && (c->parsed == c->in.size() || c->parsed >= (1u << 20) || 2 * c->parsed >= c->in.size())) {
      c->in.erase(0, c->parsed);
      c->parsed = 0;
    }
    if (c->sent > 0 && (c->sent == c->out.size() || c->sent >= (1u << 20) || 2 * c->sent >= c->out.size())) {
      c->out.erase(0, c->sent);
      c->committed -= c->sent;
      for (auto& d : c->durability) d.first -= c->sent;
      c->sent = 0;
    }
    // A connection with replies to send now gets its events set by flush(), right after.
    if (!c->dead && !(sendable(*c) > c->sent)) update_events(*c);
  }
}

void server::serve(connection& c, std::int64_t now) {
  std::vector<std::string_view> argv;
  for (int commands = 0; commands < 256; ++commands) {
    if (c.out.size() - c.sent > max_output) return;  // stop until the client reads its replies
    std::size_t consumed = 0;
    const std::string_view input = std::string_view(c.in).substr(c.parsed);
    const auto status = c.parser.parse(input, c.s.authenticated, argv, consumed);
    if (status == request_parser::status::incomplete) {
      c.has_input = false;
      return;
    }
    if (status == request_parser::status::error) {
      // Redis replies and closes; what came before it is answered first.
      commit_batch();
      reply_writer(c.out, c.s.protocol).error("ERR " + c.parser.error_message());
      c.committed = c.out.size();
      c.s.close_after_reply = true;
      c.has_input = false;
      return;
    }
    c.parsed += consumed;
    if (argv.empty()) continue;
    const bool inline_request = input[0] != '*';
    if (engine_->placement_of(c.s, argv) == engine::placement::alone) {
      commit_batch();
      if (inline_request) {
        std::vector<std::string> owned(argv.begin(), argv.end());
        std::vector<std::string_view> views(owned.begin(), owned.end());
        run_alone(c, views, now);
      } else {
        run_alone(c, argv, now);
      }
      // EXEC may have pushed to lists that clients wait on; the wakes start a new batch.
      wake_ready(now);
      if (c.s.close_after_reply) {
        c.has_input = false;
        return;
      }
      continue;
    }
    run_in_batch(c, argv, inline_request, now);
    note_blocked(c);
    wake_ready(now);
    if (pending_.size() >= max_batch) commit_batch();
    if (c.s.blocked.active) return;  // its later commands wait until it is woken
  }
}

void server::run_in_batch(connection& c, std::vector<std::string_view>& argv, bool inline_request, std::int64_t now) {
  pending p{&c, {}, {}, c.out.size()};
  if (inline_request) {
    p.owned.assign(argv.begin(), argv.end());
    p.argv.assign(p.owned.begin(), p.owned.end());
  } else {
    p.argv = argv;  // views into c.in, which stays put until the batch has committed
  }
  pending_.push_back(std::move(p));
  if (!batch_) batch_.emplace(engine_->db().pool());
  pending& q = pending_.back();
  try {
    reply_writer w(c.out, c.s.protocol);
    engine_->execute(c.s, q.argv, w, *batch_, now);
  } catch (const std::exception& e) {
    recover(pending_.size() - 1, now, e);
  }
}

void server::run_alone(connection& c, std::span<const std::string_view> argv, std::int64_t now) {
  const std::size_t reply_from = c.out.size();
  ++stats_.alone;
  std::uint64_t ticket = last_ticket_;  // a failed command's error waits for what came before
  try {
    transaction tx(engine_->db().pool());
    reply_writer w(c.out, c.s.protocol);
    engine_->execute(c.s, argv, w, tx, now);
    ticket = tx.commit_deferred();
  } catch (const std::exception& e) {
    engine_->db().reload();
    error_reply(c, reply_from, e);
  }
  wait_for(c, reply_from, ticket);
  c.committed = c.out.size();
}

void server::wait_for(connection& c, std::size_t reply_from, std::uint64_t ticket) {
  last_ticket_ = std::max(last_ticket_, ticket);
  if (engine_->db().pool().media().durable(ticket)) return;
  if (c.durability.empty() || c.durability.back().second != ticket) c.durability.emplace_back(reply_from, ticket);
}

void server::commit_batch() {
  if (!batch_) return;
  std::uint64_t ticket = 0;
  try {
    ticket = batch_->commit_deferred();
  } catch (const std::exception&) {
    // Nothing of the batch is persistent: run it again, command by command.
    batch_->abort();
    batch_.reset();
    engine_->db().reload();
    std::vector<pending> again = std::move(pending_);
    pending_.clear();
    for (auto it = again.rbegin(); it != again.rend(); ++it) it->conn->out.resize(it->reply_from);
    for (auto& p : again) run_alone(*p.conn, p.argv, wall_ms());
    return;
  }
  batch_.reset();
  ++stats_.batches;
  stats_.batched_commands += pending_.size();
  stats_.largest = std::max<std::uint64_t>(stats_.largest, pending_.size());
  durable_waits_ += engine_->db().pool().media().durable(ticket) ? 0 : 1;
  for (auto& p : pending_) {
    wait_for(*p.conn, p.reply_from, ticket);
    p.conn->committed = p.conn->out.size();
  }
  pending_.clear();
}

std::size_t server::sendable(connection& c) const {
  const pobj::media::domain& media = engine_->db().pool().media();
  while (!c.durability.empty() && media.durable(c.durability.front().second)) c.durability.pop_front();
  return c.durability.empty() ? c.committed : std::min(c.committed, c.durability.front().first);
}

void server::recover(std::size_t failed, std::int64_t now, const std::exception& why) {
  // The batch's block is rolled back (or about to be): none of its commands happened.
  batch_->abort();
  batch_.reset();
  engine_->db().reload();
  ++stats_.replays;
  for (std::size_t i = failed + 1; i-- > 0;) pending_[i].conn->out.resize(pending_[i].reply_from);
  std::vector<pending> before(std::make_move_iterator(pending_.begin()),
                              std::make_move_iterator(pending_.begin() + static_cast<std::ptrdiff_t>(failed)));
  pending culprit = std::move(pending_[failed]);
  pending_.clear();
  // The commands before it, again, in a new block: deterministic, they do what they did.
  for (std::size_t i = 0; i < before.size(); ++i) {
    pending_.push_back(std::move(before[i]));
    pending& q = pending_.back();
    q.reply_from = q.conn->out.size();
    if (!batch_) batch_.emplace(engine_->db().pool());
    try {
      reply_writer w(q.conn->out, q.conn->s.protocol);
      engine_->execute(q.conn->s, q.argv, w, *batch_, now);
    } catch (const std::exception&) {
      // Not expected (they succeeded a moment ago); keep every reply honest all the same: this
      // and every later command run alone, in order.
      batch_->abort();
      batch_.reset();
      engine_->db().reload();
      for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) it->conn->out.resize(it->reply_from);
      std::vector<pending> rest = std::move(pending_);
      pending_.clear();
      for (std::size_t j = i + 1; j < before.size(); ++j) rest.push_back(std::move(before[j]));
      for (auto& r : rest) run_alone(*r.conn, r.argv, now);
      break;
    }
  }
  commit_batch();
  (void)why;
  // The failing command alone: it fails again, with its error, or (rarely) succeeds on its own.
  run_alone(*culprit.conn, culprit.argv, now);
}

void server::error_reply(connection& c, std::size_t reply_from, const std::exception& why) {
  c.out.resize(reply_from);
  reply_writer w(c.out, c.s.protocol);
  if (const auto* e = dynamic_cast<const pobj::error*>(&why)) {
    if (e->code() == pobj::errc::out_of_space) {
      ++engine_->stats().rejected_oom;
      return w.error("OOM command not allowed: the pool is full (pool-max-size reached)");
    }
    if (e->code() == pobj::errc::transaction_too_large) {
      return w.error("ERR the command changes more than one failure-atomic block can hold; split it");
    }
  }
  log::warning("command failed: {}", why.what());
  w.error(fmt::format("ERR {}", why.what()));
}

void server::flush(connection& c) {
  const std::size_t end = sendable(c);
  while (c.sent < end) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.sent, end - c.sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    c.dead = true;
    return;
  }
  update_events(c);
}

void server::update_events(connection& c) {
  const bool want_write = c.sent < sendable(c);
  // No more input while replies pile up unread, or while much input waits unparsed (unless the
  // command being read is one large argument, which needs its bytes).
  const bool want_read = !c.eof && c.out.size() - c.sent <= max_output &&
                         (c.in.size() - c.parsed <= max_unparsed || c.parser.bytes_wanted() > 0);
  if (want_write == c.writing && want_read == c.reading) return;
  epoll_event ev{};
  ev.events = (want_read ? EPOLLIN : 0u) | (want_write ? EPOLLOUT : 0u);
  ev.data.fd = c.fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.writing = want_write;
  c.reading = want_read;
}

void server::note_blocked(connection& c) {
  if (c.s.blocked.active && std::find(blocked_.begin(), blocked_.end(), &c) == blocked_.end()) {
    blocked_.push_back(&c);
  }
}

void server::wake_ready(std::int64_t now) {
  for (std::vector<std::string> keys = engine_->take_ready(); !keys.empty(); keys = engine_->take_ready()) {
    for (const std::string& key : keys) {
      for (std::size_t i = 0; i < blocked_.size();) {
        connection& b = *blocked_[i];
        const auto& on = b.s.blocked.keys;
        if (!b.s.blocked.active || b.dead || std::find(on.begin(), on.end(), key) == on.end()) {
          ++i;
          continue;
        }
        b.s.blocked.active = false;
        blocked_.erase(blocked_.begin() + static_cast<std::ptrdiff_t>(i));
        if (!b.s.blocked.retry.empty()) {
          // A coordination object's call runs again, in this batch. If it still cannot go on, it
          // waits again, first in line, and so do the waiters behind it: first come, first
          // served (a semaphore's release wakes one waiter, not all of them).
          std::vector<std::string> owned = std::move(b.s.blocked.retry);
          b.s.blocked = session::blocking{};
          std::vector<std::string_view> argv(owned.begin(), owned.end());
          run_in_batch(b, argv, true, now);
          if (b.s.blocked.active) {
            blocked_.insert(blocked_.begin() + static_cast<std::ptrdiff_t>(i), &b);
            break;
          }
          b.has_input = b.parsed < b.in.size();
          continue;
        }
        // Its pop runs now, in this batch, as the command it called with this one key.
        const bool left = b.s.blocked.left;
        b.s.blocked = session::blocking{};
        std::vector<std::string> owned{left ? "BLPOP" : "BRPOP", key, "0"};
        std::vector<std::string_view> argv(owned.begin(), owned.end());
        run_in_batch(b, argv, true, now);
        if (b.s.blocked.active) {  // the list was empty again: it waits, first in line
          blocked_.insert(blocked_.begin() + static_cast<std::ptrdiff_t>(i), &b);
          break;
        }
        b.has_input = b.parsed < b.in.size();  // its later commands may run now
      }
    }
  }
}

void server::time_out_blocked(std::int64_t now) {
  for (std::size_t i = 0; i < blocked_.size();) {
    connection& b = *blocked_[i];
    if (b.s.blocked.deadline_ms == 0 || b.s.blocked.deadline_ms > now) {
      ++i;
      continue;
    }
    std::vector<std::string> retry = std::move(b.s.blocked.retry);
    b.s.blocked = session::blocking{};
    blocked_.erase(blocked_.begin() + static_cast<std::ptrdiff_t>(i));
    if (!retry.empty()) {
      // Its time is up (or a lease it waits on ran out): the call runs again and decides, in a
      // batch, since withdrawing changes the object.
      std::vector<std::string_view> argv(retry.begin(), retry.end());
      run_in_batch(b, argv, true, now);
      if (b.s.blocked.active) note_blocked(b);
      else b.has_input = b.parsed < b.in.size();
      i = 0;  // the list changed under us
      continue;
    }
    const std::size_t reply_from = b.out.size();
    reply_writer(b.out, b.s.protocol).null_array();
    wait_for(b, reply_from, last_ticket_);  // after what the connection's earlier replies wait for
    b.committed = b.out.size();
    b.has_input = b.parsed < b.in.size();
  }
  if (batch_) {
    wake_ready(now);
    commit_batch();
  }
}

std::int64_t server::next_deadline() const {
  std::int64_t next = INT64_MAX;
  for (const connection* b : blocked_) {
    if (b->s.blocked.deadline_ms != 0) next = std::min(next, b->s.blocked.deadline_ms);
  }
  return next;
}

void server::close(connection& c) {
  // A connection with commands in an open batch stays until the batch is done (process() commits
  // every batch before connections are closed, so this holds).
  engine_->forget(c.s);
  blocked_.erase(std::remove(blocked_.begin(), blocked_.end(), &c), blocked_.end());
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  connections_.erase(c.fd);
}

void server::active_expire(std::int64_t now) {
  // A bounded share of each cycle, in blocks of up to 200 keys, as Redis's active expiry.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(25);
  while (std::chrono::steady_clock::now() < deadline) {
    std::size_t removed = 0;
    try {
      transaction tx(engine_->db().pool());
      removed = engine_->db().expire_some(tx, now, 200);
      engine_->db().rotate_replies(tx, now, engine_->settings().reply_ttl_s * 1000);
      last_ticket_ = std::max(last_ticket_, tx.commit_deferred());
    } catch (const std::exception& e) {
      // The block rolled back: the store's handles (a rotated reply generation) must follow.
      engine_->db().reload();
      log::warning("active expiry failed: {}", e.what());
      return;
    }
    if (removed < 200) return;
  }
}

std::string server::client_list() const {
  std::string out;
  const std::int64_t now = wall_ms();
  for (const auto& [fd, c] : connections_) {
    out += fmt::format("id={} addr={} fd={} name={} age={} idle={} db=0 multi={} qbuf={} obl={} cmd={} resp={}\n",
                       c->s.id, c->s.address, fd, c->s.name, (now - c->s.created_ms) / 1000, (now - c->s.last_ms) / 1000,
                       c->s.in_multi ? static_cast<long>(c->s.queued.size()) : -1L, c->in.size() - c->parsed,
                       c->out.size() - c->sent, c->s.last_command.empty() ? "NULL" : c->s.last_command, c->s.protocol);
  }
  return out;
}

std::string server::info_section(std::string_view section) const {
  if (section == "server") {
    pobj::pool& p = engine_->db().pool();
    return fmt::format(
        "# Server\r\nredis_version:7.0.0\r\npobj_kv_version:0.1.0\r\nredis_mode:standalone\r\nos:Linux\r\n"
        "process_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nhz:{}\r\nexecutable_threads:1\r\n"
        "pool_open_ms:{:.3f}\r\npool_boot_count:{}\r\n\r\n",
        getpid(), port_, (wall_ms() - started_ms_) / 1000, config_->hz, p.recovery().open_ms, p.recovery().boot_count);
  }
  if (section == "clients") {
    std::size_t in_multi = 0;
    for (const auto& [fd, c] : connections_) in_multi += c->s.in_multi ? 1 : 0;
    return fmt::format("# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nclients_in_multi:{}\r\n"
                       "rejected_connections:{}\r\n\r\n",
                       connections_.size(), config_->maxclients, in_multi, rejected_clients_);
  }
  if (section == "persistence") {
    const pobj::media::counters m = pobj::media::thread_counters();
    const pobj::media::domain::journal_stats j = engine_->db().pool().media().journal_figures();
    const double per_batch = stats_.batches == 0 ? 0.0
                                                 : static_cast<double>(stats_.batched_commands) /
                                                       static_cast<double>(stats_.batches);
    return fmt::format(
        "# Persistence\r\nloading:0\r\npersist_mode:{}\r\naof_enabled:0\r\nrdb_changes_since_last_save:0\r\n"
        "fences:{}\r\nlines_written_back:{}\r\ngroup_commits:{}\r\ngroup_commit_commands:{}\r\n"
        "group_commit_avg_size:{:.2f}\r\ngroup_commit_max_size:{}\r\ngroup_commit_replays:{}\r\n"
        "commands_run_alone:{}\r\nreclamation_pending_blocks:{}\r\n"
        "journal_syncs:{}\r\njournal_bytes:{}\r\njournal_checkpoints:{}\r\nbatches_waiting_for_sync:{}\r\n"
        "once_stored_replies:{}\r\n\r\n",
        pobj::to_string(engine_->db().pool().mode()), m.drains, m.lines, stats_.batches, stats_.batched_commands,
        per_batch, stats_.largest, stats_.replays, stats_.alone, pobj::reclaim_pending(engine_->db().pool()),
        j.syncs, j.bytes, j.checkpoints, durable_waits_, engine_->db().stored_replies());
  }
  return {};
}

}  // namespace pobj::kv
