// replication/transport: libfabric RDM endpoint, frames, and the completion thread.
//
// Sends and completions are the transport's own thread's: send() only queues the frame and wakes
// it (fi_cq_signal), so a slow peer holds up nothing but its own queue.
#include "transport.hpp"

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>

#include <array>
#include <csignal>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "records.hpp"

namespace pobj::repl {

namespace {

constexpr std::uint32_t frame_magic = 0x70524654;  // "TFRp"
constexpr std::size_t header_size = 4 + 4 + 8 + 8 + 8 + 8 + 8 + 1;
constexpr std::uint8_t kind_hello = 0;  // sent to each peer at start: connects, carries nothing

std::array<std::uint32_t, 256> crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // Castagnoli
    t[i] = c;
  }
  return t;
}

// libfabric is loaded when the first transport opens, not with the program: Debian's libfabric
// links libinfinipath (its PSM provider), whose constructor measures every CPU (about 100 ms per
// core, at every start of any program that links it) and installs handlers for SIGINT, SIGILL,
// SIGABRT, SIGBUS, SIGSEGV and SIGTERM that call exit() (a SIGTERM in that handler during
// fi_getinfo hung in libfabric's destructor: kvstore/src/main.cpp). So a single pobj-kv never
// loads it, and a member loads it with every signal's disposition saved and restored around
// dlopen (a signal during the dlopen itself still meets that handler). The five
// functions it exports that this file calls are taken at the versions the headers name (the rest
// of its API is inline calls through the objects' operation tables).
struct fabric_api {
  int (*getinfo)(std::uint32_t, const char*, const char*, std::uint64_t, const fi_info*, fi_info**) = nullptr;
  void (*freeinfo)(fi_info*) = nullptr;
  fi_info* (*dupinfo)(const fi_info*) = nullptr;
  int (*fabric)(fi_fabric_attr*, fid_fabric**, void*) = nullptr;
  const char* (*strerror)(int) = nullptr;
};

const fabric_api& fabric_lib() {
  static fabric_api api;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<struct sigaction> saved(NSIG);
    for (int s = 1; s < NSIG; ++s) ::sigaction(s, nullptr, &saved[static_cast<std::size_t>(s)]);
    void* h = ::dlopen("libfabric.so.1", RTLD_NOW | RTLD_LOCAL);
    for (int s = 1; s < NSIG; ++s)
      if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &saved[static_cast<std::size_t>(s)], nullptr);
    if (h == nullptr) {
      const char* why = ::dlerror();
      error = fmt::format("cannot load libfabric (Debian's libfabric1): {}", why != nullptr ? why : "?");
      return;
    }
    auto take = [&](auto& fn, const char* name, const char* version) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlvsym(h, name, version));
      if (fn == nullptr && error.empty()) error = fmt::format("libfabric has no {}@{}", name, version);
    };
    take(api.getinfo, "fi_getinfo", "FABRIC_1.3");
    take(api.freeinfo, "fi_freeinfo", "FABRIC_1.3");
    take(api.dupinfo, "fi_dupinfo", "FABRIC_1.3");
    take(api.fabric, "fi_fabric", "FABRIC_1.1");
    take(api.strerror, "fi_strerror", "FABRIC_1.0");
  });
  if (!error.empty()) throw std::runtime_error(error);
  return api;
}

[[noreturn]] void fail(const char* call, int rc) {
  throw std::runtime_error(fmt::format("libfabric: {} failed: {}", call, fabric_lib().strerror(-rc)));
}

}  // namespace

void load_fabric() { fabric_lib(); }

