#!/usr/bin/python3
"""pobj-kv when its disk fails: the journal's fdatasync fails for a while (EIO, through pobj's fault
seam: POBJ_KV_TEST_FAULTS, pobj/testing/faulty_files.hpp), under writers from several clients.

Every reply is either OK for a write that is durable, or a MISCONF error for a write refused while
the journal was failing: never an OK for a write a restart then lacks. The server keeps serving,
writes are accepted again once the disk is back, INFO counts the failed writes, and after a
SIGKILL and a restart without faults every acknowledged write is there.

    POBJ_KV=build/kvstore/pobj-kv /usr/bin/python3 tests/kvstore/disk_fault_test.py"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_server import KvServer, import_redis  # noqa: E402

redis = import_redis()

WRITERS = 8
FAILING = 10  # consecutive journal fdatasyncs that fail: about a second of retries with backoff


class Writer(threading.Thread):
    def __init__(self, port, wid, deadline):
        super().__init__(daemon=True)
        self.r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
        self.wid = wid
        self.deadline = deadline
        self.acked = {}
        self.refused = 0
        self.other = []

    def run(self):
        i = 0
        while time.time() < self.deadline:
            key, value = f"w{self.wid}:{i}", f"v{i}"
            try:
                if self.r.set(key, value):
                    self.acked[key] = value
            except redis.ResponseError as e:
                if str(e).startswith("MISCONF"):
                    self.refused += 1
                    time.sleep(0.005)
                else:
                    self.other.append(str(e))
            i += 1
        self.r.close()


class Prober(threading.Thread):
    """Pipelines a write every few milliseconds on one raw connection, never waiting for replies
    (a reader thread takes them, in order): unlike the writers, which each wait for their reply and
    so may all be waiting while the journal fails, it sends writes during the failure whatever the
    timing (a loaded machine included), and those must be refused."""

    def __init__(self, port, deadline):
        super().__init__(daemon=True)
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.deadline = deadline
        self.sent = 0
        self.replies = []

    def run(self):
        reader = threading.Thread(target=self.read, daemon=True)
        reader.start()
        while time.time() < self.deadline:
            key = f"probe:{self.sent}"
            self.sock.sendall(f"*3\r\n$3\r\nSET\r\n${len(key)}\r\n{key}\r\n$1\r\nx\r\n".encode())
            self.sent += 1
            time.sleep(0.003)
        reader.join(timeout=60)
        self.sock.close()

    def read(self):
        buf = b""
        while len(self.replies) < self.sent or time.time() < self.deadline:
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                self.replies.append(line.decode())
            if len(self.replies) >= self.sent and time.time() >= self.deadline:
                break
            data = self.sock.recv(65536)
            if not data:
                break
            buf += data

    def acked(self):
        return {f"probe:{i}": "x" for i, r in enumerate(self.replies) if r == "+OK"}

    def refused(self):
        return sum(1 for r in self.replies if r.startswith("-MISCONF"))


class DiskFaultTest(unittest.TestCase):
    def test_a_failing_journal_refuses_writes_and_acknowledges_only_durable_ones(self):
        os.environ["POBJ_KV_TEST_FAULTS"] = f"fdatasync:EIO:60:{FAILING}:.journal"
        server = KvServer(extra=["--persist-mode", "page"])
        self.addCleanup(server.close)
        try:
            server.start()
        finally:
            del os.environ["POBJ_KV_TEST_FAULTS"]
        deadline = time.time() + 4.0
        writers = [Writer(server.port, w, deadline) for w in range(WRITERS)]
        prober = Prober(server.port, deadline)
        for w in writers:
            w.start()
        prober.start()
        for w in writers + [prober]:
            w.join(timeout=60)
            self.assertFalse(w.is_alive())
        self.assertEqual(len(prober.replies), prober.sent, "the prober's writes were not all answered")
        self.assertEqual([r for r in prober.replies if r != "+OK" and not r.startswith("-MISCONF")], [])
        r = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
        info = r.info("persistence")
        r.close()
        acked = {k: v for w in writers for k, v in w.acked.items()}
        acked.update(prober.acked())
        refused = sum(w.refused for w in writers) + prober.refused()
        for w in writers:
            self.assertEqual(w.other, [], "replies other than OK and MISCONF")
        self.assertEqual(info["journal_failed_writes"], FAILING, info)
        self.assertEqual(info["journal_status"], "ok", info)
        self.assertGreater(refused, 0, "no write was refused while the journal failed")
        self.assertGreater(len(acked), 0)

        # Power off (SIGKILL), then a restart with a good disk: every acknowledged write is there.
        server.kill()
        server.start()
        r = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
        keys = list(acked)
        missing = 0
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            missing += sum(1 for k, v in zip(chunk, r.mget(chunk)) if v != acked[k])
        r.close()
        print(f"disk faults: {FAILING} journal fdatasyncs failed (EIO); {len(acked)} writes acknowledged, "
              f"{refused} refused with MISCONF, {missing} lost after SIGKILL and restart", flush=True)
        self.assertEqual(missing, 0)


if __name__ == "__main__":
    unittest.main()
