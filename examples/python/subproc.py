"""Actors in child processes: the C worker (examples/worker.c) and the same
Python actor run by actor-pyhost."""
import _where
import libactor

with libactor.Runtime() as rt:
    c = rt.spawn(program=_where.WORKER)
    py = rt.spawn("pyworker:main", backend="subproc", path=[_where.EXAMPLES])
    print("C actor pid %d: add(20, 22) = %d" % (c.pid, c.call("add", 20, 22)))
    print("Python actor pid %d: %s" % (py.pid, py.call("whoami")))
    try:
        py.call("add", "a", 1)
    except libactor.RemoteError as e:
        print("remote %s: %s" % (e.type, e.remote_message))
    py.stop()
    print("exit:", py.wait())