std::uint32_t crc32c(std::string_view bytes) noexcept {
  static const std::array<std::uint32_t, 256> table = crc_table();
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

struct transport::impl {
  // One operation libfabric holds: its context comes first (FI_CONTEXT2 mode).
  struct op {
    fi_context2 ctx{};
    bool receive = false;
    std::uint64_t peer = 0;
    std::string buffer;
  };
  struct outgoing {
    std::chrono::steady_clock::time_point due;
    std::unique_ptr<op> o;
  };
  struct peer {
    peer_address address;
    fi_addr_t fi = FI_ADDR_NOTAVAIL;
    std::size_t queued = 0;  // in the outbox or in flight
    // A peer that takes no frame (libfabric answers EAGAIN: not connected, or its queue full) is
    // tried again after a pause that doubles up to max_backoff while it takes none: each try at a
    // dead peer is a new connection attempt, and trying every millisecond took two cores.
    std::chrono::steady_clock::time_point retry_at{};
    std::chrono::milliseconds backoff{0};
  };
  static constexpr std::chrono::milliseconds max_backoff{100};

  transport_options options;
  receive_handler on_receive;

  fi_info* info = nullptr;
  fid_fabric* fabric = nullptr;
  fid_domain* domain = nullptr;
  fid_cq* cq = nullptr;
  fid_av* av = nullptr;
  fid_ep* ep = nullptr;
  std::string provider_name, local_address;
  std::uint16_t local_port = 0;

  mutable std::mutex mu;
  std::unordered_map<std::uint64_t, peer> peers;
  std::deque<outgoing> outbox;  // frames not yet handed to libfabric (delayed ones included)
  std::unordered_map<std::uint64_t, std::uint64_t> incarnations;  // highest seen per sender
  transport_stats stats;
  bool stopping = false;
  bool closed = false;  // GUARDED_BY(mu): every libfabric object is gone
  std::mutex close_mu;
  std::mt19937_64 rng{std::random_device{}()};

  std::vector<std::unique_ptr<op>> receives;  // posted receive buffers (owned here)
  std::unordered_map<op*, std::unique_ptr<op>> in_flight;
  std::thread thread;

  void open();
  void insert_peer(peer& p);
  void post_receive(op* o);
  void run();
  void handle_receive(op* o, std::size_t len);
  void finish_send(op* o, bool ok);
  void shutdown();
  std::string frame(std::uint64_t to, std::uint8_t kind, std::string_view payload) const;
};

void transport::impl::open() {
  if (options.provider.find("sockets") != std::string::npos)
    throw std::runtime_error("the libfabric 'sockets' provider is refused: its round trips take 15-20 ms; use "
                             "'tcp;ofi_rxm'");
  if (options.self == 0 || options.incarnation == 0)
    throw std::invalid_argument("a transport needs a nonzero member id and incarnation");
  const fabric_api& lib = fabric_lib();
  fi_info* hints = lib.dupinfo(nullptr);  // (fi_allocinfo)
  if (hints == nullptr) throw std::bad_alloc();
  hints->ep_attr->type = FI_EP_RDM;
  hints->caps = FI_MSG;
  hints->mode = FI_CONTEXT | FI_CONTEXT2;
  hints->domain_attr->threading = FI_THREAD_SAFE;  // send() wakes the thread with fi_cq_signal
  hints->domain_attr->mr_mode = 0;
  hints->fabric_attr->prov_name = strdup(options.provider.c_str());
  const std::string port = std::to_string(options.port);
  const int rc = lib.getinfo(FI_VERSION(1, 9), options.host.c_str(), port.c_str(), FI_SOURCE, hints, &info);
  lib.freeinfo(hints);
  if (rc != 0)
    throw std::runtime_error(fmt::format("libfabric: no provider '{}' for {}:{}: {}", options.provider, options.host,
                                         options.port, lib.strerror(-rc)));
  provider_name = info->fabric_attr->prov_name ? info->fabric_attr->prov_name : options.provider;
  if (int r = lib.fabric(info->fabric_attr, &fabric, nullptr)) fail("fi_fabric", r);
  if (int r = fi_domain(fabric, info, &domain, nullptr)) fail("fi_domain", r);
  fi_cq_attr cq_attr{};
  cq_attr.size = options.receive_buffers + options.max_queued * 8 + 64;
  cq_attr.format = FI_CQ_FORMAT_MSG;
  cq_attr.wait_obj = FI_WAIT_UNSPEC;
  if (int r = fi_cq_open(domain, &cq_attr, &cq, nullptr)) fail("fi_cq_open", r);
  fi_av_attr av_attr{};
  av_attr.type = FI_AV_MAP;
  if (int r = fi_av_open(domain, &av_attr, &av, nullptr)) fail("fi_av_open", r);
  if (int r = fi_endpoint(domain, info, &ep, nullptr)) {
    // Most often the address is taken.
    throw std::runtime_error(fmt::format("libfabric: cannot listen on {}:{}: {}", options.host, options.port,
                                         lib.strerror(-r)));
  }
  if (int r = fi_ep_bind(ep, &av->fid, 0)) fail("fi_ep_bind(av)", r);
  if (int r = fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV)) fail("fi_ep_bind(cq)", r);
  if (int r = fi_enable(ep)) {
    throw std::runtime_error(fmt::format("libfabric: cannot listen on {}:{}: {}", options.host, options.port,
                                         lib.strerror(-r)));
  }
  char name[256];
  std::size_t len = sizeof(name);
  if (fi_getname(&ep->fid, name, &len) == 0) {
    // tcp's addresses are sockaddr_in or sockaddr_in6: the port is at the same offset in both.
    if (len >= sizeof(sockaddr_in) && (reinterpret_cast<sockaddr*>(name)->sa_family == AF_INET ||
                                       reinterpret_cast<sockaddr*>(name)->sa_family == AF_INET6))
      local_port = ntohs(reinterpret_cast<sockaddr_in*>(name)->sin_port);
    char text[256];
    std::size_t tlen = sizeof(text);
    fi_av_straddr(av, name, text, &tlen);
    local_address = text;
  }
  for (std::size_t i = 0; i < options.receive_buffers; ++i) {
    auto o = std::make_unique<op>();
    o->receive = true;
    o->buffer.resize(header_size + options.max_frame);
    post_receive(o.get());
    receives.push_back(std::move(o));
  }
  for (const peer_address& p : options.peers) {
    peer& pr = peers[p.id];
    pr.address = p;
    insert_peer(pr);
  }
}

