"""The C++ client (kvstore/client) against pobj-kv: threads sharing every kind of object, and
exactly-once increments from several processes while the server is killed with SIGKILL and
restarted (the client retries with its request ids; the count is exact).

Run by meson with POBJ_KV naming the server binary and argv[1] the test program."""

import os
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_server import KvServer, import_redis  # noqa: E402

redis = import_redis()

PROGRAM = None



class CppClientTest(unittest.TestCase):
    def test_objects_from_threads(self):
        server = KvServer(fixed_port=True).start()
        port = server.port
        try:
            r = subprocess.run([PROGRAM, str(port), "objects"], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            server.close()

    @unittest.skipUnless(os.environ.get("POBJ_KV_OBJECTS"), "needs the ledger library (POBJ_KV_OBJECTS)")
    def test_user_objects(self):
        server = KvServer(extra=["--objects-library", os.environ.get("POBJ_KV_OBJECTS", "")]).start()
        try:
            r = subprocess.run([PROGRAM, str(server.port), "ledger"], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            server.close()

    def test_exactly_once_across_sigkill(self):
        server = KvServer(fixed_port=True).start()
        port = server.port
        try:
            run = uuid.uuid4().hex[:8]
            procs = [subprocess.Popen([PROGRAM, str(port), "count", "300", run], stdout=subprocess.PIPE, text=True)
                     for _ in range(4)]
            time.sleep(0.3)
            self.assertTrue(all(p.poll() is None for p in procs))
            server.kill()
            time.sleep(0.2)
            server.start()
            totals = [int(p.communicate(timeout=120)[0]) for p in procs]
            self.assertTrue(all(p.returncode == 0 for p in procs))
            got = int(redis.Redis(host="127.0.0.1", port=port).get(f"{run}:count"))
            self.assertEqual(got, sum(totals))
        finally:
            server.close()


if __name__ == "__main__":
    PROGRAM = sys.argv.pop(1)
    unittest.main(verbosity=2)
