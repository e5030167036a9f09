// kvstore/replica: the server's side of replication (replica.hpp): records of batches, the leader's
// wait for its entry, and the followers' apply.
#include "replica.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pobj/shared.hpp>

#include "log.hpp"
#include "log_store.hpp"
#include "raft_node.hpp"
#include "records.hpp"
#include "transport.hpp"

namespace pobj::kv {

namespace {

constexpr std::uint8_t record_version = 1;
constexpr std::uint8_t flag_expiry = 1;
constexpr std::uint8_t flag_compact = 2;  // [u64 index]: every member drops the log up to it
constexpr std::uint8_t flag_announce = 4;  // [u64 member][u32 n][address]: where clients reach it
constexpr std::uint64_t compact_step = 2000;

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
constexpr std::uint8_t kind_raft = 1;  // transport frame kind: a raft message
constexpr auto replicate_timeout = std::chrono::seconds(5);
constexpr auto read_timeout = std::chrono::seconds(1);

// FNV-1a: the group's name as the 64-bit id every frame carries.
std::uint64_t group_hash(std::string_view name) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

// What decides how this member applies an entry: the engine's version, the record format, its
// commands (name, arity, flags) and the shared classes loaded (layout and methods). Members whose
// fingerprints differ would apply the same entry differently: their frames are refused.
std::pair<std::uint64_t, std::string> engine_fingerprint(const engine& e) {
  std::string text = fmt::format("pobj-kv {} record {}\n", POBJ_KV_VERSION, record_version);
  std::vector<std::string> lines;
  for (const command_spec* c : e.commands()) lines.push_back(fmt::format("{} {} {}", c->name, c->arity, c->flags));
  std::sort(lines.begin(), lines.end());
  for (const auto& l : lines) text += l + "\n";
  std::vector<const shared_class*> classes = shared_classes();
  std::sort(classes.begin(), classes.end(),
            [](const shared_class* a, const shared_class* b) { return std::string_view(a->info->name) < b->info->name; });
  std::string described;
  for (const shared_class* c : classes) {
    text += fmt::format("class {} {:016x}", c->info->name, c->info->schema_hash);
    for (const auto& m : c->methods) text += fmt::format(" {}|{}", m.signature, m.changes ? 1 : 0);
    text += "\n";
    described += fmt::format("{}{}", described.empty() ? "" : ", ", c->info->name);
  }
  return {group_hash(text), fmt::format("pobj-kv {}, {} commands, shared classes: {}", POBJ_KV_VERSION, lines.size(),
                                        described.empty() ? "none" : described)};
}

std::string host_port(std::string_view host, int port) {
  return host.find(':') != std::string_view::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

std::uint64_t proposal_id_of(std::string_view data) {
  if (data.size() < 9 || static_cast<std::uint8_t>(data[0]) != record_version) return 0;
  std::uint64_t id;
  std::memcpy(&id, data.data() + 1, 8);
  return id;
}

}  // namespace

std::vector<replica_member> parse_members(std::string_view text) {
  std::vector<replica_member> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string_view item = text.substr(at, comma - at);
    at = comma + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('='), colon = item.rfind(':');
    if (eq == std::string_view::npos || colon == std::string_view::npos || colon < eq)
      throw std::invalid_argument(fmt::format("replicas: '{}' is not ID=HOST:PORT", item));
    replica_member m;
    try {
      m.id = std::stoull(std::string(item.substr(0, eq)));
      const unsigned long port = std::stoul(std::string(item.substr(colon + 1)));
      if (port == 0 || port > 65535) throw std::out_of_range("port");
      m.port = static_cast<std::uint16_t>(port);
    } catch (const std::exception&) {
      throw std::invalid_argument(fmt::format("replicas: '{}' is not ID=HOST:PORT", item));
    }
    m.host = std::string(item.substr(eq + 1, colon - eq - 1));
    if (m.id == 0 || m.host.empty()) throw std::invalid_argument(fmt::format("replicas: '{}' is not ID=HOST:PORT", item));
    for (const auto& o : out)
      if (o.id == m.id) throw std::invalid_argument(fmt::format("replicas: member {} is listed twice", m.id));
    out.push_back(std::move(m));
  }
  if (out.empty()) throw std::invalid_argument("replicas: no member listed");
  return out;
}

replica_member parse_member(std::uint64_t id, std::string_view address) {
  return parse_members(fmt::format("{}={}", id, address)).front();
}

replica::replica(engine& e, const config& cfg) : engine_(&e), self_(cfg.replica_id), group_(cfg.replica_group) {
  members_ = parse_members(cfg.replicas);
  std::sort(members_.begin(), members_.end(), [](auto& a, auto& b) { return a.id < b.id; });
  const auto listed = std::find_if(members_.begin(), members_.end(), [&](auto& m) { return m.id == self_; });
  if (self_ == 0 || listed == members_.end())
    throw std::runtime_error(fmt::format("replica-id {} is not one of the members in replicas", self_));
  const replica_member self_member = *listed;
  const replica_member* me = &self_member;
  pobj::pool& pool = e.db().pool();
  pool_path_ = pool.path();
  remove_snapshot_files();
  log_ = std::make_unique<pobj::repl::log_store>(pool);
  if (!log_->initialized()) {
    // A pool without Raft state founds a group, or joins one, only when told to: a member whose
    // pool was lost, restarted as before, must not found the group again (it could vote twice in
    // a term).
    if (cfg.replica_bootstrap && cfg.replica_join)
      throw std::runtime_error("--replica-bootstrap founds a new group, --replica-join joins a running one: give one");
    if (!cfg.replica_bootstrap && !cfg.replica_join)
      throw std::runtime_error(fmt::format(
          "pool '{}' holds no Raft state: start each founding member of a new group once with --replica-bootstrap "
          "yes, or a member added to a running group (RAFT ADD) with --replica-join yes (docs/replication.md)",
          pool.path()));
    if (e.db().size() > 0)
      throw std::runtime_error(fmt::format(
          "pool '{}' holds {} keys written outside a group: a member starts from an empty pool (the group's log "
          "brings it every write)",
          pool.path(), e.db().size()));
    if (cfg.replica_join) {
      log_->join({group_, self_});
      log::notice("replication: member {} joins group '{}': it waits for the leader to add it (RAFT ADD {} {}:{})",
                  self_, group_, self_, me->host, me->port);
    } else {
      std::vector<std::uint64_t> voters;
      for (const auto& m : members_) voters.push_back(m.id);
      log_->bootstrap({group_, self_}, voters);
      log::notice("replication: member {} of a new group '{}' of {} members", self_, group_, members_.size());
    }
  } else if (const auto id = log_->identity(); !(id->group == group_ && id->id == self_)) {
    throw std::runtime_error(fmt::format("pool '{}' belongs to member {} of group '{}', not member {} of '{}'",
                                         pool.path(), id->id, id->group, self_, group_));
  }
  // Members added since `replicas` was written: their addresses, as the changes that added them
  // said (the list given wins for a member it names).
  for (const auto& [recorded_id, address] : log_->raft_addresses()) {
    const std::uint64_t id = recorded_id;  // (clang 14 cannot capture a structured binding)
    if (std::any_of(members_.begin(), members_.end(), [&](const replica_member& m) { return m.id == id; })) continue;
    try {
      members_.push_back(parse_member(id, address));
    } catch (const std::exception&) {
      log::warning("replication: member {}'s recorded raft address '{}' is not HOST:PORT; ignored", id, address);
    }
  }
  {
    const pobj::repl::conf_state now = log_->members();
    voters_ = now.voters;
    learners_ = now.learners;
  }
  applied_ = log_->applied();
  last_index_ = log_->last_index();
  {
    std::string host = cfg.replica_announce_ip;
    if (host.empty() && !cfg.bind_addresses.empty() && cfg.bind_addresses[0] != "0.0.0.0" && cfg.bind_addresses[0] != "::")
      host = cfg.bind_addresses[0];
    if (host.empty()) host = me->host;
    client_address_ = host_port(host, cfg.port);
    std::lock_guard lock(mu_);
    clients_ = log_->client_addresses();
    clients_[self_] = client_address_;
  }
  std::tie(engine_fingerprint_, engine_described_) = engine_fingerprint(e);
  first_index_ = log_->first_index();
  keep_entries_ = cfg.raft_log_entries;
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw std::runtime_error(fmt::format("eventfd: {}", std::strerror(errno)));

  pobj::repl::transport_options t;
  t.group = group_hash(group_);
  t.engine = engine_fingerprint_;
  t.incarnation = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  t.self = self_;
  t.host = me->host;
  t.port = me->port;
  for (const auto& m : members_)
    if (m.id != self_) t.peers.push_back({m.id, m.host, m.port});
  if (const char* net = std::getenv("POBJ_KV_TEST_NET"); net != nullptr && *net != '\0') {
    net_file_ = net;
    t.fault_hook = [this](std::uint64_t to, std::uint8_t) {
      pobj::repl::fault f;
      f.drop = cut_off(to);
      return f;
    };
    log::warning("replication: POBJ_KV_TEST_NET={}: links cut as that file says (a test's partitions)", net_file_);
  }
  if (const char* d = std::getenv("POBJ_KV_TEST_DELAYS"); d != nullptr && *d != '\0') {
    std::string_view rest = d;
    while (!rest.empty()) {
      const std::string item(rest.substr(0, rest.find(',')));
      rest.remove_prefix(std::min(rest.size(), item.size() + 1));
      const auto eq = item.find('=');
      const std::string name = item.substr(0, eq);
      const std::int64_t ms = eq == std::string::npos ? 0 : std::stoll(item.substr(eq + 1));
      if (name == "apply") test_apply_delay_ms_ = ms;
      else if (name == "snapshot-done") test_done_delay_ms_ = ms;
      else if (name == "copy") test_copy_delay_ms_ = ms;
      else throw std::invalid_argument("POBJ_KV_TEST_DELAYS: unknown delay '" + name + "'");
    }
    log::warning("replication: POBJ_KV_TEST_DELAYS={}: a test's delays (apply {} ms, snapshot done {} ms, copy "
                 "pass {} ms)",
                 d, test_apply_delay_ms_, test_done_delay_ms_, test_copy_delay_ms_);
  }
  if (const char* v = std::getenv("POBJ_KV_TEST_VERIFY_COPY"); v != nullptr && std::string_view(v) == "1") {
    test_verify_copy_ = true;
    log::warning("replication: POBJ_KV_TEST_VERIFY_COPY=1: each copy of the pool is compared with the pool (a test's check)");
  }
  pobj::repl::node_options o;
  o.id = self_;
  // The node exists before the transport (its handler checks), so no message is stepped into
  // nothing; messages the node sends before the transport is up are lost, and raft sends again.
  node_ = std::make_unique<pobj::repl::node>(
      o, log_->load(), [this](pobj::repl::ready& rd) { on_ready(rd); },
      [](int level, std::string_view line) {
        if (level >= 2) log::warning("raft: {}", line);
        else if (level == 1) log::verbose("raft: {}", line);
      });
  raft_ = node_.get();
  // auto: the fastest provider this machine's fabric has, from RDMA (InfiniBand/RoCE through
  // verbs, AWS's EFA) down to TCP; a named one or nothing.
  std::vector<std::string> providers{cfg.replica_transport};
  if (cfg.replica_transport == "auto") providers = {"verbs;ofi_rxm", "efa", "tcp;ofi_rxm"};
  std::string refused;
  for (const auto& provider : providers) {
    t.provider = provider;
    try {
      transport_ = std::make_unique<pobj::repl::transport>(
          t, [this](std::uint64_t from, std::uint8_t kind, std::string_view payload) {
            if (!net_file_.empty() && cut_off(from)) return;
            {
              std::lock_guard lock(heard_mu_);
              heard_ms_[from] = steady_ms();
            }
            if (kind == kind_raft) node_->step(payload);
            else on_snapshot_frame(from, kind, payload);
          });
      break;
    } catch (const std::exception& ex) {
      refused += fmt::format("{}{}", refused.empty() ? "" : "; ", ex.what());
    }
  }
  if (!transport_) {
    node_->stop();
    throw std::runtime_error(fmt::format("replication: no transport for {}:{}: {}", me->host, me->port, refused));
  }
  link_ = transport_.get();
  log::notice("replication: member {} listening for its group on {}:{} ({})", self_, me->host, me->port,
              transport_->provider());
}

replica::~replica() {
  stop_snapshots();
  if (node_) node_->stop();
  if (transport_) transport_->close();
  if (event_fd_ >= 0) ::close(event_fd_);
}

std::string replica::leader_address() const {
  const std::uint64_t l = leader_id_.load();
  std::lock_guard lock(mu_);
  for (const auto& m : members_)
    if (m.id == l) return fmt::format("{}:{}", m.host, m.port);
  return {};
}

std::string replica::refusal() const {
  const std::uint64_t l = leader_id_.load();
  if (l == 0) return "TRYAGAIN no leader yet: the group is electing one";
  return fmt::format("READONLY You can't write against a read only replica. (member {}; the leader is member {}, "
                     "raft address {})",
                     self_, l, leader_address());
}

bool replica::cut_off(std::uint64_t peer) {
  std::lock_guard lock(net_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now - net_read_ > std::chrono::milliseconds(20)) {
    net_read_ = now;
    net_cut_.clear();
    std::ifstream in(net_file_);
    for (std::uint64_t id; in >> id;) net_cut_.push_back(id);
  }
  return std::find(net_cut_.begin(), net_cut_.end(), peer) != net_cut_.end();
}

void replica::signal() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto w = ::write(event_fd_, &one, sizeof(one));
}

