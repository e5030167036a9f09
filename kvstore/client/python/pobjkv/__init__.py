"""pobjkv: the Python client of pobj-kv's shared objects (docs/kvstore.md, "Shared objects").

Serverless functions share durable, mutable objects through a pobj-kv server: counters, CAS
references, cyclic barriers, count-down latches, semaphores with leases, futures, maps, lists and
queues. Handles mirror the standard library's and Crucial's (AtomicLong, CyclicBarrier, ...).

Every mutating call carries a request id (the server's ONCE command): if the connection drops or
the server restarts mid-call, the client retries with the same id until the call's retry budget
runs out, and the server applies the call at most once and replies the first reply to retries. So
a function that loses its connection never loses nor doubles an update. A function that is itself
run again (a FaaS platform retries failed invocations) passes request_id=... derived from its
input (run, worker, step): then its second run's calls are the first run's requests, answered
from their stored replies, and its effects still happen once.

Built on Debian's python3-redis (redis-py); nothing else.

    from pobjkv import Client
    kv = Client(port=7379)
    hits = kv.atomic_long("pi:hits")
    hits.add_and_get(1234)
    kv.cyclic_barrier("pi:done", parties=100).await_()
"""

import os
import sys
import time
import uuid

try:
    import redis
except ImportError:  # another python3 than Debian's (pyenv's, a venv's): say what is missing
    raise ImportError("pobjkv needs Debian's python3-redis: apt-get install python3-redis; "
                     f"run with /usr/bin/python3 (this is {sys.executable})") from None

__all__ = ["Client", "RetryBudgetExceeded"]

_RETRYABLE = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


class RetryBudgetExceeded(Exception):
    """The server could not be reached for the whole retry budget."""


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


class Client:
    """A connection pool to one pobj-kv server, with retries by request id.

    retry_for: seconds a call keeps retrying while the server is unreachable (a restart).
    """

    def __init__(self, host="127.0.0.1", port=None, password=None, retry_for=60.0, pool_size=8):
        port = port or int(os.environ.get("POBJ_KV_PORT", "7379"))
        self.host, self.port, self.password = host, port, password
        self.retry_for = retry_for
        self._pool = redis.ConnectionPool(host=host, port=port, password=password, max_connections=pool_size,
                                          socket_timeout=None, socket_connect_timeout=5)
        self.redis = redis.Redis(connection_pool=self._pool)

    # -- calls ------------------------------------------------------------------------------------

    def call(self, *args, request_id=None):
        """Runs a mutating command exactly once (ONCE with a fresh or given request id), retrying
        with the same id across dropped connections and server restarts."""
        rid = request_id or uuid.uuid4().hex
        return self._retrying(lambda: self.redis.execute_command("ONCE", rid, *args))

    def read(self, *args):
        """Runs a command that changes nothing; retried the same way (a read may simply run again)."""
        return self._retrying(lambda: self.redis.execute_command(*args))

    def _retrying(self, fn):
        deadline = time.monotonic() + self.retry_for
        pause = 0.01
        while True:
            try:
                return fn()
            except _RETRYABLE:
                if time.monotonic() > deadline:
                    raise RetryBudgetExceeded(f"pobj-kv at {self.host}:{self.port} unreachable for {self.retry_for}s")
                self._pool.disconnect()  # the server may be a new process: drop every old socket
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    def pipeline_calls(self, calls, request_ids=None):
        """Sends many mutating commands in one pipeline, each exactly once; returns their replies.
        A failed pipeline is retried whole: calls that had been applied reply their stored replies."""
        ids = list(request_ids) if request_ids is not None else [uuid.uuid4().hex for _ in calls]

        def run():
            p = self.redis.pipeline(transaction=False)
            for rid, args in zip(ids, calls):
                p.execute_command("ONCE", rid, *args)
            return p.execute()

        return self._retrying(run)

    def close(self):
        self._pool.disconnect()

    # -- handles ----------------------------------------------------------------------------------

    def atomic_long(self, name):
        return AtomicLong(self, name)

    def atomic_ref(self, name):
        return AtomicRef(self, name)

    def cyclic_barrier(self, name, parties):
        return CyclicBarrier(self, name, parties)

    def count_down_latch(self, name, count=None):
        return CountDownLatch(self, name, count)

    def semaphore(self, name, permits=None):
        return Semaphore(self, name, permits)

    def future(self, name):
        return Future(self, name)

    def map(self, name):
        return Map(self, name)

    def list(self, name):
        return List(self, name)

    def queue(self, name):
        return Queue(self, name)

    def shared_object(self, name, class_name=None):
        """An object of a user's persistent class that the server loaded (OBJ.NEW, OBJ.CALL): with
        class_name, made if absent. Its shared methods are the handle's: obj.deposit(100)."""
        return SharedObject(self, name, class_name)


