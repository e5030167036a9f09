// pobj-kv's forwarding (server.hpp): a follower of a replicated group relays a client's commands to
// the leader and the leader's replies back, so a client may connect to any member.
//
// A connection is served here until its first command that the leader must run (one that reads or
// writes the store, MULTI, WATCH). Then, if the leader's client address is known (a new leader
// announces it in its first entry), the member opens a connection to the leader, sends it the
// client's session (AUTH with the group's requirepass if the client authenticated here, then
// FORWARDED with its protocol and name: that connection is never relayed again), and from then on
// the connection is a pipe: the client's bytes from that command on go to the leader unparsed, and
// the leader's replies come back unchanged, in order. Every command of such a connection, INFO and
// PING included, runs on the leader, so its reads are the leader's (linearizable) and its
// transactions and blocking calls are the leader's too.
//
// When the group elects another leader, the pipes to the old one close after relaying what it
// answered (a command in flight is indeterminate, as on any lost connection); the client
// reconnects, and its next command is relayed to the new leader. A client that half-closes gets
// every reply before its connection closes.
#include "server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "log.hpp"
#include "server_impl.hpp"

namespace pobj::kv {

namespace {

void append_command(std::string& out, std::initializer_list<std::string_view> argv) {
  out += fmt::format("*{}\r\n", argv.size());
  for (const auto a : argv) {
    out += fmt::format("${}\r\n", a.size());
    out += a;
    out += "\r\n";
  }
}

// A non-blocking TCP connection to "host:port" ("[v6]:port"), under way; -1 if it cannot start.
int connect_to(const std::string& address) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos) return -1;
  std::string host = address.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return -1;
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, freeaddrinfo);
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd, found->ai_addr, found->ai_addrlen) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool server::forwardable(const connection& c) const {
  if (!config_->replica_forward || c.s.forwarded || !c.s.authenticated || c.s.in_multi || !c.s.watched.empty() ||
      c.s.blocked.active)
    return false;
  const auto [leader, address] = replica_->leader_client();
  return leader != 0 && leader != replica_->member_id() && !address.empty();
}

void server::start_forwarding(connection& c, std::size_t from) {
  // The leader and its address read together: a relay is closed when the leader changes, so it
  // must name the member it reaches.
  const auto [leader, address] = replica_->leader_client();
  const int fd = connect_to(address);
  if (fd < 0) {
    log::warning("cannot relay client {} to the leader at {}", c.s.address, address);
    reply_writer(c.out, c.s.protocol).error("TRYAGAIN cannot reach the leader to relay this command; retry");
    c.committed = c.out.size();
    c.parsed = c.in.size();  // what followed is dropped with it: the client retries from here
    c.s.close_after_reply = true;
    return;
  }
  auto up = std::make_unique<upstream>();
  up->fd = fd;
  up->leader = leader;
  if (!config_->requirepass.empty()) {
    append_command(up->out, {"AUTH", config_->requirepass});
    ++up->skip;
  }
  const std::string protocol = std::to_string(c.s.protocol);
  if (c.s.name.empty()) append_command(up->out, {"FORWARDED", protocol});
  else append_command(up->out, {"FORWARDED", protocol, c.s.name});
  ++up->skip;
  up->out.append(c.in, from, std::string::npos);
  c.in.clear();
  c.parsed = 0;
  c.has_input = false;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.fd = fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  up->events = ev.events;
  upstreams_.emplace(fd, &c);
  c.up = std::move(up);
  ++forwarded_connections_;
}

void server::relay_input(connection& c) {
  upstream& up = *c.up;
  if (up.out.size() - up.sent > max_unparsed) {
    c.has_input = false;  // until the leader takes what waits (upstream_io sets it again)
    update_events(c);
    return;
  }
  up.out.append(c.in, c.parsed, std::string::npos);
  c.in.clear();
  c.parsed = 0;
  c.has_input = false;
  send_upstream(c);
}

