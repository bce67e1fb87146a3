"""Python actors for the host package's tests (python/tests)."""
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
    def inner():
        raise ValueError(msg)
    inner()


def identity(v):
    return v


def kw(a, b=2):
    return [a, b]


def info():
    return {"name": actor.name, "backend": actor.backend, "pid": os.getpid(),
            "threads": threading.active_count()}


def spin():
    while True:
        pass


def nap(seconds):
    time.sleep(seconds)
    return seconds


def say(n):
    """Prints n lines, then answers."""
    for i in range(n):
        print("line %d" % i, flush=True)
    return n


def leave(code):
    """Ends the actor's process (subproc) without answering."""
    os._exit(code)


def spawn_child(entry, path, n):
    """An actor tree: spawn a subproc Python actor with this package and
    call it."""
    import libactor
    with libactor.Runtime() as rt:
        a = rt.spawn(entry, backend="subproc", path=path)
        return [a.call("add", n, 1), a.call("info")["pid"]]


def import_host_package():
    try:
        import libactor  # noqa: F401
    except ImportError as e:
        return "ImportError: %s" % e
    return "imported"


def main():
    actor.serve({"add": add, "count": count, "echo": echo, "fail": fail,
                 "identity": identity, "kw": kw, "info": info, "spin": spin,
                 "nap": nap, "say": say, "leave": leave,
                 "spawn_child": spawn_child,
                 "import_host_package": import_host_package, "deep": deep,
                 "big_int": big_int, "a_set": a_set})


def deep(n):
    v = []
    for _ in range(n - 1):
        v = [v]
    return v


def big_int():
    return 2 ** 70


def a_set():
    return {1, 2}


def say_bye():
    """An entry that prints a line and ends at once (no serve)."""
    print("bye", flush=True)
