// replication/raft_node: the records of core.h, both ways, and the node's thread.
#include "raft_node.hpp"

#include <cstring>
#include <stdexcept>

#include "../raft/core.h"
#include "records.hpp"

namespace pobj::repl {

std::string_view role_name(role r) noexcept {
  switch (r) {
    case role::follower: return "follower";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
    case role::pre_candidate: return "pre-candidate";
  }
  return "unknown";
}

std::string conf_change_data(conf_op op, std::uint64_t member) {
  std::string out(32, '\0');
  const std::size_t n = pobj_raft_conf_change(static_cast<int>(op), member, reinterpret_cast<std::uint8_t*>(out.data()),
                                              out.size());
  if (n > out.size()) throw std::logic_error("a conf change larger than its bound");
  out.resize(n);
  return out;
}

namespace {

log_entry read_entry(byte_reader& r) {
  log_entry e;
  e.index = r.u64();
  e.term = r.u64();
  e.type = static_cast<entry_type>(r.u8());
  e.data = std::string(r.rest());
  return e;
}

// Decodes a Ready (core.h's output records). Throws std::runtime_error if malformed.
ready decode_ready(std::string_view bytes) {
  ready rd;
  byte_reader in(bytes);
  while (!in.done()) {
    const std::uint8_t kind = in.u8();
    byte_reader p(in.take(in.u32()));
    switch (kind) {
      case POBJ_RAFT_OUT_SOFT_STATE: {
        const std::uint64_t lead = p.u64();
        rd.soft = {lead, static_cast<role>(p.u8())};
        break;
      }
      case POBJ_RAFT_OUT_HARD_STATE: {
        hard_state h;
        h.term = p.u64();
        h.vote = p.u64();
        h.commit = p.u64();
        rd.hard = h;
        break;
      }
      case POBJ_RAFT_OUT_ENTRY: rd.entries.push_back(read_entry(p)); break;
      case POBJ_RAFT_OUT_SNAPSHOT: {
        snapshot_meta s;
        s.index = p.u64();
        s.term = p.u64();
        s.conf = std::string(p.take(p.u32()));
        rd.snapshot = std::move(s);
        rd.snapshot_data = std::string(p.rest());
        break;
      }
      case POBJ_RAFT_OUT_MESSAGE: {
        outgoing_message m;
        m.to = p.u64();
        m.type = p.u8();
        m.bytes = std::string(p.rest());
        rd.messages.push_back(std::move(m));
        break;
      }
      case POBJ_RAFT_OUT_COMMITTED: rd.committed.push_back(read_entry(p)); break;
      case POBJ_RAFT_OUT_READ_STATE: {
        read_state s;
        s.index = p.u64();
        s.context = std::string(p.rest());
        rd.reads.push_back(std::move(s));
        break;
      }
      case POBJ_RAFT_OUT_CONF_STATE: {
        const std::uint64_t index = p.u64();
        conf_state c;
        c.encoded = std::string(p.take(p.u32()));
        for (std::uint32_t i = 0, n = p.u32(); i < n; ++i) c.voters.push_back(p.u64());
        for (std::uint32_t i = 0, n = p.u32(); i < n; ++i) c.learners.push_back(p.u64());
        rd.conf_changes.emplace_back(index, std::move(c));
        member_change mc;
        mc.index = index;
        mc.op = static_cast<conf_op>(p.u8());
        mc.member = p.u64();
        mc.context = std::string(p.take(p.u32()));
        rd.member_changes.push_back(std::move(mc));
        break;
      }
      case POBJ_RAFT_OUT_STATUS: {
        node_status s;
        s.id = p.u64();
        s.term = p.u64();
        s.leader = p.u64();
        s.state = static_cast<role>(p.u8());
        s.commit = p.u64();
        s.applied = p.u64();
        while (!p.done()) {
          peer_progress pr;
          pr.id = p.u64();
          pr.match = p.u64();
          pr.next = p.u64();
          pr.learner = p.u8() != 0;
          s.peers.push_back(pr);
        }
        rd.status = std::move(s);
        break;
      }
      case POBJ_RAFT_OUT_MUST_SYNC: rd.must_sync = p.u8() != 0; break;
      default: break;  // a record this version does not know: skipped
    }
  }
  return rd;
}

}  // namespace

static std::string encode_start(const node_options& o, const start_state& s) {
  byte_writer w;
  w.u64(o.id);
  w.u32(o.election_ticks);
  w.u32(o.heartbeat_ticks);
  w.u64(s.applied);
  w.u64(o.max_message_bytes);
  w.u32(o.max_inflight);
  w.u8(static_cast<std::uint8_t>((o.pre_vote ? 1 : 0) | (o.check_quorum ? 2 : 0)));
  w.u64(s.hard.term);
  w.u64(s.hard.vote);
  w.u64(s.hard.commit);
  w.u64(s.snapshot.index);
  w.u64(s.snapshot.term);
  w.u32(static_cast<std::uint32_t>(s.snapshot.conf.size()));
  w.bytes(s.snapshot.conf);
  w.u32(static_cast<std::uint32_t>(s.entries.size()));
  for (const log_entry& e : s.entries) {
    w.u32(static_cast<std::uint32_t>(17 + e.data.size()));
    w.u64(e.index);
    w.u64(e.term);
    w.u8(static_cast<std::uint8_t>(e.type));
    w.bytes(e.data);
  }
  return std::move(w).take();
}

node::node(node_options options, start_state start, ready_handler on_ready, log_handler on_log)
    : options_(options), on_ready_(std::move(on_ready)), on_log_(std::move(on_log)) {
  if (options_.id == 0) throw std::invalid_argument("a raft member's id must not be 0");
  if (options_.election_ticks <= options_.heartbeat_ticks)
    throw std::invalid_argument("the election timeout must be longer than the heartbeat interval");
  next_tick_ = std::chrono::steady_clock::now() + options_.tick;
  thread_ = std::thread([this, config = encode_start(options_, start)]() mutable { run(std::move(config)); });
}

node::~node() { stop(); }

void node::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool node::running() const {
  std::lock_guard lock(mu_);
  return running_ && failed_.empty();
}

std::string node::failure() const {
  std::lock_guard lock(mu_);
  return failed_;
}

void node::run(std::string config) {
  pobj_raft_host host{this, &node::wait_cb, &node::ready_cb, &node::log_cb};
  const int rc = pobj_raft_run(reinterpret_cast<std::uint8_t*>(config.data()), config.size(), &host);
  std::lock_guard lock(mu_);
  running_ = false;
  if (rc != 0 && failed_.empty()) failed_ = "raft refused to start or go on (its log lines say why)";
}

void node::push(std::uint8_t kind, std::string_view a, std::string_view b) {
  {
    std::lock_guard lock(mu_);
    byte_writer w(std::move(pending_));
    w.u8(kind);
    w.u32(static_cast<std::uint32_t>(a.size() + b.size()));
    w.bytes(a);
    w.bytes(b);
    pending_ = std::move(w).take();
  }
  cv_.notify_one();
}

void node::propose(std::string_view data) { push(POBJ_RAFT_IN_PROPOSE, data); }
void node::step(std::string_view message) { push(POBJ_RAFT_IN_STEP, message); }
void node::read_index(std::string_view context) { push(POBJ_RAFT_IN_READ_INDEX, context); }
void node::campaign() { push(POBJ_RAFT_IN_CAMPAIGN, {}); }
void node::request_status() { push(POBJ_RAFT_IN_STATUS, {}); }

void node::propose_conf_change(conf_op op, std::uint64_t member, std::string_view context) {
  byte_writer w;
  w.u8(static_cast<std::uint8_t>(op));
  w.u64(member);
  push(POBJ_RAFT_IN_CONF_CHANGE, std::move(w).take(), context);
}

namespace {
std::string u64_bytes(std::uint64_t v) {
  byte_writer w;
  w.u64(v);
  return std::move(w).take();
}
}  // namespace

void node::compact(std::uint64_t index, std::string_view members) {
  push(POBJ_RAFT_IN_COMPACT, u64_bytes(index), members);
}
void node::report_unreachable(std::uint64_t member) { push(POBJ_RAFT_IN_UNREACHABLE, u64_bytes(member)); }
void node::transfer_leadership(std::uint64_t to) { push(POBJ_RAFT_IN_TRANSFER, u64_bytes(to)); }
void node::report_snapshot(std::uint64_t member, bool ok) {
  push(POBJ_RAFT_IN_SNAPSHOT_DONE, u64_bytes(member), ok ? std::string_view("\0", 1) : std::string_view("\1", 1));
}

int node::wait(const std::uint8_t** data, std::size_t* len) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping_) return 1;
    const auto now = std::chrono::steady_clock::now();
    // Ticks due (several if the handler was slow: raft's clock is logical, and a late tick is
    // better counted than lost, bounded so a long stall does not fire a burst of elections).
    int ticks = 0;
    while (next_tick_ <= now && ticks < 4) {
      ++ticks;
      next_tick_ += options_.tick;
    }
    if (next_tick_ <= now) next_tick_ = now + options_.tick;
    if (ticks > 0 || !pending_.empty()) {
      handed_.clear();
      std::swap(handed_, pending_);
      for (int i = 0; i < ticks; ++i) handed_.append("\1\0\0\0\0", 5);  // POBJ_RAFT_IN_TICK, empty
      *data = reinterpret_cast<const std::uint8_t*>(handed_.data());
      *len = handed_.size();
      return 0;
    }
    cv_.wait_until(lock, next_tick_);
  }
}

