"""pobj-kv driven by clients no one here wrote: Debian's python3-redis, redis-cli and
redis-benchmark; raw protocol edge cases; restarts with the data served at once.

Run by meson (`meson test kvstore-clients`) with POBJ_KV naming the server binary."""

import os
import resource
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_server import KvServer, import_redis  # noqa: E402

redis = import_redis()


class ClientsTest(unittest.TestCase):
    def setUp(self):
        self.server = KvServer()
        self.addCleanup(self.server.close)  # runs when setUp fails after it, unlike tearDown
        self.server.start()
        self.r = redis.Redis(host="127.0.0.1", port=self.server.port, decode_responses=True)

    def tearDown(self):
        self.r.close()
        self.assertEqual(self.server.stop(), 0, self.server.log_text())

    def test_redis_py_strings_and_keys(self):
        r = self.r
        self.assertTrue(r.ping())
        self.assertTrue(r.set("greeting", "hello"))
        self.assertEqual(r.get("greeting"), "hello")
        self.assertIsNone(r.get("missing"))
        self.assertFalse(r.set("greeting", "x", nx=True))
        self.assertEqual(r.incr("counter"), 1)
        self.assertEqual(r.incrby("counter", 41), 42)
        self.assertAlmostEqual(r.incrbyfloat("f", 2.5), 2.5)
        self.assertEqual(r.mget(["greeting", "missing", "counter"]), ["hello", None, "42"])
        self.assertTrue(r.mset({"a": "1", "b": "2"}))
        self.assertEqual(r.append("a", "23"), 3)
        self.assertEqual(r.strlen("a"), 3)
        self.assertEqual(r.getrange("greeting", 1, 3), "ell")
        self.assertEqual(r.setrange("greeting", 0, "J"), 5)
        self.assertEqual(r.getset("greeting", "bye"), "Jello")
        self.assertEqual(r.getdel("greeting"), "bye")
        self.assertEqual(r.exists("a", "b", "nope"), 2)
        self.assertEqual(r.type("a"), "string")
        self.assertTrue(r.expire("a", 100))
        self.assertTrue(0 < r.ttl("a") <= 100)
        self.assertTrue(r.persist("a"))
        self.assertEqual(r.ttl("a"), -1)
        self.assertTrue(r.rename("a", "c"))
        self.assertEqual(sorted(r.keys("*")), ["b", "c", "counter", "f"])
        self.assertEqual(sorted(r.scan_iter(match="c*", count=2)), ["c", "counter"])
        self.assertEqual(r.delete("b", "c", "nope"), 2)
        self.assertEqual(r.dbsize(), 2)
        with self.assertRaises(redis.ResponseError) as e:
            r.incr("f")
        self.assertIn("not an integer", str(e.exception))
        self.assertTrue(r.flushdb())
        self.assertEqual(r.dbsize(), 0)

    def test_redis_py_pipelines_and_transactions(self):
        r = self.r
        with r.pipeline(transaction=False) as p:
            for i in range(2000):
                p.set(f"k{i}", i)
            p.get("k1999")
            replies = p.execute()
        self.assertEqual(replies[-1], "1999")
        self.assertEqual(r.dbsize(), 2000)
        with r.pipeline(transaction=True) as p:  # MULTI ... EXEC
            p.incr("n").incr("n").get("n")
            self.assertEqual(p.execute(), [1, 2, "2"])

        def bump(pipe):  # WATCH, read, MULTI, write, EXEC
            v = int(pipe.get("n"))
            pipe.multi()
            pipe.set("n", v * 10)

        r.transaction(bump, "n")
        self.assertEqual(r.get("n"), "20")
        info = r.info()
        self.assertIn("pool_bytes_used", info)
        self.assertGreater(info["group_commits"], 0)
        self.assertEqual(info["db0"]["keys"], 2001)
        self.assertEqual(r.config_get("port")["port"], str(self.server.port))

    def test_redis_py_hashes_sets_and_sorted_sets(self):
        r = self.r
        self.assertEqual(r.hset("user:1", mapping={"name": "ada", "born": "1815"}), 2)
        self.assertEqual(r.hget("user:1", "name"), "ada")
        self.assertEqual(r.hgetall("user:1"), {"name": "ada", "born": "1815"})
        self.assertEqual(r.hincrby("user:1", "born", 1), 1816)
        self.assertEqual(sorted(r.hkeys("user:1")), ["born", "name"])
        self.assertEqual(r.hlen("user:1"), 2)
        self.assertEqual(dict(r.hscan_iter("user:1", match="n*")), {"name": "ada"})
        self.assertEqual(r.hdel("user:1", "name", "nope"), 1)
        self.assertEqual(r.type("user:1"), "hash")
        with self.assertRaises(redis.ResponseError) as e:
            r.get("user:1")
        self.assertIn("WRONGTYPE", str(e.exception))
        self.assertEqual(r.delete("user:1"), 1)
        self.assertEqual(r.exists("user:1"), 0)
        self.assertEqual(r.sadd("tags", "a", "b", "a"), 2)
        self.assertEqual(r.smembers("tags"), {"a", "b"})
        self.assertTrue(r.sismember("tags", "a"))
        self.assertEqual(r.scard("tags"), 2)
        self.assertEqual(set(r.sscan_iter("tags")), {"a", "b"})
        self.assertEqual(r.srem("tags", "a", "b"), 2)
        self.assertEqual(r.exists("tags"), 0)
        self.assertEqual(r.zadd("board", {"ada": 3, "bob": 1.5, "cy": 2}), 3)
        self.assertEqual(r.zrange("board", 0, -1, withscores=True), [("bob", 1.5), ("cy", 2.0), ("ada", 3.0)])
        self.assertEqual(r.zrevrange("board", 0, 0), ["ada"])
        self.assertEqual(r.zrangebyscore("board", 1.5, "(3"), ["bob", "cy"])
        self.assertEqual(r.zincrby("board", 5, "bob"), 6.5)
        self.assertEqual(r.zrank("board", "bob"), 2)
        self.assertEqual(r.zscore("board", "cy"), 2.0)
        self.assertEqual(r.zcard("board"), 3)
        self.assertEqual(dict(r.zscan_iter("board")), {"ada": 3.0, "bob": 6.5, "cy": 2.0})
        self.assertEqual(r.zrem("board", "ada", "bob", "cy"), 3)
        self.assertEqual(r.exists("board"), 0)

    def test_lists_and_blocking_pops(self):
        r = self.r
        self.assertEqual(r.rpush("q", "a", "b"), 2)
        self.assertEqual(r.lpush("q", "z"), 3)
        self.assertEqual(r.lrange("q", 0, -1), ["z", "a", "b"])
        self.assertEqual(r.blpop(["q"], timeout=1), ("q", "z"))
        # A blocked client is woken by another's push, and the pop and the push are both durable
        # when the replies come.
        results = []
        waiter = redis.Redis(host="127.0.0.1", port=self.server.port, decode_responses=True)
        t = threading.Thread(target=lambda: results.append(waiter.brpop(["jobs", "other"], timeout=10)))
        t.start()
        time.sleep(0.3)
        self.assertEqual(results, [])  # still waiting
        self.assertEqual(r.lpush("jobs", "job-1"), 1)
        t.join(timeout=10)
        self.assertEqual(results, [("jobs", "job-1")])
        self.assertEqual(r.exists("jobs"), 0)  # the waiter took it
        # Two waiters on one key are served in the order they blocked.
        order = []
        waiters = []
        for name in ("first", "second"):
            w = redis.Redis(host="127.0.0.1", port=self.server.port, decode_responses=True)
            th = threading.Thread(target=lambda w=w, name=name: order.append((name, w.blpop(["fifo"], timeout=10)[1])))
            th.start()
            waiters.append((th, w))
            time.sleep(0.2)
        r.rpush("fifo", "one", "two")
        for th, w in waiters:
            th.join(timeout=10)
            w.close()
        self.assertEqual(sorted(order), [("first", "one"), ("second", "two")])
        # The time runs out: a null reply, after about the timeout.
        start = time.time()
        self.assertIsNone(waiter.blpop(["never"], timeout=0.5))
        self.assertGreaterEqual(time.time() - start, 0.45)
        waiter.close()

    def test_redis_cli(self):
        cli = ["redis-cli", "-p", str(self.server.port)]
        out = subprocess.run(cli + ["SET", "from-cli", "value with spaces"], capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "OK")
        out = subprocess.run(cli + ["GET", "from-cli"], capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "value with spaces")
        # Commands on standard input, one per line (redis-cli sends them as multibulk requests).
        out = subprocess.run(cli, input="INCR c\nINCR c\nDBSIZE\n", capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.split(), ["1", "2", "2"])
        out = subprocess.run(cli + ["--no-raw", "NOSUCH"], capture_output=True, text=True)
        self.assertIn("unknown command", out.stdout)

    def test_raw_protocol(self):
        s = self.server
        # Inline commands and pipelining in one packet.
        self.assertEqual(s.raw(b"SET a 1\r\nINCR a\r\nGET a\r\n"), b"+OK\r\n:2\r\n$1\r\n2\r\n")
        # A protocol error: what came before is answered, then the error, then the server closes.
        self.assertEqual(s.raw(b"PING\r\n*1\r\n+bad\r\nPING\r\n"),
                         b"+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n")
        self.assertEqual(s.raw(b"*2\r\n$3\r\nGET\r\n$99999999999\r\n"), b"-ERR Protocol error: invalid bulk length\r\n")
        self.assertEqual(s.raw(b'SET "unbalanced\r\n'), b"-ERR Protocol error: unbalanced quotes in request\r\n")
        # A huge announced count costs nothing until its arguments arrive.
        self.assertEqual(s.raw(b"*1000000\r\n$4\r\nPING\r\n"), b"")
        self.assertTrue(self.r.ping())

    def test_redis_benchmark_runs_without_errors(self):
        out = subprocess.run(["redis-benchmark", "-p", str(self.server.port), "-n", "2000", "-c", "10", "-P", "4",
                              "-t", "set,get,incr,hset,lpush,rpop,sadd,zadd", "-q"], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("ERR", out.stdout + out.stderr)
        self.assertEqual(out.stdout.count("requests per second"), 8, out.stdout)


class ResourceTest(unittest.TestCase):
    """Regressions: clients that do not read, flood, or outnumber the descriptors must neither spin
    the server's loop nor grow its memory without bound."""

    def test_a_client_that_stops_reading_costs_no_cpu_and_bounded_memory(self):
        server = KvServer().start()
        try:
            r = redis.Redis(host="127.0.0.1", port=server.port)
            r.set("big", b"x" * (1 << 20))
            r.close()
            s = socket.create_connection(("127.0.0.1", server.port))
            s.setblocking(False)
            request = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 2000  # 2 GB of replies, never read
            sent = 0
            deadline = time.time() + 3
            while sent < len(request) and time.time() < deadline:
                try:
                    sent += s.send(request[sent:])
                except BlockingIOError:
                    time.sleep(0.01)
            # The server first makes the replies that fit the output limit (seconds under ASan on a
            # loaded machine), then must go idle. A busy loop uses all of every window, so wait for
            # a quiet one, bounded: no quiet 1 s window in 20 means the loop spins.
            windows = []
            for _ in range(20):
                before = server.cpu_seconds()
                time.sleep(1)
                windows.append(server.cpu_seconds() - before)
                if windows[-1] < 0.2:
                    break
            self.assertLess(windows[-1], 0.2, f"the server used {windows} s of CPU per second beside a stalled client")
            self.assertLess(server.rss_bytes(), 512 << 20)
            other = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
            self.assertTrue(other.ping())  # others are still served
            other.close()
            s.close()
        finally:
            server.close()

    def test_clients_beyond_the_descriptor_limit_are_refused_without_spinning(self):
        def few_files():
            resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))

        server = KvServer(preexec_fn=few_files).start()
        try:
            self.assertIn("maxclients 10000 lowered", server.log_text())
            clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(60)]
            time.sleep(0.5)
            before = server.cpu_seconds()
            time.sleep(1)
            self.assertLess(server.cpu_seconds() - before, 0.5)
            refused = 0
            for c in clients:
                c.settimeout(0.05)
                try:
                    refused += c.recv(100).startswith(b"-ERR max number of clients reached")
                except socket.timeout:
                    pass
                c.close()
            self.assertGreater(refused, 0)
            r = redis.Redis(host="127.0.0.1", port=server.port)
            self.assertTrue(r.ping())
            r.close()
        finally:
            server.close()


