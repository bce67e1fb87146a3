"""pyref — the Python references and the Python-host rows of the benchmark.

    python3 bench/pyref.py MEASURE [key=value ...]

prints one JSON object, {"value": X} or {"skipped": "why"}, like
actorbench (bench/actorbench.c).  Measures:

    mp.start     multiprocessing start+join of a child that runs and ends,
                 method=fork|forkserver|spawn                    (us per op)
    mp.pipe      multiprocessing.Pipe round trip with an echoing child,
                 place=one|cross                                 (us)
    ci.create    concurrent.interpreters create + exec("pass") + close (us)
    ci.queue     concurrent.interpreters queue round trip to an interpreter
                 running in a thread                             (us)
    host.rtt     the Python host package (python/, `import libactor`):
                 a no-op call round trip, kind=subint|py|c (c: actorbench's
                 C actor), place=one|cross|none, spin=N (the Runtime's
                 spin_us; default its own)
    host.spawn   the same package: spawn -> first reply -> exit  (us)

Placement as in actorbench: "one" pins both ends to CPU 0, "cross" puts the
host on CPU 0 and the other end on CPU 1 (a child process or a thread
inherits the mask of the thread that creates it)."""
import json
import os
import sys
import time


def out(**kw):
    print(json.dumps(kw), flush=True)


def args():
    kv = {}
    for a in sys.argv[2:]:
        k, _, v = a.partition("=")
        kv[k] = v
    return kv


def pin(cpu):
    os.sched_setaffinity(0, {cpu})


def placement(kv):
    place = kv.get("place", "none")
    if place == "cross" and len(os.sched_getaffinity(0)) < 2:
        out(skipped="one CPU: no cross-core placement")
        sys.exit(0)
    return place


def _noop():
    pass


def timed(n, warm, op):
    """Mean microseconds of op(i) over n calls, after `warm` untimed ones."""
    for i in range(-warm, 0):
        op(i)
    t0 = time.perf_counter()
    for i in range(n):
        op(i)
    return (time.perf_counter() - t0) / n * 1e6


def _echo(conn, cpu):
    if cpu is not None:
        pin(cpu)
    while True:
        x = conn.recv()
        if x is None:
            return
        conn.send(x)


def mp_start(kv):
    import multiprocessing as mp
    ctx = mp.get_context(kv.get("method", "fork"))
    n = int(kv.get("n", 20))
    def op(i):
        p = ctx.Process(target=_noop)
        p.start()
        p.join()
    out(value=timed(n, 1, op))  # one warm-up: the fork server's own start


def mp_pipe(kv):
    import multiprocessing as mp
    place = placement(kv)
    n = int(kv.get("n", 2000))
    if place != "none":
        pin(0)
    a, b = mp.Pipe()
    cpu = {"one": 0, "cross": 1}.get(place)
    p = mp.get_context("fork").Process(target=_echo, args=(b, cpu))
    p.start()
    def op(i):
        a.send(i)
        a.recv()
    r = timed(n, 100, op)
    a.send(None)
    p.join()
    out(value=r)


def ci_create(kv):
    from concurrent import interpreters
    n = int(kv.get("n", 20))
    def op(i):
        interp = interpreters.create()
        interp.exec("pass")
        interp.close()
    out(value=timed(n, 1, op))


def ci_queue(kv):
    import threading
    from concurrent import interpreters
    n = int(kv.get("n", 20))
    interp = interpreters.create()
    qin, qout = interpreters.create_queue(), interpreters.create_queue()
    interp.prepare_main(qin=qin, qout=qout)
    t = threading.Thread(target=interp.exec, args=(
        "while True:\n"
        "    x = qin.get()\n"
        "    if x is None:\n"
        "        break\n"
        "    qout.put(x)\n",))
    t.start()
    def op(i):
        qin.put(i)
        qout.get()
    r = timed(n, 2, op)
    qin.put(None)
    t.join()
    interp.close()
    out(value=r)


# ---- the Python host package (issue 10) --------------------------------------
# Written against the description of the Pythonic layer: a runtime
# that is a context manager, spawn(entry, backend=..., ...) returning an
# actor whose call(fn, *args) returns the value.  The rows are skipped
# until the package imports.

def _host(kv):
    try:
        import libactor
    except Exception as e:  # ImportError, or a library it cannot find
        out(skipped="the Python host package does not import: "
            f"{type(e).__name__}: {e}")
        sys.exit(0)
    for attr in ("Runtime",):
        if not hasattr(libactor, attr):
            out(skipped=f"the Python host package has no libactor.{attr}")
            sys.exit(0)
    return libactor


def _spawn(rt, kv):
    here = os.path.dirname(os.path.abspath(__file__))
    kind = kv.get("kind", "subint")
    if kind == "c":
        # actorbench --actor, next to the library the runner points at
        build = os.path.dirname(os.environ["LIBACTOR_LIBRARY"])
        return rt.spawn(program=os.path.join(build, "bench", "actorbench"),
                        args=["--actor"])
    backend = {"subint": "subint", "py": "subproc"}[kind]
    return rt.spawn("benchworker:main", backend=backend, path=[here])


def host_rtt(kv):
    libactor = _host(kv)
    place = placement(kv)
    n = int(kv.get("n", 20000))
    spin = int(kv["spin"]) if "spin" in kv else None
    with libactor.Runtime(spin_us=spin) as rt:
        if place != "none":
            pin(1 if place == "cross" else 0)
        a = _spawn(rt, kv)
        if place != "none":
            pin(0)
        r = timed(n, 200, lambda i: a.call("noop"))
        a.stop()
    out(value=r)


def host_spawn(kv):
    libactor = _host(kv)
    n = int(kv.get("n", 20))
    with libactor.Runtime() as rt:
        def op(i):
            a = _spawn(rt, kv)
            a.call("noop")
            a.stop()
            a.wait()
        r = timed(n, 1, op)
    out(value=r)


MEASURES = {"mp.start": mp_start, "mp.pipe": mp_pipe, "ci.create": ci_create,
            "ci.queue": ci_queue, "host.rtt": host_rtt,
            "host.spawn": host_spawn}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MEASURES:
        sys.exit("usage: pyref.py MEASURE [key=value ...]: "
                 + ", ".join(MEASURES))
    MEASURES[sys.argv[1]](args())
