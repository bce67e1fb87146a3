"""Shared by the examples: where examples/pyworker.py and the C worker are
(the checkout's build tree by default; $LIBACTOR_EXAMPLE_WORKER)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.dirname(HERE)
CHECKOUT = os.path.dirname(EXAMPLES)
# Run from a checkout without installing: the package is python/ there.
sys.path.insert(0, os.path.join(CHECKOUT, "python"))
WORKER = os.environ.get("LIBACTOR_EXAMPLE_WORKER",
                        os.path.join(CHECKOUT, "build", "devroot",
                                     "examples", "worker"))
_tools = os.path.join(CHECKOUT, "build", "devroot", "tools", "actor-pyhost")
if os.path.exists(_tools):  # a build tree's helper (installed: found by the
    os.environ.setdefault("LIBACTOR_PYHOST", _tools)  # library itself)
_fs = os.path.join(CHECKOUT, "build", "devroot", "tools", "actor-forkserver")
if os.path.exists(_fs):
    os.environ.setdefault("LIBACTOR_FORKSERVER", _fs)
FSENTRY = os.environ.get("LIBACTOR_EXAMPLE_FSENTRY",
                         os.path.join(CHECKOUT, "build", "devroot",
                                      "examples", "libfsentry.so"))
