"""Actor.call's path through the C call-and-wait (actor_evq_call): the
reply comes back directly, and whatever else arrives while a call waits —
other calls' items and replies, output lines, exits — still reaches its
own object, complete and in order, as on the event-by-event path."""
import os
import signal
import threading
import time

import pytest

import libactor
from conftest import ACTORS, PATH, WORKER


def test_calls_while_another_call_streams_lose_and_reorder_nothing(py_actor,
                                                                   rt):
    other = rt.spawn(ACTORS, backend="subint", path=PATH)
    c = other.stream("count", 3000)
    for i in range(300):
        assert py_actor.call("add", i, 1) == i + 1
    assert list(c) == list(range(3000))
    assert c.result() == 3000


def test_output_written_during_a_call_reaches_on_output_in_order(rt):
    lines = []
    a = rt.spawn(ACTORS, backend="subproc", path=PATH, stdout="capture",
                 on_output=lambda fd, line: lines.append((fd, line)))
    for k in range(20):
        assert a.call("say", 5) == 5
    a.stop()
    a.wait(timeout=20)
    assert lines == [(1, "line %d" % i) for _ in range(20) for i in range(5)]


def test_an_actor_that_exits_during_a_call(rt):
    a = rt.spawn(ACTORS, backend="subproc", path=PATH)
    assert a.call("add", 1, 2) == 3
    with pytest.raises(libactor.ActorGone):
        a.call("leave", 7)
    info = a.wait(timeout=20)
    assert info.status == 7
    assert not a.alive
    with pytest.raises(libactor.HandleGone):
        a.call("add", 1, 2)


def test_the_replies_of_started_calls_arrive_during_a_waited_call(rt):
    a = rt.spawn(program=WORKER)
    b = rt.spawn(ACTORS, backend="subint", path=PATH)
    started = [a.start("add", i, 10) for i in range(50)]
    # Nothing but waited calls runs the loop until they have all completed.
    while not all(s.done for s in started):
        assert b.call("nap", 0.05) == 0.05
    assert [s.result() for s in started] == [i + 10 for i in range(50)]


def test_a_timed_out_call_leaves_the_actor_usable(rt):
    a = rt.spawn(ACTORS, backend="subint", path=PATH)
    with pytest.raises(TimeoutError):
        a.call("nap", 0.5, timeout=0.05)
    # The late reply of the call that timed out is not taken for these.
    for i in range(20):
        assert a.call("add", i, i) == 2 * i
    with pytest.raises(TimeoutError):
        a.call("nap", 0.3, timeout=0)
    assert a.call("nap", 0.01) == 0.01


def test_a_call_at_the_event_queue_bound_drops_nothing():
    with libactor.Runtime(event_limit=1024) as rt:
        a = rt.spawn(ACTORS, backend="subint", path=PATH)
        b = rt.spawn(program=WORKER)
        c = b.stream("count", 20000)
        assert a.call("nap", 0.3) == 0.3
        assert list(c) == list(range(20000))


def test_errors_through_the_call_path(py_actor, rt):
    with pytest.raises(libactor.NoFunction):
        py_actor.call("no_such_function")
    with pytest.raises(libactor.RemoteError) as ei:
        py_actor.call("fail", "boom")
    assert ei.value.type == "ValueError" and "in inner" in ei.value.traceback
    with pytest.raises(TypeError):
        py_actor.call("add", 1, b=2)
    with pytest.raises(TypeError):
        py_actor.call("identity", object())
    assert py_actor.call("identity", [1, "x", None, True, 2.5, b"b",
                                      {"k": [-1, 2 ** 40]}]) == \
        [1, "x", None, True, 2.5, b"b", {"k": [-1, 2 ** 40]}]
    got = []
    t = threading.Thread(target=lambda: got.append(
        pytest.raises(libactor.WrongThread, py_actor.call, "add", 1, 2)))
    t.start()
    t.join()
    assert got
    py_actor.stop()
    py_actor.wait(timeout=20)
    with pytest.raises(libactor.HandleGone):
        py_actor.call("add", 1, 2)


def test_ctrl_c_during_a_call_raises_and_the_runtime_goes_on(rt):
    a = rt.spawn(ACTORS, backend="subint", path=PATH)
    assert a.call("add", 1, 1) == 2
    t = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    t.start()
    with pytest.raises(KeyboardInterrupt):
        a.call("nap", 3)
    t.join()
    print("KeyboardInterrupt %.0f ms after the call began"
          % ((time.monotonic() - t0) * 1000))
    # The interrupted call's reply, when it comes, is nobody's.
    assert a.call("add", 2, 2) == 4


def test_a_signal_handler_that_uses_the_runtime_during_a_call_is_refused(rt):
    """The handler runs right after the C wait returns (-EINTR), before
    call() has read its reply or registered its call: using the runtime
    there is a StateError, and the interrupted call still completes."""
    a = rt.spawn(ACTORS, backend="subint", path=PATH)
    seen = []

    def handler(sig, frame):
        try:
            a.call("add", 1, 1)
        except libactor.StateError as e:
            seen.append(e)

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        t = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1))
        t.start()
        assert a.call("nap", 2) == 2
        t.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert len(seen) == 1 and "signal handler" in str(seen[0])
    assert a.call("add", 2, 3) == 5
