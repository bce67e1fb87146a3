#!/usr/bin/env bash
# The installed python3-libactor, outside the checkout (scripts/package's
# clean root, debian/tests): import it from the system's python3, load the
# installed libactor-python, run a subint and a subproc Python actor (the
# installed actor-pyhost, found by the library), and check subint_fork's
# refusal.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/hello_actor.py" <<'PY'
import libactor_child as actor
def main():
    actor.serve({"add": lambda a, b: a + b, "who": lambda: actor.backend})
PY
cd "$work"
env -u LIBACTOR_LIBRARY -u LIBACTOR_PYHOST -u PYTHONPATH python3 - "$work" <<'PY'
import sys
import libactor
assert "/usr/lib/python3/dist-packages/" in libactor.__file__, libactor.__file__
print("python3-libactor", libactor.__version__, "library",
      libactor.library_version(), libactor.raw.library_path)
with libactor.Runtime() as rt:
    for backend in ("subint", "subproc"):
        a = rt.spawn("hello_actor:main", backend=backend, path=[sys.argv[1]])
        assert a.call("add", 2, 3) == 5 and a.call("who") == backend
        print(backend, "actor: add(2, 3) = 5")
    try:
        rt.spawn("hello_actor:main", backend="subint_fork")
        raise SystemExit("subint_fork spawned")
    except libactor.BackendUnavailable as e:
        print("subint_fork:", e.name)
assert libactor.subint_thread_count() == 0
print("installed python3-libactor: ok")
PY
