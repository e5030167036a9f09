#include <pobjkv/client.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

namespace pobjkv {

namespace {

// An I/O failure: the connection is dropped and the call retried.
struct broken : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string fresh_id() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^ std::hash<std::thread::id>{}(std::this_thread::get_id())};
  static constexpr char hex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    std::uint64_t v = rng();
    for (int i = 0; i < 16; ++i, v >>= 4) id[static_cast<std::size_t>(half * 16 + i)] = hex[v & 15];
  }
  return id;
}

class connection {
 public:
  connection(const options& o) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(o.port);
    if (getaddrinfo(o.host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
      throw broken("cannot resolve " + o.host);
    }
    fd_ = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = fd_ >= 0 && ::connect(fd_, found->ai_addr, found->ai_addrlen) == 0;
    freeaddrinfo(found);
    if (!ok) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      throw broken("cannot connect to " + o.host + ":" + port);
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!o.password.empty()) {
      try {
        send({{"AUTH", o.password}});
        if (reply r = receive(); r.type == reply::kind::error) throw server_error(r.text);
      } catch (...) {  // no destructor runs for a constructor that throws
        ::close(fd_);
        fd_ = -1;
        throw;
      }
    }
  }
  ~connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  void send(const std::vector<std::vector<std::string>>& commands) {
    std::string out;
    for (const auto& args : commands) {
      out += '*' + std::to_string(args.size()) + "\r\n";
      for (const auto& a : args) {
        out += '$' + std::to_string(a.size()) + "\r\n";
        out += a;
        out += "\r\n";
      }
    }
    for (std::size_t at = 0; at < out.size();) {
      const ssize_t n = ::send(fd_, out.data() + at, out.size() - at, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw broken("send failed");
      at += static_cast<std::size_t>(n);
    }
  }

  reply receive() {
    reply r;
    const std::string line = read_line();
    if (line.empty()) throw broken("empty reply line");
    const std::string_view rest = std::string_view(line).substr(1);
    switch (line[0]) {
      case '+': r.type = reply::kind::status; r.text = rest; return r;
      case '-': r.type = reply::kind::error; r.text = rest; return r;
      case ':': r.type = reply::kind::integer; r.integer = number(rest); return r;
      case '$': {
        const std::int64_t n = number(rest);
        if (n < 0) return r;  // nil
        r.type = reply::kind::string;
        r.text = read_exact(static_cast<std::size_t>(n) + 2);
        r.text.resize(static_cast<std::size_t>(n));
        return r;
      }
      case '*': {
        const std::int64_t n = number(rest);
        if (n < 0) return r;
        r.type = reply::kind::array;
        for (std::int64_t i = 0; i < n; ++i) r.elements.push_back(receive());
        return r;
      }
      default: throw broken("unexpected reply type");
    }
  }

 private:
  static std::int64_t number(std::string_view s) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) throw broken("bad number in a reply");
    return v;
  }
  void fill() {
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw broken("connection closed");
      in_.append(buf, static_cast<std::size_t>(n));
      return;
    }
  }
  std::string read_line() {
    for (;;) {
      if (const auto end = in_.find("\r\n", at_); end != std::string::npos) {
        std::string line = in_.substr(at_, end - at_);
        consume(end + 2 - at_);
        return line;
      }
      fill();
    }
  }
  std::string read_exact(std::size_t n) {
    while (in_.size() - at_ < n) fill();
    std::string s = in_.substr(at_, n);
    consume(n);
    return s;
  }
  void consume(std::size_t n) {
    at_ += n;
    if (at_ == in_.size()) {
      in_.clear();
      at_ = 0;
    }
  }

  int fd_ = -1;
  std::string in_;
  std::size_t at_ = 0;
};

}  // namespace

struct client::impl {
  options opts;
  std::mutex mu;
  std::vector<std::unique_ptr<connection>> idle;  // GUARDED_BY(mu)

  std::unique_ptr<connection> borrow() {
    {
      std::lock_guard lock(mu);
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
    }
    return std::make_unique<connection>(opts);
  }
  void give_back(std::unique_ptr<connection> c) {
    std::lock_guard lock(mu);
    if (idle.size() < opts.pool_size) idle.push_back(std::move(c));
  }
  void drop_all() {
    std::lock_guard lock(mu);
    idle.clear();  // the server may be a new process: every old socket is dead
  }

  // Sends `commands` and reads one reply each, retrying on a fresh connection after a failure.
  std::vector<reply> exchange(const std::vector<std::vector<std::string>>& commands) {
    const auto deadline = std::chrono::steady_clock::now() + opts.retry_for;
    auto pause = std::chrono::milliseconds(10);
    for (;;) {
      try {
        auto c = borrow();
        c->send(commands);
        std::vector<reply> out;
        out.reserve(commands.size());
        for (std::size_t i = 0; i < commands.size(); ++i) out.push_back(c->receive());
        give_back(std::move(c));
        return out;
      } catch (const broken& e) {
        drop_all();
        if (std::chrono::steady_clock::now() > deadline) {
          throw unavailable("pobj-kv at " + opts.host + ":" + std::to_string(opts.port) + " unreachable: " + e.what());
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(500));
      }
    }
  }
};

