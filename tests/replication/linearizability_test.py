#!/usr/bin/python3
"""The linearizability checker, proven: it accepts linearizable histories (with concurrency and
indeterminate operations) and rejects known-bad ones (a stale read, a lost acknowledged write, a
double CAS, a read of a value never written, a lost increment, a write acknowledged by a deposed
leader). Random histories of a real linearizable register are accepted, and the same histories
with one read changed are rejected."""
import os
import random
import time
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linearizability as lin  # noqa: E402


def h(*events):
    """Events as tuples: (process, type, f, key, value)."""
    return [{"process": p, "type": t, "f": f, "key": k, "value": v} for p, t, f, k, v in events]


def seq(*ops):
    """Sequential operations (process, f, key, value, outcome) as invoke/complete pairs."""
    out = []
    for p, f, k, v, outcome in ops:
        out.append((p, "invoke", f, k, v if f != "read" else None))
        out.append((p, outcome, f, k, v))
    return h(*out)


class Register(unittest.TestCase):
    def ok(self, history, model=lin.Register):
        ok, why = lin.check(history, model)
        self.assertTrue(ok, why)

    def bad(self, history, model=lin.Register):
        ok, why = lin.check(history, model)
        self.assertFalse(ok, "accepted a non-linearizable history")
        self.assertIn("cannot be placed", why)

    def test_sequential(self):
        self.ok(seq((1, "write", "x", 1, "ok"), (2, "read", "x", 1, "ok"), (1, "write", "x", 2, "ok"),
                    (2, "read", "x", 2, "ok")))

    def test_read_before_any_write_sees_nothing(self):
        self.ok(seq((1, "read", "x", None, "ok")))
        self.bad(seq((1, "read", "x", 7, "ok")))

    def test_stale_read(self):
        self.bad(seq((1, "write", "x", 1, "ok"), (1, "write", "x", 2, "ok"), (2, "read", "x", 1, "ok")))

    def test_the_explanation_names_the_operation_where_the_history_goes_wrong(self):
        # A long good prefix, then one stale read: the explanation names that read (not the first
        # operation of the history, where the search gives up).
        ops = [(1, "read", "x", None, "ok")]
        for v in range(1, 30):
            ops += [(1, "write", "x", v, "ok"), (2, "read", "x", v, "ok")]
        ops += [(3, "read", "x", 12, "ok"), (1, "write", "x", 99, "ok")]
        ok, why = lin.check(seq(*ops))
        self.assertFalse(ok)
        self.assertIn("read x=12 by process 3", why)
        self.assertIn("the object then 29", why)

    def test_lost_acknowledged_write(self):
        # What a failover that loses an acknowledged write looks like to clients.
        self.bad(seq((1, "write", "x", 1, "ok"), (2, "write", "x", 2, "ok"), (3, "read", "x", 1, "ok"),
                     (3, "read", "x", 1, "ok")))

    def test_concurrent_reads_may_see_either(self):
        # Two reads, both overlapping the write and each other: one before it, one after.
        hist = h((1, "invoke", "write", "x", 1), (2, "invoke", "read", "x", None), (3, "invoke", "read", "x", None),
                 (3, "ok", "read", "x", None), (2, "ok", "read", "x", 1), (1, "ok", "write", "x", 1))
        self.ok(hist)

    def test_reads_may_not_go_back_in_time(self):
        # Both reads overlap the write, but once one saw the new value, a later read may not see the old.
        hist = h((1, "invoke", "write", "x", 1), (2, "invoke", "read", "x", None), (2, "ok", "read", "x", 1),
                 (3, "invoke", "read", "x", None), (3, "ok", "read", "x", None), (1, "ok", "write", "x", 1))
        # (the first read returned before the second began)
        self.ok(hist[:3] + hist[5:])
        bad = h((1, "invoke", "write", "x", 1), (2, "invoke", "read", "x", None), (2, "ok", "read", "x", 1),
                (3, "invoke", "read", "x", None), (3, "ok", "read", "x", None), (1, "ok", "write", "x", 1))
        self.bad(bad)

    def test_indeterminate_write_may_land_late_or_never(self):
        base = [(1, "invoke", "write", "x", 5), (1, "info", "write", "x", 5)]
        self.ok(h(*base, (2, "invoke", "read", "x", None), (2, "ok", "read", "x", None),
                  (2, "invoke", "read", "x", None), (2, "ok", "read", "x", 5)))
        self.ok(h(*base, (2, "invoke", "read", "x", None), (2, "ok", "read", "x", None)))
        # ... but once seen, it cannot be unseen.
        self.bad(h(*base, (2, "invoke", "read", "x", None), (2, "ok", "read", "x", 5),
                   (2, "invoke", "read", "x", None), (2, "ok", "read", "x", None)))

    def test_unobserved_indeterminate_writes_change_no_verdict(self):
        # Pruned (nobody read 8 or 9), they leave a stale read stale and a good history good.
        noise = [(4, "invoke", "write", "x", 8), (4, "info", "write", "x", 8),
                 (5, "invoke", "write", "x", 9), (5, "info", "write", "x", 9)]
        self.bad(h(*noise, *[(p, t, f, k, v) for p, t, f, k, v in
                             [(e["process"], e["type"], e["f"], e["key"], e["value"]) for e in
                              seq((1, "write", "x", 1, "ok"), (1, "write", "x", 2, "ok"), (2, "read", "x", 1, "ok"))]]))
        self.ok(h(*noise, (1, "invoke", "write", "x", 1), (1, "ok", "write", "x", 1),
                  (2, "invoke", "read", "x", None), (2, "ok", "read", "x", 1)))
        # Observed, an indeterminate write is kept: here only it explains the read.
        self.ok(h(*noise, (2, "invoke", "read", "x", None), (2, "ok", "read", "x", 9)))

    def test_failed_write_never_happened(self):
        self.bad(seq((1, "write", "x", 1, "ok"), (2, "write", "x", 9, "fail"), (3, "read", "x", 9, "ok")))

    def test_cas(self):
        self.ok(seq((1, "write", "x", 0, "ok"), (2, "cas", "x", [0, 1], "ok"), (3, "cas", "x", [0, 2], "fail"),
                    (3, "read", "x", 1, "ok")))
        # Two CASes from the same value both succeeding: a split brain.
        self.bad(seq((1, "write", "x", 0, "ok"), (2, "cas", "x", [0, 1], "ok"), (3, "cas", "x", [0, 2], "ok")))
        # A CAS that failed although the value matched.
        self.bad(seq((1, "write", "x", 0, "ok"), (2, "cas", "x", [0, 1], "fail"), (2, "read", "x", 0, "ok")))

    def test_deposed_leader_acknowledges_a_write(self):
        # A client writes through an old leader cut off from the majority, which acknowledges it; the
        # new leader's clients never see it, and a later reader sees their write instead.
        self.bad(h((1, "invoke", "write", "x", 1), (1, "ok", "write", "x", 1),
                   (2, "invoke", "write", "x", 2), (2, "ok", "write", "x", 2),
                   (1, "invoke", "write", "x", 3), (1, "ok", "write", "x", 3),  # the old leader's ack
                   (3, "invoke", "read", "x", None), (3, "ok", "read", "x", 2)))

    def test_keys_are_independent(self):
        self.ok(seq((1, "write", "x", 1, "ok"), (1, "write", "y", 2, "ok"), (2, "read", "x", 1, "ok"),
                    (2, "read", "y", 2, "ok")))
        self.bad(seq((1, "write", "x", 1, "ok"), (1, "write", "y", 2, "ok"), (2, "read", "x", 1, "ok"),
                     (2, "read", "y", 1, "ok")))

    def test_malformed_history_is_refused(self):
        with self.assertRaises(ValueError):
            lin.check(h((1, "invoke", "write", "x", 1), (1, "invoke", "write", "x", 2)))
        with self.assertRaises(ValueError):
            lin.check(h((1, "ok", "write", "x", 1)))


