"""Python actors for the test suite (tests/test_subint.c, test_pyactor.c)."""
import os
import threading
import time

import libactor_child as actor


def add(a, b):
    return a + b


def count(n):
    for i in range(n):
        yield i
    return n


@actor.duplex
def echo(call):
    n = 0
    for item in call:
        call.send(item + 1)
        n += 1
    return n


def fail(msg):
    raise ValueError(msg)


def identity(v):
    return v


def big_int():
    return 2 ** 70


def a_set():
    return {1, 2}


def single_phase():
    import _single_phase  # noqa: F401  (refused in an isolated interpreter)
    return "imported"


def info():
    return {"name": actor.name, "backend": actor.backend, "pid": os.getpid()}


def spin():
    while True:
        pass


def nap(seconds):
    time.sleep(seconds)
    return seconds


def spin_stubborn():
    """Swallows every Cancelled: only the runtime's interrupt ends it."""
    while True:
        try:
            while True:
                pass
        except actor.Cancelled:
            pass


def spin_then_return():
    """Catches its cancellation and answers anyway."""
    try:
        while True:
            pass
    except actor.Cancelled as c:
        return "cancelled: " + (str(c) or "-")


def spin_after_item():
    """A generator that streams once, then computes for ever."""
    yield 1
    while True:
        pass


@actor.duplex
def echo_then_spin(call):
    """Reads (and echoes) one item, then computes for ever."""
    for item in call:
        call.send(item)
        break
    while True:
        pass


def busy(ms):
    """Pure Python for `ms` milliseconds."""
    end = time.monotonic() + ms / 1000.0
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


@actor.duplex
def threads_send(call, nthreads, per_thread):
    """nthreads threads stream per_thread items each: t * 1000000 + i."""
    def work(t):
        for i in range(per_thread):
            call.send(t * 1000000 + i)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return nthreads * per_thread


@actor.duplex
def threads_and_yield(call, nthreads, per_thread):
    """Thread 0 is this generator (it yields); the others call.send()."""
    def work(t):
        for i in range(per_thread):
            call.send(t * 1000000 + i)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(1, nthreads)]
    for t in ts:
        t.start()
    for i in range(per_thread):
        yield i
    for t in ts:
        t.join()
    return nthreads * per_thread


def burst_then_nap(ms, limit, nap_s):
    """Streams 0, 1, ... as fast as it can for `ms` milliseconds (at most
    `limit` items), then -1, then sleeps `nap_s` seconds and returns how
    many it streamed before the -1: everything sent before the nap must
    reach the parent during it (no item left held)."""
    end = time.monotonic() + ms / 1000
    n = 0
    while n < limit and (n % 64 or time.monotonic() < end):
        yield n
        n += 1
    yield -1
    time.sleep(nap_s)
    return n


@actor.duplex
def ping_parent(call, n):
    """n times: send i, then wait for the parent's answer to it (i + 1),
    as fast as it can: each item must leave before the call waits."""
    it = iter(call)
    for i in range(n):
        call.send(i)
        got = next(it)
        if got != i + 1:
            raise ValueError("got %r for %r" % (got, i))
    return n


def big_return(n):
    return b"x" * n


def big_item(n):
    yield 1
    yield b"x" * n
    yield 2


def nested(depth):
    x = []
    for _ in range(depth - 1):
        x = [x]
    return x


def depth_of(v):
    d = 0
    while isinstance(v, list):
        d += 1
        if not v:
            break
        v = v[0]
    return d


def fail_long(n):
    """An error whose message is n two-byte characters after one ASCII one
    (so that half a frame ends inside a character)."""
    raise ValueError("x" + "\u00e9" * n)


def hard_exit(status):
    os._exit(status)


def exit_raises(status):
    try:
        os._exit(status)
    except SystemExit as e:
        import posix
        try:
            posix._exit(status)
        except SystemExit:
            pass
        return "raised SystemExit(%r)" % (e.code,)
    return "returned"


def abort_raises():
    try:
        os.abort()
    except SystemExit as e:
        return str(e.code)
    return "returned"


FUNCTIONS = {f.__name__: f for f in (
    add, count, echo, fail, identity, big_int, a_set, single_phase, info,
    spin, nap, spin_stubborn, spin_then_return, spin_after_item,
    busy, echo_then_spin, threads_send, threads_and_yield, big_return,
    big_item, nested, depth_of, fail_long, hard_exit, exit_raises,
    abort_raises, burst_then_nap, ping_parent)}


def main():
    actor.serve(FUNCTIONS)


def main_spin():
    while True:
        pass


def main_sleep():
    time.sleep(1e6)


def main_raise():
    raise RuntimeError("the entry failed on purpose")