void replica::drain_signal() {
  std::uint64_t n;
  [[maybe_unused]] auto r = ::read(event_fd_, &n, sizeof(n));
}

// The raft thread: persist, send, hand the committed entries to the server thread.
void replica::on_ready(pobj::repl::ready& rd) {
  if (rd.hard || rd.snapshot || !rd.entries.empty()) {
    std::lock_guard state(state_mu_);
    pobj::run_tx(engine_->db().pool(), [&](transaction& tx) { log_->save(tx, rd); });
  }
  if (rd.hard) {
    term_ = rd.hard->term;
    commit_ = rd.hard->commit;
  }
  if (!rd.entries.empty()) last_index_ = rd.entries.back().index;
  pobj::repl::transport* link = link_.load();
  for (const auto& m : rd.messages) {
    if (m.type == pobj::repl::msg_snapshot) {
      // Raft's snapshot carries no data: the member gets a copy of the pool instead
      // (replica_snapshot.cpp), and raft is told when it was delivered or failed.
      want_snapshot(m.to);
      continue;
    }
    if (link != nullptr) link->send(m.to, kind_raft, m.bytes);  // (none yet at start: raft sends again)
  }
  if (rd.snapshot) {
    // Raft's own snapshot messages are never sent (above: pools travel instead); one received
    // means a member of another version.
    log::warning("replication: member {} received a raft snapshot message, which this version never sends; it stops",
                 self_);
    std::abort();
  }
  if (rd.status && !rd.status->peers.empty()) {
    // What the members hold, the ones far behind aside: those get a snapshot of the pool rather
    // than hold the compaction back (a member down for a day would keep the log for a day).
    std::uint64_t least = UINT64_MAX;
    for (const auto& p : rd.status->peers)
      if (p.match + 2 * keep_entries_ >= rd.status->commit) least = std::min(least, p.match);
    if (least == UINT64_MAX) least = rd.status->commit;
    min_match_ = least;
    status_ms_ = steady_ms();
    std::lock_guard lock(mu_);
    progress_ = rd.status->peers;
  }
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (rd.soft) {
      const std::uint64_t before = leader_id_.exchange(rd.soft->first);
      if (before != rd.soft->first)
        log::notice("replication: member {} is now {} (leader: member {})", self_, pobj::repl::role_name(rd.soft->second),
                    rd.soft->first);
      wake = true;
    }
    for (auto& e : rd.committed) {
      committed c;
      c.index = e.index;
      c.type = static_cast<int>(e.type);
      c.data = std::move(e.data);
      queue_.push_back(std::move(c));
      wake = true;
    }
    for (const auto& r : rd.reads) {
      if (auto it = read_waits_.find(r.context); it != read_waits_.end()) {
        it->second = std::max<std::uint64_t>(r.index, 1);
        wake = true;
      }
    }
    // The members after each change, recorded in the block that applies the change's entry.
    for (auto& [index, conf] : rd.conf_changes) members_conf_[index] = conf;
    for (const auto& c : rd.member_changes) changes_[c.index] = c;
  }
  for (std::size_t i = 0; i < rd.member_changes.size() && i < rd.conf_changes.size(); ++i)
    on_member_change(rd.member_changes[i], rd.conf_changes[i].second);
  if (!rd.member_changes.empty()) cv_.notify_all();
  if (wake) {
    cv_.notify_all();
    signal();
  }
}

