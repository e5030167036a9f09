#!/usr/bin/python3
"""A linearizability checker for recorded client histories (Wing & Gong's search with Lowe's
memoization), per key, with indeterminate operations.

A history is a list of events, one per line of JSON when read from a file:
  {"process": 3, "type": "invoke", "f": "write", "key": "k1", "value": 5}
  {"process": 3, "type": "ok",     "f": "write", "key": "k1", "value": 5}
`type` is invoke, then one of ok (it happened, with this result), fail (it certainly did not
happen) or info (unknown: a timeout, a lost connection; it may have happened at any time after its
invocation, or never). A process has at most one operation in flight. Operations:
  register: read (value: what was read, None for a missing key), write (value), cas (value:
            [expected, new]; ok means it swapped, fail that it did not)
  counter:  incr (value: the amount; its reply need not be checked), read (value)
Keys are independent objects (linearizability is compositional), so each key is checked alone.
A counter whose increments all add the same amount is checked by a sweep that is exact and takes
O(n log n) (check_counter), the search's memo growing with the increments in doubt; others by the
search.

check(history, model) returns (True, None) or (False, explanation). Run as a program on a file of
events (the model by --model), it prints the verdict and exits 0 (linearizable), 1 (not), 2 (bad input).
The checker is itself tested on known-bad histories: tests/replication/linearizability_test.py.
"""
import heapq
import json
import sys

INF = float("inf")


class Register:
    """A register per key: reads see the last write (None before any)."""
    initial = None

    @staticmethod
    def step(state, op):
        f, v = op["f"], op.get("value")
        if f == "read":
            return (v == state), state
        if f == "write":
            return True, v
        if f == "cas":
            expected, new = v
            if op["outcome"] == "ok":
                return (state == expected), new
            return (state != expected), state  # a failed cas is a read that saw something else
        raise ValueError("register: unknown operation %r" % f)


class Counter:
    """A counter per key, from 0: incr adds, read sees the sum."""
    initial = 0

    @staticmethod
    def interchangeable(op):
        """Operations with the same result on every state: which of them goes first never matters,
        so the search tries only the one that must return soonest (see check_key)."""
        return ("incr", op.get("value")) if op["f"] == "incr" else None

    @staticmethod
    def step(state, op):
        f, v = op["f"], op.get("value")
        if f == "incr":
            return True, state + v
        if f == "read":
            return (v == state), state
        raise ValueError("counter: unknown operation %r" % f)


MODELS = {"register": Register, "counter": Counter}


def operations(history):
    """Pairs invocations with completions: [(op, call time, return time)], per key.

    A failed operation is dropped (it did not happen), except a failed cas, which is a read.
    An indeterminate one returns at infinity; an indeterminate read is dropped (it changed nothing).
    An invocation with no completion at all counts as indeterminate."""
    pending = {}
    by_key = {}
    for t, e in enumerate(history):
        p = e["process"]
        if e["type"] == "invoke":
            if p in pending:
                raise ValueError("process %r invokes %r while an operation is in flight" % (p, e))
            pending[p] = (t, e)
            continue
        if p not in pending:
            raise ValueError("process %r completes an operation it never invoked: %r" % (p, e))
        call, inv = pending.pop(p)
        op = dict(inv)
        op["outcome"] = e["type"]
        if e["type"] == "ok":
            op["value"] = e.get("value", inv.get("value"))
            ret = t
        elif e["type"] == "fail":
            if inv["f"] != "cas":
                continue
            ret = t
        elif e["type"] == "info":
            if inv["f"] == "read":
                continue
            ret = INF
        else:
            raise ValueError("unknown event type %r" % e["type"])
        by_key.setdefault(inv["key"], []).append((op, call, ret))
    for call, inv in pending.values():
        if inv["f"] != "read":
            op = dict(inv)
            op["outcome"] = "info"
            by_key.setdefault(inv["key"], []).append((op, call, INF))
    return by_key


def prune(ops, model):
    """Drops indeterminate register writes (and CASes) whose value no read and no CAS ever saw.

    Sound: an indeterminate operation may not have happened at all, so a history is linearizable
    with it if it is linearizable without it; and without it if with it, unless something observed
    its value (values are unique per write in the histories we record), which this keeps. It matters
    because an indeterminate operation stays open to the end of the history and multiplies the
    orders the search must try."""
    if model is not Register:
        return ops
    seen = set()
    for op, _, _ in ops:
        if op["f"] == "read" and op["outcome"] == "ok":
            seen.add(_freeze(op.get("value")))
        elif op["f"] == "cas":
            seen.add(_freeze(op["value"][0]))
    kept = []
    for entry in ops:
        op = entry[0]
        if op["outcome"] == "info" and op["f"] in ("write", "cas"):
            v = op["value"] if op["f"] == "write" else op["value"][1]
            if _freeze(v) not in seen:
                continue
        kept.append(entry)
    return kept


