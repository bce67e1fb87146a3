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


def test_the_build_tree_search_skips_a_sanitizer_build(tmp_path, monkeypatch):
    # A sanitizer build's library cannot be dlopened late (its runtime must
    # come first: the process ends), so the search passes over it, saying
    # so, and goes on to the next build.
    from libactor import _lib
    monkeypatch.delenv("LIBACTOR_LIBRARY", raising=False)
    for name, sanitize in (("plain", ""), ("asan", "address,undefined")):
        d = tmp_path / "build" / name
        d.mkdir(parents=True)
        (d / _lib.SONAME).write_bytes(b"")
        (d / "CMakeCache.txt").write_text(
            "CMAKE_BUILD_TYPE:STRING=Debug\nACTOR_SANITIZE:STRING=%s\n"
            % sanitize)
    os.utime(tmp_path / "build" / "plain" / _lib.SONAME, (1, 1))  # older
    tree = [p for w, p in _lib._candidates(str(tmp_path))
            if w == "the build tree"]
    assert tree == [
        str(tmp_path / "build" / "asan" / _lib.SONAME)
        + " (a sanitizer build: skipped)",
        str(tmp_path / "build" / "plain" / _lib.SONAME)]
