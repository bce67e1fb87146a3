"""Actor trees: a Python actor spawns actors of its own with this package."""
import os

import libactor
from conftest import ACTORS, PATH


def test_a_subproc_python_actor_spawns_its_own_actors(rt):
    a = rt.spawn(ACTORS, backend="subproc", path=PATH)
    got = a.call("spawn_child", ACTORS, PATH, 41, timeout=30)
    assert got[0] == 42
    assert got[1] not in (os.getpid(), a.pid)


def test_in_an_isolated_subint_the_package_says_whether_it_loads(rt):
    a = rt.spawn(ACTORS, backend="subint", path=PATH)
    r = a.call("import_host_package")
    # cffi's extension module is single-phase: an isolated interpreter
    # refuses it, and the package says so and what to use instead.
    assert r == "imported" or ("sub-interpreter" in r and "subproc" in r), r