def check_key(ops, model):
    """Wing & Gong's search with Lowe's cache over one key's operations."""
    n = len(ops)
    # Entries: (time, is_return, index); calls sort before returns at equal times.
    events = sorted([(c, 0, i) for i, (_, c, _) in enumerate(ops)] + [(r, 1, i) for i, (_, _, r) in enumerate(ops)])
    # A doubly linked list over the events, so that an operation can be lifted out and put back.
    size = len(events)
    nxt = list(range(1, size + 1))
    prv = list(range(-1, size - 1))
    head = 0 if size else size
    match = {}  # call position -> return position
    pos_call = {}
    for pos, (_, is_ret, i) in enumerate(events):
        if is_ret:
            match[pos_call[i]] = pos
        else:
            pos_call[i] = pos

    def unlink(pos):
        nonlocal head
        if prv[pos] >= 0:
            nxt[prv[pos]] = nxt[pos]
        else:
            head = nxt[pos]
        if nxt[pos] < size:
            prv[nxt[pos]] = prv[pos]

    def relink(pos):
        nonlocal head
        if prv[pos] >= 0:
            nxt[prv[pos]] = pos
        else:
            head = pos
        if nxt[pos] < size:
            prv[nxt[pos]] = pos

    # Interchangeable operations (a counter's increments of the same amount): of those that could be
    # placed next, only the one whose return comes first is tried (earliest deadline first). Any
    # valid order can be rearranged so, as they have the same effect; it keeps the search from
    # trying every subset of the increments still in doubt.
    kind_of = getattr(model, "interchangeable", lambda op: None)
    kinds = [kind_of(op) for op, _, _ in ops]

    def chosen_from(start):
        """For each kind, the operation to try of those called before the next return: the one
        that returns soonest, the first of equals."""
        best = {}
        pos = start
        while pos < size:
            _, is_ret, j = events[pos]
            if is_ret:
                break
            k = kinds[j]
            if k is not None and (k not in best or ops[j][2] < ops[best[k]][2]):
                best[k] = j
            pos = nxt[pos]
        return best

    chosen, chosen_for = {}, None  # recomputed whenever the set of placed operations changes

    state = model.initial
    linearized = 0
    cache = set()
    stack = []
    entry = head
    deepest = 0
    blocked = None  # (depth, op index, state): the return that stopped the longest prefix
    while head < size:
        if entry >= size:
            return False, "no order fits (search exhausted)"
        _, is_ret, i = events[entry]
        if not is_ret:
            if kinds[i] is not None:
                if chosen_for != linearized:
                    chosen, chosen_for = chosen_from(head), linearized
                if chosen.get(kinds[i]) != i:
                    entry = nxt[entry]
                    continue
            ok, new_state = model.step(state, ops[i][0])
            key = (linearized | (1 << i), _freeze(new_state))
            if ok and key not in cache:
                cache.add(key)
                stack.append((entry, state))
                state = new_state
                linearized |= 1 << i
                unlink(match[entry])
                unlink(entry)
                deepest = max(deepest, len(stack))
                entry = head
            else:
                entry = nxt[entry]
        else:
            if ops[i][2] == INF:
                return True, None  # only indeterminate operations remain: they may never have happened
            if blocked is None or len(stack) > blocked[0]:
                blocked = (len(stack), i, state)
            if not stack:
                # Where the search got furthest is where the history goes wrong (the first return
                # of the whole history, where it gave up, says little).
                _, j, held = blocked
                op = ops[j][0]
                return False, ("after the longest linearizable prefix (%d operations, the object then %r), "
                               "operation %s %s=%r by process %r (called at event %d, returned at event %d) "
                               "cannot be placed"
                               % (blocked[0], held, op["f"], op["key"], op.get("value"), op["process"],
                                  ops[j][1], ops[j][2]))
            entry, state = stack.pop()
            i = events[entry][2]
            linearized &= ~(1 << i)
            relink(entry)
            relink(match[entry])
            entry = nxt[entry]
    return True, None


