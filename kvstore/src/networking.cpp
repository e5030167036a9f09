// pobj-kv's networking (server.hpp): listening sockets, accepting clients (maxclients,
// protected mode), reading their input, writing their replies, closing them.
#include "server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "log.hpp"
#include "server_impl.hpp"

namespace pobj::kv {

namespace {

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
  if (replica_) {
    ev.data.fd = replica_->fd();
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, replica_->fd(), &ev);
  }
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
  update_upstream_events(c);  // a relayed client read its replies: the leader's may come again
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

void server::close(connection& c) {
  // A connection with commands in an open batch stays until the batch is done (process() commits
  // every batch before connections are closed, so this holds).
  if (c.up) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.up->fd, nullptr);
    ::close(c.up->fd);
    upstreams_.erase(c.up->fd);
    c.up.reset();
  }
  engine_->forget(c.s);
  blocked_.erase(std::remove(blocked_.begin(), blocked_.end(), &c), blocked_.end());
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  connections_.erase(c.fd);
}

}  // namespace pobj::kv
