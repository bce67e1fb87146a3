"""Round trip of a Python host's call (add(1, 2)), to a subint actor
(isolated, legacy) and to a subproc C actor (examples/worker), median of
runs.  Not a test: the figures are reported in docs/python.md; run it
pinned to compare with the C host (bench/bench_subproc, examples/pyhost):

  taskset -c 0 python3 python/bench/roundtrip.py     # one core
  taskset -c 0,1 python3 python/bench/roundtrip.py   # across cores

LIBACTOR_LIBRARY / LIBACTOR_PYHOST as for the tests; argv[1]: the worker."""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import libactor  # noqa: E402

WORKER = (sys.argv[1] if len(sys.argv) > 1 else
          os.path.join(CHECKOUT, "build", "devroot", "examples", "worker"))
N, RUNS = 2000, 5


def bench(a):
    a.call("add", 1, 2)  # warm
    out = []
    for _ in range(RUNS):
        t = time.perf_counter()
        for _ in range(N):
            a.call("add", 1, 2)
        out.append((time.perf_counter() - t) / N * 1e6)
    return statistics.median(out), min(out), max(out)


with libactor.Runtime() as rt:
    cases = [("subint isolated", rt.spawn("pyworker:main", backend="subint",
                                          path=[os.path.join(CHECKOUT,
                                                             "examples")])),
             ("subint legacy", rt.spawn("pyworker:main", backend="subint",
                                        subint_mode="legacy",
                                        path=[os.path.join(CHECKOUT,
                                                           "examples")])),
             ("subproc C actor", rt.spawn(program=WORKER))]
    cpus = sorted(os.sched_getaffinity(0))
    print("cpus %s, %d calls x %d runs" % (cpus, N, RUNS))
    for name, a in cases:
        med, lo, hi = bench(a)
        print("  %-18s %7.1f us  (median; %.1f-%.1f)" % (name, med, lo, hi))
