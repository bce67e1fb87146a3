"""libactor for Python hosts: spawn and supervise actors (C programs,
Python actors in sub-interpreters or child processes) from Python.

    import libactor
    with libactor.Runtime() as rt:
        a = rt.spawn("pyworker:main", backend="subint", path=["examples"])
        print(a.call("add", 1, 2))

docs/python.md is the manual; libactor.raw is the C API itself (cffi)."""
import os

from . import _lib as raw
from ._codec import MAX_DEPTH, TooDeep, pack, unpack
from ._runtime import (Actor, Call, ExitInfo, Runtime, backend_available,
                       backends, check)
from .errors import (ActorGone, BackendUnavailable, Cancelled, Error,
                     HandleGone, NoFunction, ProtocolError, RemoteError,
                     StateError, TooDeepError, ValueTooBig, WrongThread)

__version__ = "0.1.0"
ffi = raw.ffi
lib = raw.lib


def library_version():
    """The loaded C library's version string."""
    return ffi.string(lib.actor_version_string()).decode()


def subint_thread_count():
    """Sub-interpreter threads alive in this process (all runtimes)."""
    return lib.actor_subint_thread_count()


def subint_abandoned_count():
    return lib.actor_subint_abandoned_count()


def subint_pool(mode="isolated", size=None, *, preload=None, paths=None):
    """The warm pool of sub-interpreters (docs/backends.md, "Warm pool"):
    with `size`, keep that many interpreters of `mode` ("isolated" or
    "legacy") parked and ready, 0 to drain; returns how many are parked
    now.  Process-wide, like the interpreters themselves.

    preload: modules each parked interpreter imports before it parks
    (actor_subint_pool_preload), so that an actor whose entry module is
    among them starts without importing it; `paths` go first on those
    interpreters' sys.path.  Setting them retires and remakes what is
    parked; preload=[] clears them.  A module that fails to import
    (traceback on stderr) stops the refill of that mode, and spawns take
    the cold path, until the pool is set again."""
    from ._runtime import _MODES
    try:
        m = _MODES[mode]
    except KeyError:
        raise ValueError(f"subint mode must be one of {sorted(_MODES)}, "
                         f"not {mode!r}") from None
    if preload is not None or paths is not None:
        if isinstance(preload, (str, bytes)) or isinstance(paths, (str, bytes)):
            raise TypeError("preload and paths are lists of names and "
                            "directories, not one string")
        keep = [ffi.new("char[]", os.fsencode(x))
                for x in list(paths or []) + list(preload or [])]
        np = len(paths or [])
        cpaths = ffi.new("char *[]", keep[:np] + [ffi.NULL])
        cmods = ffi.new("char *[]", keep[np:] + [ffi.NULL])
        check(lib.actor_subint_pool_preload(m, cpaths, cmods))
    if size is not None:
        check(lib.actor_subint_pool_set(m, size))
    return lib.actor_subint_pool_count(m)


__all__ = ["Runtime", "Actor", "Call", "ExitInfo", "backends",
           "backend_available", "check", "pack", "unpack", "MAX_DEPTH",
           "TooDeep", "Error", "RemoteError", "Cancelled", "ActorGone",
           "BackendUnavailable", "NoFunction", "ProtocolError", "StateError",
           "HandleGone", "WrongThread", "ValueTooBig", "TooDeepError",
           "library_version", "subint_thread_count", "subint_abandoned_count",
           "subint_pool",
           "raw", "ffi", "lib"]
