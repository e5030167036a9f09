"""Starts and stops a pobj-kv server for the process-level tests (standard library only).

A server a test starts is stopped, and the directory it made (its pool and journal, on /dev/shm:
memory) removed, whatever happens to the test:
- the test registers close() right after making the server, before it starts or connects
  (`self.addCleanup(server.close)`, `cls.addClassCleanup(...)`, or `with KvServer() as server`);
- a start() that fails closes the server before it raises;
- at exit, the servers this process made and did not close are closed (atexit);
- if the test process dies without running any of that (SIGKILL, a timeout's SIGTERM), the
  kernel sends the server SIGKILL (PR_SET_PDEATHSIG, through setpriv), and the next KvServer
  made removes the directories of test processes that are gone (their names carry the process id).
pobj-kv starts no processes of its own, so stopping its pid stops all of it.

The tests run with /usr/bin/python3, Debian's, which has python3-redis. By hand, as meson runs them:
    POBJ_KV=build/kvstore/pobj-kv /usr/bin/python3 tests/kvstore/clients_test.py"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

POOL_BASE = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
DIR_PREFIX = "pobj-kv-test-"
_open = set()  # servers made by this process and not closed; closed at exit


def import_redis():
    """Debian's python3-redis, or exit with one line that says what is missing (another python3
    than /usr/bin/python3, such as pyenv's or a venv's, lacks it)."""
    try:
        import redis
    except ImportError:
        raise SystemExit(f"{os.path.basename(sys.argv[0])} needs Debian's python3-redis: apt-get install python3-redis; "
                         f"run with /usr/bin/python3 (this is {sys.executable})") from None
    return redis


def free_port():
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_alive(pid):
    """Whether a process with this id exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def remove_orphaned_dirs():
    """Removes the server directories of test processes that are gone (killed before their cleanup)."""
    for name in os.listdir(POOL_BASE):
        m = re.fullmatch(re.escape(DIR_PREFIX) + r"(\d+)-.*", name)
        if m and not process_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(POOL_BASE, name), ignore_errors=True)


def _close_open_servers():
    for server in list(_open):
        server.close()


atexit.register(_close_open_servers)


def _die_with_parent(args):
    """The command, run so that it gets SIGKILL when the thread that started it ends (from the main
    thread: the process), however it ends: util-linux's setpriv sets PR_SET_PDEATHSIG and execs it
    (same pid), with no Python code run between fork and exec (a preexec_fn could deadlock in a
    process with other threads)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *args] if setpriv else list(args)


def thread_stacks(pid):
    """Every thread's stack of a running process (gdb, where installed), for a report."""
    if not shutil.which("gdb"):
        return "(gdb is not installed)"
    try:
        out = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt 30"],
                             capture_output=True, text=True, timeout=60)
        return "\n".join(line for line in out.stdout.splitlines() if line.startswith(("#", "Thread")))
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(gdb failed: {e})"


class KvServer:
    """A pobj-kv process on a free loopback port, with its pool in a directory of its own (or in
    pool_dir, which close() then leaves in place). Register close() as soon as it is made:

        server = KvServer()
        self.addCleanup(server.close)
        server.start()

    fixed_port: the port is chosen once, so a restarted server is found where clients left it."""

    def __init__(self, binary=None, pool_dir=None, extra=(), preexec_fn=None, fixed_port=False, prefix=(),
                 host="127.0.0.1"):
        self.binary = binary or os.environ.get("POBJ_KV", "build/kvstore/pobj-kv")
        self.owner_pid = os.getpid()
        self.owns_dir = pool_dir is None  # close() removes only a directory this server made
        if self.owns_dir:
            remove_orphaned_dirs()
            pool_dir = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{self.owner_pid}-", dir=POOL_BASE)
        self.dir = pool_dir
        _open.add(self)
        self.pool = os.path.join(self.dir, "test.pool")
        self.extra = (["--port", str(free_port())] if fixed_port else []) + list(extra)
        self.preexec_fn = preexec_fn
        self.prefix = list(prefix)  # runs the server through it (`ip netns exec NS`: in a namespace)
        self.host = host  # where clients reach it (give the server --bind too when not loopback)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, "server.log")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self, timeout=20.0, env=None):
        """Starts the server (with `env` added to this process's environment) and waits until it
        accepts connections. If it does not, the server is closed (stopped, its directory removed)
        before the error is raised."""
        try:
            return self._start(timeout, env)
        except BaseException:
            self.close()
            raise

    def _start(self, timeout, env=None):
        args = [*self.prefix, self.binary, "--port", "0", "--pool", self.pool, "--pool-size", "64m", "--hz", "20",
                *self.extra]
        self.log = open(self.log_path, "ab")
        offset = self.log.tell()  # this start's lines come after what earlier starts wrote
        if threading.current_thread() is threading.main_thread():  # another thread may end first
            args = _die_with_parent(args)
        try:
            self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, preexec_fn=self.preexec_fn,
                                         env={**os.environ, **env} if env else None)
        except BaseException:
            self.log.close()
            raise
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
        raise RuntimeError("pobj-kv did not start in time:\n" + self.log_text())

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Sends sig and returns the exit status; a server still running after timeout seconds gets
        SIGKILL, and RuntimeError is raised with its log's end and its threads' stacks."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        try:
            if proc.poll() is None:
                proc.send_signal(sig)
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            # A server that does not stop is a bug: say where each of its threads is.
            stacks = thread_stacks(proc.pid)
            proc.kill()
            proc.wait()
            tail = self.log_text()[-3000:]
            raise RuntimeError(f"pobj-kv (pid {proc.pid}) still ran {timeout} s after signal {int(sig)}; its log ends:\n"
                               f"{tail}\nits threads were:\n{stacks}") from e
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            self.log.close()

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
        """Stops the server and removes the directory it made (its pool and journal live on
        /dev/shm, in memory: left there, they stay until the machine reboots). Returns the server's
        exit status, None if it was not running. Closing twice does nothing more."""
        if self.owner_pid != os.getpid():  # a forked child (an executor's worker) owns nothing
            return None
        try:
            return self.stop()
        finally:
            _open.discard(self)
            if self.owns_dir:
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
