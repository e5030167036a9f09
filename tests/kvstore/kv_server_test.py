"""Regressions for KvServer (kv_server.py): tests that failed before their cleanup left pobj-kv
running, orphaned, for an hour, each with its pool on /dev/shm. A server a test starts is stopped
and its directory removed whatever happens: the test raises before any cleanup, its setUpClass
fails after the start, start() itself fails, or the test process is killed.

Run by meson (`meson test kvstore-server-cleanup`) with POBJ_KV naming the server binary."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kv_server import KvServer  # noqa: E402


def process_alive(pid):
    """Whether the process exists and is not a zombie (one killed whose parent has not reaped it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def gone_within(pid, seconds):
    deadline = time.time() + seconds
    while process_alive(pid) and time.time() < deadline:
        time.sleep(0.02)
    return not process_alive(pid)


class LeftServersTest(unittest.TestCase):
    def run_child(self, body):
        """Runs body in a fresh Python that prints its server's pid and directory; returns them
        and the child's result. Whatever it leaves is removed here, so a failing run leaks nothing."""
        script = textwrap.dedent(f"""\
            import sys
            sys.path.insert(0, {HERE!r})
            from kv_server import KvServer
        """) + textwrap.dedent(body)
        child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        lines = child.stdout.split()
        self.assertEqual(len(lines), 2, child.stdout + child.stderr)
        pid, directory = int(lines[0]), lines[1]
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        self.addCleanup(lambda: process_alive(pid) and os.kill(pid, signal.SIGKILL))
        return pid, directory, child

    def assert_cleaned(self, pid, directory):
        self.assertTrue(gone_within(pid, 5), f"pobj-kv {pid} still runs after its test process ended")
        self.assertFalse(os.path.exists(directory), f"{directory} is still there")

    def test_a_test_that_raises_before_its_cleanup_leaves_no_server(self):
        pid, directory, child = self.run_child("""\
            server = KvServer().start()
            print(server.proc.pid, server.dir, flush=True)
            raise RuntimeError("the client could not connect")
        """)
        self.assertNotEqual(child.returncode, 0)
        self.assertIn("RuntimeError: the client could not connect", child.stderr)
        self.assert_cleaned(pid, directory)

    def test_a_set_up_class_that_fails_after_the_start_leaves_no_server(self):
        pid, directory, child = self.run_child("""\
            import unittest

            class Test(unittest.TestCase):
                @classmethod
                def setUpClass(cls):
                    cls.server = KvServer().start()
                    print(cls.server.proc.pid, cls.server.dir, flush=True)
                    raise ConnectionError("the client could not connect")

                @classmethod
                def tearDownClass(cls):  # not run when setUpClass fails
                    cls.server.close()

                def test(self):
                    pass

            unittest.main()
        """)
        self.assertNotEqual(child.returncode, 0)
        self.assertIn("ConnectionError: the client could not connect", child.stderr)
        self.assert_cleaned(pid, directory)

    def test_a_killed_test_process_leaves_no_server_and_its_directory_goes_with_the_next_server(self):
        pid, directory, child = self.run_child("""\
            import os, signal
            server = KvServer().start()
            print(server.proc.pid, server.dir, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """)
        self.assertEqual(child.returncode, -signal.SIGKILL)
        self.assertTrue(gone_within(pid, 5), f"pobj-kv {pid} still runs after its test process was killed")
        self.addCleanup(KvServer().close)  # nothing ran in the killed process: the next server made removes it
        self.assertFalse(os.path.exists(directory), f"{directory} is still there")


class FailedStartTest(unittest.TestCase):
    def test_a_start_that_fails_stops_the_process_and_removes_its_directory(self):
        # A "server" that never says it is ready: start() times out with the process still running.
        bin_dir = tempfile.mkdtemp(prefix="kv-server-test-")
        self.addCleanup(shutil.rmtree, bin_dir, ignore_errors=True)
        fake = os.path.join(bin_dir, "pobj-kv")
        with open(fake, "w") as f:
            f.write(f'#!/bin/sh\necho $$ > {bin_dir}/pid\nexec sleep 600\n')
        os.chmod(fake, 0o755)
        server = KvServer(binary=fake)
        self.addCleanup(server.close)
        with self.assertRaises(RuntimeError) as e:
            server.start(timeout=1)
        self.assertIn("did not start in time", str(e.exception))
        with open(os.path.join(bin_dir, "pid")) as f:
            pid = int(f.read())
        alive = process_alive(pid)
        if alive:
            os.kill(pid, signal.SIGKILL)
        self.assertFalse(alive, "the server whose start() failed still runs")
        self.assertFalse(os.path.exists(server.dir), f"{server.dir} is still there")


if __name__ == "__main__":
    unittest.main(verbosity=2)