void replica::on_member_change(const pobj::repl::member_change& c, const pobj::repl::conf_state& after) {
  using pobj::repl::conf_op;
  std::optional<replica_member> added;
  if ((c.op == conf_op::add_voter || c.op == conf_op::add_learner) && !c.context.empty()) {
    try {
      added = parse_member(c.member, c.context);
    } catch (const std::exception&) {
      log::warning("replication: member {} was added with a raft address '{}' that is not HOST:PORT", c.member,
                   c.context);
    }
  }
  {
    std::lock_guard lock(mu_);
    voters_ = after.voters;
    learners_ = after.learners;
    if (added) {
      auto it = std::find_if(members_.begin(), members_.end(), [&](const replica_member& m) { return m.id == added->id; });
      if (it != members_.end()) *it = *added;
      else members_.push_back(*added);
      std::sort(members_.begin(), members_.end(), [](auto& a, auto& b) { return a.id < b.id; });
    }
    recent_changes_.push_back(c);
    if (recent_changes_.size() > 16) recent_changes_.pop_front();
  }
  // The transport learns an added member's address at once: raft sends to it from this Ready on.
  if (added && added->id != self_)
    if (pobj::repl::transport* link = link_.load()) link->add_peer({added->id, added->host, added->port});
  const char* what = c.op == conf_op::add_voter     ? "added as a voter"
                     : c.op == conf_op::add_learner ? "added as a learner"
                     : c.op == conf_op::remove      ? "removed"
                                                    : "changed";
  log::notice("replication: member {} {} (entry {}); the group's voters now: {}", c.member, what, c.index,
              fmt::join(after.voters, ","));
  if (c.op == conf_op::remove && c.member == self_)
    log::warning("replication: this member (id {}) was removed from the group: it no longer votes or receives "
                 "the log; stop it (docs/replication.md, 'Changing the members')",
                 self_);
}

