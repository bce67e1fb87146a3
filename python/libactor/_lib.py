"""The raw layer: the C API through cffi in ABI mode (no compiler needed).

`ffi` is declared from _cdef.h, which is generated from the C header when
the library is built (cmake/cdef.cmake) and shipped with the package;
`lib` is libactor-python, found by `load()`.  Names are the C API's:
lib.actor_spawn, lib.ACTOR_EREMOTE, ... (include/libactor/actor.h is the
manual).  This layer passes codes and handles through unchanged; the
Pythonic layer is libactor.Runtime.

Finding the library (the first that loads wins):
  1. $LIBACTOR_LIBRARY, a path: if it is set, nothing else is tried.
  2. The installed library: libactor-python.so.0 through the dynamic
     linker's search path (ld.so.cache, LD_LIBRARY_PATH), then
     sys.prefix/lib and /usr/local/lib.
  3. A build tree of the checkout this package sits in:
     <checkout>/build/*/libactor-python.so.0, the newest first, skipping
     sanitizer builds (ACTOR_SANITIZE in the build's CMakeCache.txt): their
     runtime must be loaded first, and a late dlopen of one ends the
     process instead of failing.  LIBACTOR_LIBRARY still loads one.
If none loads, LibraryNotFound lists every place tried and why it failed.

It must be libactor-python (the core plus the Python layer): the subint
backend needs it.  It does not link libpython; the CPython symbols it uses
come from the running interpreter (docs/python.md, "Python hosts").
"""
import glob
import os
import sys

__all__ = ["ffi", "lib", "load", "LibraryNotFound", "library_path", "SONAME"]

SONAME = "libactor-python.so.0"


class LibraryNotFound(ImportError):
    """libactor-python could not be loaded from any of the places tried."""


def _import_cffi():
    try:
        import _cffi_backend  # noqa: F401  (the part that may be refused)
        import cffi
    except ImportError as e:
        msg = str(e)
        if "subinterpreter" in msg or "sub-interpreter" in msg:
            raise ImportError(
                "libactor (the host package) cannot be used in this "
                "sub-interpreter: cffi's _cffi_backend does not support "
                "isolated sub-interpreters (%s). Spawn actors from a subproc "
                "actor, a legacy (shared-GIL) subint actor or the main "
                "interpreter." % msg) from e
        raise ImportError("libactor needs cffi (Debian: python3-cffi): %s"
                          % msg) from e
    return cffi


_cffi = _import_cffi()
ffi = _cffi.FFI()
with open(os.path.join(os.path.dirname(__file__), "_cdef.h")) as _f:
    ffi.cdef(_f.read())
del _f


def _candidates(checkout=None):
    env = os.environ.get("LIBACTOR_LIBRARY")
    if env:
        yield "$LIBACTOR_LIBRARY", env
        return
    yield "the dynamic linker's search path", SONAME
    for d in (os.path.join(sys.prefix, "lib"), "/usr/local/lib"):
        yield "installed", os.path.join(d, SONAME)
    if checkout is None:
        here = os.path.dirname(os.path.abspath(__file__))
        checkout = os.path.dirname(os.path.dirname(here))
    found = glob.glob(os.path.join(checkout, "build", "*", SONAME))
    found.sort(key=lambda p: os.stat(p).st_mtime, reverse=True)
    if not found:
        yield "the build tree", os.path.join(checkout, "build", "*", SONAME)
    for p in found:
        if _sanitizer_build(os.path.dirname(p)):
            yield "the build tree", p + " (a sanitizer build: skipped)"
        else:
            yield "the build tree", p


def _sanitizer_build(d):
    try:
        with open(os.path.join(d, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("ACTOR_SANITIZE:"):
                    return line.split("=", 1)[1].strip() != ""
    except OSError:
        pass
    return False


library_path = None


def load():
    """Load libactor-python (see the module's doc for where it looks)."""
    global library_path
    tried = []
    for where, path in _candidates():
        if "*" in path:
            tried.append("%s: %s (no match)" % (where, path))
            continue
        if path.endswith(" (a sanitizer build: skipped)"):
            tried.append("%s: %s" % (where, path))
            continue
        if os.sep in path and not os.path.exists(path):
            tried.append("%s: %s (no such file)" % (where, path))
            continue
        try:
            handle = ffi.dlopen(path)
        except OSError as e:
            tried.append("%s: %s (%s)" % (where, path, e))
            continue
        library_path = path
        return handle
    raise LibraryNotFound(
        "libactor: cannot load %s; tried, in order:\n  %s\nSet "
        "LIBACTOR_LIBRARY to the library's path, install libactor-python0, "
        "or build the checkout (docs/python.md)." % (SONAME, "\n  ".join(tried)))


lib = load()
