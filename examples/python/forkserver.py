"""Actors forked by the runtime's fork server: a Python actor in the forked
child's main interpreter (the server imported pyworker ahead of time), one
in a fresh sub-interpreter of the child, and a C entry the server loaded
(examples/fsentry.c).  Prints each kind's spawn -> first reply time."""
import time

import _where
import libactor

with libactor.Runtime() as rt:
    pid = rt.forkserver(preload="pyworker", path=[_where.EXAMPLES],
                        load=_where.FSENTRY, start="python")
    print("fork server pid %d" % pid)
    kinds = [("Python, main interpreter", dict(entry="pyworker:main")),
             ("Python, fresh sub-interpreter",
              dict(entry="pyworker:main", fork_subint=True)),
             ("C entry", dict(c_entry=_where.FSENTRY + ":fsentry_main"))]
    for label, kw in kinds:
        times = []
        for i in range(5):
            t0 = time.perf_counter()
            a = rt.spawn(backend="forkserver", path=[_where.EXAMPLES], **kw)
            r = a.call("add", 20, 22)
            times.append((time.perf_counter() - t0) * 1e3)
            a.stop()
            a.wait()
        times.sort()
        print("%-30s add(20, 22) = %d  spawn -> first reply %.2f ms "
              "(median of 5), child pid %d" % (label, r, times[2], a.pid))