void replica::record_member_change(transaction& tx, std::uint64_t index) {
  std::optional<pobj::repl::member_change> c;
  {
    std::lock_guard lock(mu_);
    if (auto it = changes_.find(index); it != changes_.end()) c = it->second;
  }
  if (!c) return;
  using pobj::repl::conf_op;
  if ((c->op == conf_op::add_voter || c->op == conf_op::add_learner) && !c->context.empty())
    log_->set_raft_address(tx, c->member, c->context);
  else if (c->op == conf_op::remove)
    log_->set_raft_address(tx, c->member, {});
}

std::string replica::change_member(bool add, std::uint64_t id, std::string_view raft_address) {
  using pobj::repl::conf_op;
  if (!leader()) {
    const auto [l, client] = leader_client();
    if (l == 0) return "TRYAGAIN no leader yet: the group is electing one";
    return fmt::format("ERR members are changed on the leader: member {}{}", l,
                       client.empty() ? std::string() : fmt::format(" at {}", client));
  }
  if (id == 0) return "ERR a member's id is a positive integer";
  std::string address;
  {
    std::lock_guard lock(mu_);
    const bool voter = std::find(voters_.begin(), voters_.end(), id) != voters_.end();
    const bool learner = std::find(learners_.begin(), learners_.end(), id) != learners_.end();
    if (add) {
      if (voter || learner) return fmt::format("ERR member {} is in the group already", id);
      try {
        const replica_member m = parse_member(id, raft_address);
        address = host_port(m.host, m.port);
      } catch (const std::exception&) {
        return fmt::format("ERR '{}' is not a raft address (HOST:PORT, where the new member's --replicas entry "
                           "for itself listens)",
                           raft_address);
      }
      for (const auto& m : members_)
        if (m.id != id && host_port(m.host, m.port) == address &&
            (std::find(voters_.begin(), voters_.end(), m.id) != voters_.end()))
          return fmt::format("ERR member {} listens on {} already", m.id, address);
    } else {
      if (!voter && !learner) return fmt::format("ERR member {} is not in the group", id);
      if (voter && voters_.size() == 1) return "ERR the group's last voter cannot be removed";
      if (id == self_)
        return fmt::format("ERR member {} leads: move leadership first (RAFT TRANSFER to another member), then "
                           "remove it on the new leader",
                           id);
    }
    recent_changes_.clear();
  }
  const conf_op op = add ? conf_op::add_voter : conf_op::remove;
  node_->propose_conf_change(op, id, address);
  // Raft takes one change at a time (a second, proposed while one is pending, commits as an empty
  // entry): the change is done when an entry making it has committed.
  const auto deadline = std::chrono::steady_clock::now() + replicate_timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    for (const auto& c : recent_changes_)
      if (c.op == op && c.member == id) return {};
    if (std::chrono::steady_clock::now() >= deadline || !leader())
      return fmt::format(
          "TRYAGAIN the change did not commit in {} s (the group may lack a majority, another change may be in "
          "progress, or leadership moved): RAFT MEMBERS shows whether it took effect",
          std::chrono::duration_cast<std::chrono::seconds>(replicate_timeout).count());
    cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  }
}

