"""pobj-kv's shared objects for serverless functions, through the Python client (kvstore/client/
python/pobjkv) and its process executor: barriers, latches, semaphores and futures with many
processes; no lost or doubled permit or count when clients are killed mid-call; exactly-once
under dropped connections and retries; the server killed with SIGKILL in the middle of a Monte
Carlo run, restarted, the workers retrying, and the final count exact; blocked callers across a
restart; stored replies expiring.

Run by meson (`meson test kvstore-objects`) with POBJ_KV naming the server binary."""

import os
import random
import signal
import socket
import sys
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "kvstore", "client", "python"))
from kv_server import KvServer  # noqa: E402
from pobjkv import Client  # noqa: E402
from pobjkv.executor import FunctionExecutor  # noqa: E402



# Workers (module level: forked processes run them).

def barrier_worker(job):
    port, name, parties, rounds = job
    kv = Client(port=port)
    b = kv.cyclic_barrier(name, parties)
    return [b.await_() for _ in range(rounds)]


def latch_waiter(job):
    port, name = job[:2]
    return Client(port=port).count_down_latch(name).await_(timeout=20)


def latch_counter(job):
    port, name = job[:2]
    time.sleep(0.2)
    return Client(port=port).count_down_latch(name).count_down()


def semaphore_worker(job):
    port, name, rounds = job
    kv = Client(port=port)
    s = kv.semaphore(name)
    peak = 0
    for _ in range(rounds):
        s.acquire()
        inside = kv.call("INCR", name + ":inside")
        peak = max(peak, int(inside))
        time.sleep(0.005)
        kv.call("DECR", name + ":inside")
        s.release()
    return peak


def future_getter(job):
    port, name = job[:2]
    return Client(port=port).future(name).get(timeout=20)


def flaky_worker(job):
    """Adds to a shared sum, then dies on its first run: the executor runs it again."""
    port, run, i = job
    kv = Client(port=port)
    kv.atomic_long(f"{run}:sum").add_and_get(i + 1, request_id=f"{run}:{i}")
    if kv.call("INCR", f"{run}:runs:{i}") == 1:
        os._exit(3)
    return i + 1


def counting_worker(job):
    port, run, index, steps = job
    kv = Client(port=port, retry_for=60)
    total = 0
    for k in range(steps):
        n = (index * 7 + k) % 5 + 1
        kv.call("INCRBY", f"{run}:count", n, request_id=f"{run}:{index}:{k}")
        total += n
        time.sleep(0.002)
    return total


class ObjectsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KvServer(fixed_port=True)
        cls.addClassCleanup(cls.server.close)  # runs when setUpClass fails after it, unlike tearDownClass
        cls.server.start()
        cls.port = cls.server.port
        cls.kv = Client(port=cls.port)

    @classmethod
    def tearDownClass(cls):
        cls.kv.close()

    def test_cas(self):
        r = self.kv.redis
        r.set("cas:a", "1")
        self.assertEqual(r.execute_command("CAS", "cas:a", "1", "2"), 1)
        self.assertEqual(r.execute_command("CAS", "cas:a", "1", "3"), 0)
        self.assertEqual(r.get("cas:a"), b"2")
        self.assertEqual(r.execute_command("CAS", "cas:none", "", "x"), 0)
        ref = self.kv.atomic_ref("cas:ref")
        self.assertTrue(ref.compare_and_set(None, "v1"))
        self.assertFalse(ref.compare_and_set(None, "v2"))
        self.assertTrue(ref.compare_and_set("v1", "v2"))
        self.assertEqual(ref.get(), b"v2")
        r.lpush("cas:list", "x")
        with self.assertRaises(Exception) as e:
            r.execute_command("CAS", "cas:list", "x", "y")
        self.assertIn("WRONGTYPE", str(e.exception))

    def test_barrier_with_many_processes_and_generations(self):
        parties, rounds = 12, 4
        with FunctionExecutor(workers=parties) as ex:
            got = ex.map(barrier_worker, [(self.port, "bar:many", parties, rounds)] * parties)
        for rnd in range(rounds):
            self.assertEqual(sorted(g[rnd] for g in got), list(range(parties)), f"round {rnd}")
        self.assertEqual(self.kv.cyclic_barrier("bar:many", parties).waiting(), 0)

    def test_barrier_timeout_withdraws(self):
        b = self.kv.cyclic_barrier("bar:timeout", 2)
        t0 = time.monotonic()
        self.assertIsNone(b.await_(timeout=0.3))
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        self.assertEqual(b.waiting(), 0)  # the arrival was taken back
        with self.assertRaises(Exception) as e:
            self.kv.redis.execute_command("BARRIER.AWAIT", "bar:timeout", 3)
        self.assertIn("2 parties", str(e.exception))

    def test_latch(self):
        Client(port=self.port).count_down_latch("latch:a", 4)
        with FunctionExecutor(workers=12) as ex:
            got = ex.map(lambda job: latch_waiter(job) if job[2] == "wait" else latch_counter(job),
                         [(self.port, "latch:a", "wait")] * 8 + [(self.port, "latch:a", "count")] * 4)
        self.assertEqual(got[:8], [True] * 8)
        self.assertEqual(sorted(got[8:]), [0, 1, 2, 3])
        self.assertEqual(self.kv.count_down_latch("latch:a").get_count(), 0)
        other = self.kv.count_down_latch("latch:b", 1)
        self.assertFalse(other.await_(timeout=0.2))

    def test_semaphore_bounds_concurrency_and_loses_no_permit(self):
        self.kv.semaphore("sem:a", 3)
        with FunctionExecutor(workers=10) as ex:
            peaks = ex.map(semaphore_worker, [(self.port, "sem:a", 15)] * 10)
        self.assertLessEqual(max(peaks), 3)
        self.assertGreaterEqual(max(peaks), 2)  # they did overlap
        self.assertEqual(self.kv.semaphore("sem:a").available_permits(), 3)

    def test_semaphore_lease_returns_permits_of_a_killed_holder(self):
        s = self.kv.semaphore("sem:lease", 1)
        pid = os.fork()
        if pid == 0:  # a holder that dies without releasing
            Client(port=self.port).semaphore("sem:lease").acquire(lease=0.4)
            os.kill(os.getpid(), signal.SIGKILL)
        os.waitpid(pid, 0)
        self.assertEqual(s.available_permits(), 0)
        t0 = time.monotonic()
        self.assertTrue(s.acquire(timeout=5))  # waits for the lease, without polling
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertFalse(s.acquire(timeout=0.1))
        self.assertEqual(s.release(), 1)
        lease = s.acquire(lease=10)
        self.assertTrue(s.renew(lease, 10))
        self.assertEqual(s.release(lease=lease), 1)
        self.assertEqual(s.release(lease=lease), 0)  # a lease is given back once
        self.assertEqual(s.available_permits(), 1)

    def test_future(self):
        with FunctionExecutor(workers=7) as ex:
            def run(job):
                if job[2] == "set":
                    time.sleep(0.2)
                    return Client(port=job[0]).future(job[1]).set("42")
                return future_getter(job)
            got = ex.map(run, [(self.port, "fut:a", "get")] * 6 + [(self.port, "fut:a", "set")])
        self.assertEqual(got[:6], [b"42"] * 6)
        self.assertTrue(got[6])
        self.assertFalse(self.kv.future("fut:a").set("43"))
        self.assertEqual(self.kv.future("fut:a").get(), b"42")
        with self.assertRaises(TimeoutError):
            self.kv.future("fut:never").get(timeout=0.1)

    def test_a_retried_function_applies_its_requests_once(self):
        run = uuid.uuid4().hex[:8]
        with FunctionExecutor(workers=8, retries=2) as ex:
            got = ex.map(flaky_worker, [(self.port, run, i) for i in range(8)])
        self.assertEqual(got, [i + 1 for i in range(8)])
        r = self.kv.redis
        self.assertEqual([int(r.get(f"{run}:runs:{i}")) for i in range(8)], [2] * 8)  # each ran twice
        self.assertEqual(int(r.get(f"{run}:sum")), sum(i + 1 for i in range(8)))   # and added once

    def test_exactly_once_under_dropped_connections(self):
        rng = random.Random(5)
        key = "once:drops"
        expected = 0
        for i in range(200):
            rid = f"drop-{i}"
            n = rng.randint(1, 9)
            expected += n
            if rng.random() < 0.5:
                # The request goes out and the connection drops before (or while) the reply comes.
                with socket.create_connection(("127.0.0.1", self.port)) as s:
                    args = [b"ONCE", rid.encode(), b"INCRBY", key.encode(), str(n).encode()]
                    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
                    if rng.random() < 0.5:
                        s.recv(1)
            # The retry, with the same id: applied once whatever happened above.
            self.kv.call("INCRBY", key, n, request_id=rid)
            if rng.random() < 0.2:
                self.kv.call("INCRBY", key, n, request_id=rid)  # a duplicate retry
        self.assertEqual(int(self.kv.redis.get(key)), expected)
        # The stored reply is the first one.
        first = self.kv.call("INCR", "once:first", request_id="first")
        self.kv.redis.incr("once:first")
        self.assertEqual(self.kv.call("INCR", "once:first", request_id="first"), first)
        with self.assertRaises(Exception) as e:
            self.kv.redis.execute_command("ONCE", "x", "MULTI")
        self.assertIn("cannot run", str(e.exception))