class Counter(unittest.TestCase):
    def test_lost_increment(self):
        ok, _ = lin.check(seq((1, "incr", "c", 1, "ok"), (2, "incr", "c", 1, "ok"), (1, "incr", "c", 1, "ok"),
                              (3, "read", "c", 3, "ok")), lin.Counter)
        self.assertTrue(ok)
        ok, _ = lin.check(seq((1, "incr", "c", 1, "ok"), (2, "incr", "c", 1, "ok"), (1, "incr", "c", 1, "ok"),
                              (3, "read", "c", 2, "ok")), lin.Counter)
        self.assertFalse(ok)

    def test_indeterminate_increment(self):
        base = [(1, "incr", "c", 1, "ok"), (2, "incr", "c", 1, "info")]
        for seen, expect in ((1, True), (2, True), (3, False)):
            ok, _ = lin.check(seq(*base, (3, "read", "c", seen, "ok")), lin.Counter)
            self.assertEqual(ok, expect, "read %d" % seen)


class CounterSweep(unittest.TestCase):
    """The counter's sweep (check_counter) against the search (check_key) on random histories of a
    simulated counter, some reads then changed by one increment: the same verdict on each."""

    def simulate(self, rng, clients=4, ops=24):
        value, events, inflight, done = 0, [], {}, 0
        while done < ops or inflight:
            p = rng.randrange(clients)
            if p not in inflight and done < ops:
                f = "incr" if rng.random() < 0.6 else "read"
                events.append({"process": p, "type": "invoke", "f": f, "key": "c", "value": 1 if f == "incr" else None})
                inflight[p] = {"f": f, "applied": False, "value": 1 if f == "incr" else None}
                done += 1
            elif p in inflight:
                op = inflight[p]
                if not op["applied"]:
                    if op["f"] == "incr":
                        if rng.random() < 0.9:  # (an increment in doubt may never happen)
                            value += 1
                    else:
                        op["value"] = value
                    op["applied"] = True
                else:
                    outcome = "info" if op["f"] == "incr" and rng.random() < 0.2 else "ok"
                    if op["f"] == "incr" and outcome == "ok" and value == 0:
                        outcome = "info"
                    events.append({"process": p, "type": outcome, "f": op["f"], "key": "c", "value": op["value"]})
                    del inflight[p]
        return events

    def test_the_sweep_agrees_with_the_search(self):
        rng = random.Random(99)
        verdicts = {True: 0, False: 0}
        for _ in range(400):
            hist = self.simulate(rng)
            reads = [e for e in hist if e["type"] == "ok" and e["f"] == "read"]
            if reads and rng.random() < 0.7:
                e = rng.choice(reads)
                e["value"] = max(0, e["value"] + rng.choice([-1, 1, 2]))
            for ops in lin.operations(hist).values():
                sweep = lin.check_counter(ops)
                search = lin.check_key(ops, lin.Counter)
                self.assertEqual(sweep[0], search[0], (sweep, search, hist))
                verdicts[sweep[0]] += 1
        self.assertGreater(verdicts[True], 100)
        self.assertGreater(verdicts[False], 50)

    def test_increments_of_different_amounts_go_to_the_search(self):
        ops = lin.operations(seq((1, "incr", "c", 1, "ok"), (2, "incr", "c", 2, "ok"), (3, "read", "c", 3, "ok")))["c"]
        self.assertIsNone(lin.check_counter(ops))
        self.assertTrue(lin.check(seq((1, "incr", "c", 1, "ok"), (2, "incr", "c", 2, "ok"),
                                      (3, "read", "c", 3, "ok")), lin.Counter)[0])

    def test_a_long_history_with_many_increments_in_doubt_is_decided_at_once(self):
        # 20,000 increments, a third in doubt, reads between: the search's memo would hold subsets
        # of the ones in doubt.
        events, value, t0 = [], 0, time.time()
        for i in range(20000):
            p = i % 50
            events.append({"process": p, "type": "invoke", "f": "incr", "key": "c", "value": 1})
            value += 1
            events.append({"process": p, "type": "info" if i % 3 == 0 else "ok", "f": "incr", "key": "c", "value": 1})
            if i % 10 == 0:
                events.append({"process": 99, "type": "invoke", "f": "read", "key": "c", "value": None})
                events.append({"process": 99, "type": "ok", "f": "read", "key": "c", "value": value})
        self.assertEqual(lin.check(events, lin.Counter), (True, None))
        last_read = [e for e in events if e["f"] == "read" and e["type"] == "ok"][-1]
        last_read["value"] += 1  # one more than had been invoked
        self.assertFalse(lin.check(events, lin.Counter)[0])
        last_read["value"] -= 1
        events[1]["type"] = "fail"  # the first increment never happened: every read saw one too many
        self.assertFalse(lin.check(events, lin.Counter)[0])
        self.assertLess(time.time() - t0, 20)


