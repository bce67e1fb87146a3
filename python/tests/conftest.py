"""pytest set-up for the host package's tests.

Where things are: the environment (ctest sets it; see tests/CMakeLists.txt)
or, by default, the build tree build/devroot of this checkout:
  LIBACTOR_LIBRARY   libactor-python.so.0 to load
  LIBACTOR_PYHOST    the actor-pyhost helper (subproc Python actors)
  LIBACTOR_TEST_WORKER  examples/worker, a C actor
  LIBACTOR_FORKSERVER   the actor-forkserver helper
  LIBACTOR_TEST_FSENTRY examples/libfsentry.so, a forkserver C entry

Every test runs under a watchdog: faulthandler.dump_traceback_later fires
from its own thread (so a main thread stuck in C, or starved of signals,
does not stop it), dumps every thread's stack and ends the run.
LIBACTOR_PYTEST_TIMEOUT sets the seconds (default 60).  After every test,
no sub-interpreter thread and no child process may be left."""
import faulthandler
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
CHECKOUT = os.path.dirname(PKG)
BUILD = os.environ.get("LIBACTOR_TEST_BUILD", os.path.join(CHECKOUT, "build",
                                                          "devroot"))
os.environ.setdefault("LIBACTOR_LIBRARY",
                      os.path.join(BUILD, "libactor-python.so.0"))
os.environ.setdefault("LIBACTOR_PYHOST",
                      os.path.join(BUILD, "tools", "actor-pyhost"))
os.environ.setdefault("LIBACTOR_TEST_WORKER",
                      os.path.join(BUILD, "examples", "worker"))
os.environ.setdefault("LIBACTOR_FORKSERVER",
                      os.path.join(BUILD, "tools", "actor-forkserver"))
os.environ.setdefault("LIBACTOR_TEST_FSENTRY",
                      os.path.join(BUILD, "examples", "libfsentry.so"))
# Children (actor-pyhost actors that use this package) find it too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [PKG] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p])
if PKG not in sys.path:
    sys.path.insert(0, PKG)

import libactor  # noqa: E402

TIMEOUT = float(os.environ.get("LIBACTOR_PYTEST_TIMEOUT", "60"))


def children():
    """Live child processes of this process (zombies included)."""
    out = []
    base = "/proc/self/task"
    for t in os.listdir(base):
        try:
            with open(os.path.join(base, t, "children")) as f:
                out += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return out


@pytest.fixture(autouse=True)
def watchdog(request):
    # (pyproject.toml: --capture=sys, so that fd 2 is still the terminal)
    faulthandler.dump_traceback_later(TIMEOUT, exit=True,
                                      file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert libactor.subint_thread_count() == 0, "sub-interpreter threads left"
    assert children() == [], "child processes left: %s" % children()


@pytest.fixture
def rt():
    with libactor.Runtime() as r:
        yield r


ACTORS = "actors:main"
PATH = [HERE]
WORKER = os.environ["LIBACTOR_TEST_WORKER"]


@pytest.fixture(params=["subint", "subint-legacy", "subproc"])
def py_actor(request, rt):
    """A Python actor on each backend that runs Python."""
    if request.param == "subint-legacy":
        return rt.spawn(ACTORS, backend="subint", subint_mode="legacy",
                        path=PATH)
    return rt.spawn(ACTORS, backend=request.param, path=PATH)
