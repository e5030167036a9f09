/* replication/raft/core.h: the C surface between pobj's replication layer and etcd's raft library.
 *
 * libpobj-raft (replication/raft/core.go, built by meson with Debian's Go) runs one etcd RawNode
 * per call of pobj_raft_run(); everything else the node needs it asks of the host (C++) through
 * the callbacks below, from the thread that called pobj_raft_run. Bytes in and bytes out, in the
 * record format of docs/replication.md ("The raft core's C surface"): each record is
 * [u8 kind][u32 length, little endian][payload].
 *
 * Why the loop runs inside Go: a call into Go from a thread C++ made costs 1.6-2.0 us with Go 1.19,
 * a call back into C from a frame Go entered 0.1-0.15 us (../shared/design/TOOLCHAIN.md). So the
 * host calls Go once per node lifetime and Go calls the host for input and for each Ready.
 */
#ifndef POBJ_REPLICATION_RAFT_CORE_H
#define POBJ_REPLICATION_RAFT_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Inputs, host to raft (what wait() returns). */
enum pobj_raft_input {
  POBJ_RAFT_IN_TICK = 1,           /* no payload: one logical clock tick */
  POBJ_RAFT_IN_PROPOSE = 2,        /* an entry's data */
  POBJ_RAFT_IN_STEP = 3,           /* a message received from a peer (raftpb.Message, marshalled) */
  POBJ_RAFT_IN_READ_INDEX = 4,     /* a read's context bytes (unique per attempt) */
  POBJ_RAFT_IN_CAMPAIGN = 5,       /* no payload */
  POBJ_RAFT_IN_CONF_CHANGE = 6,    /* [u8 op: 0 add voter, 1 remove, 2 add learner][u64 node][context] */
  POBJ_RAFT_IN_COMPACT = 7,        /* [u64 index][conf state as of index]: entries up to index go */
  POBJ_RAFT_IN_UNREACHABLE = 8,    /* [u64 node] */
  POBJ_RAFT_IN_TRANSFER = 9,       /* [u64 node] */
  POBJ_RAFT_IN_SNAPSHOT_DONE = 10, /* [u64 node][u8 0 finished, 1 failed] */
  POBJ_RAFT_IN_STATUS = 11         /* no payload: answer with a status record in a ready() */
};

/* Outputs, raft to host (what ready() gets). */
enum pobj_raft_output {
  POBJ_RAFT_OUT_SOFT_STATE = 1, /* [u64 leader][u8 state: 0 follower 1 candidate 2 leader 3 pre-candidate] */
  POBJ_RAFT_OUT_HARD_STATE = 2, /* [u64 term][u64 vote][u64 commit]: persist before sending */
  POBJ_RAFT_OUT_ENTRY = 3,      /* [u64 index][u64 term][u8 type: 0 normal 1 conf change][data]: persist */
  POBJ_RAFT_OUT_SNAPSHOT = 4,   /* [u64 index][u64 term][u32 n][conf state, n bytes][data]: persist */
  POBJ_RAFT_OUT_MESSAGE = 5,    /* [u64 to][u8 raftpb message type][marshalled raftpb.Message] */
  POBJ_RAFT_OUT_COMMITTED = 6,  /* [u64 index][u64 term][u8 type][data]: apply, in order */
  POBJ_RAFT_OUT_READ_STATE = 7, /* [u64 index][context] */
  POBJ_RAFT_OUT_CONF_STATE = 8, /* [u64 index][u32 n][conf state, n bytes][u32 voters][u64 each][u32 learners][u64 each]
                                   [u8 op (IN_CONF_CHANGE's; 3 update, 255 a v2 change)][u64 node][u32 n][context]:
                                   the members after the change at index, and the change */
  POBJ_RAFT_OUT_STATUS = 9,     /* [u64 id][u64 term][u64 leader][u8 state][u64 commit][u64 applied]
                                   then per peer the leader tracks: [u64 id][u64 match][u64 next][u8 learner] */
  POBJ_RAFT_OUT_MUST_SYNC = 10  /* [u8]: whether the hard state and entries must be synced */
};

typedef struct pobj_raft_host {
  void* ctx;
  /* Blocks until there is input (or a tick is due); sets *data and *len to the inputs, which stay
   * valid until the next call. Returns 0, or 1 to stop the node. */
  int (*wait)(void* ctx, const uint8_t** data, size_t* len);
  /* A Ready: persist the hard state, entries and snapshot, then send the messages, then apply the
   * committed entries (in order). Returns 0, and raft advances; or nonzero if it could not (it
   * could not persist, say): raft then stops at once, advancing nothing, and pobj_raft_run returns -1. */
  int (*ready)(void* ctx, const uint8_t* data, size_t len);
  /* A line from the raft library: level 0 debug, 1 info, 2 warning, 3 error. */
  void (*log)(void* ctx, int level, const char* text, size_t len);
} pobj_raft_host;

/* Starts the node in `config` (docs/replication.md: [u64 id][u32 election ticks][u32 heartbeat ticks]
 * [u64 applied][u64 max bytes per message][u32 max inflight messages][u8 flags: 1 pre-vote,
 * 2 check quorum][u64 term][u64 vote][u64 commit][u64 snapshot index][u64 snapshot term]
 * [u32 n][conf state, n bytes][u32 entries][each: u32 n, then an ENTRY payload of n bytes]) and
 * runs it until wait() returns 1. Returns 0, or -1 after logging why it could not start or go on. */
int pobj_raft_run(uint8_t* config, size_t n, pobj_raft_host* host);

/* A conf change (marshalled raftpb.ConfChange; op as POBJ_RAFT_IN_CONF_CHANGE's): a new group's
 * log starts with one adding each founder. Writes at most `cap` bytes into out; returns the length
 * (or the length needed, if over cap). */
size_t pobj_raft_conf_change(int op, uint64_t node, uint8_t* out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
