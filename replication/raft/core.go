// replication/raft/core.go: etcd's raft library behind the C surface of core.h.
//
// One call of pobj_raft_run runs one RawNode for the life of a replica: it restores the node from
// the state the host read from its pool, then loops: ask the host for input (ticks, proposals,
// messages from peers, read requests), feed it to the RawNode, and hand each Ready to the host,
// which persists, sends and applies before the loop advances. Elections, log matching, commitment,
// membership changes, PreVote, CheckQuorum and ReadIndex are etcd's; this file only translates.
// The node's in-memory log is etcd's MemoryStorage, restored from the pool at start and kept in
// step with what the host persists (the host's pool is the durable copy).
//
// Built with Debian's Go and golang-etcd-server-dev, offline (replication/meson.build).
package main

/*
#include <stdint.h>
#include <stdlib.h>
#include "core.h"

static int call_wait(const pobj_raft_host* h, const uint8_t** d, size_t* n) { return h->wait(h->ctx, d, n); }
static int call_ready(const pobj_raft_host* h, const uint8_t* d, size_t n) { return h->ready(h->ctx, d, n); }
static void call_log(const pobj_raft_host* h, int level, const char* t, size_t n) { h->log(h->ctx, level, t, n); }
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"go.etcd.io/etcd/raft"
	pb "go.etcd.io/etcd/raft/raftpb"
)

const (
	inTick         = 1
	inPropose      = 2
	inStep         = 3
	inReadIndex    = 4
	inCampaign     = 5
	inConfChange   = 6
	inCompact      = 7
	inUnreachable  = 8
	inTransfer     = 9
	inSnapshotDone = 10
	inStatus       = 11

	outSoftState = 1
	outHardState = 2
	outEntry     = 3
	outSnapshot  = 4
	outMessage   = 5
	outCommitted = 6
	outReadState = 7
	outConfState = 8
	outStatus    = 9
	outMustSync  = 10
)

// hostLogger sends etcd's log lines to the host.
type hostLogger struct{ host *C.pobj_raft_host }

func (l hostLogger) out(level int, s string) {
	if len(s) == 0 {
		return
	}
	cs := C.CString(s)
	C.call_log(l.host, C.int(level), cs, C.size_t(len(s)))
	C.free(unsafe.Pointer(cs))
}
func (l hostLogger) Debug(v ...interface{})              { l.out(0, fmt.Sprint(v...)) }
func (l hostLogger) Debugf(f string, v ...interface{})   { l.out(0, fmt.Sprintf(f, v...)) }
func (l hostLogger) Info(v ...interface{})               { l.out(1, fmt.Sprint(v...)) }
func (l hostLogger) Infof(f string, v ...interface{})    { l.out(1, fmt.Sprintf(f, v...)) }
func (l hostLogger) Warning(v ...interface{})            { l.out(2, fmt.Sprint(v...)) }
func (l hostLogger) Warningf(f string, v ...interface{}) { l.out(2, fmt.Sprintf(f, v...)) }
func (l hostLogger) Error(v ...interface{})              { l.out(3, fmt.Sprint(v...)) }
func (l hostLogger) Errorf(f string, v ...interface{})   { l.out(3, fmt.Sprintf(f, v...)) }
func (l hostLogger) Fatal(v ...interface{})              { l.out(3, fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (l hostLogger) Fatalf(f string, v ...interface{}) {
	l.out(3, fmt.Sprintf(f, v...))
	panic(fmt.Sprintf(f, v...))
}
func (l hostLogger) Panic(v ...interface{}) { l.out(3, fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (l hostLogger) Panicf(f string, v ...interface{}) {
	l.out(3, fmt.Sprintf(f, v...))
	panic(fmt.Sprintf(f, v...))
}

// reader walks a little-endian byte string; a short read sets err.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.err = errors.New("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}
func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}
func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// writer builds the records of one Ready.
type writer struct{ b []byte }

func (w *writer) begin(kind byte) int {
	w.b = append(w.b, kind, 0, 0, 0, 0)
	return len(w.b)
}
func (w *writer) end(start int) {
	binary.LittleEndian.PutUint32(w.b[start-4:start], uint32(len(w.b)-start))
}
func (w *writer) u8(v uint8)     { w.b = append(w.b, v) }
func (w *writer) u32(v uint32)   { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64)   { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) bytes(v []byte) { w.b = append(w.b, v...) }

func (w *writer) entry(kind byte, e *pb.Entry) {
	s := w.begin(kind)
	w.u64(e.Index)
	w.u64(e.Term)
	w.u8(uint8(e.Type))
	w.bytes(e.Data)
	w.end(s)
}

// confState: the members after the change at index, then the change itself (op as inConfChange's,
// 255 for a ConfChangeV2, which this host never proposes; the member; the proposer's context).
func (w *writer) confState(index uint64, cs *pb.ConfState, op uint8, member uint64, context []byte) {
	data, _ := cs.Marshal()
	s := w.begin(outConfState)
	w.u64(index)
	w.u32(uint32(len(data)))
	w.bytes(data)
	w.u32(uint32(len(cs.Voters)))
	for _, v := range cs.Voters {
		w.u64(v)
	}
	w.u32(uint32(len(cs.Learners)))
	for _, v := range cs.Learners {
		w.u64(v)
	}
	w.u8(op)
	w.u64(member)
	w.u32(uint32(len(context)))
	w.bytes(context)
	w.end(s)
}

func entryPayload(r *reader) pb.Entry {
	var e pb.Entry
	e.Index = r.u64()
	e.Term = r.u64()
	e.Type = pb.EntryType(r.u8())
	if r.err == nil {
		e.Data = append([]byte(nil), r.b...)
	}
	return e
}

//export pobj_raft_conf_change
func pobj_raft_conf_change(op C.int, id C.uint64_t, out *C.uint8_t, cap C.size_t) C.size_t {
	cc := pb.ConfChange{Type: confChangeType(uint8(op)), NodeID: uint64(id)}
	data, _ := cc.Marshal()
	if len(data) <= int(cap) && len(data) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(out)), int(cap)), data)
	}
	return C.size_t(len(data))
}

func confChangeType(op uint8) pb.ConfChangeType {
	switch op {
	case 0:
		return pb.ConfChangeAddNode
	case 1:
		return pb.ConfChangeRemoveNode
	default:
		return pb.ConfChangeAddLearnerNode
	}
}

// confChange is a conf change entry's change, as the host reads it.
type confChange struct {
	op      uint8 // as inConfChange's; 255 for a ConfChangeV2
	member  uint64
	context []byte
}

// applyConfChange applies a conf change entry to the node, returning the members after it and the
// change.
func applyConfChange(node *raft.RawNode, e *pb.Entry) (*pb.ConfState, confChange, bool) {
	switch e.Type {
	case pb.EntryConfChange:
		var cc pb.ConfChange
		if err := cc.Unmarshal(e.Data); err == nil {
			op := uint8(3) // ConfChangeUpdateNode
			switch cc.Type {
			case pb.ConfChangeAddNode:
				op = 0
			case pb.ConfChangeRemoveNode:
				op = 1
			case pb.ConfChangeAddLearnerNode:
				op = 2
			}
			return node.ApplyConfChange(cc), confChange{op, cc.NodeID, cc.Context}, true
		}
	case pb.EntryConfChangeV2:
		var cc pb.ConfChangeV2
		if err := cc.Unmarshal(e.Data); err == nil {
			return node.ApplyConfChange(cc), confChange{op: 255}, true
		}
	}
	return nil, confChange{}, false
}

//export pobj_raft_run
func pobj_raft_run(config *C.uint8_t, n C.size_t, host *C.pobj_raft_host) (rc C.int) {
	log := hostLogger{host}
	defer func() {
		if p := recover(); p != nil {
			log.out(3, fmt.Sprintf("raft stopped: %v", p))
			rc = -1
		}
	}()
	r := reader{b: C.GoBytes(unsafe.Pointer(config), C.int(n))}
	cfg := raft.Config{
		ID:              r.u64(),
		ElectionTick:    int(r.u32()),
		HeartbeatTick:   int(r.u32()),
		Applied:         r.u64(),
		MaxSizePerMsg:   r.u64(),
		MaxInflightMsgs: int(r.u32()),
		ReadOnlyOption:  raft.ReadOnlySafe,
		Logger:          log,
	}
	flags := r.u8()
	cfg.PreVote = flags&1 != 0
	cfg.CheckQuorum = flags&2 != 0
	hs := pb.HardState{Term: r.u64(), Vote: r.u64(), Commit: r.u64()}
	snap := pb.Snapshot{}
	snap.Metadata.Index = r.u64()
	snap.Metadata.Term = r.u64()
	if err := snap.Metadata.ConfState.Unmarshal(r.take(int(r.u32()))); err != nil && r.err == nil {
		r.err = err
	}
	count := int(r.u32())
	ents := make([]pb.Entry, 0, count)
	for i := 0; i < count && r.err == nil; i++ {
		er := reader{b: r.take(int(r.u32()))}
		e := entryPayload(&er)
		if er.err != nil {
			r.err = er.err
		}
		ents = append(ents, e)
	}
	if r.err != nil {
		log.out(3, "raft: the start state is malformed: "+r.err.Error())
		return -1
	}
	storage := raft.NewMemoryStorage()
	if snap.Metadata.Index > 0 {
		if err := storage.ApplySnapshot(snap); err != nil {
			log.out(3, "raft: cannot restore the snapshot: "+err.Error())
			return -1
		}
	}
	if err := storage.SetHardState(hs); err != nil {
		log.out(3, "raft: cannot restore the hard state: "+err.Error())
		return -1
	}
	if err := storage.Append(ents); err != nil {
		log.out(3, "raft: cannot restore the log: "+err.Error())
		return -1
	}
	cfg.Storage = storage
	node, err := raft.NewRawNode(&cfg)
	if err != nil {
		log.out(3, "raft: "+err.Error())
		return -1
	}
	// Raft restores the members of the snapshot; the conf changes applied since (they are not
	// delivered again) are applied here, in order.
	for i := range ents {
		if e := &ents[i]; e.Index > snap.Metadata.Index && e.Index <= cfg.Applied {
			applyConfChange(node, e)
		}
	}
	var w writer
	for {
		var data *C.uint8_t
		var size C.size_t
		if C.call_wait(host, (**C.uint8_t)(unsafe.Pointer(&data)), &size) != 0 {
			return 0
		}
		in := reader{b: unsafe.Slice((*byte)(unsafe.Pointer(data)), int(size))}
		wantStatus := false
		for len(in.b) > 0 {
			kind := in.u8()
			p := reader{b: in.take(int(in.u32()))}
			if in.err != nil {
				log.out(3, "raft: malformed input")
				return -1
			}
			switch kind {
			case inTick:
				node.Tick()
			case inPropose:
				// Refused when there is no leader or while a leadership transfer runs; the host
				// learns of it by the entry never being committed (it times out and retries).
				_ = node.Propose(append([]byte(nil), p.b...))
			case inStep:
				var m pb.Message
				if err := m.Unmarshal(p.b); err != nil {
					log.out(2, "raft: a malformed message was dropped: "+err.Error())
					continue
				}
				// Messages for the local node only (a host never feeds local message types).
				if raft.IsLocalMsg(m.Type) {
					continue
				}
				_ = node.Step(m)
			case inReadIndex:
				node.ReadIndex(append([]byte(nil), p.b...))
			case inCampaign:
				_ = node.Campaign()
			case inConfChange:
				op := p.u8()
				cc := pb.ConfChange{Type: confChangeType(op), NodeID: p.u64()}
				cc.Context = append([]byte(nil), p.b...)
				if p.err == nil {
					_ = node.ProposeConfChange(cc)
				}
			case inCompact:
				// The host says the members as of idx: the snapshot a lagging member is sent
				// names them.
				idx := p.u64()
				var cs pb.ConfState
				if err := cs.Unmarshal(p.b); err != nil || p.err != nil {
					log.out(2, "raft: a malformed compaction request was ignored")
					continue
				}
				if last, _ := storage.LastIndex(); idx > last {
					idx = last
				}
				if first, _ := storage.FirstIndex(); idx >= first {
					if _, err := storage.CreateSnapshot(idx, &cs, nil); err == nil {
						_ = storage.Compact(idx)
					}
				}
			case inUnreachable:
				node.ReportUnreachable(p.u64())
			case inTransfer:
				node.TransferLeader(p.u64())
			case inSnapshotDone:
				id := p.u64()
				st := raft.SnapshotFinish
				if p.u8() != 0 {
					st = raft.SnapshotFailure
				}
				node.ReportSnapshot(id, st)
			case inStatus:
				wantStatus = true
			}
		}
		for node.HasReady() || wantStatus {
			w.b = w.b[:0]
			var rd raft.Ready
			has := node.HasReady()
			if has {
				rd = node.Ready()
				if rd.SoftState != nil {
					s := w.begin(outSoftState)
					w.u64(rd.SoftState.Lead)
					w.u8(uint8(rd.SoftState.RaftState))
					w.end(s)
				}
				if !raft.IsEmptyHardState(rd.HardState) {
					s := w.begin(outHardState)
					w.u64(rd.HardState.Term)
					w.u64(rd.HardState.Vote)
					w.u64(rd.HardState.Commit)
					w.end(s)
				}
				if !raft.IsEmptySnap(rd.Snapshot) {
					cs, _ := rd.Snapshot.Metadata.ConfState.Marshal()
					s := w.begin(outSnapshot)
					w.u64(rd.Snapshot.Metadata.Index)
					w.u64(rd.Snapshot.Metadata.Term)
					w.u32(uint32(len(cs)))
					w.bytes(cs)
					w.bytes(rd.Snapshot.Data)
					w.end(s)
				}
				for i := range rd.Entries {
					w.entry(outEntry, &rd.Entries[i])
				}
				s := w.begin(outMustSync)
				if rd.MustSync {
					w.u8(1)
				} else {
					w.u8(0)
				}
				w.end(s)
				for i := range rd.Messages {
					m := &rd.Messages[i]
					data, err := m.Marshal()
					if err != nil {
						continue
					}
					s := w.begin(outMessage)
					w.u64(m.To)
					w.u8(uint8(m.Type))
					w.bytes(data)
					w.end(s)
				}
				for i := range rd.CommittedEntries {
					e := &rd.CommittedEntries[i]
					w.entry(outCommitted, e)
					if cs, cc, ok := applyConfChange(node, e); ok {
						w.confState(e.Index, cs, cc.op, cc.member, cc.context)
					}
				}
				for _, rs := range rd.ReadStates {
					s := w.begin(outReadState)
					w.u64(rs.Index)
					w.bytes(rs.RequestCtx)
					w.end(s)
				}
			}
			if wantStatus {
				wantStatus = false
				st := node.Status()
				s := w.begin(outStatus)
				w.u64(st.ID)
				w.u64(st.Term)
				w.u64(st.Lead)
				w.u8(uint8(st.RaftState))
				w.u64(st.Commit)
				w.u64(st.Applied)
				for id, pr := range st.Progress {
					w.u64(id)
					w.u64(pr.Match)
					w.u64(pr.Next)
					if pr.IsLearner {
						w.u8(1)
					} else {
						w.u8(0)
					}
				}
				w.end(s)
			}
			if len(w.b) > 0 {
				if C.call_ready(host, (*C.uint8_t)(unsafe.Pointer(&w.b[0])), C.size_t(len(w.b))) != 0 {
					// The host could not persist or apply: nothing more may be sent or advanced.
					log.out(3, "raft: the host failed a Ready; the member stops")
					return -1
				}
			}
			if has {
				if !raft.IsEmptySnap(rd.Snapshot) {
					if err := storage.ApplySnapshot(rd.Snapshot); err != nil {
						log.out(3, "raft: cannot apply a snapshot: "+err.Error())
					}
				}
				if !raft.IsEmptyHardState(rd.HardState) {
					_ = storage.SetHardState(rd.HardState)
				}
				if err := storage.Append(rd.Entries); err != nil {
					log.out(3, "raft: cannot append to the log: "+err.Error())
					return -1
				}
				node.Advance(rd)
			}
		}
	}
}

func main() {}
