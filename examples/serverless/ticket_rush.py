#!/usr/bin/python3
"""A ticket rush: many serverless-style workers buy seats from one user-defined shared object.

The box office (objects/box_office.hpp) is a persistent class of our own: pobj-gen compiled it,
pobj-kv loaded the library at start, and its methods run on the server, each call one atomic,
durable step (method shipping). N workers (processes, through pobjkv's FunctionExecutor) each try
to reserve a few seats a few times; every call carries a request id derived from the worker's
input, so a retried worker reserves nothing twice. At the end the seats the workers were granted
add up to what the box office sold, and it never sold more than it had.

    ninja -C build examples/box_office.so
    build/kvstore/pobj-kv --objects-library build/examples/box_office.so &
    examples/serverless/ticket_rush.py --workers 50 --seats 100
"""

import argparse
import os
import random
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "kvstore", "client", "python"))
from pobjkv import Client  # noqa: E402
from pobjkv.executor import FunctionExecutor  # noqa: E402


def customer(job):
    run, index, attempts, port = job
    kv = Client(port=port)
    office = kv.shared_object(f"tickets:{run}")
    rng = random.Random(f"{run}:{index}")
    name = f"customer-{index}"
    granted = 0
    for attempt in range(attempts):
        seats = rng.randint(1, 4)
        if office.reserve(name, seats, request_id=f"tickets:{run}:{index}:{attempt}"):
            granted += seats
    held = office.seats_of(name)
    kv.close()
    return granted, held


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--seats", type=int, default=100)
    ap.add_argument("--attempts", type=int, default=3, help="reservations each worker tries")
    ap.add_argument("--port", type=int, default=int(os.environ.get("POBJ_KV_PORT", "7379")))
    ap.add_argument("--run", default=uuid.uuid4().hex[:8], help="names this run's box office")
    a = ap.parse_args()
    kv = Client(port=a.port)
    office = kv.shared_object(f"tickets:{a.run}", "tickets::box_office")
    office.open("Hamlet", a.seats, request_id=f"tickets:{a.run}:open")
    with FunctionExecutor(workers=a.workers) as ex:
        results = ex.map(customer, [(a.run, i, a.attempts, a.port) for i in range(a.workers)])
    granted = sum(g for g, _ in results)
    sold = a.seats - int(office.available())
    assert all(g == h for g, h in results), "a worker holds other seats than it was granted"
    assert granted == sold <= a.seats, f"granted {granted}, sold {sold} of {a.seats}"
    print(f"{office.report().decode()} (the {a.workers} workers were granted {granted}: it adds up)")
    kv.close()


if __name__ == "__main__":
    main()
