"""Leaving the runtime's `with` block — normally, on an exception, on
Ctrl-C — stops and reaps every actor within its deadlines, leaving no
process, thread or sub-interpreter behind."""
import os
import signal
import subprocess
import sys
import threading
import time

import libactor
from conftest import ACTORS, PATH, WORKER, children

HERE = os.path.dirname(os.path.abspath(__file__))


def test_leaving_with_while_actors_run_leaves_nothing_behind():
    threads = threading.active_count()
    with libactor.Runtime() as rt:
        busy = [rt.spawn(ACTORS, backend="subint", path=PATH,
                         deadlines=(None, 1, 1, 1)),
                rt.spawn(ACTORS, backend="subint", subint_mode="legacy",
                         path=PATH, deadlines=(None, 1, 1, 1)),
                rt.spawn(ACTORS, backend="subproc", path=PATH,
                         deadlines=(None, 1, 1, 1)),
                rt.spawn(program=WORKER, deadlines=(None, 1, 1, 1))]
        calls = [a.start("spin") for a in busy[:3]]
        calls.append(busy[3].start("nap", 60000))
        for a in busy:
            a.wait_ready(timeout=20)
        assert len(children()) == 2
    assert libactor.subint_thread_count() == 0
    assert children() == []
    assert threading.active_count() == threads
    for c in calls:
        assert c.done
    for a in busy:
        assert a.exit is not None


def test_an_exception_inside_with_still_reaps():
    try:
        with libactor.Runtime() as rt:
            rt.spawn(ACTORS, backend="subint", path=PATH).start("spin")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert libactor.subint_thread_count() == 0


CTRL_C = r"""
import sys, time
sys.path[:0] = [%(pkg)r, %(here)r]
import libactor
try:
    with libactor.Runtime() as rt:
        actors = [rt.spawn("actors:main", backend="subint", path=[%(here)r],
                           subint_mode="legacy" if i %% 2 else "isolated")
                  for i in range(6)]
        calls = [a.start("spin") for a in actors]
        for a in actors:
            a.wait_ready(timeout=20)
        print("ready", flush=True)
        for c in calls:
            c.result()
except KeyboardInterrupt:
    t = time.monotonic()
    print("interrupted", libactor.subint_thread_count(), flush=True)
"""


def test_ctrl_c_with_busy_subint_actors():
    code = CTRL_C % {"pkg": os.path.dirname(HERE), "here": HERE}
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        t = time.monotonic()
        p.send_signal(signal.SIGINT)
        out = p.stdout.readline().strip()
        took = time.monotonic() - t
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # KeyboardInterrupt reached the program, after the `with` had stopped
    # six spinning actors (the default 2 s graceful deadline is the bound:
    # Cancelled reaches them in ~10 ms) with no thread left.
    print("SIGINT -> out of `with`, 6 busy subint actors: %.0f ms"
          % (took * 1000))
    assert out == "interrupted 0"
    assert took < 10


def test_output_callback_sees_an_actor_that_exited_in_the_same_run():
    """An actor's handle is freed by the run that queues its EXIT, which may
    sit behind its output in the event queue: an output callback that uses
    the actor must get a clear exception, never the freed handle."""
    seen = []

    def on_output(fd, line):
        try:
            a.call("add", 1, 2)
            seen.append("called")
        except libactor.HandleGone:
            seen.append("gone")
        except libactor.Error as e:
            seen.append(type(e).__name__)

    with libactor.Runtime() as rt:
        a = rt.spawn("actors:say_bye", backend="subproc", path=PATH,
                     stdout="capture", on_output=on_output)
        # Run the C loop until the actor is gone without taking the events,
        # as one long run would: HELLO, the line and EXIT then wait in the
        # queue together, and the actor's handle is already freed.
        deadline = time.monotonic() + 20
        while libactor.lib.actor_rt_actor_count(rt._rt) > 0:
            assert time.monotonic() < deadline
            libactor.lib.actor_rt_run(rt._rt, libactor.lib.ACTOR_RUN_ONCE)
        info = a.wait()
    assert info.status == 0
    assert seen == ["gone"], seen