class RestartTest(unittest.TestCase):
    def test_monte_carlo_counter_exact_across_sigkill(self):
        server = KvServer(fixed_port=True).start()
        port = server.port
        try:
            run = uuid.uuid4().hex[:8]

            def drive():
                with FunctionExecutor(workers=20) as ex:
                    return ex.map(counting_worker, [(port, run, i, 150) for i in range(20)])

            totals = server.kill_during(drive)  # the kill comes in the middle of the run
            got = int(Client(port=port).redis.get(f"{run}:count"))
            self.assertEqual(got, sum(totals))
        finally:
            server.close()

    def test_blocked_barrier_callers_retry_across_a_restart(self):
        server = KvServer(fixed_port=True).start()
        port = server.port
        try:
            out = {}

            def waiter(i):
                out[i] = Client(port=port, retry_for=60).call("BARRIER.AWAIT", "bar:restart", 3, request_id=f"w{i}")

            ts = [threading.Thread(target=waiter, args=(i,)) for i in range(2)]
            for t in ts:
                t.start()
            kv = Client(port=port)
            deadline = time.time() + 10
            while kv.cyclic_barrier("bar:restart", 3).waiting() < 2 and time.time() < deadline:
                time.sleep(0.02)
            server.kill()  # both are parked: their connections drop, their arrivals stay
            server.start()
            kv = Client(port=port)
            self.assertEqual(kv.cyclic_barrier("bar:restart", 3).waiting(), 2)
            time.sleep(0.3)  # the two retry (same request ids): not counted twice
            self.assertEqual(kv.cyclic_barrier("bar:restart", 3).waiting(), 2)
            last = kv.cyclic_barrier("bar:restart", 3).await_()
            for t in ts:
                t.join(timeout=30)
            self.assertEqual(sorted([int(out[0]), int(out[1]), last]), [0, 1, 2])
        finally:
            server.close()

    def test_stored_replies_expire(self):
        server = KvServer(fixed_port=True, extra=["--reply-ttl", "1"]).start()
        port = server.port
        try:
            kv = Client(port=port)
            self.assertEqual(kv.call("INCR", "exp:c", request_id="r"), 1)
            self.assertEqual(kv.call("INCR", "exp:c", request_id="r"), 1)
            info = lambda: kv.redis.info("persistence")["once_stored_replies"]  # noqa: E731
            self.assertEqual(info(), 1)
            deadline = time.time() + 10
            while info() != 0 and time.time() < deadline:
                time.sleep(0.1)
            self.assertEqual(info(), 0)
            self.assertEqual(kv.call("INCR", "exp:c", request_id="r"), 2)  # expired: a new request
        finally:
            server.close()


class ExamplesTest(unittest.TestCase):
    """examples/serverless/, run as a user would, against a server of their own."""

    @classmethod
    def setUpClass(cls):
        cls.server = KvServer(fixed_port=True)
        cls.addClassCleanup(cls.server.close)
        cls.server.start()
        cls.port = cls.server.port
        cls.env = dict(os.environ, POBJ_KV_PORT=str(cls.port))
        cls.dir = os.path.join(HERE, "..", "..", "examples", "serverless")

    def run_example(self, *args):
        import subprocess
        r = subprocess.run(list(args), capture_output=True, text=True, env=self.env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def test_monte_carlo_pi_with_100_workers(self):
        out = self.run_example(sys.executable, os.path.join(self.dir, "monte_carlo_pi.py"), "--workers", "100",
                               "--darts", "4000")
        pi = float(out.split()[2])
        self.assertLess(abs(pi - 3.14159), 0.05, out)

    def test_kmeans(self):
        out = self.run_example(sys.executable, os.path.join(self.dir, "kmeans.py"), "--workers", "6", "--points", "1500")
        self.assertIn("every centre found", out)

    def test_word_count_shell_pipeline(self):
        out = self.run_example("bash", os.path.join(self.dir, "word_count.sh"))
        words, _, rest = out.partition(" words in ")
        self.assertEqual(words.strip(), rest.rsplit(": ", 1)[1].rstrip(")\n"), out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
