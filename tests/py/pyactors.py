"""Python actors for the test suite (tests/test_subint.c)."""
import os
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


FUNCTIONS = {f.__name__: f for f in (add, count, echo, fail, identity, big_int,
                                     a_set, single_phase, info, spin, nap)}


def main():
    actor.serve(FUNCTIONS)


def main_spin():
    while True:
        pass


def main_sleep():
    time.sleep(1e6)


def main_raise():
    raise RuntimeError("the entry failed on purpose")