def check_counter(ops):
    """An exact check in O(n log n) for a counter whose increments all add the same amount (as
    INCR does), where the search of check_key grows with the increments in doubt.

    Why it is exact. Let C(t) be the counter's value at time t: a step of one increment at each
    increment's linearization point, so C rises by one amount at a time. A read that returned v
    is placed in its interval (call, return) iff v is a value C takes there, that is (C never
    skips a value) iff C(call) <= v <= C(return), counting the increments placed before each. So
    the history is linearizable iff increments can be placed, each after its call, an ok one
    before its return and an indeterminate one anywhere later or never, so that every read
    satisfies C(call) <= v <= C(return).

    The sweep places each increment as late as it can: at its return if ok, or just before the
    return of a read that needs it (taking the increment with the earliest return first, and one
    in doubt only when no ok one is waiting). That gives the least C at every moment of all
    placements that meet the lower bounds (v <= C(return)) and the returns, which every valid
    placement must meet: if this least C breaks an upper bound (C(call) <= v), every C does; if a
    lower bound finds no increment left to place, none exists.

    Returns (True, None), (False, why), or None when the increments differ in amount (check_key
    then decides)."""
    amounts = {op.get("value") for op, _, _ in ops if op["f"] == "incr"}
    if len(amounts) > 1 or any(not isinstance(a, int) or a <= 0 for a in amounts):
        return None
    unit = amounts.pop() if amounts else 1
    events = []  # (time, order, kind, index): at one time (never shared) calls precede returns
    for i, (op, call, ret) in enumerate(ops):
        if op["f"] == "read":
            if op.get("value") % unit != 0:
                return False, "read %r by process %r is not a sum of increments of %d" % (op.get("value"), op["process"], unit)
            events.append((call, 0, "read-call", i))
            events.append((ret, 1, "read-return", i))
        elif op["f"] == "incr":
            events.append((call, 0, "incr-call", i))
            if ret != INF:
                events.append((ret, 1, "incr-return", i))
        else:
            raise ValueError("counter: unknown operation %r" % op["f"])
    events.sort(key=lambda e: (e[0], e[1]))
    placed = set()
    waiting = []  # ok increments called, not placed: (return time, index)
    in_doubt = 0  # indeterminate increments called, not placed
    count = 0     # increments placed so far (the counter is count * unit)
    for t, _, kind, i in events:
        op = ops[i][0]
        if kind == "incr-call":
            if ops[i][2] == INF:
                in_doubt += 1
            else:
                heapq.heappush(waiting, (ops[i][2], i))
        elif kind == "incr-return":
            if i not in placed:
                placed.add(i)
                count += 1
        elif kind == "read-call":
            if count * unit > op["value"]:
                return False, ("read %r by process %r (called at event %d, returned at event %d) cannot be placed: "
                               "%d had completed or had to be placed before it was called"
                               % (op["value"], op["process"], t, ops[i][2], count * unit))
        else:  # read-return: the increments it saw are placed before it, the latest possible
            while count * unit < op["value"]:
                while waiting and waiting[0][1] in placed:
                    heapq.heappop(waiting)
                if waiting:
                    placed.add(heapq.heappop(waiting)[1])
                elif in_doubt:
                    in_doubt -= 1
                else:
                    return False, ("read %r by process %r (called at event %d, returned at event %d) cannot be "
                                   "placed: only %d had been invoked when it returned"
                                   % (op["value"], op["process"], ops[i][1], t, count * unit))
                count += 1
    return True, None


def _freeze(v):
    return tuple(v) if isinstance(v, list) else v


def check(history, model=Register):
    """(True, None) if every key's operations are linearizable, else (False, why)."""
    for key, ops in sorted(operations(history).items(), key=lambda kv: str(kv[0])):
        verdict = check_counter(ops) if model is Counter else None
        ok, why = verdict if verdict is not None else check_key(prune(ops, model), model)
        if not ok:
            return False, "key %r: %s" % (key, why)
    return True, None


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("history", help="a file of events, one JSON object per line")
    ap.add_argument("--model", choices=sorted(MODELS), default="register")
    args = ap.parse_args(argv)
    try:
        with open(args.history) as f:
            history = [json.loads(line) for line in f if line.strip()]
        ok, why = check(history, MODELS[args.model])
    except (OSError, ValueError, KeyError) as e:
        print("linearizability: %s" % e, file=sys.stderr)
        return 2
    print("linearizable" if ok else "NOT linearizable: " + why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
