"""Calls, streams, errors, cancellation, exit info and handle lifetimes
through the Pythonic layer, on every Python backend."""
import threading

import pytest

import libactor
from conftest import ACTORS, PATH, WORKER


def test_call_returns_the_value(py_actor):
    assert py_actor.call("add", 2, 3) == 5
    assert py_actor.call("kw", a=1) == [1, 2]
    assert py_actor.call("kw", a=1, b=5) == [1, 5]


def test_remote_exception_carries_type_message_and_traceback(py_actor):
    with pytest.raises(libactor.RemoteError) as ei:
        py_actor.call("fail", "boom 42")
    e = ei.value
    assert e.type == "ValueError"
    assert e.remote_message == "boom 42"
    assert e.name == "ACTOR_EREMOTE"
    assert "Traceback (most recent call last)" in e.traceback
    assert "in inner" in e.traceback and "in fail" in e.traceback
    assert "ValueError: boom 42" in e.traceback
    assert "boom 42" in str(e)


def test_a_1000_item_stream_arrives_complete_and_in_order(py_actor):
    c = py_actor.stream("count", 1000)
    assert list(c) == list(range(1000))
    assert c.result() == 1000


def test_two_way_stream_send_and_end(py_actor):
    c = py_actor.start("echo")
    got = []
    for i in range(50):
        c.send(i)
        got.append(next(c))
    c.end()
    assert list(c) == []
    assert got == [i + 1 for i in range(50)]
    assert c.result() == 50


def test_cancel_a_busy_call(py_actor):
    c = py_actor.start("spin")
    py_actor.wait_ready(timeout=20)
    c.cancel()
    with pytest.raises(libactor.Cancelled):
        c.result(timeout=20)
    assert py_actor.call("add", 1, 1) == 2  # the actor keeps serving


def test_no_such_function_is_named(py_actor):
    with pytest.raises(libactor.NoFunction):
        py_actor.call("nope")


def test_exit_info(rt):
    a = rt.spawn(ACTORS, backend="subint", path=PATH)
    assert a.call("add", 1, 1) == 2
    a.stop()
    info = a.wait(timeout=20)
    assert info.status == 0 and info.signal == 0 and info.error == 0
    assert info.reason


def test_a_wrapper_used_after_its_actor_is_gone(rt):
    a = rt.spawn(ACTORS, backend="subint", path=PATH)
    c = a.start("add", 1, 2)
    assert c.result() == 3
    with pytest.raises(libactor.HandleGone, match="completed"):
        c.send(1)
    c.cancel()  # a completed call is left alone
    a.stop()
    a.wait(timeout=20)
    assert not a.alive
    for op in (lambda: a.call("add", 1, 2), a.stop, a.kill,
               lambda: a.state):
        with pytest.raises(libactor.HandleGone, match="has exited"):
            op()
    assert a.exit.status == 0


def test_wrappers_after_the_runtime_is_closed():
    with libactor.Runtime() as rt:
        a = rt.spawn(ACTORS, backend="subint", path=PATH)
        c = a.start("spin")
    assert rt.closed
    with pytest.raises(libactor.HandleGone):
        a.call("add", 1, 2)
    with pytest.raises(libactor.HandleGone):
        rt.spawn(ACTORS, backend="subint", path=PATH)
    with pytest.raises(libactor.Error):
        c.result()


def test_a_call_from_the_wrong_thread_is_a_clear_error(rt):
    a = rt.spawn(program=WORKER)
    out = []

    def other():
        for op in (lambda: a.call("add", 1, 2),
                   lambda: rt.spawn(program=WORKER)):
            try:
                op()
            except libactor.WrongThread as e:
                out.append(str(e))
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(out) == 2 and "belongs to thread" in out[0]
    assert a.call("add", 1, 2) == 3


def test_errors_map_by_name():
    lib = libactor.lib
    assert isinstance(libactor.check.__doc__, str)
    for name, cls in libactor.errors.BY_NAME.items():
        code = getattr(lib, name)
        with pytest.raises(cls) as ei:
            libactor.check(code)
        assert ei.value.name == name and ei.value.code == code
    with pytest.raises(OSError) as ei:
        libactor.check(-2)
    assert ei.value.errno == 2 and ei.value.name == "ENOENT"


def test_captured_output_lines(rt):
    lines = []
    a = rt.spawn(program=WORKER, stdout="capture", stderr="capture",
                 on_output=lambda fd, line: lines.append((fd, line)))
    a.stop()
    a.wait(timeout=20)
    assert all(fd in (1, 2) for fd, _ in lines)