void transport::impl::insert_peer(peer& p) {
  const std::string port = std::to_string(p.address.port);
  fi_addr_t a = FI_ADDR_NOTAVAIL;
  const int n = fi_av_insertsvc(av, p.address.host.c_str(), port.c_str(), &a, 0, nullptr);
  if (n != 1)
    throw std::runtime_error(fmt::format("libfabric: cannot resolve member {} at {}:{}", p.address.id,
                                         p.address.host, p.address.port));
  p.fi = a;
}

void transport::impl::post_receive(op* o) {
  for (;;) {
    const ssize_t r = fi_recv(ep, o->buffer.data(), o->buffer.size(), nullptr, FI_ADDR_UNSPEC, &o->ctx);
    if (r == 0) return;
    if (r != -FI_EAGAIN) fail("fi_recv", static_cast<int>(r));
    fi_cq_entry dummy[1];
    (void)fi_cq_read(cq, dummy, 0);  // progress, then try again
  }
}

std::string transport::impl::frame(std::uint64_t to, std::uint8_t kind, std::string_view payload) const {
  byte_writer w;
  w.u32(frame_magic);
  w.u32(0);  // the checksum, below
  w.u64(options.group);
  w.u64(options.engine);
  w.u64(options.incarnation);
  w.u64(options.self);
  w.u64(to);
  w.u8(kind);
  w.bytes(payload);
  std::string f = std::move(w).take();
  const std::uint32_t c = crc32c(std::string_view(f).substr(8));
  std::memcpy(f.data() + 4, &c, 4);
  return f;
}

