#!/usr/bin/python3
"""Monte Carlo estimation of pi by serverless-style workers sharing one counter (the seed's example).

N workers (processes, through pobjkv's FunctionExecutor) each throw darts at the unit square,
add their hits to one shared counter in pobj-kv, and meet at a barrier; the first to arrive
computes nothing special: every worker reads the final count after the barrier, so they all agree.
The counter is durable and every increment exactly-once: kill and restart the server in the
middle and the workers retry, and the total is still exact (tests/kvstore/objects_test.py).

    scripts/run.sh &                     # pobj-kv on port 7379
    examples/serverless/monte_carlo_pi.py --workers 100 --darts 100000
"""

import argparse
import os
import random
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "kvstore", "client", "python"))
from pobjkv import Client  # noqa: E402
from pobjkv.executor import FunctionExecutor  # noqa: E402


def worker(job):
    run, index, workers, darts, port = job
    kv = Client(port=port)
    rng = random.Random(f"{run}:{index}")
    inside = sum(1 for _ in range(darts) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
    hits = kv.atomic_long(f"pi:{run}:hits")
    # One request id per worker and run: if this function is retried, its hits still count once.
    kv.call("INCRBY", hits.name, inside, request_id=f"pi:{run}:{index}")
    kv.cyclic_barrier(f"pi:{run}:done", workers).await_(request_id=f"pi:{run}:{index}:done")
    total = hits.get()
    kv.close()
    return inside, 4.0 * total / (workers * darts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--darts", type=int, default=100000, help="per worker")
    ap.add_argument("--port", type=int, default=int(os.environ.get("POBJ_KV_PORT", "7379")))
    ap.add_argument("--run", default=uuid.uuid4().hex[:8], help="names this run's objects")
    a = ap.parse_args()
    jobs = [(a.run, i, a.workers, a.darts, a.port) for i in range(a.workers)]
    with FunctionExecutor(workers=a.workers) as ex:
        results = ex.map(worker, jobs)
    estimates = {round(pi, 12) for _, pi in results}
    inside = sum(i for i, _ in results)
    assert len(estimates) == 1, f"workers disagree: {estimates}"
    print(f"pi ~ {4.0 * inside / (a.workers * a.darts):.6f} from {a.workers} workers x {a.darts} darts "
          f"(every worker read the same shared total: {estimates.pop():.6f})")


if __name__ == "__main__":
    main()
