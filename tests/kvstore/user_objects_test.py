"""pobj-kv's user-defined shared objects: classes from pobj-gen (tests/codegen/inputs/ledger.hpp)
in a library the server loads at start (--objects-library), their POBJ_SHARED methods called with
OBJ.CALL. Making, calling, errors (bad arguments, unknown methods, a method that throws after
changing the object), exactly-once under ONCE, MULTI, WATCH, DEL, RENAME and expiry, restarts
(SIGTERM and SIGKILL in the middle of many workers' calls: the final balance exact), a server
started without the library, and libraries that cannot be loaded.

Run by meson (`meson test kvstore-user-objects`) with POBJ_KV naming the server and
POBJ_KV_OBJECTS the ledger library."""

import os
import subprocess
import sys
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "kvstore", "client", "python"))
from kv_server import KvServer, import_redis  # noqa: E402

redis = import_redis()
from pobjkv import Client  # noqa: E402
from pobjkv.executor import FunctionExecutor  # noqa: E402

LIBRARY = os.environ.get("POBJ_KV_OBJECTS", "build/tests/codegen/ledger_objects.so")


def with_library():
    return ["--objects-library", LIBRARY]


def depositing_worker(job):
    """Deposits 1..steps cents into a shared account, each call with an id derived from its input."""
    port, run, index, steps = job
    kv = Client(port=port, retry_for=60)
    account = kv.shared_object(f"{run}:account")
    total = 0
    for k in range(steps):
        cents = (index * 7 + k) % 5 + 1
        account.deposit(cents, request_id=f"{run}:{index}:{k}")
        total += cents
        time.sleep(0.002)
    return total


class UserObjectsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KvServer(extra=with_library())
        cls.addClassCleanup(cls.server.close)  # runs when setUpClass fails after it, unlike tearDownClass
        cls.server.start()
        cls.r = redis.Redis(host="127.0.0.1", port=cls.server.port)

    @classmethod
    def tearDownClass(cls):
        cls.r.close()

    def call(self, *args):
        return self.r.execute_command(*args)

    def error(self, *args):
        with self.assertRaises(redis.ResponseError) as e:
            self.call(*args)
        return str(e.exception)

    def test_the_loaded_classes_and_their_methods(self):
        classes = {c[0].decode(): (c[1].decode(), [m.decode() for m in c[2]]) for c in self.call("OBJ.CLASSES")}
        self.assertEqual(set(classes), {"ledger::account", "ledger::savings"})
        self.assertIn("withdraw(std::int64_t cents, std::string payee) -> bool", classes["ledger::account"][1])
        self.assertEqual(classes["ledger::savings"], ("ledger::account", ["accrue(double years, float bonus) -> double"]))
        self.assertIn("objects library", self.server.log_text())

    def test_make_call_and_read(self):
        self.assertEqual(self.call("OBJ.NEW", "acct:a", "ledger::account"), 1)
        self.assertEqual(self.call("OBJ.NEW", "acct:a", "ledger::account"), 0)  # there already: no change
        self.assertEqual(self.call("TYPE", "acct:a"), b"pobj-object")
        self.assertEqual(self.call("OBJ.CLASS", "acct:a"), b"ledger::account")
        self.assertEqual(self.call("OBJ.CALL", "acct:a", "deposit", "150"), 150)
        self.assertEqual(self.call("OBJ.CALL", "acct:a", "withdraw", "100", "rent"), 1)
        self.assertEqual(self.call("OBJ.CALL", "acct:a", "withdraw", "100", "rent"), 0)  # would overdraw
        self.assertEqual(self.call("OBJ.CALL", "acct:a", "rename", "ada"), b"OK")
        self.assertEqual(self.call("OBJ.CALL", "acct:a", "summary"), b"ada: 50")
        self.assertEqual(self.call("OBJ.CALL", "acct:a", "limit"), b"18446744073709551615")
        self.assertEqual(self.call("OBJ.CALL", "acct:a", "sign", "-3", "false"), -1)
        self.assertTrue(self.call("OBJ.GET", "acct:a").startswith(b"ledger::account{balance: 50, operations: 1, owner: "))
        # A derived class: its own methods and its base's.
        self.assertEqual(self.call("OBJ.NEW", "acct:s", "ledger::savings"), 1)
        self.assertEqual(self.call("OBJ.CALL", "acct:s", "deposit", "1000"), 1000)
        self.assertEqual(float(self.call("OBJ.CALL", "acct:s", "accrue", "1.5", "0.5")), 0.5)  # rate 0
        self.assertIsNone(self.call("OBJ.CLASS", "acct:none"))
        self.assertIsNone(self.call("OBJ.GET", "acct:none"))

    def method_counts(self, method):
        for v in self.r.info("objects").values():
            if v["class"] == "ledger::account" and v["method"] == method:
                return v["calls"], v["errors"]
        self.fail(f"INFO objects has no line for {method}")

    def test_errors_change_nothing(self):
        calls, errors = self.method_counts("deposit")
        self.call("OBJ.NEW", "err:a", "ledger::account")
        self.call("OBJ.CALL", "err:a", "deposit", "10")
        self.assertIn("argument 1 ('cents') of deposit: 'ten' is not an integer", self.error("OBJ.CALL", "err:a", "deposit", "ten"))
        self.assertIn("is not a boolean", self.error("OBJ.CALL", "err:a", "sign", "1", "maybe"))
        self.assertIn("wrong number of arguments for deposit(std::int64_t cents)", self.error("OBJ.CALL", "err:a", "deposit"))
        msg = self.error("OBJ.CALL", "err:a", "steal", "1")
        self.assertIn("no shared method 'steal'", msg)
        self.assertIn("deposit, withdraw", msg)
        self.assertIn("no shared method", self.error("OBJ.CALL", "err:a", "not_shared"))
        self.assertIn("OBJ.NEW makes one", self.error("OBJ.CALL", "err:none", "deposit", "1"))
        self.assertIn("no shared class 'ledger::plain'", self.error("OBJ.NEW", "err:p", "ledger::plain"))
        self.assertIn("holds a 'ledger::account', not a 'ledger::savings'", self.error("OBJ.NEW", "err:a", "ledger::savings"))
        self.r.set("err:string", "x")
        self.assertIn("WRONGTYPE", self.error("OBJ.CALL", "err:string", "deposit", "1"))
        self.assertIn("WRONGTYPE", self.error("OBJ.NEW", "err:string", "ledger::account"))
        self.assertIn("WRONGTYPE", self.error("GET", "err:a"))
        self.assertIn("'-1' is not a non-negative integer", self.error("OBJ.CALL", "err:a", "add_operations", "-1"))
        self.assertEqual(self.call("OBJ.CALL", "err:a", "summary"), b": 10")
        self.assertEqual(self.method_counts("deposit"), (calls + 2, errors + 1))  # INFO objects counts them

    def test_a_const_method_that_throws_replies_its_error_and_rolls_nothing_back(self):
        self.call("OBJ.NEW", "const:a", "ledger::account")
        self.call("OBJ.CALL", "const:a", "deposit", "5")
        replays = self.r.info("persistence")["group_commit_replays"]
        p = self.r.pipeline(transaction=False)
        p.incr("const:n")
        p.execute_command("OBJ.CALL", "const:a", "checked_balance", "100")
        p.execute_command("OBJ.CALL", "const:a", "checked_balance", "5")
        p.incr("const:n")
        out = p.execute(raise_on_error=False)
        self.assertEqual(out[0], 1)
        self.assertIn("ledger::account.checked_balance: the balance is below 100", str(out[1]))
        self.assertEqual(out[2:], [5, 2])
        self.assertEqual(self.r.info("persistence")["group_commit_replays"], replays)  # the batch was not run again

    def test_a_method_that_throws_is_undone_and_the_batch_goes_on(self):
        self.call("OBJ.NEW", "throw:a", "ledger::account")
        self.call("OBJ.CALL", "throw:a", "deposit", "5")
        msg = self.error("OBJ.CALL", "throw:a", "fail_after", "1000")
        self.assertIn("ledger::account.fail_after: refused after the change", msg)
        self.assertEqual(self.call("OBJ.CALL", "throw:a", "summary"), b": 5")
        # In one pipeline (one batch, one block): the commands around the failing one still apply.
        p = self.r.pipeline(transaction=False)
        p.incr("throw:n")
        p.execute_command("OBJ.CALL", "throw:a", "deposit", "1")
        p.execute_command("OBJ.CALL", "throw:a", "fail_after", "1000")
        p.execute_command("OBJ.CALL", "throw:a", "deposit", "2")
        p.incr("throw:n")
        out = p.execute(raise_on_error=False)
        self.assertEqual(out[0], 1)
        self.assertEqual(out[1], 6)
        self.assertIsInstance(out[2], redis.ResponseError)
        self.assertEqual(out[3], 8)
        self.assertEqual(out[4], 2)
        self.assertEqual(self.call("OBJ.CALL", "throw:a", "summary"), b": 8")

    def test_exactly_once_multi_and_watch(self):
        self.call("OBJ.NEW", "once:a", "ledger::account")
        self.assertEqual(self.call("ONCE", "req-1", "OBJ.CALL", "once:a", "deposit", "7"), 7)
        self.assertEqual(self.call("ONCE", "req-1", "OBJ.CALL", "once:a", "deposit", "7"), 7)  # the stored reply
        self.assertEqual(self.call("OBJ.CALL", "once:a", "deposit", "0"), 7)
        # A request id reused for another call on the same object is refused, not answered.
        self.assertIn("used for another command", self.error("ONCE", "req-1", "OBJ.CALL", "once:a", "deposit", "8"))
        self.assertIn("used for another command", self.error("ONCE", "req-1", "OBJ.CALL", "once:a", "withdraw", "7", "x"))
        # A const method's reply is not kept: it may simply run again.
        kept = self.r.info("persistence")["once_stored_replies"]
        self.assertEqual(self.call("ONCE", "req-2", "OBJ.CALL", "once:a", "summary"), b": 7")
        self.assertEqual(self.r.info("persistence")["once_stored_replies"], kept)
        # MULTI: all or nothing; a method that throws fails the whole EXEC.
        p = self.r.pipeline(transaction=True)
        p.execute_command("OBJ.CALL", "once:a", "deposit", "100")
        p.execute_command("OBJ.CALL", "once:a", "fail_after", "1")
        with self.assertRaises(redis.ResponseError):
            p.execute()
        self.assertEqual(self.call("OBJ.CALL", "once:a", "deposit", "0"), 7)
        # WATCH: a call that changes the object makes a watcher's EXEC fail.
        with self.r.pipeline(transaction=True) as p:
            p.watch("once:a")
            self.r.execute_command("OBJ.CALL", "once:a", "deposit", "1")
            p.multi()
            p.execute_command("OBJ.CALL", "once:a", "deposit", "1000")
            with self.assertRaises(redis.WatchError):
                p.execute()
        self.assertEqual(self.call("OBJ.CALL", "once:a", "deposit", "0"), 8)

    def test_del_rename_expire_and_the_python_handle(self):
        kv = Client(port=self.server.port)
        acct = kv.shared_object("keys:a", "ledger::account")
        self.assertEqual(acct.deposit(40), 40)
        self.assertEqual(acct.withdraw(15, "bob"), 1)
        self.assertEqual(acct.sign(-2, True), 1)  # a bool argument from Python
        self.assertEqual(acct.class_name(), "ledger::account")
        self.assertEqual(kv.shared_object("keys:a", "ledger::account").deposit(0), 25)  # not made again
        self.assertTrue(self.call("RENAME", "keys:a", "keys:b"))
        self.assertEqual(self.call("EXISTS", "keys:a"), 0)
        self.assertEqual(self.call("OBJ.CALL", "keys:b", "deposit", "5"), 30)  # the same object, moved
        self.r.set("keys:c", "a string the rename replaces")
        self.assertTrue(self.call("RENAME", "keys:b", "keys:c"))
        self.assertEqual(self.call("OBJ.CALL", "keys:c", "summary"), b": 30")
        self.assertEqual(self.call("DEL", "keys:c"), 1)
        self.assertIn("OBJ.NEW makes one", self.error("OBJ.CALL", "keys:c", "summary"))
        kv.close()