std::string replica::transfer_leadership(std::uint64_t id) {
  if (!leader()) return "ERR leadership is moved by the leader";
  {
    std::lock_guard lock(mu_);
    if (std::find(voters_.begin(), voters_.end(), id) == voters_.end())
      return fmt::format("ERR member {} is not a voter of the group", id);
  }
  if (id == self_) return {};
  node_->transfer_leadership(id);
  const auto deadline = std::chrono::steady_clock::now() + replicate_timeout;
  std::unique_lock lock(mu_);
  while (leader_id_.load() != id) {
    if (std::chrono::steady_clock::now() >= deadline)
      return fmt::format("TRYAGAIN member {} did not take the lead in {} s (is it reachable and caught up?)", id,
                         std::chrono::duration_cast<std::chrono::seconds>(replicate_timeout).count());
    cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
  }
  return {};
}

void replica::apply_record(transaction& tx, std::string_view data) {
  pobj::repl::byte_reader r(data);
  if (r.u8() != record_version) throw std::runtime_error("replication: an entry of an unknown version");
  r.u64();  // proposal id
  const std::int64_t now = static_cast<std::int64_t>(r.u64());
  const std::uint8_t flags = r.u8();
  if (flags & flag_expiry) {
    const std::int64_t ttl_ms = static_cast<std::int64_t>(r.u64());
    engine_->db().expire_some(tx, now, 200);
    engine_->db().rotate_replies(tx, now, ttl_ms);
  }
  if (flags & flag_compact) compact_pending_ = r.u64();  // done by apply_one, with the Raft state
  if (flags & flag_announce) {
    const std::uint64_t member = r.u64();
    announced_ = {member, std::string(r.take(r.u32()))};  // recorded by apply_one
  }
  std::string scratch;
  std::vector<std::string_view> argv;
  for (std::uint32_t i = 0, n = r.u32(); i < n; ++i) {
    const std::uint64_t sid = r.u64();
    const int protocol = r.u8();
    argv.clear();
    for (std::uint32_t a = 0, argc = r.u32(); a < argc; ++a) argv.push_back(r.take(r.u32()));
    session& s = sessions_[sid];
    s.id = sid;
    s.authenticated = true;
    s.protocol = protocol;
    scratch.clear();
    reply_writer w(scratch, protocol);
    engine_->execute(s, argv, w, tx, now);
    // The leader recorded only what ran there; the same store, commands and time must run here.
    // If this member refuses one (its disk failing: MISCONF), it would diverge: it stops instead.
    const bool exec = argv[0].size() == 4 && lower(argv[0]) == "exec";
    if (!s.accepted || (exec && (scratch.empty() || scratch[0] != '*' || scratch.compare(0, 3, "*-1") == 0)))
      throw std::runtime_error(fmt::format("this member refused a command the leader ran ({}): {}", argv[0],
                                           scratch.substr(0, std::min<std::size_t>(scratch.size(), 200))));
  }
}

void replica::apply_one(const committed& c) {
  if (c.index <= applied_.load()) return;  // applied already (the leader's own batch)
  if (test_apply_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(test_apply_delay_ms_));
  if (c.index != applied_.load() + 1)
    throw std::runtime_error(fmt::format("entry {} arrived after entry {}: the log has a gap", c.index, applied_.load()));
  // The Raft state's maps have one writer at a time (the raft thread persists there too): taken
  // for this block's last writes and held until it has committed.
  std::unique_lock state(state_mu_, std::defer_lock);
  compact_pending_ = 0;
  announced_.reset();
  pobj::run_tx(engine_->db().pool(), [&](transaction& tx) {
    if (c.type == 0 && !c.data.empty()) apply_record(tx, c.data);
    std::optional<pobj::repl::conf_state> conf;
    if (c.type != 0) {
      std::lock_guard lock(mu_);
      if (auto it = members_conf_.find(c.index); it != members_conf_.end()) conf = it->second;
    }
    state.lock();
    if (conf) log_->set_members(tx, c.index, *conf);
    if (c.type != 0) record_member_change(tx, c.index);
    if (compact_pending_ != 0) log_->compact(tx, compact_pending_);
    if (announced_ && announced_->first != self_) log_->set_client_address(tx, announced_->first, announced_->second);
    log_->set_applied(tx, c.index);
  });
  if (state.owns_lock()) state.unlock();
  applied_ = c.index;
  if (compact_pending_ != 0) {
    compacted(compact_pending_);
    compact_pending_ = 0;
  }
  std::lock_guard lock(mu_);
  members_conf_.erase(c.index);
  changes_.erase(c.index);
  if (announced_ && announced_->first != self_) clients_[announced_->first] = announced_->second;
}

