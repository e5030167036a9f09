// Closed-loop write load for bench/replication/run.sh: the same puts against pobj-kv, Redis (with
// WAIT after the writes, as Redis's nearest to an acknowledged-by-replicas write) and etcd (its
// HTTP/JSON gateway, /v3/kv/put), with throughput and latency percentiles.
//
//   loadgen --proto resp|resp-wait|etcd --port P [--host 127.0.0.1] [--clients 50]
//           [--pipeline 1] [--seconds 5] [--keys 1000000] [--value-size 3] [--wait-replicas 1]
//
// One thread drives every connection through epoll (the machine has two cores: the servers need
// the rest). A client sends a batch of `pipeline` writes to random keys and sends the next batch
// when every reply of this one has come: each write's latency runs from its batch's send to its
// reply. resp: SET key value. resp-wait: the batch's SETs then one WAIT N 0 (its latency counts
// for every SET of the batch: they are acknowledged when WAIT answers). etcd: HTTP/1.1 has no
// pipelining that a server runs concurrently, so etcd gets clients x pipeline connections with one
// put outstanding on each: the same number of writes in flight.
//
// Output, one line: proto clients pipeline seconds writes writes/s p50_us p99_us errors
// Exits 1 when no write succeeded or more than 1% failed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

enum class proto { resp, resp_wait, etcd };

struct options {
  proto kind = proto::resp;
  std::string host = "127.0.0.1";
  int port = 0;
  int clients = 50;
  int pipeline = 1;
  double seconds = 5;
  std::uint64_t keys = 1000000;
  int value_size = 3;
  int wait_replicas = 1;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "loadgen: %s\nusage: loadgen --proto resp|resp-wait|etcd --port P [--host H] [--clients N] "
               "[--pipeline N] [--seconds S] [--keys N] [--value-size N] [--wait-replicas N]\n",
               why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i + 1 >= argc) usage("every option takes a value");
    const char* v = argv[++i];
    char* end = nullptr;
    auto number = [&] {
      double d = std::strtod(v, &end);
      if (end == v || *end != '\0' || d < 0) usage("a value is not a number");
      return d;
    };
    if (a == "--proto") {
      std::string_view p = v;
      if (p == "resp") o.kind = proto::resp;
      else if (p == "resp-wait") o.kind = proto::resp_wait;
      else if (p == "etcd") o.kind = proto::etcd;
      else usage("--proto is resp, resp-wait or etcd");
    } else if (a == "--host") {
      o.host = v;
    } else if (a == "--port") {
      o.port = static_cast<int>(number());
    } else if (a == "--clients") {
      o.clients = static_cast<int>(number());
    } else if (a == "--pipeline") {
      o.pipeline = static_cast<int>(number());
    } else if (a == "--seconds") {
      o.seconds = number();
    } else if (a == "--keys") {
      o.keys = static_cast<std::uint64_t>(number());
    } else if (a == "--value-size") {
      o.value_size = static_cast<int>(number());
    } else if (a == "--wait-replicas") {
      o.wait_replicas = static_cast<int>(number());
    } else {
      usage("unknown option");
    }
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is required");
  if (o.clients < 1 || o.pipeline < 1 || o.keys < 1 || o.seconds <= 0) usage("values must be positive");
  return o;
}