class _Handle:
    def __init__(self, client, name):
        self.client, self.name = client, name

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


class AtomicLong(_Handle):
    """A shared 64-bit counter (a string key, as INCR keeps it)."""

    def get(self):
        v = self.client.read("GET", self.name)
        return int(v) if v is not None else 0

    def set(self, value, request_id=None):
        self.client.call("SET", self.name, int(value), request_id=request_id)

    def add_and_get(self, delta, request_id=None):
        return int(self.client.call("INCRBY", self.name, int(delta), request_id=request_id))

    def increment_and_get(self, request_id=None):
        return self.add_and_get(1, request_id)

    def decrement_and_get(self, request_id=None):
        return self.add_and_get(-1, request_id)

    def get_and_add(self, delta, request_id=None):
        return self.add_and_get(delta, request_id) - int(delta)

    def compare_and_set(self, expected, new, request_id=None):
        return bool(self.client.call("CAS", self.name, int(expected), int(new), request_id=request_id))


class AtomicRef(_Handle):
    """A shared string value with compare-and-set."""

    def get(self):
        return self.client.read("GET", self.name)

    def set(self, value):
        self.client.call("SET", self.name, value)

    def compare_and_set(self, expected, new):
        if expected is None:
            return bool(self.client.call("SETNX", self.name, new))
        return bool(self.client.call("CAS", self.name, expected, new))


class CyclicBarrier(_Handle):
    """A reusable barrier for `parties` callers (BARRIER.AWAIT)."""

    def __init__(self, client, name, parties):
        super().__init__(client, name)
        self.parties = int(parties)

    def await_(self, timeout=None, request_id=None):
        """Waits until all parties arrive; returns this caller's arrival index (0 first), or None
        if `timeout` seconds pass first (the arrival is then withdrawn)."""
        args = ["BARRIER.AWAIT", self.name, self.parties]
        if timeout is not None:
            args += ["TIMEOUT", max(1, int(timeout * 1000))]
        v = self.client.call(*args, request_id=request_id)
        return None if v is None else int(v)

    def waiting(self):
        return int(self.client.read("BARRIER.WAITING", self.name))


class CountDownLatch(_Handle):
    def __init__(self, client, name, count=None):
        super().__init__(client, name)
        if count is not None:
            client.call("LATCH.CREATE", name, int(count))

    def count_down(self, request_id=None):
        return int(self.client.call("LATCH.COUNTDOWN", self.name, request_id=request_id))

    def get_count(self):
        v = self.client.read("LATCH.COUNT", self.name)
        return None if v is None else int(v)

    def await_(self, timeout=None):
        """True once the count is 0; False if `timeout` seconds pass first."""
        args = ["LATCH.AWAIT", self.name]
        if timeout is not None:
            args += ["TIMEOUT", max(1, int(timeout * 1000))]
        return self.client.read(*args) is not None