void replica::apply_committed(const std::atomic<bool>& stop) {
  const std::int64_t t0 = steady_ms();
  drain_signal();
  log_engine_refusals();
  if (install_ready_.load()) install_snapshot(stop);  // a whole copy of the leader's pool arrived
  if (!node_->running()) {
    // Its raft stopped (it could not persist, say): this member can neither lead nor follow.
    log::warning("replication: member {}'s raft stopped ({}); the member stops", self_, node_->failure());
    std::abort();
  }
  for (;;) {
    committed c;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) break;
      c = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      apply_one(c);
      if (install_ready_.load()) install_snapshot(stop);  // (not after a long backlog: it may be moot by then)
      if (stop.load() || (!leader() && steady_ms() - t0 > 50)) {
        signal();  // the rest on the next call
        break;
      }
    } catch (const std::exception& e) {
      // Every member applies the same entries to the same state: a failure here (a full pool) would
      // leave this member unlike the others, so it stops rather than diverge.
      log::warning("replication: cannot apply entry {}: {}; this member stops", c.index, e.what());
      engine_->db().reload();
      std::abort();
    }
  }
  if (!stop.load()) take_snapshots();  // between two entries: what raft asked to send, if anything
}

std::string replica::encode(std::uint64_t id, const std::vector<recorded_command>& record, std::int64_t now,
                            bool expiry, std::uint64_t compact_to, bool announce) const {
  pobj::repl::byte_writer w;
  w.u8(record_version);
  w.u64(id);
  w.u64(static_cast<std::uint64_t>(now));
  w.u8(static_cast<std::uint8_t>((expiry ? flag_expiry : 0) | (compact_to != 0 ? flag_compact : 0) |
                                 (announce ? flag_announce : 0)));
  if (expiry) w.u64(static_cast<std::uint64_t>(engine_->settings().reply_ttl_s * 1000));
  if (compact_to != 0) w.u64(compact_to);
  if (announce) {
    w.u64(self_);
    w.u32(static_cast<std::uint32_t>(client_address_.size()));
    w.bytes(client_address_);
  }
  w.u32(static_cast<std::uint32_t>(record.size()));
  for (const auto& c : record) {
    w.u64(c.session);
    w.u8(static_cast<std::uint8_t>(c.protocol));
    w.u32(static_cast<std::uint32_t>(c.argv.size()));
    for (const auto& a : c.argv) {
      w.u32(static_cast<std::uint32_t>(a.size()));
      w.bytes(a);
    }
  }
  return std::move(w).take();
}

namespace {
std::uint64_t new_proposal_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t id = 0;
  while (id == 0) id = rng();
  return id;
}
}  // namespace

bool replica::replicate(transaction& tx, std::vector<recorded_command> record, std::int64_t now, bool expiry) {
  {
    std::lock_guard lock(mu_);
    // A batch runs on the applied state: if entries committed meanwhile, it ran on a stale one.
    if (!leader() || !queue_.empty()) {
      tx.abort();
      ++interrupted_;
      return false;
    }
  }
  const std::uint64_t id = new_proposal_id();
  // A new leader's first entries say where clients reach it (followers forward there).
  const std::uint64_t term = term_.load();
  const bool announce = announced_term_ != term;
  const bool ok = propose_and_wait(tx, id, encode(id, record, now, expiry, 0, announce), 0);
  if (ok && announce) announced_term_ = term;
  return ok;
}

std::int64_t replica::heard_ms(std::uint64_t member) const {
  std::lock_guard lock(heard_mu_);
  const auto it = heard_ms_.find(member);
  return it == heard_ms_.end() ? 0 : it->second;
}

bool replica::confirm_read() {
  // The batch ran on the state applied now (nothing applies between a batch's commands).
  const std::uint64_t ran_at = applied_.load();
  // Raft ignores a read index request until the leader committed an entry of its own term: this
  // member's announcement is that entry.
  if (!leader() || announced_term_.load() != term_.load()) {
    ++reads_unconfirmed_;
    return false;
  }
  std::string context(8, '\0');
  const std::uint64_t id = new_proposal_id();
  std::memcpy(context.data(), &id, sizeof(id));
  std::unique_lock lock(mu_);
  read_waits_[context] = 0;
  lock.unlock();
  node_->read_index(context);
  lock.lock();
  // A heartbeat's round trip; much longer means the majority is not there (then the log would
  // not commit either).
  const auto deadline = std::chrono::steady_clock::now() + read_timeout;
  cv_.wait_until(lock, deadline,
                 [&] { return read_waits_[context] != 0 || !leader() || !node_->running(); });
  const std::uint64_t at = read_waits_[context];
  read_waits_.erase(context);
  lock.unlock();
  if (at != 0 && at <= ran_at && leader()) {
    ++reads_confirmed_;
    return true;
  }
  ++reads_unconfirmed_;
  return false;
}

void replica::compacted(std::uint64_t index) {
  first_index_ = log_->first_index();
  node_->compact(index, log_->members_at(index).encoded);
}

void replica::maintain(std::int64_t now) {
  if (!leader()) return;
  const std::int64_t t0 = steady_ms();
  if (t0 - status_asked_ms_ > 1000) {  // the followers' progress, for INFO, ROLE and WAIT
    status_asked_ms_ = t0;
    node_->request_status();
  }
  if (announced_term_ != term_.load()) {
    // An idle group's new leader announces itself in an entry of its own.
    try {
      transaction tx(engine_->db().pool());
      replicate(tx, {}, now, false);
    } catch (const std::exception& e) {
      log::warning("replication: cannot announce this leader: {}", e.what());
    }
  }
  const std::uint64_t applied = applied_.load(), first = first_index_.load();
  if (applied < first || applied - first < 2 * keep_entries_) return;
  const std::int64_t t = steady_ms();
  if (t - status_ms_.load() > 1000) {
    if (t - status_asked_ms_ > 500) {
      status_asked_ms_ = t;
      node_->request_status();
    }
    return;
  }
  // Only what every member holds (so none will need a snapshot, which is not built yet), and not
  // the last keep_entries_ (a member briefly behind catches up from the log).
  const std::uint64_t held = std::min(min_match_.load(), applied);
  if (held <= keep_entries_ + first) return;
  const std::uint64_t to = std::min(held - keep_entries_, first - 1 + compact_step);
  if (to < first) return;
  try {
    transaction tx(engine_->db().pool());
    {
      std::lock_guard lock(mu_);
      if (!queue_.empty()) {
        tx.abort();
        return;
      }
    }
    const std::uint64_t id = new_proposal_id();
    propose_and_wait(tx, id, encode(id, {}, now, false, to, false), to);
  } catch (const std::exception& e) {
    log::warning("replication: log compaction failed: {}", e.what());
  }
}