std::string base64(std::string_view in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
    out += table[n >> 18];
    out += table[(n >> 12) & 63];
    out += table[(n >> 6) & 63];
    out += table[n & 63];
  }
  if (i + 1 == in.size()) {
    std::uint32_t n = std::uint8_t(in[i]) << 16;
    out += table[n >> 18];
    out += table[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
    out += table[n >> 18];
    out += table[(n >> 12) & 63];
    out += table[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

struct connection {
  int fd = -1;
  std::string out;          // bytes not yet sent
  std::size_t out_sent = 0;
  std::string in;           // bytes received, not yet parsed
  int replies_due = 0;      // replies this batch still owes
  int writes_in_batch = 0;  // writes whose latency ends with this batch (resp-wait: at WAIT)
  clock_type::time_point sent;
};

class driver {
 public:
  explicit driver(options o) : o_(std::move(o)), rng_(std::random_device{}()), value_(o_.value_size, 'x') {
    value64_ = base64(value_);
  }

  int run() {
    int connections = o_.kind == proto::etcd ? o_.clients * o_.pipeline : o_.clients;
    ep_ = epoll_create1(0);
    conns_.resize(connections);
    for (int i = 0; i < connections; ++i) open(i);
    auto start = clock_type::now();
    deadline_ = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o_.seconds));
    for (int i = 0; i < connections; ++i) send_batch(i);
    std::vector<epoll_event> events(256);
    while (true) {
      auto now = clock_type::now();
      if (now >= deadline_) break;
      int timeout = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now).count()) + 1;
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) die("epoll_wait");
      for (int k = 0; k < n; ++k) {
        int i = static_cast<int>(events[k].data.u32);
        if (events[k].events & EPOLLOUT) flush(i);
        if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) receive(i);
      }
    }
    double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
    std::sort(latencies_us_.begin(), latencies_us_.end());
    auto pct = [&](double p) -> double {
      if (latencies_us_.empty()) return 0;
      auto idx = static_cast<std::size_t>(p * static_cast<double>(latencies_us_.size() - 1));
      return latencies_us_[idx];
    };
    const char* names[] = {"resp", "resp-wait", "etcd"};
    std::printf("%s %d %d %.2f %zu %.0f %.0f %.0f %zu\n", names[static_cast<int>(o_.kind)], o_.clients, o_.pipeline,
                elapsed, latencies_us_.size(), static_cast<double>(latencies_us_.size()) / elapsed, pct(0.5),
                pct(0.99), errors_);
    if (errors_ > 0) std::fprintf(stderr, "loadgen: %zu errors; the first: %s\n", errors_, first_error_.c_str());
    if (latencies_us_.empty() || errors_ * 100 > latencies_us_.size()) return 1;
    return 0;
  }

 private:
  [[noreturn]] static void die(const char* what) {
    std::fprintf(stderr, "loadgen: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
  }

  void open(int i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    if (inet_pton(AF_INET, o_.host.c_str(), &a.sin_addr) != 1) usage("--host must be a numeric IPv4 address");
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conns_[i].fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
  }

  std::string key() { return "key:" + std::to_string(rng_() % o_.keys); }

  void send_batch(int i) {
    auto& c = conns_[i];
    c.out.clear();
    c.out_sent = 0;
    if (o_.kind == proto::etcd) {
      std::string body = "{\"key\":\"" + base64(key()) + "\",\"value\":\"" + value64_ + "\"}";
      c.out = "POST /v3/kv/put HTTP/1.1\r\nHost: " + o_.host + "\r\nContent-Type: application/json\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body;
      c.replies_due = 1;
      c.writes_in_batch = 1;
    } else {
      for (int k = 0; k < o_.pipeline; ++k) {
        std::string k_ = key();
        c.out += "*3\r\n$3\r\nSET\r\n$" + std::to_string(k_.size()) + "\r\n" + k_ + "\r\n$" +
                 std::to_string(value_.size()) + "\r\n" + value_ + "\r\n";
      }
      c.replies_due = o_.pipeline;
      c.writes_in_batch = o_.pipeline;
      if (o_.kind == proto::resp_wait) {
        std::string n = std::to_string(o_.wait_replicas);
        c.out += "*3\r\n$4\r\nWAIT\r\n$" + std::to_string(n.size()) + "\r\n" + n + "\r\n$1\r\n0\r\n";
        c.replies_due += 1;
      }
    }
    c.sent = clock_type::now();
    flush(i);
  }

  void flush(int i) {
    auto& c = conns_[i];
    while (c.out_sent < c.out.size()) {
      ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0) die("send");
      c.out_sent += static_cast<std::size_t>(n);
    }
    epoll_event ev{};
    ev.events = EPOLLIN | (c.out_sent < c.out.size() ? EPOLLOUT : 0u);
    ev.data.u32 = static_cast<std::uint32_t>(i);
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void receive(int i) {
    auto& c = conns_[i];
    char buf[65536];
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n == 0) {
      errno = ECONNRESET;
      die("the server closed a connection");
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      die("recv");
    }
    c.in.append(buf, static_cast<std::size_t>(n));
    std::size_t used = o_.kind == proto::etcd ? parse_http(c) : parse_resp(c);
    c.in.erase(0, used);
    if (c.replies_due == 0 && clock_type::now() < deadline_) send_batch(i);
  }

  void reply_done(connection& c, bool ok, std::string_view what) {
    auto now = clock_type::now();
    double us = std::chrono::duration<double, std::micro>(now - c.sent).count();
    --c.replies_due;
    if (!ok) {
      ++errors_;
      if (first_error_.empty()) first_error_ = std::string(what.substr(0, 200));
    }
    if (o_.kind == proto::resp_wait) {
      // the SETs count when WAIT (the batch's last reply) answers
      if (c.replies_due == 0) latencies_us_.insert(latencies_us_.end(), static_cast<std::size_t>(c.writes_in_batch), us);
    } else {
      latencies_us_.push_back(us);
    }
  }

  // Single-line replies only (+OK, :n, -ERR): what SET and WAIT answer.
  std::size_t parse_resp(connection& c) {
    std::size_t pos = 0;
    while (c.replies_due > 0) {
      auto eol = c.in.find("\r\n", pos);
      if (eol == std::string::npos) break;
      std::string_view line(c.in.data() + pos, eol - pos);
      bool ok = !line.empty() && line[0] != '-';
      if (o_.kind == proto::resp_wait && c.replies_due == 1 && ok && line[0] == ':') {
        long acked = std::strtol(std::string(line.substr(1)).c_str(), nullptr, 10);
        if (acked < o_.wait_replicas) ok = false;  // WAIT timed out short of the replicas asked for
      }
      reply_done(c, ok, line);
      pos = eol + 2;
    }
    return pos;
  }

  // One HTTP/1.1 response with Content-Length or chunked encoding.
  std::size_t parse_http(connection& c) {
    auto head_end = c.in.find("\r\n\r\n");
    if (head_end == std::string::npos) return 0;
    std::string_view head(c.in.data(), head_end);
    bool ok = head.substr(0, 12) == "HTTP/1.1 200";
    std::string lower(head);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    std::size_t body = head_end + 4;
    auto cl = lower.find("content-length:");
    if (cl != std::string::npos) {
      std::size_t len = std::strtoul(lower.c_str() + cl + 15, nullptr, 10);
      if (c.in.size() < body + len) return 0;
      reply_done(c, ok, ok ? std::string_view() : std::string_view(c.in.data(), body + len));
      return body + len;
    }
    if (lower.find("transfer-encoding: chunked") == std::string::npos) {
      std::fprintf(stderr, "loadgen: an HTTP reply with neither a length nor chunks\n");
      std::exit(1);
    }
    std::size_t pos = body;
    while (true) {
      auto eol = c.in.find("\r\n", pos);
      if (eol == std::string::npos) return 0;
      std::size_t len = std::strtoul(c.in.c_str() + pos, nullptr, 16);
      if (len == 0) {
        auto end = c.in.find("\r\n\r\n", eol);
        if (end == std::string::npos) {
          if (c.in.size() >= eol + 4 && c.in.compare(eol, 4, "\r\n\r\n") == 0) end = eol;
          else return 0;
        }
        reply_done(c, ok, ok ? std::string_view() : std::string_view(c.in.data(), end + 4));
        return end + 4;
      }
      if (c.in.size() < eol + 2 + len + 2) return 0;
      pos = eol + 2 + len + 2;
    }
  }

  options o_;
  std::mt19937_64 rng_;
  std::string value_, value64_;
  int ep_ = -1;
  std::vector<connection> conns_;
  clock_type::time_point deadline_;
  std::vector<double> latencies_us_;
  std::size_t errors_ = 0;
  std::string first_error_;
};

}  // namespace

int main(int argc, char** argv) { return driver(parse(argc, argv)).run(); }
