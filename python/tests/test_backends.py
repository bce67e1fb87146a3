"""Every backend from a Python host, the sub-interpreters inside this very
process with no second CPython loaded."""
import os

import pytest

import libactor
from conftest import ACTORS, PATH, WORKER


def test_one_cpython_in_the_process(rt):
    a = rt.spawn(ACTORS, backend="subint", path=PATH)
    assert a.call("info")["pid"] == os.getpid()
    with open("/proc/self/maps") as f:
        maps = f.read()
    libs = {line.split()[-1] for line in maps.splitlines()
            if "libpython" in line}
    assert libs == set(), libs  # CPython is the executable's own
    assert libactor.raw.library_path in maps or "libactor-python" in maps


def test_subproc_c_actor(rt):
    a = rt.spawn(program=WORKER)
    assert a.backend == "subproc" and a.pid > 0
    assert a.call("add", 20, 22) == 42
    assert list(a.stream("count", 3)) == [0, 1, 2]


def test_subproc_python_actor(rt):
    a = rt.spawn(ACTORS, backend="subproc", path=PATH)
    info = a.call("info")
    assert info["backend"] == "subproc" and info["pid"] == a.pid
    assert info["pid"] != os.getpid()


@pytest.mark.parametrize("mode", ["isolated", "legacy"])
def test_subint_in_this_process(rt, mode):
    a = rt.spawn(ACTORS, backend="subint", subint_mode=mode, path=PATH)
    assert a.call("info")["backend"] == "subint"
    assert libactor.subint_thread_count() == 1


def test_subint_fork_stub_says_why():
    with libactor.Runtime() as rt:
        with pytest.raises(libactor.BackendUnavailable) as ei:
            rt.spawn(ACTORS, backend="subint_fork", path=PATH)
    assert ei.value.name in ("ACTOR_EUNAVAIL", "ACTOR_EBLOCKED")
    assert "fork" in ei.value.message
    assert isinstance(libactor.backend_available("subint_fork"),
                      libactor.BackendUnavailable)


def test_unknown_backend(rt):
    with pytest.raises(libactor.BackendUnavailable) as ei:
        rt.spawn(program=WORKER, backend="nope")
    assert ei.value.name == "ACTOR_ENOBACKEND"
    assert libactor.backend_available("subproc") is None
    assert "subint" in libactor.backends()


def test_spawn_failure_says_why(rt):
    with pytest.raises(OSError) as ei:
        rt.spawn(program="./no-such-program")
    assert "cannot execute" in ei.value.message


@pytest.mark.parametrize("mode", ["isolated", "legacy"])
def test_subint_warm_pool_from_python(rt, mode):
    import time
    with pytest.raises(ValueError):
        libactor.subint_pool("shared", 1)
    libactor.subint_pool(mode, 2)
    try:
        deadline = time.monotonic() + 30
        while libactor.subint_pool(mode) < 2:
            assert time.monotonic() < deadline, "the pool never filled"
            time.sleep(0.01)
        a = rt.spawn(ACTORS, backend="subint", subint_mode=mode, path=PATH)
        assert a.call("info")["backend"] == "subint"
        # it took a parked interpreter; the refill makes another
        assert libactor.subint_pool(mode) <= 2
        a.stop()
        a.wait()
    finally:
        libactor.subint_pool(mode, 0)
        deadline = time.monotonic() + 30
        while libactor.lib.actor_subint_pool_threads() > 0:
            assert time.monotonic() < deadline, "parked threads left"
            time.sleep(0.01)


@pytest.mark.parametrize("mode", ["isolated", "legacy"])
def test_subint_warm_pool_preloads_the_entry_module(rt, mode):
    # tests/py/poolpre.py notes libactor_child.name at its import: "" when
    # the pool imported it ahead of the actor, the actor's name otherwise.
    import time
    from conftest import CHECKOUT
    pydir = os.path.join(CHECKOUT, "tests", "py")
    with pytest.raises(TypeError):
        libactor.subint_pool(mode, preload="poolpre")
    libactor.subint_pool(mode, 1, preload=["poolpre"], paths=[pydir])
    try:
        deadline = time.monotonic() + 30
        while libactor.subint_pool(mode) < 1:
            assert time.monotonic() < deadline, "the pool never filled"
            time.sleep(0.01)
        a = rt.spawn("poolpre:main", backend="subint", subint_mode=mode,
                     path=[pydir], name="pre")
        assert a.call("seen") == "|pre"  # imported parked, runs as "pre"
        a.stop()
        a.wait()
    finally:
        libactor.subint_pool(mode, 0, preload=[], paths=[])
        deadline = time.monotonic() + 30
        while libactor.lib.actor_subint_pool_threads() > 0:
            assert time.monotonic() < deadline, "parked threads left"
            time.sleep(0.01)


def _ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize("kind", ["main", "isolated", "legacy"])
def test_forkserver_python_actor(rt, kind):
    if kind == "main":
        a = rt.spawn(ACTORS, backend="forkserver", path=PATH)
    else:
        a = rt.spawn(ACTORS, backend="forkserver", path=PATH,
                     fork_subint=True, subint_mode=kind)
    info = a.call("info")
    assert info["backend"] == "forkserver"
    assert info["pid"] == a.pid != os.getpid()
    # the fork server is the child's parent, and is not an actor
    assert rt.forkserver_pid > 0
    assert _ppid(a.pid) == rt.forkserver_pid
    assert rt.actor_count() == 1
    assert a.call("add", 2, 3) == 5
    a.stop()
    assert a.wait().error == 0


def test_forkserver_c_entry_and_preload(rt):
    fsentry = os.environ["LIBACTOR_TEST_FSENTRY"]
    pid = rt.forkserver(load=fsentry, preload="json", start="python")
    assert pid == rt.forkserver_pid > 0
    a = rt.spawn(backend="forkserver", c_entry=fsentry + ":fsentry_main")
    assert a.call("add", 40, 2) == 42
    assert _ppid(a.pid) == pid
    with pytest.raises(ValueError):
        rt.forkserver(start="perl")
    a.stop()
    assert a.wait().status == 0


def test_forkserver_bad_c_entry_says_why(rt):
    fsentry = os.environ["LIBACTOR_TEST_FSENTRY"]
    a = rt.spawn(backend="forkserver", c_entry=fsentry + ":nope")
    with pytest.raises(libactor.ActorGone):
        a.call("add", 1, 2)
    assert "nope" in a.wait().reason