void transport::impl::handle_receive(op* o, std::size_t len) {
  std::string_view f(o->buffer.data(), std::min(len, o->buffer.size()));
  auto refuse = [&](std::uint64_t transport_stats::*counter) {
    std::lock_guard lock(mu);
    ++(stats.*counter);
  };
  if (f.size() < header_size) return refuse(&transport_stats::refused_other);
  byte_reader r(f);
  const std::uint32_t magic = r.u32(), sum = r.u32();
  if (magic != frame_magic) return refuse(&transport_stats::refused_other);
  if (crc32c(f.substr(8)) != sum) return refuse(&transport_stats::refused_checksum);
  const std::uint64_t group = r.u64(), engine = r.u64(), incarnation = r.u64(), from = r.u64(), to = r.u64();
  const std::uint8_t kind = r.u8();
  if (group != options.group || to != options.self) return refuse(&transport_stats::refused_group);
  if (engine != options.engine) {
    std::lock_guard lock(mu);
    ++stats.refused_engine;
    stats.engine_refused_from = from;
    stats.engine_refused_value = engine;
    return;
  }
  {
    std::lock_guard lock(mu);
    std::uint64_t& seen = incarnations[from];
    if (incarnation < seen) {
      ++stats.refused_stale;
      return;
    }
    seen = incarnation;
    ++stats.received;
  }
  if (kind != kind_hello && on_receive) {
    try {
      on_receive(from, kind, r.rest());
    } catch (...) {
      std::lock_guard lock(mu);
      ++stats.refused_other;  // the handler failed on it: dropped, as a lost frame
    }
  }
}

void transport::impl::finish_send(op* o, bool ok) {
  std::lock_guard lock(mu);
  if (auto it = peers.find(o->peer); it != peers.end() && it->second.queued > 0) --it->second.queued;
  if (ok) ++stats.sent;
  else ++stats.send_errors;
  in_flight.erase(o);
}

void transport::impl::run() {
  std::array<fi_cq_msg_entry, 32> done;
  for (;;) {
    // Hand libfabric the frames that are due.
    int wait_ms = 100;
    {
      std::unique_lock lock(mu);
      if (stopping) return;
      const auto now = std::chrono::steady_clock::now();
      std::deque<outgoing> later;
      while (!outbox.empty()) {
        outgoing g = std::move(outbox.front());
        outbox.pop_front();
        if (g.due > now) {
          wait_ms = std::min<int>(wait_ms, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                g.due - now).count()) + 1);
          later.push_back(std::move(g));
          continue;
        }
        const auto it = peers.find(g.o->peer);
        if (it == peers.end()) {
          continue;  // the peer was removed meanwhile
        }
        peer& pr = it->second;
        if (pr.retry_at > now) {  // backing off (its frames keep their order)
          wait_ms = std::min<int>(wait_ms, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                pr.retry_at - now).count()) + 1);
          later.push_back(std::move(g));
          continue;
        }
        const ssize_t r = fi_send(ep, g.o->buffer.data(), g.o->buffer.size(), nullptr, pr.fi, &g.o->ctx);
        if (r == 0) {
          pr.backoff = std::chrono::milliseconds(0);
          op* raw = g.o.get();
          in_flight.emplace(raw, std::move(g.o));
        } else if (r == -FI_EAGAIN) {
          ++stats.send_retries;
          pr.backoff = std::min(max_backoff, std::max(std::chrono::milliseconds(1), pr.backoff * 2));
          pr.retry_at = now + pr.backoff;
          later.push_back(std::move(g));  // again after the completions below, or the pause
          wait_ms = std::min<int>(wait_ms, static_cast<int>(pr.backoff.count()) + 1);
        } else {
          ++stats.send_errors;
          if (it->second.queued > 0) --it->second.queued;
        }
      }
      outbox = std::move(later);
    }
    const ssize_t n = fi_cq_sread(cq, done.data(), done.size(), nullptr, wait_ms);
    if (n > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        op* o = static_cast<op*>(done[i].op_context);
        if (o->receive) {
          handle_receive(o, done[i].len);
          {
            std::lock_guard lock(mu);
            if (stopping) return;
          }
          post_receive(o);
        } else {
          finish_send(o, true);
        }
      }
    } else if (n == -FI_EAVAIL) {
      fi_cq_err_entry err{};
      if (fi_cq_readerr(cq, &err, 0) == 1 && err.op_context != nullptr) {
        op* o = static_cast<op*>(err.op_context);
        if (o->receive) {
          {
            std::lock_guard lock(mu);
            ++stats.refused_other;  // truncated (larger than max_frame) or canceled
            if (stopping) return;
          }
          post_receive(o);
        } else {
          finish_send(o, false);
        }
      }
    }
    // n == -FI_EAGAIN: the wait timed out, or send() woke us.
  }
}