class RandomHistories(unittest.TestCase):
    """Histories from a simulated linearizable register with concurrent clients: accepted; the
    same with one read's value changed to one no order allows: rejected."""

    def simulate(self, rng, clients=5, ops=300):
        value = {"x": None, "y": None}
        events, inflight = [], {}
        done = 0
        while done < ops or inflight:
            p = rng.randrange(clients)
            if p not in inflight and done < ops:
                key = rng.choice(["x", "y"])
                f = rng.choice(["read", "write", "write"])
                v = rng.randrange(1000000) if f == "write" else None
                events.append({"process": p, "type": "invoke", "f": f, "key": key, "value": v})
                inflight[p] = {"f": f, "key": key, "value": v, "applied": False}
                done += 1
            elif p in inflight:
                op = inflight[p]
                if not op["applied"]:  # the linearization point, somewhere inside the interval
                    if op["f"] == "write":
                        value[op["key"]] = op["value"]
                    else:
                        op["value"] = value[op["key"]]
                    op["applied"] = True
                else:
                    outcome = "info" if op["f"] == "write" and rng.random() < 0.05 else "ok"
                    events.append({"process": p, "type": outcome, "f": op["f"], "key": op["key"],
                                   "value": op["value"]})
                    del inflight[p]
        return events

    def test_random(self):
        rng = random.Random(1234)
        rejected = 0
        for _ in range(20):
            hist = self.simulate(rng)
            ok, why = lin.check(hist)
            self.assertTrue(ok, why)
            # Change a read that followed a completed write to a value nobody wrote.
            for e in reversed(hist):
                if e["type"] == "ok" and e["f"] == "read" and e["value"] is not None:
                    e["value"] = -1
                    break
            ok, _ = lin.check(hist)
            self.assertFalse(ok)
            rejected += 1
        self.assertEqual(rejected, 20)


if __name__ == "__main__":
    unittest.main(verbosity=1)