def objects_and_memory(r):
    info = r.info("memory")
    return info["keys_pobj_object"], info["pool_bytes_used"]


class OwnershipTest(unittest.TestCase):
    """Each case on a server of its own: the pool's bytes in use and its heap check show that what
    DEL, RENAME, SET, expiry and FLUSHALL remove is freed, and nothing else."""

    def setUp(self):
        self.server = KvServer(extra=with_library())
        self.addCleanup(self.server.close)  # runs when setUp fails after it, unlike tearDown
        self.server.start()
        self.r = redis.Redis(host="127.0.0.1", port=self.server.port)
        self.before = objects_and_memory(self.r)

    def tearDown(self):
        self.r.close()
        self.server.stop()
        check = subprocess.run([self.server.binary, "--check", self.server.pool], capture_output=True, text=True)
        self.server.close()
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn(" 0 unreachable", check.stdout)

    def make(self, key):
        self.r.execute_command("OBJ.NEW", key, "ledger::account")
        self.r.execute_command("OBJ.CALL", key, "rename", "an owner with a name long enough for a block of its own")
        self.r.execute_command("OBJ.CALL", key, "deposit", "100")
        self.r.execute_command("OBJ.CALL", key, "withdraw", "10", "a payee, whose map the object owns")

    def assert_all_freed(self):
        self.assertEqual(objects_and_memory(self.r), self.before)

    def test_del_and_set_free_the_object_and_what_it_owns(self):
        self.make("o:a")
        self.make("o:b")
        self.assertEqual(objects_and_memory(self.r)[0], 2)
        self.assertEqual(self.r.delete("o:a"), 1)
        self.r.set("o:b", "x")  # another type replaces the object
        self.r.delete("o:b")
        self.assert_all_freed()

    def test_rename_moves_and_replaces(self):
        self.make("o:a")
        self.make("o:b")
        used = objects_and_memory(self.r)
        self.assertTrue(self.r.rename("o:a", "o:c"))  # moved, not copied: the same bytes in use
        self.assertEqual(objects_and_memory(self.r), used)
        self.assertTrue(self.r.rename("o:c", "o:b"))  # replaces the object o:b held
        self.assertEqual(self.r.execute_command("OBJ.CALL", "o:b", "summary"),
                         b"an owner with a name long enough for a block of its own: 90")
        self.assertEqual(objects_and_memory(self.r)[0], 1)
        self.r.delete("o:b")
        self.assert_all_freed()

    def test_expiry_and_flushall(self):
        self.make("o:t")
        self.r.pexpire("o:t", 50)
        deadline = time.time() + 5
        while objects_and_memory(self.r)[0] != 0 and time.time() < deadline:
            time.sleep(0.05)  # active expiry, without a command touching the key
        self.assert_all_freed()
        for i in range(5):
            self.make(f"o:{i}")
        self.r.flushall()
        self.assert_all_freed()