void transport::impl::shutdown() {
  std::lock_guard once(close_mu);  // two close() calls at once: the second waits, then does nothing
  {
    std::lock_guard lock(mu);
    if (closed) return;
    stopping = true;
    if (cq != nullptr) fi_cq_signal(cq);
  }
  if (thread.joinable()) thread.join();
  if (ep != nullptr) fi_close(&ep->fid);
  if (av != nullptr) fi_close(&av->fid);
  if (cq != nullptr) fi_close(&cq->fid);
  if (domain != nullptr) fi_close(&domain->fid);
  if (fabric != nullptr) fi_close(&fabric->fid);
  if (info != nullptr) fabric_lib().freeinfo(info);
  ep = nullptr;
  av = nullptr;
  cq = nullptr;
  domain = nullptr;
  fabric = nullptr;
  info = nullptr;
  in_flight.clear();
  outbox.clear();
  std::lock_guard lock(mu);
  closed = true;
}

transport::transport(transport_options options, receive_handler on_receive) : impl_(std::make_unique<impl>()) {
  impl_->options = std::move(options);
  impl_->on_receive = std::move(on_receive);
  try {
    impl_->open();
  } catch (...) {
    impl_->shutdown();
    throw;
  }
  impl_->thread = std::thread([this] { impl_->run(); });
  // Connect every peer now: libfabric connects on the first message, in tens of milliseconds.
  for (const peer_address& p : impl_->options.peers) send(p.id, kind_hello, {});
}

transport::~transport() { close(); }

void transport::close() { impl_->shutdown(); }

bool transport::flush(std::uint64_t to, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    {
      std::lock_guard lock(impl_->mu);
      if (impl_->stopping) return false;
      const auto it = impl_->peers.find(to);
      if (it == impl_->peers.end() || it->second.queued == 0) return true;
    }
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool transport::send(std::uint64_t to, std::uint8_t kind, std::string_view payload) {
  if (payload.size() > impl_->options.max_frame) return false;
  fault f;
  if (impl_->options.fault_hook) f = impl_->options.fault_hook(to, kind);
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return false;
    auto it = impl_->peers.find(to);
    if (it == impl_->peers.end()) return false;
    if (f.drop) {
      ++impl_->stats.dropped_fault;
      return true;  // as a network would: the sender never knows
    }
    const int copies = f.duplicate ? 2 : 1;
    if (it->second.queued + copies > impl_->options.max_queued) {
      ++impl_->stats.dropped_full;
      return false;
    }
    for (int i = 0; i < copies; ++i) {
      auto o = std::make_unique<impl::op>();
      o->peer = to;
      o->buffer = impl_->frame(to, kind, payload);
      if (f.corrupt && o->buffer.size() > header_size) {
        std::uniform_int_distribution<std::size_t> at(8, o->buffer.size() - 1);
        o->buffer[at(impl_->rng)] ^= 0x5a;
      }
      impl_->outbox.push_back({std::chrono::steady_clock::now() + f.delay, std::move(o)});
      ++it->second.queued;
    }
    fi_cq_signal(impl_->cq);  // under the lock: close() cannot free the queue meanwhile
  }
  return true;
}

void transport::add_peer(const peer_address& p) {
  {
    std::lock_guard lock(impl_->mu);
    impl::peer& pr = impl_->peers[p.id];
    pr.address = p;
    impl_->insert_peer(pr);
  }
  send(p.id, kind_hello, {});  // connects now, not on the first real message
}

transport_stats transport::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

std::string transport::provider() const { return impl_->provider_name; }
std::string transport::address() const { return impl_->local_address; }
std::uint16_t transport::port() const { return impl_->local_port; }

}  // namespace pobj::repl
