"""A local stand-in for a FaaS platform: runs a Python callable over many worker processes.

    from pobjkv.executor import FunctionExecutor
    with FunctionExecutor(workers=100) as ex:
        results = ex.map(work, range(100))

The interface is the one a cloud-function executor offers (Lithops's, PyWren's: submit, map,
results in order, a failed invocation retried), so code written against it moves to a real
platform by swapping the executor. Each invocation runs in a fresh process (fork), as a cold
function would: it shares nothing with the caller but what it reaches through pobj-kv. A failed
invocation (an exception, or its process dying) is run again, up to `retries` times, as a
platform does. Its effects on shared objects are then exactly-once only if the function names its
calls with request ids derived from its input (pobjkv's `request_id=`: run, worker, step), so that
the second run's calls are the first run's requests; fresh ids would apply them again.
"""

import multiprocessing
import multiprocessing.connection
import traceback

__all__ = ["FunctionExecutor", "InvocationFailed"]


class InvocationFailed(Exception):
    pass


def _invoke(conn, fn, arg):
    try:
        conn.send((True, fn(arg)))
    except BaseException:  # noqa: BLE001 - reported to the caller, who decides
        conn.send((False, traceback.format_exc()))
    finally:
        conn.close()


class FunctionExecutor:
    """Runs fn(arg) for each arg in its own process, `workers` at a time."""

    def __init__(self, workers=None, retries=2):
        self.workers = workers or multiprocessing.cpu_count()
        self.retries = retries
        self._ctx = multiprocessing.get_context("fork")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, args):
        """fn(arg) for every arg, all running at once up to `workers`; the results in order."""
        args = list(args)
        results = [None] * len(args)
        attempts = [0] * len(args)
        todo = list(range(len(args)))
        running = {}  # index -> (process, pipe)
        while todo or running:
            while todo and len(running) < self.workers:
                i = todo.pop(0)
                recv, send = self._ctx.Pipe(duplex=False)
                p = self._ctx.Process(target=_invoke, args=(send, fn, args[i]), daemon=True)
                p.start()
                send.close()
                running[i] = (p, recv)
                attempts[i] += 1
            ready = multiprocessing.connection.wait([r for _, r in running.values()] +
                                                    [p.sentinel for p, _ in running.values()])
            for i, (p, recv) in list(running.items()):
                if recv not in ready and p.sentinel not in ready:
                    continue
                outcome = None
                try:
                    if recv.poll():
                        outcome = recv.recv()
                except (EOFError, OSError):
                    outcome = None
                if outcome is None and p.is_alive():
                    continue  # the pipe closed first; the process is ending
                p.join()
                recv.close()
                del running[i]
                if outcome is not None and outcome[0]:
                    results[i] = outcome[1]
                    continue
                if attempts[i] > self.retries:
                    why = outcome[1] if outcome is not None else f"the process died (exit code {p.exitcode})"
                    raise InvocationFailed(f"invocation {i} failed {attempts[i]} times; last:\n{why}")
                todo.append(i)  # run it again, as a platform would
        return results

    def submit(self, fn, arg):
        """One invocation; its result (raises InvocationFailed if it keeps failing)."""
        return self.map(fn, [arg])[0]