class RestartTest(unittest.TestCase):
    def test_objects_survive_restarts_and_a_server_without_their_library(self):
        server = KvServer(extra=with_library(), fixed_port=True).start()
        try:
            r = redis.Redis(host="127.0.0.1", port=server.port)
            r.execute_command("OBJ.NEW", "r:a", "ledger::account")
            r.execute_command("OBJ.CALL", "r:a", "withdraw", "0", "a payee with a long enough name to need a block")
            r.execute_command("OBJ.CALL", "r:a", "deposit", "42")
            r.execute_command("OBJ.CALL", "r:a", "rename", "an owner name long enough to need a block of its own")
            r.execute_command("OBJ.NEW", "r:gone", "ledger::account")
            server.kill()  # acknowledged calls are in the pool: nothing to replay
            server.start()
            self.assertEqual(r.execute_command("OBJ.CALL", "r:a", "deposit", "0"), 42)
            server.stop()
            # Without the library: the objects stay, traced and intact; calls say what is missing.
            plain = KvServer(pool_dir=server.dir, fixed_port=True)
            self.addCleanup(plain.close)  # stops it; the directory is server's, and server.close() removes it
            plain.start()
            r2 = redis.Redis(host="127.0.0.1", port=plain.port)
            self.assertEqual(r2.execute_command("OBJ.CLASS", "r:a"), b"ledger::account")
            with self.assertRaises(redis.ResponseError) as e:
                r2.execute_command("OBJ.CALL", "r:a", "deposit", "1")
            self.assertIn("--objects-library", str(e.exception))
            self.assertIn(b"its library is not loaded", r2.execute_command("OBJ.GET", "r:a"))
            self.assertEqual(r2.execute_command("DEL", "r:gone"), 1)  # destroyed through the pool's class table
            r2.close()
            plain.stop()
            check = subprocess.run([server.binary, "--check", server.pool], capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
            self.assertIn(" 0 unreachable", check.stdout)
            server.start()
            self.assertEqual(r.execute_command("OBJ.CALL", "r:a", "summary"),
                             b"an owner name long enough to need a block of its own: 42")
            self.assertEqual(r.execute_command("EXISTS", "r:gone"), 0)
            r.close()
        finally:
            server.close()

    def test_calls_exact_across_sigkill(self):
        server = KvServer(extra=with_library(), fixed_port=True).start()
        port = server.port
        try:
            run = uuid.uuid4().hex[:8]
            Client(port=port).shared_object(f"{run}:account", "ledger::account")

            def drive():
                with FunctionExecutor(workers=16) as ex:
                    return ex.map(depositing_worker, [(port, run, i, 400) for i in range(16)])

            totals = server.kill_during(drive)  # the kill comes in the middle of the run
            r = redis.Redis(host="127.0.0.1", port=port)
            self.assertEqual(r.execute_command("OBJ.CALL", f"{run}:account", "deposit", "0"), sum(totals))
            ops = r.execute_command("OBJ.GET", f"{run}:account").decode()
            self.assertIn(f"operations: {16 * 400 + 1}", ops)  # each deposit once, and the final read's
            r.close()
        finally:
            server.close()

    def test_libraries_that_cannot_be_loaded(self):
        for library, says in [("/nonexistent/objects.so", "cannot load objects library"),
                              ("libm.so.6", "registered no new shared classes")]:
            server = KvServer(extra=["--objects-library", library])
            try:
                with self.assertRaises(RuntimeError) as e:
                    server.start()
                self.assertIn(says, str(e.exception))
            finally:
                server.close()


@unittest.skipUnless(os.environ.get("POBJ_KV_EXAMPLE_OBJECTS"), "needs the examples' box office (POBJ_KV_EXAMPLE_OBJECTS)")
class ExampleTest(unittest.TestCase):
    def test_ticket_rush(self):
        server = KvServer(extra=["--objects-library", os.environ.get("POBJ_KV_EXAMPLE_OBJECTS", "")]).start()
        try:
            script = os.path.join(HERE, "..", "..", "examples", "serverless", "ticket_rush.py")
            out = subprocess.run([sys.executable, script, "--port", str(server.port), "--workers", "40", "--seats", "60"],
                                 capture_output=True, text=True, timeout=300)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn("Hamlet: 60 of 60 seats sold", out.stdout)
            self.assertIn("it adds up", out.stdout)
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
