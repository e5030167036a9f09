"""Where pobj-kv listens, and whom it lets in: bad settings refused before any file is made (a bad
bind address or a port in use leaves no pool), several bind addresses (`bind 127.0.0.1 ::1`, as
Redis), and protected mode (on by default: with no password, clients not on loopback get Redis's
-DENIED and are closed). Protected mode needs a client that is not on loopback: the test makes a
network namespace of its own with a veth pair (192.0.2.1 on one end, a documentation address that
exists only inside it) and runs the server and the client there; without root it is skipped.

Run by meson (`meson test kvstore-listen`) with POBJ_KV naming the server binary."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_server import KvServer, free_port  # noqa: E402

BINARY = os.environ.get("POBJ_KV", "build/kvstore/pobj-kv")


def run(*args, timeout=20):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def ping(host, port, extra=b""):
    """The first line the server sends back to PING (after `extra`, if any), or '' if it closed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect((host, port))
        s.sendall(extra + b"PING\r\n")
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode().split("\r\n")[0]


class SettingsBeforeFilesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pobj-kv-listen-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.pool = os.path.join(self.dir, "kv.pool")

    def test_a_bad_bind_address_makes_no_pool(self):
        code, out = run(BINARY, "--bind", "300.1.1.1", "--pool", self.pool)
        self.assertEqual(code, 2, out)
        self.assertIn("not a numeric IPv4 or IPv6 address", out)
        self.assertFalse(os.path.exists(self.pool))

    def test_a_port_in_use_makes_no_pool(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            code, out = run(BINARY, "--port", str(taken.getsockname()[1]), "--pool", self.pool)
        self.assertNotEqual(code, 0, out)
        self.assertIn("cannot listen", out)
        self.assertFalse(os.path.exists(self.pool))


class BindTest(unittest.TestCase):
    def test_every_bind_address_answers(self):
        addresses = ["127.0.0.1"]
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
            addresses.append("::1")
        except OSError:
            pass  # no IPv6 loopback here: one address only
        server = KvServer(extra=["--bind", " ".join(addresses), "--port", str(free_port())])
        self.addCleanup(server.close)
        server.start()
        for a in addresses:
            self.assertEqual(ping(a, server.port), "+PONG", a)


class ProtectedModeTest(unittest.TestCase):
    """Server and client in a network namespace of the test's own, the client connecting to the
    namespace's non-loopback address."""

    address = "192.0.2.1"

    @classmethod
    def setUpClass(cls):
        cls.ns = f"pobjkv-listen-{os.getpid()}"
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise unittest.SkipTest("network namespaces need root and iproute2")
        if subprocess.run(["ip", "netns", "add", cls.ns], capture_output=True).returncode != 0:
            raise unittest.SkipTest("cannot make a network namespace here")
        cls.addClassCleanup(subprocess.run, ["ip", "netns", "delete", cls.ns], capture_output=True)
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                    ["ip", "addr", "add", f"{cls.address}/24", "dev", "v0"],
                    ["ip", "link", "set", "v0", "up"],
                    ["ip", "link", "set", "v1", "up"]):
            subprocess.run(["ip", "netns", "exec", cls.ns, *cmd], check=True, capture_output=True)

    def serve(self, *settings):
        """Starts pobj-kv in the namespace on both addresses; returns its port."""
        d = tempfile.mkdtemp(prefix="pobj-kv-listen-")
        self.addCleanup(shutil.rmtree, d, True)
        log = open(os.path.join(d, "log"), "w+")
        self.addCleanup(log.close)
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns, BINARY, "--bind", f"127.0.0.1 {self.address}",
                                 "--port", "0", "--pool", os.path.join(d, "kv.pool"), "--pool-size", "48m", *settings],
                                stdout=log, stderr=log)

        def stop():
            proc.kill()
            proc.wait()
        self.addCleanup(stop)
        for _ in range(400):
            log.seek(0)
            m = re.search(r"ready to accept connections on \S*:(\d+)", log.read())
            if m:
                return int(m.group(1))
            self.assertIsNone(proc.poll(), "pobj-kv exited")
            time.sleep(0.05)
        self.fail("pobj-kv did not start")

    def ping_in_ns(self, host, port, extra=""):
        code, out = run("ip", "netns", "exec", self.ns, "/usr/bin/python3", "-c",
                        "import sys; sys.path.insert(0, sys.argv[1]); from listen_test import ping; "
                        "print(ping(sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()))",
                        os.path.dirname(os.path.abspath(__file__)), host, str(port), extra)
        self.assertEqual(code, 0, out)
        return out.strip()

    def test_without_a_password_only_loopback_clients_are_served(self):
        port = self.serve()
        self.assertEqual(self.ping_in_ns("127.0.0.1", port), "+PONG")
        self.assertTrue(self.ping_in_ns(self.address, port).startswith("-DENIED pobj-kv is running in protected mode"))

    def test_a_password_or_protected_mode_no_lets_others_in(self):
        port = self.serve("--requirepass", "s3cret")
        self.assertEqual(self.ping_in_ns(self.address, port, "AUTH s3cret\r\n"), "+OK")
        port = self.serve("--protected-mode", "no")
        self.assertEqual(self.ping_in_ns(self.address, port), "+PONG")

    def test_config_set_protected_mode_takes_effect_at_once(self):
        port = self.serve()
        self.assertTrue(self.ping_in_ns(self.address, port).startswith("-DENIED"))
        self.assertEqual(self.ping_in_ns("127.0.0.1", port, "CONFIG SET protected-mode NO\r\n"), "+OK")
        self.assertEqual(self.ping_in_ns(self.address, port), "+PONG")
        self.assertEqual(self.ping_in_ns("127.0.0.1", port, "CONFIG SET protected-mode yes\r\n"), "+OK")
        self.assertTrue(self.ping_in_ns(self.address, port).startswith("-DENIED"))


if __name__ == "__main__":
    unittest.main()
