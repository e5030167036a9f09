#!/usr/bin/python3
"""pobj-kv groups under faults, checked the way Jepsen checks databases: clients record every
operation (invoke, then ok, fail or info) on registers (SET, GET, CAS) and a counter (INCR, GET)
while a nemesis SIGKILLs members, pauses the leader with SIGSTOP for longer than an election
timeout, and partitions members; tests/replication/linearizability.py, proven on known-bad
histories, must find every key's history linearizable.

Where this machine allows it (root, `ip netns`, nftables: tests/replication/netns.py), every member
runs in a network namespace of its own on one bridge, and partitions and random loss (another
fault: every member drops 20% of the packets it receives) are nftables rules. Elsewhere, or with
JEPSEN_NET=hook, the members share loopback and partitions come from the transport's fault hook
(POBJ_KV_TEST_NET: a file per member listing the members whose frames it drops, both ways). The
first line printed says which ran.

    POBJ_KV=build/kvstore/pobj-kv /usr/bin/python3 tests/replication/jepsen_test.py
Environment: JEPSEN_SECONDS (default 25: the CI schedule), JEPSEN_SEED (printed every run),
JEPSEN_MEMBERS (3 or 5), JEPSEN_MODE (cache_line or page), JEPSEN_KEEP=DIR (keep the histories),
JEPSEN_NET (auto, netns or hook)."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "kvstore"))
import linearizability as lin  # noqa: E402
import netns  # noqa: E402
from kv_server import KvServer, free_port, import_redis  # noqa: E402

redis = import_redis()

SECONDS = float(os.environ.get("JEPSEN_SECONDS", "25"))
SEED = int(os.environ.get("JEPSEN_SEED", str(random.SystemRandom().randrange(1 << 30))))
MEMBERS = int(os.environ.get("JEPSEN_MEMBERS", "3"))
MODE = os.environ.get("JEPSEN_MODE", "cache_line")
CLIENTS = 6
REGISTERS = ["r0", "r1", "r2"]
COUNTER = "c0"


def network_mode():
    """('netns', None) or ('hook', why namespaces are not used)."""
    want = os.environ.get("JEPSEN_NET", "auto")
    if want == "hook":
        return "hook", "JEPSEN_NET=hook"
    ok, why = netns.available()
    if ok:
        return "netns", None
    if want == "netns":
        raise unittest.SkipTest(f"JEPSEN_NET=netns, but {why}")
    return "hook", why


class Cluster:
    def __init__(self, test, n, mode):
        self.dir = tempfile.mkdtemp(prefix="pobj-jepsen-")
        test.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.network = None
        self.fallback = None
        if mode == "netns":
            # Every member in a namespace of its own, on one bridge (tests/replication/netns.py):
            # partitions and loss are nftables rules, seen by the kernel's TCP as a real network's.
            try:
                self.network = netns.Network(n)
            except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired) as e:
                detail = (getattr(e, "stderr", None) or str(e)).strip()
                self.fallback = f"making the namespaces failed: {detail}"
        if self.network:
            test.addCleanup(self.network.close)  # (after the members: cleanups run last first)
            hosts = [self.network.ip(i) for i in range(n)]
            raft = [7379] * n
        else:
            hosts = ["127.0.0.1"] * n
            raft = [free_port() for _ in range(n)]
        spec = ",".join(f"{i + 1}={h}:{p}" for i, (h, p) in enumerate(zip(hosts, raft)))
        self.nets = [os.path.join(self.dir, f"net{i + 1}") for i in range(n)]
        self.members = []
        for i in range(n):
            open(self.nets[i], "w").close()
            # A short log (compacted past 400 entries) so that restarts and catch-up run on compacted logs.
            extra = ["--persist-mode", MODE, "--replica-id", str(i + 1), "--replicas", spec, "--replica-bootstrap", "yes",
                     "--raft-log-entries", "200"]
            if self.network:
                m = KvServer(extra=["--port", "6379", "--bind", hosts[i], "--protected-mode", "no", *extra],
                             prefix=self.network.prefix(i),
                             host=hosts[i])
            else:
                m = KvServer(fixed_port=True, extra=extra)
            test.addCleanup(m.close)
            self.members.append(m)
        self.paused = set()
        self.cut = {i: set() for i in range(n)}

    def start_all(self):
        for i, m in enumerate(self.members):
            self.start(i)

    def start(self, i):
        self.members[i].start(env=None if self.network else {"POBJ_KV_TEST_NET": self.nets[i]})

    def write_nets(self):
        for i in range(len(self.members)):
            with open(self.nets[i] + ".tmp", "w") as f:
                f.write(" ".join(str(j + 1) for j in sorted(self.cut[i])))
            os.replace(self.nets[i] + ".tmp", self.nets[i])

    def isolate(self, i):
        if self.network:
            return self.network.isolate(i)
        for j in range(len(self.members)):
            if j != i:
                self.cut[i].add(j)
                self.cut[j].add(i)
        self.write_nets()

    def split(self, side):
        """Partitions the members into `side` and the others."""
        others = [j for j in range(len(self.members)) if j not in side]
        if self.network:
            return self.network.split(side, others)
        for i in side:
            for j in others:
                self.cut[i].add(j)
                self.cut[j].add(i)
        self.write_nets()

    def lose(self, percent):
        """Every member drops `percent` of the packets it receives (namespaces only)."""
        for i in range(len(self.members)):
            self.network.drop_randomly(i, percent)

    def heal(self):
        if self.network:
            return self.network.heal()
        for i in self.cut:
            self.cut[i].clear()
        self.write_nets()

    def pause(self, i):
        self.members[i].proc.send_signal(signal.SIGSTOP)
        self.paused.add(i)

    def resume(self, i):
        if i in self.paused and self.members[i].proc is not None:
            self.members[i].proc.send_signal(signal.SIGCONT)
        self.paused.discard(i)

    def leader(self):
        """The member a majority names leader, or None."""
        votes = {}
        for i, m in enumerate(self.members):
            if m.proc is None or i in self.paused:
                continue
            try:
                r = redis.Redis(host=m.host, port=m.port, socket_timeout=0.5, decode_responses=True)
                lid = int(r.info("replication")["raft_leader_id"])
                r.close()
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                continue
            if lid:
                votes[lid - 1] = votes.get(lid - 1, 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1], default=(None, 0))
        return best[0] if best[1] > len(self.members) // 2 else None


class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.events = []

    def add(self, process, type_, f, key, value):
        with self.lock:
            self.events.append({"process": process, "type": type_, "f": f, "key": key, "value": value,
                                "time": time.time()})


def clock(t):
    """A wall-clock time as the servers' logs print it (HH:MM:SS.mmm, local time)."""
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def explain(why, events, faults, cluster):
    """What a failed check needs to be understood: the key's operations before the one that cannot
    be placed, the faults, and what the members logged about leaders and snapshots meanwhile."""
    m = re.search(r"operation \S+ (\S+?)=.*called at event (\d+), returned at event (\d+)", why)
    if not m:
        return ""
    key, call, ret = m.group(1), int(m.group(2)), int(m.group(3))
    window = [(i, e) for i, e in enumerate(events[:ret + 1]) if e["key"] == key][-40:]
    t0, t1 = window[0][1]["time"] - 1, events[ret]["time"] + 0.5
    out = [f"the last {len(window)} events on {key} up to event {ret}:"]
    out += [f"  {clock(e['time'])} #{i} p{e['process']} {e['type']} {e['f']} {e['value']!r}" for i, e in window]
    out.append("faults: " + ", ".join(f"{clock(t)} {k}" for t, k in faults))
    for n, member in enumerate(cluster.members):
        lines = []
        for line in member.log_text().splitlines():
            parts = line.split(" ")
            stamp = parts[4] if len(parts) > 4 else ""
            if re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", stamp) and clock(t0)[:12] <= stamp <= clock(t1)[:12]:
                lines.append("  " + line)
        out.append(f"member {n + 1}'s log from {clock(t0)} to {clock(t1)}:")
        out += lines[-60:]
    return "\n".join(out)