class FullPoolTest(unittest.TestCase):
    def test_a_full_pool_refuses_writes_with_oom_and_keeps_serving(self):
        # The pool grows from 40 MiB up to its 96 MiB maximum, then writes get -OOM; reads, deletes
        # and writes that fit after them still work, and nothing acknowledged is lost.
        server = KvServer(extra=["--pool-size", "40m", "--pool-max-size", "96m"]).start()
        try:
            r = redis.Redis(host="127.0.0.1", port=server.port)
            value = b"v" * 50_000
            written = 0
            error = None
            for i in range(4000):
                try:
                    r.set(f"big:{i}", value)
                    written += 1
                except redis.ResponseError as e:
                    error = str(e)
                    break
            self.assertIsNotNone(error, "the pool never filled")
            self.assertTrue(error.startswith("OOM"), error)
            self.assertGreater(written, 40 * 1024 * 1024 // 50_000)  # it grew past its initial 40 MiB first
            self.assertEqual(r.get("big:0"), value)
            self.assertEqual(r.get(f"big:{written - 1}"), value)
            self.assertEqual(r.dbsize(), written)
            # In a pipeline: the commands before the failing one keep their effects and replies.
            p = r.pipeline(transaction=False)
            p.set("small", "ok")
            p.set("too-big", value * 100)
            p.get("small")
            replies = p.execute(raise_on_error=False)
            self.assertEqual(replies[0], True)
            self.assertIsInstance(replies[1], redis.ResponseError)
            self.assertEqual(replies[2], b"ok")
            self.assertEqual(r.delete(*[f"big:{i}" for i in range(written // 2)]), written // 2)
            self.assertTrue(r.set("after", value))
            self.assertIn("rejected_oom", r.info("stats"))
            r.close()
        finally:
            server.close()


class RestartTest(unittest.TestCase):
    def test_data_and_ttls_survive_restarts_and_kills(self):
        server = KvServer().start()
        try:
            r = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
            r.set("kept", "yes")
            r.set("timed", "v", ex=1000)
            r.set("short", "v", px=100)
            with r.pipeline(transaction=False) as p:
                for i in range(5000):
                    p.set(f"key:{i}", "x" * (i % 200))
                p.execute()
            r.close()
            self.assertEqual(server.stop(), 0)
            server.start()
            r = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
            self.assertEqual(r.get("kept"), "yes")
            self.assertTrue(900 < r.ttl("timed") <= 1000)
            self.assertEqual(r.get("key:4999"), "x" * (4999 % 200))
            r.set("after-restart", "1")
            r.close()
            server.kill()  # SIGKILL: no shutdown at all
            time.sleep(0.2)  # "short" expires while the server is down
            server.start()
            r = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
            self.assertEqual(r.get("after-restart"), "1")
            self.assertIsNone(r.get("short"))  # its time ran out while it was down
            self.assertEqual(r.dbsize(), 5003)
            self.assertIn("opened in", server.log_text())
            r.close()
            self.assertEqual(server.stop(), 0)
            check = subprocess.run([server.binary, "--check", server.pool], capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
            self.assertIn("5003 keys", check.stdout)
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