client::client(options o) : impl_(std::make_unique<impl>()) { impl_->opts = std::move(o); }
client::~client() = default;

namespace {
reply checked(reply r) {
  if (r.type == reply::kind::error) throw server_error(r.text);
  return r;
}
}  // namespace

reply client::call(std::vector<std::string> args, std::string request_id) {
  args.insert(args.begin(), {"ONCE", request_id.empty() ? fresh_id() : std::move(request_id)});
  return checked(std::move(impl_->exchange({args}).front()));
}

reply client::read(std::vector<std::string> args) { return checked(std::move(impl_->exchange({args}).front())); }

std::vector<reply> client::pipeline(const std::vector<std::vector<std::string>>& calls) {
  std::vector<std::vector<std::string>> tagged;
  tagged.reserve(calls.size());
  for (const auto& c : calls) {
    tagged.push_back({"ONCE", fresh_id()});
    tagged.back().insert(tagged.back().end(), c.begin(), c.end());
  }
  return impl_->exchange(tagged);
}

atomic_long client::atomic_long_at(std::string name) { return {*this, std::move(name)}; }
atomic_ref client::atomic_ref_at(std::string name) { return {*this, std::move(name)}; }
cyclic_barrier client::barrier(std::string name, std::int64_t parties) { return {*this, std::move(name), parties}; }
count_down_latch client::latch(std::string name) { return {*this, std::move(name)}; }
semaphore client::semaphore_at(std::string name) { return {*this, std::move(name)}; }
map client::map_at(std::string name) { return {*this, std::move(name)}; }
list client::list_at(std::string name) { return {*this, std::move(name)}; }
queue client::queue_at(std::string name) { return {*this, std::move(name)}; }
shared_object client::object_at(std::string name, std::string class_name) {
  if (!class_name.empty()) call({"OBJ.NEW", name, std::move(class_name)});  // 0 if it was there: no change
  return {*this, std::move(name)};
}

// ---- handles -------------------------------------------------------------------------------------

namespace {
std::string ms(std::chrono::milliseconds t) { return std::to_string(std::max<std::int64_t>(1, t.count())); }
void add_timeout(std::vector<std::string>& args, std::optional<std::chrono::milliseconds> t) {
  if (t) {
    args.emplace_back("TIMEOUT");
    args.push_back(ms(*t));
  }
}
std::int64_t as_integer(const reply& r) {
  if (r.type == reply::kind::integer) return r.integer;
  if (r.type == reply::kind::string) return std::stoll(r.text);
  return 0;
}
}  // namespace

std::int64_t atomic_long::get() const { return as_integer(c_->read({"GET", name_})); }
void atomic_long::set(std::int64_t v) { c_->call({"SET", name_, std::to_string(v)}); }
std::int64_t atomic_long::add_and_get(std::int64_t d) { return c_->call({"INCRBY", name_, std::to_string(d)}).integer; }
bool atomic_long::compare_and_set(std::int64_t e, std::int64_t d) {
  return c_->call({"CAS", name_, std::to_string(e), std::to_string(d)}).integer == 1;
}

std::optional<std::string> atomic_ref::get() const {
  reply r = c_->read({"GET", name_});
  if (r.is_nil()) return std::nullopt;
  return r.text;
}
void atomic_ref::set(std::string_view v) { c_->call({"SET", name_, std::string(v)}); }
bool atomic_ref::compare_and_set(const std::optional<std::string>& e, std::string_view d) {
  if (!e) return c_->call({"SETNX", name_, std::string(d)}).integer == 1;
  return c_->call({"CAS", name_, *e, std::string(d)}).integer == 1;
}

std::optional<std::int64_t> cyclic_barrier::await(std::optional<std::chrono::milliseconds> timeout) {
  std::vector<std::string> args{"BARRIER.AWAIT", name_, std::to_string(parties_)};
  add_timeout(args, timeout);
  reply r = c_->call(std::move(args));
  if (r.is_nil()) return std::nullopt;
  return r.integer;
}
std::int64_t cyclic_barrier::waiting() const { return c_->read({"BARRIER.WAITING", name_}).integer; }