class Client(threading.Thread):
    def __init__(self, cid, cluster, history, deadline, seed):
        super().__init__(daemon=True)
        self.cid = cid
        self.process = cid
        self.cluster = cluster
        self.history = history
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.guess = cid % len(cluster.members)
        self.conns = {}
        self.counts = {"ok": 0, "fail": 0, "info": 0}

    def conn(self, i):
        m = self.cluster.members[i]
        c = self.conns.get(i)
        if c is None or c[0] != m.port:
            c = (m.port, redis.Redis(host=m.host, port=m.port, socket_timeout=1.0, socket_connect_timeout=1.0,
                                     decode_responses=True))
            self.conns[i] = c
        return c[1]

    def run(self):
        n = 0
        while time.time() < self.deadline:
            n += 1
            if self.rng.random() < 0.25:
                key = COUNTER
                f, value = ("incr", 1) if self.rng.random() < 0.6 else ("read", None)
            else:
                key = self.rng.choice(REGISTERS)
                x = self.rng.random()
                if x < 0.4:
                    f, value = "write", f"{self.cid}.{n}"
                elif x < 0.8:
                    f, value = "read", None
                else:
                    f, value = "cas", [self.rng.choice([None, f"{self.rng.randrange(CLIENTS)}.{n - self.rng.randrange(1, 4)}"]), f"{self.cid}.{n}"]
                    if value[0] is None:  # a CAS on a missing key never swaps: ask for a written value instead
                        f, value = "write", f"{self.cid}.{n}"
            self.op(f, key, value)
            time.sleep(self.rng.uniform(0.005, 0.03))
        for c in self.conns.values():
            c[1].close()

    def op(self, f, key, value):
        p = self.process
        self.history.add(p, "invoke", f, key, value)
        target = self.guess
        try:
            r = self.conn(target)
            if f == "write":
                r.set(key, value)
                out, got = "ok", value
            elif f == "read":
                got = r.get(key)
                if key == COUNTER:
                    got = int(got) if got is not None else 0
                out = "ok"
            elif f == "cas":
                swapped = r.execute_command("CAS", key, value[0], value[1])
                out, got = ("ok" if swapped == 1 else "fail"), value
            else:  # incr
                r.incr(key)
                out, got = "ok", value
        except redis.exceptions.ResponseError as e:
            text = str(e)
            m = re.search(r"the leader is member (\d+)", text)
            if m:
                self.guess = int(m.group(1)) - 1
            elif text.startswith("TRYAGAIN no leader"):
                self.guess = (self.guess + 1) % len(self.cluster.members)
            # Refused before running (a follower's READONLY, no leader yet, a new leader's address
            # not known yet): it did not happen. Not
            # committed in time (TRYAGAIN from the leader), or anything else: it may have.
            definite = (m is not None or text.startswith("TRYAGAIN no leader") or "read only replica" in text
                        or "has not said yet where clients reach it" in text)
            out, got = ("fail" if definite else "info"), value
            if f == "cas" and definite:
                out = "info_refused"  # a refused CAS is not a CAS that saw another value
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self.conns.pop(target, None)
            self.guess = (self.guess + 1) % len(self.cluster.members)
            out, got = "info", value
        if out == "info_refused":
            # Drop it from the history as if never invoked: it was refused before running.
            with self.history.lock:
                for i in range(len(self.history.events) - 1, -1, -1):
                    e = self.history.events[i]
                    if e["process"] == p and e["type"] == "invoke":
                        del self.history.events[i]
                        break
            self.counts["fail"] += 1
            return
        self.history.add(p, out, f, key, got)
        self.counts[out] += 1
        if out == "info":
            self.process += CLIENTS  # Jepsen's rule: a process with an operation in doubt is not reused


