"""Starts and stops a pobj-kv server for the process-level tests (standard library only)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time


def free_port():
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KvServer:
    """A pobj-kv process on a free loopback port, with its pool in a directory of its own.
    fixed_port: the port is chosen once, so a restarted server is found where clients left it."""

    def __init__(self, binary=None, pool_dir=None, extra=(), preexec_fn=None, fixed_port=False):
        self.binary = binary or os.environ.get("POBJ_KV", "build/kvstore/pobj-kv")
        self.dir = pool_dir or tempfile.mkdtemp(prefix="pobj-kv-test-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.pool = os.path.join(self.dir, "test.pool")
        self.extra = (["--port", str(free_port())] if fixed_port else []) + list(extra)
        self.preexec_fn = preexec_fn
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, "server.log")

    def start(self, timeout=20.0):
        args = [self.binary, "--port", "0", "--pool", self.pool, "--pool-size", "64m", "--hz", "20", *self.extra]
        self.log = open(self.log_path, "ab")
        offset = self.log.tell()  # this start's lines come after what earlier starts wrote
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, preexec_fn=self.preexec_fn)
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            ports = re.findall(r"ready to accept connections on [^\s]*:(\d+)", text)
            if ports:
                self.port = int(ports[-1])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"pobj-kv exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.02)
        raise RuntimeError("pobj-kv did not start in time:\n" + open(self.log_path, errors="replace").read())

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        self.log.close()
        return code

    def kill(self):
        return self.stop(signal.SIGKILL)

    def kill_during(self, work, after=0.4, down=0.3, timeout=120):
        """Runs work() on a thread, kills the server with SIGKILL `after` seconds into it, starts it
        again `down` seconds later, and returns work()'s result once it ends. Fails if work ended
        before the kill (the run would prove nothing), did not end in time, or raised."""
        out = {}

        def run():
            try:
                out["result"] = work()
            except BaseException as e:  # noqa: BLE001 - raised in the caller's thread below
                out["error"] = e

        t = threading.Thread(target=run)
        t.start()
        time.sleep(after)
        if not t.is_alive():
            raise AssertionError(f"the work ended before the kill, {after} s in: make it longer")
        self.kill()
        time.sleep(down)
        self.start()
        t.join(timeout=timeout)
        if t.is_alive():
            raise AssertionError(f"the work did not end within {timeout} s of the restart")
        if "error" in out:
            raise out["error"]
        return out["result"]

    def close(self):
        """Stops the server and removes its directory (its pool and journal live on /dev/shm, in
        memory: a test that forgets this leaks them until the machine reboots)."""
        try:
            return self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def cpu_seconds(self):
        """User and system CPU time the server has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def raw(self, payload, timeout=5.0):
        """Sends raw bytes and returns what the server answers until it closes or goes quiet."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    break
                if not data:
                    break
                chunks.append(data)
            return b"".join(chunks)
