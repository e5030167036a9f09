// replication/transport: messages between a group's members over libfabric.
//
// One reliable-datagram endpoint per member (FI_EP_RDM): the `tcp;ofi_rxm` provider by default,
// or the provider `options::provider` names (`verbs;ofi_rxm`, `efa` where the hardware has them);
// never `sockets` (15-20 ms round trips: refused). Peers are connected at start (libfabric connects
// lazily, in tens of ms, so the first message to each peer is sent then), and every frame is
//   [u32 magic][u32 crc32c of the rest][u64 group][u64 engine][u64 incarnation][u64 from][u64 to]
//   [u8 kind][payload]
// A frame of another group, for another member, from an older incarnation of its sender, or
// whose checksum fails is refused and counted; it never reaches raft. So is one whose sender
// applies entries with another engine (`engine`: the caller's fingerprint of what decides how an
// entry is applied), so a member that would apply the group's entries differently never joins it.
//
// Nothing blocks on a peer: a send copies the frame and returns; at most `max_queued` frames wait
// per peer, and what comes beyond is dropped (raft resends) and counted. A thread of the
// transport's own waits for completions (blocking waits, never spinning: a 2-core machine has no
// core to spare) and hands each received frame to the receive handler.
//
// Faults for tests: a hook, asked for every frame sent, may drop it, delay it, duplicate it or
// corrupt one byte of it (delays reorder frames, as a real network may).
//
// Thread safety: send() and the accessors may be called from any thread; the handler runs on the
// transport's thread. Crash consistency: not applicable (nothing persistent).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pobj::repl {

struct peer_address {
  std::uint64_t id = 0;
  std::string host;  // numeric address or name
  std::uint16_t port = 0;
};

struct fault {
  bool drop = false;
  bool duplicate = false;
  bool corrupt = false;
  std::chrono::milliseconds delay{0};
};

struct transport_options {
  std::uint64_t group = 0;        // every member's frames carry it
  std::uint64_t engine = 0;       // and this: a frame with another is refused (refused_engine)
  std::uint64_t incarnation = 0;  // this member's, nonzero (a restarted member's is larger)
  std::uint64_t self = 0;
  std::string host = "127.0.0.1";  // where this member listens
  std::uint16_t port = 0;
  std::vector<peer_address> peers;  // the other members
  std::string provider = "tcp;ofi_rxm";
  std::size_t max_frame = 4 << 20;  // payload bytes; larger sends are refused
  std::size_t receive_buffers = 8;
  std::size_t max_queued = 256;  // frames in flight per peer
  std::function<fault(std::uint64_t to, std::uint8_t kind)> fault_hook;
};

struct transport_stats {
  std::uint64_t sent = 0, received = 0;
  std::uint64_t dropped_full = 0;     // a peer's queue was full
  std::uint64_t dropped_fault = 0;    // the fault hook dropped it
  std::uint64_t send_errors = 0;      // completions in error (a peer down)
  std::uint64_t send_retries = 0;     // sends libfabric refused for now (EAGAIN), tried again after a pause
  std::uint64_t refused_checksum = 0, refused_group = 0, refused_stale = 0, refused_other = 0;
  std::uint64_t refused_engine = 0;
  std::uint64_t engine_refused_from = 0;   // the member whose frame was last refused for its engine
  std::uint64_t engine_refused_value = 0;  // and the engine fingerprint it carried
};

// Loads libfabric now, if not yet (the first transport would): a program that will open one
// calls it early, while nothing else happens (loading it runs libinfinipath's constructor, which
// measures every CPU and, until the load returns, has its own signal handlers in place). Throws
// std::runtime_error if libfabric cannot be loaded.
void load_fabric();

class transport {
 public:
  // from, kind, payload (valid during the call).
  using receive_handler = std::function<void(std::uint64_t from, std::uint8_t kind, std::string_view payload)>;

  // Opens the endpoint and starts the completion thread. Throws std::runtime_error naming what
  // libfabric refused (no such provider, address in use, ...).
  transport(transport_options options, receive_handler on_receive);
  ~transport();
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  // Queues a frame for `to`; false if refused (unknown peer, too large, queue full, closed).
  bool send(std::uint64_t to, std::uint8_t kind, std::string_view payload);
  void add_peer(const peer_address& p);
  // Waits until every frame queued for `to` was handed over (or failed), at most `timeout`; true
  // if none is left. For a last word before close(), which drops what is still queued.
  bool flush(std::uint64_t to, std::chrono::milliseconds timeout);
  void close();

  transport_stats stats() const;
  // The provider in use ("tcp;ofi_rxm"), and the fabric address this member listens on.
  std::string provider() const;
  std::string address() const;
  std::uint16_t port() const;  // the port it listens on (options::port 0 picks a free one)

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

std::uint32_t crc32c(std::string_view bytes) noexcept;

}  // namespace pobj::repl