class JepsenTest(unittest.TestCase):
    def test_linearizable_under_kills_pauses_and_partitions(self):
        net, why = network_mode()
        rng = random.Random(SEED)
        cluster = Cluster(self, MEMBERS, net)
        why = cluster.fallback or why
        where = ("network namespaces, faults from nftables" if cluster.network
                 else f"loopback, faults from the transport's hook (no namespaces: {why})")
        print(f"jepsen: seed {SEED}, {MEMBERS} members, {MODE}, {SECONDS:.0f} s, {where}", flush=True)
        cluster.start_all()
        deadline = time.time() + 15
        while cluster.leader() is None:
            self.assertLess(time.time(), deadline, "no leader at start:\n" + "\n".join(
                m.log_text()[-1500:] for m in cluster.members))
            time.sleep(0.1)
        history = History()
        end = time.time() + SECONDS
        clients = [Client(c, cluster, history, end, rng.randrange(1 << 30)) for c in range(CLIENTS)]
        for c in clients:
            c.start()
        faults = []
        dead = {}
        try:
            while time.time() < end - 2:
                time.sleep(rng.uniform(1.0, 2.5))
                # Repair what the last fault did first (restarts, resumes, heals), then a new fault.
                for i in list(dead):
                    cluster.start(i)
                    del dead[i]
                for i in list(cluster.paused):
                    cluster.resume(i)
                cluster.heal()
                lead = cluster.leader()
                kinds = ["kill-leader", "kill-follower", "pause-leader", "isolate-leader", "isolate-follower"]
                if cluster.network:
                    kinds.append("lossy")  # every member drops 20% of what it receives
                if MEMBERS >= 5:
                    kinds.append("minority-leader")  # the leader and one more, apart from the rest
                kind = rng.choice(kinds)
                if lead is None:
                    kind = "none (no leader)"
                elif kind == "kill-leader":
                    cluster.members[lead].kill()
                    dead[lead] = True
                elif kind == "kill-follower":
                    f = rng.choice([i for i in range(MEMBERS) if i != lead])
                    cluster.members[f].kill()
                    dead[f] = True
                elif kind == "pause-leader":
                    cluster.pause(lead)  # longer than an election timeout: until the next round
                elif kind == "isolate-leader":
                    cluster.isolate(lead)
                elif kind == "lossy":
                    cluster.lose(20)
                elif kind == "minority-leader":
                    cluster.split({lead, rng.choice([i for i in range(MEMBERS) if i != lead])})
                else:
                    cluster.isolate(rng.choice([i for i in range(MEMBERS) if i != lead]))
                faults.append((time.time(), kind if lead is None else f"{kind} (leader {lead + 1})"))
        finally:
            for c in clients:
                c.join(timeout=30)
            for i in list(dead):
                cluster.start(i)
            for i in list(cluster.paused):
                cluster.resume(i)
            cluster.heal()
        for c in clients:
            self.assertFalse(c.is_alive())
        counts = {k: sum(c.counts[k] for c in clients) for k in ("ok", "fail", "info")}
        firsts = []
        for m in cluster.members:
            try:
                r = redis.Redis(host=m.host, port=m.port, socket_timeout=2, decode_responses=True)
                firsts.append(int(r.info("replication")["raft_first_index"]))
                r.close()
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
        kinds = sorted({k.split(" (leader")[0] for _, k in faults})
        summary = (f"jepsen: seed {SEED}: {len(faults)} faults ({', '.join(kinds)}); "
                   f"{len(history.events)} events, {counts['ok']} ok, {counts['fail']} refused, {counts['info']} in doubt; "
                   f"logs compacted up to {firsts}")
        print(summary, flush=True)
        keep = os.environ.get("JEPSEN_KEEP")
        if keep:
            os.makedirs(keep, exist_ok=True)
            with open(os.path.join(keep, f"history-{SEED}.jsonl"), "w") as f:
                for e in history.events:
                    f.write(json.dumps(e) + "\n")
        registers = [e for e in history.events if e["key"] != COUNTER]
        counter = [e for e in history.events if e["key"] == COUNTER]
        for name, part, model in (("registers", registers, lin.Register), ("counter", counter, lin.Counter)):
            ok, why = lin.check(part, model)
            if not ok:
                try:
                    print(explain(why, part, faults, cluster), file=sys.stderr, flush=True)
                except Exception as e:  # noqa: BLE001 - the verdict below matters more than the details
                    print(f"jepsen: cannot explain the failure: {e!r}", file=sys.stderr, flush=True)
            self.assertTrue(ok, f"{name}: {why} ({summary}; rerun with JEPSEN_SEED={SEED})")
        self.assertGreater(counts["ok"], 50, summary)
        self.assertGreater(max(firsts, default=0), 1, "no log was compacted: " + summary)
        self.assertGreaterEqual(len(faults), max(1, int(SECONDS / 4)), summary)


if __name__ == "__main__":
    unittest.main()
