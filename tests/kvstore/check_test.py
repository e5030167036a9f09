"""Checks change nothing: `pobj-kv --check POOL` and `pobj-check POOL` (without --repair) on a
healthy pobj-kv pool, on a page-mode pool whose server was killed with records still in its
journal, on another program's pool and on a pobj-kv pool whose root name was damaged leave the pool
file and its journal byte for byte as they were (regression: the check added pobj-kv's roots to a
foreign pool and made a fresh root in a damaged one, reporting it healthy; pobj-check wrote the
boot count). A foreign pool is "not a pobj-kv pool" with exit status 2; a damaged one is reported
(exit status 1), and the server refuses both rather than make a keyspace beside what is there.

Run by meson (`meson test kvstore-check`) with POBJ_KV and POBJ_CHECK naming the binaries."""

import hashlib
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_server import KvServer, import_redis  # noqa: E402

redis = import_redis()
POBJ_CHECK = os.environ.get("POBJ_CHECK", "build/pobj/pobj-check")


def snapshot(pool):
    """Digests of the bytes of the pool and of its journal (None where there is none)."""
    out = []
    for path in (pool, pool + ".journal"):
        out.append(hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else None)
    return out


def patch(pool, old, new):
    """Replaces every occurrence of old with new (same length) in the pool file: root names."""
    assert len(old) == len(new)
    data = open(pool, "rb").read()
    assert old in data, old
    with open(pool, "wb") as f:
        f.write(data.replace(old, new))


class CheckTest(unittest.TestCase):
    def setUp(self):
        self.server = KvServer(extra=["--persist-mode", "page", "--pool-size", "48m"])
        self.addCleanup(self.server.close)
        self.server.start()
        r = redis.Redis(host="127.0.0.1", port=self.server.port)
        for i in range(300):
            r.set(f"key:{i}", "v" * (i % 50))
        r.rpush("list", *range(100))
        r.hset("hash", mapping={f"f{i}": i for i in range(50)})
        r.close()
        self.pool = self.server.pool

    def run_check(self, *args):
        p = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr

    def assert_server_refuses(self, message):
        """The server, started on the pool, exits with an error that says `message`, and leaves
        the pool and its journal as they were."""
        before = snapshot(self.pool)
        code, out = self.run_check(self.server.binary, "--port", "0", "--pool", self.pool)
        self.assertNotEqual(code, 0, out)
        self.assertIn(message, out)
        self.assertEqual(snapshot(self.pool), before, "the server changed the pool")

    def kv_check(self):
        return self.run_check(self.server.binary, "--check", self.pool)

    def assert_unchanged_by_checks(self, expect_kv, expect_pobj=None):
        before = snapshot(self.pool)
        code, out = self.kv_check()
        self.assertEqual(code, expect_kv, out)
        self.assertEqual(snapshot(self.pool), before, "pobj-kv --check changed the pool or its journal")
        if expect_pobj is not None:
            code, out = self.run_check(POBJ_CHECK, self.pool)
            self.assertEqual(code, expect_pobj, out)
            self.assertEqual(snapshot(self.pool), before, "pobj-check changed the pool or its journal")
        return out

    def test_a_healthy_pool_is_checked_without_a_write(self):
        self.server.stop()
        out = self.assert_unchanged_by_checks(0, 0)
        self.assertIn("read-only", out)
        code, out = self.kv_check()
        self.assertIn("keyspace: 302 keys", out)

    def test_a_killed_servers_journal_is_replayed_in_memory_only(self):
        r = redis.Redis(host="127.0.0.1", port=self.server.port)
        for i in range(200):
            r.set(f"late:{i}", "x" * 100)
        r.close()
        self.server.kill()
        journal = self.pool + ".journal"
        self.assertTrue(os.path.exists(journal))
        before = snapshot(self.pool)
        code, out = self.kv_check()
        self.assertEqual(code, 0, out)
        self.assertIn("keyspace: 502 keys", out)  # the journal's records, replayed in memory
        code, out = self.run_check(POBJ_CHECK, self.pool)
        self.assertEqual(code, 0, out)
        self.assertEqual(snapshot(self.pool), before, "a check changed the pool or its journal")
        # The server recovers the same state afterwards.
        self.server.start()
        r = redis.Redis(host="127.0.0.1", port=self.server.port)
        self.assertEqual(r.dbsize(), 502)
        self.assertEqual(r.get("late:199"), b"x" * 100)
        r.close()

    def test_another_programs_pool_is_not_a_pobj_kv_pool(self):
        self.server.stop()
        patch(self.pool, b"pobj-kv.", b"shopapp.")
        out = self.assert_unchanged_by_checks(2)
        self.assertIn("is not a pobj-kv pool", out)
        self.assert_server_refuses("is not a pobj-kv pool")

    def test_a_damaged_root_name_is_reported_and_the_server_refuses_the_pool(self):
        self.server.stop()
        patch(self.pool, b"pobj-kv.keys\0", b"pobj-kv.kexs\0")
        out = self.assert_unchanged_by_checks(1)
        self.assertIn("pobj-kv.keys", out)
        self.assertIn("missing", out)
        self.assert_server_refuses("damaged pobj-kv pool")

    def test_repair_still_writes(self):
        self.server.stop()
        code, out = self.run_check(POBJ_CHECK, "--repair", self.pool)
        self.assertEqual(code, 0, out)


if __name__ == "__main__":
    unittest.main()
