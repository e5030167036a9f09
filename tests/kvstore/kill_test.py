"""pobj-kv killed with SIGKILL at random moments under load from several clients, restarted, and
checked: every write a client saw acknowledged is there (and an increment in flight at the kill is
there or not, never twice).

The server runs in page mode, where the pool is mapped privately and a batch reaches the kernel
only when its journal record is written: a killed process loses everything after the last sync.
Each fdatasync is held back a few milliseconds (POBJ_KV_TEST_SYNC_DELAY_US, on pobj's fault seam), so a reply sent before its
batch's sync would be lost by a kill in most rounds. A killed process keeps what the kernel has,
so this shows that an acknowledged write was synced and that a restart recovers a pool whose
writer died at any point; losing power is the part of the crash simulator
(tests/kvstore/engine_crash_test.cpp) and of the journal's prefix test
(tests/crash/journal_crash_test.cpp).

Run by meson (`meson test kvstore-kill`) with POBJ_KV naming the server binary."""

import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_server import KvServer, import_redis  # noqa: E402

redis = import_redis()

WORKERS = 4
ROUNDS = int(os.environ.get("POBJ_KV_KILL_ROUNDS", "4"))


class Worker(threading.Thread):
    """Writes its own keys and increments its own counter until the server goes away, recording
    what was acknowledged."""

    def __init__(self, port, wid, round_no):
        super().__init__(daemon=True)
        self.r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        self.wid, self.round = wid, round_no
        self.acked = {}          # key -> value, acknowledged
        self.increments = 0      # INCRs acknowledged
        self.in_flight_incr = False

    def run(self):
        n = 0
        try:
            while True:
                key = f"w{self.wid}:r{self.round}:{n}"
                value = f"{key}:" + "x" * (n % 150)
                if n % 3 == 2:
                    # A pipeline: several writes acknowledged together.
                    p = self.r.pipeline(transaction=False)
                    p.set(key, value)
                    p.set(key + ":b", value)
                    p.execute()
                    self.acked[key] = value
                    self.acked[key + ":b"] = value
                else:
                    self.r.set(key, value)
                    self.acked[key] = value
                self.in_flight_incr = True
                self.r.incr(f"count:w{self.wid}")
                self.increments += 1
                self.in_flight_incr = False
                n += 1
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError):
            pass


class KillTest(unittest.TestCase):
    def test_acknowledged_writes_survive_sigkill(self):
        os.environ["POBJ_KV_TEST_SYNC_DELAY_US"] = os.environ.get("POBJ_KV_TEST_SYNC_DELAY_US", "3000")
        server = KvServer(extra=["--persist-mode", "page"])
        rng = random.Random(int(os.environ.get("POBJ_KV_KILL_SEED", "7")))
        expected = {}
        counts = {w: 0 for w in range(WORKERS)}
        try:
            for round_no in range(ROUNDS):
                server.start()
                workers = [Worker(server.port, w, round_no) for w in range(WORKERS)]
                for w in workers:
                    w.start()
                time.sleep(rng.uniform(0.2, 0.8))
                server.kill()
                for w in workers:
                    w.join(timeout=30)
                    self.assertFalse(w.is_alive())
                server.start()
                r = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
                written = 0
                for w in workers:
                    expected.update(w.acked)
                    written += len(w.acked)
                    got = int(r.get(f"count:w{w.wid}") or 0)
                    low = counts[w.wid] + w.increments
                    high = low + (1 if w.in_flight_incr else 0)
                    self.assertTrue(low <= got <= high, f"worker {w.wid}: counter {got}, expected {low}..{high}")
                    counts[w.wid] = got
                self.assertGreater(written, 0)
                keys = list(expected)
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    values = r.mget(chunk)
                    missing = [k for k, v in zip(chunk, values) if v != expected[k]]
                    self.assertEqual(missing, [], f"round {round_no}: {len(missing)} acknowledged writes lost")
                r.close()
                server.stop()
                print(f"round {round_no}: killed after {written} acknowledged writes; all {len(expected)} present",
                      flush=True)
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