bool replica::propose_and_wait(transaction& tx, std::uint64_t id, std::string entry, std::uint64_t compact_to) {
  ++proposals_;
  node_->propose(entry);
  const auto deadline = std::chrono::steady_clock::now() + replicate_timeout;
  // Entries that committed before ours and touch no key (a new leader's empty entry, a change of
  // members): they commit in tx with ours. Nothing is written to the Raft state before ours has
  // committed: the raft thread writes there too, and would wait for tx while tx waits for it.
  std::vector<committed> joined;
  std::unique_lock lock(mu_);
  auto give_back = [&] {  // REQUIRES: lock held. The joined entries are applied later, in order.
    for (auto it = joined.rbegin(); it != joined.rend(); ++it) queue_.push_front(std::move(*it));
    joined.clear();
  };
  for (;;) {
    while (!queue_.empty()) {
      committed& c = queue_.front();
      const std::uint64_t next = (joined.empty() ? applied_.load() : joined.back().index) + 1;
      if (c.index < next) {
        queue_.pop_front();
        continue;
      }
      if (c.type == 0 && proposal_id_of(c.data) == id && c.index == next) {
        const std::uint64_t index = c.index;
        queue_.pop_front();
        std::vector<std::pair<std::uint64_t, pobj::repl::conf_state>> confs;
        for (const auto& j : joined)
          if (auto it = members_conf_.find(j.index); it != members_conf_.end()) confs.emplace_back(j.index, it->second);
        lock.unlock();
        try {
          std::lock_guard state(state_mu_);  // one writer of the Raft state at a time
          for (const auto& [at, conf] : confs) log_->set_members(tx, at, conf);
          for (const auto& j : joined)
            if (j.type != 0) record_member_change(tx, j.index);
          if (compact_to != 0) log_->compact(tx, compact_to);
          log_->set_applied(tx, index);
          tx.commit();
        } catch (const std::exception& e) {
          // Committed by the group but not here: this member cannot go on without diverging.
          log::warning("replication: cannot commit entry {}: {}; this member stops", index, e.what());
          std::abort();
        }
        applied_ = index;
        if (compact_to != 0) compacted(compact_to);
        lock.lock();
        for (const auto& j : joined) {
          members_conf_.erase(j.index);
          changes_.erase(j.index);
        }
        return true;
      }
      if ((c.type == 0 && !c.data.empty()) || c.index != next) {
        // Another batch committed first (a leader change): this one ran on a state that is not
        // the group's. Roll it back; the server applies what committed.
        give_back();
        lock.unlock();
        tx.abort();
        ++interrupted_;
        return false;
      }
      joined.push_back(std::move(c));
      queue_.pop_front();
    }
    if (!leader() || std::chrono::steady_clock::now() >= deadline || !node_->running()) {
      give_back();
      lock.unlock();
      tx.abort();
      ++timed_out_;
      return false;
    }
    cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  }
}