bool count_down_latch::create(std::int64_t n) { return c_->call({"LATCH.CREATE", name_, std::to_string(n)}).integer == 1; }
std::int64_t count_down_latch::count_down() { return c_->call({"LATCH.COUNTDOWN", name_}).integer; }
std::optional<std::int64_t> count_down_latch::count() const {
  reply r = c_->read({"LATCH.COUNT", name_});
  if (r.is_nil()) return std::nullopt;
  return r.integer;
}
bool count_down_latch::await(std::optional<std::chrono::milliseconds> timeout) {
  std::vector<std::string> args{"LATCH.AWAIT", name_};
  add_timeout(args, timeout);
  return !c_->read(std::move(args)).is_nil();
}

bool semaphore::create(std::int64_t n) { return c_->call({"SEM.CREATE", name_, std::to_string(n)}).integer == 1; }
bool semaphore::acquire(std::int64_t permits, std::optional<std::chrono::milliseconds> timeout) {
  std::vector<std::string> args{"SEM.ACQUIRE", name_, "PERMITS", std::to_string(permits)};
  add_timeout(args, timeout);
  return !c_->call(std::move(args)).is_nil();
}
std::optional<std::string> semaphore::acquire_leased(std::chrono::milliseconds lease, std::int64_t permits,
                                                     std::optional<std::chrono::milliseconds> timeout) {
  std::vector<std::string> args{"SEM.ACQUIRE", name_, "PERMITS", std::to_string(permits), "LEASE", ms(lease)};
  add_timeout(args, timeout);
  reply r = c_->call(std::move(args));
  if (r.is_nil()) return std::nullopt;
  return r.text;
}
std::int64_t semaphore::release(std::int64_t permits) {
  return c_->call({"SEM.RELEASE", name_, "PERMITS", std::to_string(permits)}).integer;
}
std::int64_t semaphore::release_lease(const std::string& lease) { return c_->call({"SEM.RELEASE", name_, "LEASE", lease}).integer; }
bool semaphore::renew(const std::string& lease, std::chrono::milliseconds t) {
  return c_->call({"SEM.RENEW", name_, lease, ms(t)}).integer == 1;
}
std::int64_t semaphore::available() const { return c_->read({"SEM.AVAILABLE", name_}).integer; }

namespace detail {
std::string encode_value(std::string_view v) { return std::string(v); }
std::string encode_value(std::int64_t v) { return std::to_string(v); }
void decode_value(const std::string& s, std::string& out) { out = s; }
void decode_value(const std::string& s, std::int64_t& out) { out = std::stoll(s); }
std::optional<std::string> future_get(client& c, const std::string& name, std::optional<std::chrono::milliseconds> t) {
  std::vector<std::string> args{"FUTURE.GET", name};
  add_timeout(args, t);
  reply r = c.read(std::move(args));
  if (r.is_nil()) return std::nullopt;
  return r.text;
}
bool future_set(client& c, const std::string& name, const std::string& value) {
  return c.call({"FUTURE.SET", name, value}).integer == 1;
}
}  // namespace detail

std::optional<std::string> map::get(std::string_view f) const {
  reply r = c_->read({"HGET", name_, std::string(f)});
  if (r.is_nil()) return std::nullopt;
  return r.text;
}
void map::put(std::string_view f, std::string_view v) { c_->call({"HSET", name_, std::string(f), std::string(v)}); }
bool map::erase(std::string_view f) { return c_->call({"HDEL", name_, std::string(f)}).integer == 1; }
std::int64_t map::size() const { return c_->read({"HLEN", name_}).integer; }
std::vector<std::pair<std::string, std::string>> map::items() const {
  reply r = c_->read({"HGETALL", name_});
  std::vector<std::pair<std::string, std::string>> out;
  for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) out.emplace_back(r.elements[i].text, r.elements[i + 1].text);
  return out;
}

std::int64_t list::push_back(std::string_view v) { return c_->call({"RPUSH", name_, std::string(v)}).integer; }
std::vector<std::string> list::range(std::int64_t from, std::int64_t to) const {
  reply r = c_->read({"LRANGE", name_, std::to_string(from), std::to_string(to)});
  std::vector<std::string> out;
  for (auto& e : r.elements) out.push_back(std::move(e.text));
  return out;
}
std::int64_t list::size() const { return c_->read({"LLEN", name_}).integer; }

std::int64_t queue::put(std::string_view v) { return c_->call({"RPUSH", name_, std::string(v)}).integer; }
std::optional<std::string> queue::poll() {
  reply r = c_->call({"LPOP", name_});
  if (r.is_nil()) return std::nullopt;
  return r.text;
}
std::int64_t queue::size() const { return c_->read({"LLEN", name_}).integer; }

std::optional<std::string> shared_object::class_name() const {
  reply r = c_->read({"OBJ.CLASS", name_});
  if (r.is_nil()) return std::nullopt;
  return r.text;
}
std::optional<std::string> shared_object::fields() const {
  reply r = c_->read({"OBJ.GET", name_});
  if (r.is_nil()) return std::nullopt;
  return r.text;
}

}  // namespace pobjkv