void server::send_upstream(connection& c) {
  upstream& up = *c.up;
  if (up.connected) {
    while (up.sent < up.out.size()) {
      const ssize_t n = ::send(up.fd, up.out.data() + up.sent, up.out.size() - up.sent, MSG_NOSIGNAL);
      if (n > 0) {
        up.sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      end_forwarding(c, "the connection to the leader failed");
      return;
    }
    if (up.sent == up.out.size()) {
      up.out.clear();
      up.sent = 0;
      // The client sent all it will: so does the relay; the leader answers and closes.
      if (c.eof && !up.shut && c.in.size() == c.parsed) {  // (and all it sent is relayed)
        ::shutdown(up.fd, SHUT_WR);
        up.shut = true;
      }
    }
    if (!c.in.empty() && up.out.size() <= max_unparsed) c.has_input = true;
  }
  update_upstream_events(c);
}

void server::upstream_io(connection& c, std::uint32_t events) {
  upstream& up = *c.up;
  if (!up.connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(up.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      // Nothing reached the leader: the client may retry at once.
      end_forwarding(c, fmt::format("cannot connect to the leader: {}", std::strerror(err)),
                     "TRYAGAIN cannot reach the leader to relay this command; retry");
      return;
    }
    up.connected = true;
  }
  if (events & EPOLLOUT) send_upstream(c);
  if (!c.up || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  static thread_local std::vector<char> scratch(256 * 1024);
  // A hung-up link is read to its end whatever the client's backlog (the socket's buffer bounds
  // it): epoll reports the hang-up until the fd is gone, so leaving it would spin.
  const bool hung_up = events & (EPOLLHUP | EPOLLERR);
  for (int turns = 0; turns < 16 && (hung_up || c.out.size() - c.sent <= max_output); ++turns) {
    const ssize_t n = ::read(up.fd, scratch.data(), scratch.size());
    if (n > 0) {
      std::string_view got(scratch.data(), static_cast<std::size_t>(n));
      // The replies to the session's preamble (AUTH, FORWARDED) are the relay's, not the client's.
      while (up.skip > 0 && !got.empty()) {
        up.in.append(got);
        got = {};
        for (std::size_t eol; up.skip > 0 && (eol = up.in.find("\r\n")) != std::string::npos;) {
          if (up.in[0] != '+') {
            log::warning("the leader refused to relay client {}: {} (members need the same requirepass)",
                         c.s.address, up.in.substr(0, eol));
            end_forwarding(c, "the leader refused the relayed session",
                           "ERR the leader refused this member's relay (see its log); connect to the leader");
            return;
          }
          up.in.erase(0, eol + 2);
          --up.skip;
        }
        if (up.skip == 0) {
          c.out += up.in;
          up.in.clear();
        }
      }
      c.out.append(got);
      c.committed = c.out.size();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // The leader closed (it stopped, or answered a half-closed client) or the link failed: what
    // came back goes out, then the client's connection closes.
    end_forwarding(c, n == 0 ? "" : "the connection to the leader failed");
    return;
  }
  flush(c);
}

void server::update_upstream_events(connection& c) {
  if (!c.up) return;
  upstream& up = *c.up;
  const std::uint32_t want = (c.out.size() - c.sent <= max_output ? EPOLLIN : 0u) |
                             (!up.connected || up.sent < up.out.size() ? EPOLLOUT : 0u);
  if (want == up.events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.fd = up.fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, up.fd, &ev);
  up.events = want;
}

void server::end_forwarding(connection& c, std::string_view why, std::string_view reply) {
  if (!c.up) return;
  if (!reply.empty()) reply_writer(c.out, c.s.protocol).error(reply);
  if (!why.empty()) log::verbose("client {}: relay to the leader ends: {}", c.s.address, why);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.up->fd, nullptr);
  ::close(c.up->fd);
  upstreams_.erase(c.up->fd);
  c.up.reset();
  // What the leader answered goes out; then the connection closes (its later commands, if any,
  // were sent to a leader that may have run them: the client must not assume either way).
  c.committed = c.out.size();
  c.s.close_after_reply = true;
  c.has_input = false;
}

void server::on_leader_change() {
  const std::uint64_t leader = replica_->leading_member();
  const bool leading = replica_->leader();
  if (leader != 0 && leader != last_leader_) {
    for (auto& [fd, c] : connections_)
      if (c->up && c->up->leader != leader) end_forwarding(*c, "the group has another leader");
  }
  if (leader != 0) last_leader_ = leader;
  if (was_leading_ && !leading) {
    // Clients blocked here (BLPOP, a semaphore's acquire...) would wait for a push this member no
    // longer runs: woken with Redis's error for a master turned replica. Their retries go to the
    // new leader (ONCE makes them exactly-once).
    for (connection* b : blocked_) {
      b->s.blocked = session::blocking{};
      const std::size_t reply_from = b->out.size();
      reply_writer(b->out, b->s.protocol)
          .error("UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)");
      wait_for(*b, reply_from, last_ticket_);
      b->committed = b->out.size();
      b->has_input = b->parsed < b->in.size();
    }
    blocked_.clear();
  }
  was_leading_ = leading;
}

}  // namespace pobj::kv
