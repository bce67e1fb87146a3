"""The raw layer: the shipped cdef against the header and the library,
and finding the library."""
import os
import re
import subprocess
import sys

import libactor
from conftest import CHECKOUT, PKG

HEADER = os.path.join(CHECKOUT, "include", "libactor", "actor.h")


def test_every_public_function_is_declared_and_exported():
    with open(HEADER) as f:
        text = f.read()
    names = re.findall(r"ACTOR_EXTERN[^;(]*?\b(actor_\w+)\s*\(", text)
    assert len(names) > 80
    for n in names:
        assert hasattr(libactor.lib, n), n


def test_shipped_cdef_is_the_generated_one():
    gen = os.environ.get("LIBACTOR_TEST_CDEF")
    if gen is None:
        gen = os.path.join(os.path.dirname(os.environ["LIBACTOR_LIBRARY"]),
                           "python", "_cdef.h")
    with open(gen) as a, open(os.path.join(PKG, "libactor", "_cdef.h")) as b:
        assert a.read() == b.read()


def test_library_not_found_lists_every_place_tried():
    env = dict(os.environ, LIBACTOR_LIBRARY="/nonexistent/libactor-python.so.0")
    r = subprocess.run([sys.executable, "-c", "import libactor"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "LibraryNotFound" in r.stderr
    assert "$LIBACTOR_LIBRARY: /nonexistent/libactor-python.so.0" in r.stderr
    env.pop("LIBACTOR_LIBRARY")
    env["LD_LIBRARY_PATH"] = "/nonexistent"
    r = subprocess.run([sys.executable, "-c", "import libactor; "
                        "print(libactor.raw.library_path)"], env=env,
                       capture_output=True, text=True)
    # Without the variable: the installed library or a build tree.
    assert r.returncode == 0 or "the build tree" in r.stderr
