"""Python actors for tests/test_forkserver.c (the forkserver backend)."""
import os
import sys
import threading
import time

import libactor_child as actor

_marker = None


def pid():
    return os.getpid()


def is_main():
    return int(threading.current_thread() is threading.main_thread())


def interp():
    """0 in the main interpreter, else the sub-interpreter's id."""
    import _interpreters
    return int(_interpreters.get_current()[0])


def preloaded():
    return int("fspreload" in sys.modules)


def env(name):
    return os.environ.get(name, "")


def say(text):
    print(text, flush=True)
    return len(text)


def add(a, b):
    return a + b


def tail_at_exit():
    """An atexit function printing "tail" without a flush: it reaches a
    captured stdout only if the child runs atexit and flushes at its end."""
    import atexit
    atexit.register(print, "tail")
    return 1


def exit_with(code):
    os._exit(code)


def hang():
    """Never returns: Cancelled (STOP, EOF) is swallowed; KeyboardInterrupt
    is not."""
    while True:
        try:
            time.sleep(0.05)
        except actor.Cancelled:
            pass


def spin():
    """Busy in bytecode, never in a call a signal would interrupt: only the
    eval loop's own check can raise KeyboardInterrupt here."""
    n = 0
    while True:
        try:
            while True:
                n += 1
        except actor.Cancelled:
            pass


def orphan_me(path):
    """No parent-death signal from now on, and note where the interrupt
    lands: the actor outlives its fork server."""
    import ctypes  # here: it would load libffi into a subint actor's host
    global _marker
    _marker = path
    libc = ctypes.CDLL(None)
    libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG, 0
    return os.getpid()


def main():
    try:
        actor.serve({"pid": pid, "is_main": is_main, "interp": interp,
                     "preloaded": preloaded, "env": env, "add": add, "say": say,
                     "exit_with": exit_with, "hang": hang, "spin": spin,
                     "tail_at_exit": tail_at_exit,
                     "orphan_me": orphan_me})
    except KeyboardInterrupt:
        if _marker is not None:
            with open(_marker, "w") as f:
                f.write("KeyboardInterrupt")
        raise
