#!/usr/bin/python3
"""k-means by serverless-style workers with a barrier between iterations.

Each worker owns a shard of the points. Every iteration it assigns its points to the nearest
centroid and adds its partial sums to a shared hash for that iteration (HINCRBYFLOAT, each under a
request id of its own, so a retried worker adds once); then all meet at a cyclic barrier, and each
reads the totals and computes the same new centroids. No leader, no shared memory: only pobj-kv.
Request ids come from (run, iteration, worker), so a worker the executor runs again adds nothing
twice and re-joins the barrier as the same party.

    scripts/run.sh &
    examples/serverless/kmeans.py --workers 8 --points 4000 --k 4 --iterations 10
"""

import argparse
import os
import random
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "kvstore", "client", "python"))
from pobjkv import Client  # noqa: E402
from pobjkv.executor import FunctionExecutor  # noqa: E402


def points_of(shard, n, k, seed):
    rng = random.Random(f"{seed}:{shard}")
    centers = [(10.0 * i, 10.0 * (i % 2)) for i in range(k)]  # well apart: a known answer
    pts = []
    for _ in range(n):
        cx, cy = centers[rng.randrange(k)]
        pts.append((cx + rng.gauss(0, 1), cy + rng.gauss(0, 1)))
    return pts


def initial_centroids(pts, k):
    chosen = [pts[0]]
    while len(chosen) < k:
        chosen.append(max(pts, key=lambda p: min((p[0] - c[0]) ** 2 + (p[1] - c[1]) ** 2 for c in chosen)))
    return chosen


def worker(job):
    run, shard, workers, n, k, iterations, port = job
    kv = Client(port=port)
    pts = points_of(shard, n, k, run)
    # Everyone starts from the same centroids: shard 0's points spread farthest apart.
    cent = initial_centroids(points_of(0, n, k, run), k)
    barrier = kv.cyclic_barrier(f"km:{run}:barrier", workers)
    for it in range(iterations):
        sums = [[0.0, 0.0, 0] for _ in range(k)]
        for x, y in pts:
            c = min(range(k), key=lambda j: (x - cent[j][0]) ** 2 + (y - cent[j][1]) ** 2)
            sums[c][0] += x
            sums[c][1] += y
            sums[c][2] += 1
        key = f"km:{run}:it{it}"
        calls = []
        for c, (sx, sy, cnt) in enumerate(sums):
            calls += [("HINCRBYFLOAT", key, f"x{c}", repr(sx)), ("HINCRBYFLOAT", key, f"y{c}", repr(sy)),
                      ("HINCRBY", key, f"n{c}", cnt)]
        # Ids from (run, iteration, worker): a retried worker's sums are the same requests, added once.
        kv.pipeline_calls(calls, [f"km:{run}:it{it}:w{shard}:{i}" for i in range(len(calls))])
        barrier.await_(request_id=f"km:{run}:it{it}:w{shard}:barrier")
        totals = {k_.decode(): float(v) for k_, v in kv.redis.hgetall(key).items()}
        cent = [(totals[f"x{c}"] / totals[f"n{c}"], totals[f"y{c}"] / totals[f"n{c}"]) if totals.get(f"n{c}") else cent[c]
                for c in range(k)]
    kv.close()
    return cent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--points", type=int, default=4000, help="per worker")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--port", type=int, default=int(os.environ.get("POBJ_KV_PORT", "7379")))
    a = ap.parse_args()
    run = uuid.uuid4().hex[:8]
    jobs = [(run, s, a.workers, a.points, a.k, a.iterations, a.port) for s in range(a.workers)]
    with FunctionExecutor(workers=a.workers) as ex:
        results = ex.map(worker, jobs)
    assert all(r == results[0] for r in results), "workers disagree on the centroids"
    for c in sorted(results[0]):
        print(f"centroid ({c[0]:7.3f}, {c[1]:7.3f})")
    # The data was drawn around (10i, 10(i mod 2)): each centroid lands within 0.5 of one.
    truth = [(10.0 * i, 10.0 * (i % 2)) for i in range(a.k)]
    near = all(min((c[0] - t[0]) ** 2 + (c[1] - t[1]) ** 2 for c in results[0]) < 0.25 for t in truth)
    print("every centre found" if near else "some centre missed")
    return 0 if near else 1


if __name__ == "__main__":
    sys.exit(main())
