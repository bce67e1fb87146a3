"""The subint_fork backend is a stub: CPython refuses fork() from a
sub-interpreter (docs/cpython-subint-fork.md); asking for it says why."""
import _where  # noqa: F401
import libactor

print("backends:", libactor.backends())
err = libactor.backend_available("subint_fork")
print("subint_fork:", err.name, "-", err.message)
with libactor.Runtime() as rt:
    try:
        rt.spawn("pyworker:main", backend="subint_fork")
    except libactor.BackendUnavailable as e:
        print("spawn refused:", e.name)
