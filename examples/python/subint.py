"""A Python actor in a sub-interpreter of this very process (isolated: its
own GIL), called from Python: examples/pyworker.py."""
import time

import _where
import libactor

with libactor.Runtime() as rt:
    for mode in ("isolated", "legacy"):
        a = rt.spawn("pyworker:main", backend="subint", subint_mode=mode,
                     path=[_where.EXAMPLES])
        print(mode, a.call("whoami"), "add(2, 3) =", a.call("add", 2, 3))
        print("  squares:", list(a.stream("squares", 5)))
        n = 2000
        t = time.perf_counter()
        for _ in range(n):
            a.call("add", 1, 2)
        print("  round trip: %.1f us" % ((time.perf_counter() - t) / n * 1e6))