std::string replica::info() const {
  const replication_view v = view();
  const std::uint64_t l = v.leader_id;
  std::string out = fmt::format("# Replication\r\nrole:{}\r\n", v.leading ? "master" : "slave");
  // Redis's fields first (offsets are Raft indexes), then the group's own.
  if (v.leading) {
    // Every member is listed; online: heard from in the last 2 s (a member down or cut off is
    // listed as waiting, and not counted as connected).
    const std::int64_t now = steady_ms();
    std::vector<bool> online;
    for (const auto& f : v.followers) online.push_back(f.match > 0 && now - heard_ms(f.id) <= 2000);
    out += fmt::format("connected_slaves:{}\r\n", std::count(online.begin(), online.end(), true));
    for (std::size_t i = 0; i < v.followers.size(); ++i) {
      const auto& f = v.followers[i];
      const std::size_t colon = f.client.rfind(':');
      out += fmt::format("slave{}:id={},ip={},port={},state={},offset={},lag={}\r\n", i, f.id,
                         colon == std::string::npos ? "" : f.client.substr(0, colon),
                         colon == std::string::npos ? "0" : f.client.substr(colon + 1),
                         online[i] ? "online" : "wait_bgsave", f.match, v.commit > f.match ? v.commit - f.match : 0);
    }
    out += fmt::format("master_repl_offset:{}\r\n", v.commit);
  } else {
    const std::size_t colon = v.leader_client.rfind(':');
    out += fmt::format("master_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\nslave_repl_offset:{}\r\n"
                       "slave_read_only:1\r\nmaster_repl_offset:{}\r\n",
                       colon == std::string::npos ? "" : v.leader_client.substr(0, colon),
                       colon == std::string::npos ? "0" : v.leader_client.substr(colon + 1),
                       l != 0 ? "up" : "down", v.applied, v.commit);
  }
  out += fmt::format(
      "raft_member_id:{}\r\nraft_group:{}\r\nraft_leader_id:{}\r\nraft_leader_address:{}\r\n"
      "raft_leader_client_address:{}\r\nraft_client_address:{}\r\n"
      "raft_term:{}\r\nraft_commit_index:{}\r\nraft_applied_index:{}\r\nraft_last_index:{}\r\nraft_first_index:{}\r\n"
      "raft_members:{}\r\nraft_engine:{:016x} ({})\r\n"
      "raft_transport:{}\r\nraft_proposals:{}\r\nraft_batches_interrupted:{}\r\nraft_batches_timed_out:{}\r\n"
      "raft_reads_confirmed:{}\r\nraft_reads_unconfirmed:{}\r\n"
      "raft_snapshots_sent:{}\r\nraft_snapshots_failed:{}\r\nraft_snapshot_bytes_sent:{}\r\n"
      "raft_snapshot_last_copy_bytes:{}\r\nraft_snapshot_last_copy_ms:{}\r\nraft_snapshot_last_pause_us:{}\r\n"
      "raft_snapshot_last_transfer_ms:{}\r\n",
      self_, group_, l, leader_address(), v.leader_client, client_address_, term_.load(), commit_.load(),
      applied_.load(), last_index_.load(), first_index_.load(), v.members, engine_fingerprint_, engine_described_,
      transport_ ? transport_->provider() : "", proposals_, interrupted_, timed_out_, reads_confirmed_.load(),
      reads_unconfirmed_.load(), snapshots_sent_.load(),
      snapshots_failed_.load(), snapshot_bytes_.load(), snapshot_copy_bytes_.load(), snapshot_copy_ms_.load(), snapshot_pause_us_.load(),
      snapshot_transfer_ms_.load());
  for (const auto& f : v.followers) {
    out += fmt::format("raft_member{}_match_index:{}\r\nraft_member{}_lag:{}\r\n", f.id, f.match, f.id,
                       v.commit > f.match ? v.commit - f.match : 0);
  }
  if (transport_) {
    const auto s = transport_->stats();
    out += fmt::format("raft_messages_sent:{}\r\nraft_messages_received:{}\r\nraft_messages_dropped:{}\r\n"
                       "raft_send_retries:{}\r\nraft_frames_refused:{}\r\nraft_frames_refused_engine:{}\r\n",
                       s.sent, s.received, s.dropped_full + s.send_errors, s.send_retries,
                       s.refused_checksum + s.refused_group + s.refused_stale + s.refused_other + s.refused_engine,
                       s.refused_engine);
  }
  return out + "\r\n";
}

replication_view replica::view() const {
  replication_view v;
  v.replicated = true;
  v.leader_id = leader_id_.load();
  v.leading = v.leader_id == self_;
  v.commit = commit_.load();
  v.applied = applied_.load();
  std::lock_guard lock(mu_);
  v.members = voters_.size();
  if (auto it = clients_.find(v.leader_id); it != clients_.end()) v.leader_client = it->second;
  auto address_of = [&](std::uint64_t id) -> const replica_member* {
    for (const auto& m : members_)
      if (m.id == id) return &m;
    return nullptr;
  };
  for (int learner = 0; learner < 2; ++learner) {
    for (std::uint64_t id : learner ? learners_ : voters_) {
      replication_view::member m;
      m.id = id;
      m.voter = !learner;
      if (const replica_member* a = address_of(id)) m.raft = host_port(a->host, a->port);
      if (auto it = clients_.find(id); it != clients_.end()) m.client = it->second;
      v.group.push_back(std::move(m));
    }
  }
  if (v.leading) {
    for (const auto& g : v.group) {
      const replica_member* a = address_of(g.id);
      if (g.id == self_ || a == nullptr) continue;
      const replica_member& m = *a;
      replication_view::follower f;
      f.id = m.id;
      // Where clients reach it if it ever led; else its host, port unknown (0).
      if (auto it = clients_.find(m.id); it != clients_.end()) f.client = it->second;
      else f.client = host_port(m.host, 0);
      for (const auto& p : progress_)
        if (p.id == m.id) f.match = p.match;
      v.followers.push_back(std::move(f));
    }
  }
  return v;
}

std::pair<std::uint64_t, std::string> replica::leader_client() const {
  const std::uint64_t l = leader_id_.load();
  if (l == 0) return {0, {}};
  std::lock_guard lock(mu_);
  auto it = clients_.find(l);
  return {l, it == clients_.end() ? std::string() : it->second};
}

void replica::log_engine_refusals() const {
  if (!transport_) return;
  const auto s = transport_->stats();
  std::lock_guard lock(mu_);
  if (s.refused_engine <= engine_refusals_logged_) return;
  const std::int64_t t = steady_ms();
  if (engine_refusals_logged_ != 0 && t - engine_refusal_log_ms_ < 10000) return;
  engine_refusal_log_ms_ = t;
  engine_refusals_logged_ = s.refused_engine;
  log::warning(
      "replication: frames from member {} refused ({} so far): it applies entries with another engine (fingerprint "
      "{:016x}; this member's is {:016x}: {}). Members must run the same pobj-kv and load the same objects libraries",
      s.engine_refused_from, s.refused_engine, s.engine_refused_value, engine_fingerprint_, engine_described_);
}

}  // namespace pobj::kv