// Nothing may unwind through Go's frames: each callback catches everything.
int node::wait_cb(void* ctx, const std::uint8_t** data, std::size_t* len) noexcept {
  try {
    return static_cast<node*>(ctx)->wait(data, len);
  } catch (...) {
    return 1;
  }
}

// A handler that fails (it could not persist, say) stops the replica at once: raft advances
// nothing and sends nothing more; what was persisted is what a restart finds.
int node::ready_cb(void* ctx, const std::uint8_t* data, std::size_t len) noexcept {
  auto* self = static_cast<node*>(ctx);
  std::string why;
  try {
    ready rd = decode_ready({reinterpret_cast<const char*>(data), len});
    self->on_ready_(rd);
    return 0;
  } catch (const std::exception& e) {
    why = e.what();
  } catch (...) {
    why = "an unknown exception";
  }
  log_cb(ctx, 3, ("raft member stops: " + why).c_str(), why.size() + 19);
  std::lock_guard lock(self->mu_);
  self->stopping_ = true;
  self->failed_ = why;
  return 1;
}

void node::log_cb(void* ctx, int level, const char* text, std::size_t len) noexcept {
  auto* self = static_cast<node*>(ctx);
  try {
    if (self->on_log_) self->on_log_(level, {text, len});
  } catch (...) {
  }
}

}  // namespace pobj::repl