class Semaphore(_Handle):
    def __init__(self, client, name, permits=None):
        super().__init__(client, name)
        if permits is not None:
            client.call("SEM.CREATE", name, int(permits))

    def acquire(self, permits=1, timeout=None, lease=None, request_id=None):
        """Takes permits, waiting for them. With `lease` (seconds) they come back by themselves
        after that long unless released first, and the lease id is returned; else True. False (no
        permits taken) if `timeout` seconds pass first."""
        args = ["SEM.ACQUIRE", self.name, "PERMITS", int(permits)]
        if lease is not None:
            args += ["LEASE", max(1, int(lease * 1000))]
        if timeout is not None:
            args += ["TIMEOUT", max(1, int(timeout * 1000))]
        v = self.client.call(*args, request_id=request_id)
        if v is None:
            return False
        return _text(v) if lease is not None else True

    def release(self, permits=1, lease=None, request_id=None):
        if lease is not None:
            return int(self.client.call("SEM.RELEASE", self.name, "LEASE", lease, request_id=request_id))
        return int(self.client.call("SEM.RELEASE", self.name, "PERMITS", int(permits), request_id=request_id))

    def renew(self, lease, seconds):
        return bool(self.client.call("SEM.RENEW", self.name, lease, max(1, int(seconds * 1000))))

    def available_permits(self):
        return int(self.client.read("SEM.AVAILABLE", self.name))


class Future(_Handle):
    """A value set once (a promise) and read by anyone, waiting until it is set."""

    def set(self, value, request_id=None):
        return bool(self.client.call("FUTURE.SET", self.name, value, request_id=request_id))

    def get(self, timeout=None):
        args = ["FUTURE.GET", self.name]
        if timeout is not None:
            args += ["TIMEOUT", max(1, int(timeout * 1000))]
        v = self.client.read(*args)
        if v is None:
            raise TimeoutError(f"future {self.name!r} not set within {timeout}s")
        return v


class Map(_Handle):
    """A shared map of strings (a hash)."""

    def get(self, field):
        return self.client.read("HGET", self.name, field)

    def put(self, field, value, request_id=None):
        self.client.call("HSET", self.name, field, value, request_id=request_id)

    def remove(self, field):
        return bool(self.client.call("HDEL", self.name, field))

    def items(self):
        return self.client.read("HGETALL", self.name)

    def __len__(self):
        return int(self.client.read("HLEN", self.name))


class List(_Handle):
    def append(self, value):
        return int(self.client.call("RPUSH", self.name, value))

    def range(self, start=0, stop=-1):
        return self.client.read("LRANGE", self.name, start, stop)

    def __len__(self):
        return int(self.client.read("LLEN", self.name))


class SharedObject(_Handle):
    """An object of a user's persistent class on the server, whose POBJ_SHARED methods run there,
    atomically and durably, each call exactly once (method shipping, as Crucial's @Shared objects).
    Arguments go as text; results come back as the server replies them (integers as int, strings
    as bytes, floating point numbers as bytes in RESP2, void as b"OK")."""

    def __init__(self, client, name, class_name=None):
        super().__init__(client, name)
        if class_name is not None:
            # ONCE makes the making exactly-once too; making an existing object of the class is a no-op.
            client.call("OBJ.NEW", name, class_name)

    def call(self, method, *args, request_id=None):
        args = ["1" if a is True else "0" if a is False else a for a in args]  # bool parameters read 0/1
        return self.client.call("OBJ.CALL", self.name, method, *args, request_id=request_id)

    def class_name(self):
        return _text(self.client.read("OBJ.CLASS", self.name))

    def fields(self):
        """The object's fields, as text."""
        return _text(self.client.read("OBJ.GET", self.name))

    def __getattr__(self, method):
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, request_id=None: self.call(method, *args, request_id=request_id)


class Queue(_Handle):
    """A FIFO queue (a list): put at the tail, take from the head."""

    def put(self, value, request_id=None):
        return int(self.client.call("RPUSH", self.name, value, request_id=request_id))

    def poll(self, request_id=None):
        return self.client.call("LPOP", self.name, request_id=request_id)

    def take(self, timeout=0):
        """Waits for an element (BLPOP; timeout 0: for ever). Not exactly-once across a lost
        connection: an element taken by a call whose reply was lost is gone (use poll with
        retries where that matters)."""
        v = self.client.read("BLPOP", self.name, timeout)
        return None if v is None else v[1]

    def __len__(self):
        return int(self.client.read("LLEN", self.name))
