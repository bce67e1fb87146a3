"""libactor_child: the child side of libactor, for actors written in Python.

The same module on every backend (a sub-interpreter on a thread of the
parent, or a process started by actor-pyhost).  An actor's entry function
usually does nothing but serve its functions:

    import libactor_child as actor

    def add(a, b):
        return a + b

    def count(n):                 # a generator streams its items,
        for i in range(n):        # then its return value completes the call
            yield i
        return n

    @actor.duplex                 # a two-way stream: the first argument is
    def echo(call):               # the call; iterate it for the parent's
        for item in call:         # items, send() items back
            call.send(item * 2)
        return "done"

    def main():
        actor.serve({"add": add, "count": count, "echo": echo})

Arguments arrive as the parent sent them: a list is spread as positional
arguments, a dict as keyword arguments, nil means none, anything else is
passed as one argument.  Values convert to and from msgpack: None, bool,
int (64-bit), float, str, bytes, list/tuple, dict.

Cancellation is an exception: `Cancelled` is raised in the thread that runs
a call when the parent cancels that call, or stops the actor (or goes
away), at the next bytecode boundary of whatever Python code runs there —
a busy loop included.  Where the call waits (iterating a duplex call's
input) it is raised there.  A generator's call gets it inside the generator
(or, if it lands between items, thrown in at the generator's yield).  It
derives from BaseException so that `except Exception` does not swallow it.
A function that catches it and returns anyway answers normally.  Code
blocked in C (time.sleep, a blocking read) sees it when that returns; if
the parent has to stop such an actor, the runtime interrupts it with
KeyboardInterrupt (subint) or a signal (subproc), which ends the actor.

When the parent stops the actor, the running call is cancelled, calls that
have not started are answered Cancelled, and serve() returns.

Sending is thread-safe: any thread may stream items of a call (call.send)
while the call runs; each thread's items arrive in the order it sent them.
Receiving (iterating a duplex call) is for one thread at a time per call.

A value that does not fit in a frame (libactor_child.max_frame) raises
FrameTooBig (a ValueError) where it is sent; unhandled, the call fails with
ACTOR_E2BIG at the parent and the actor keeps serving.  A value nested
deeper than 512 arrays/maps raises TooDeep (a ValueError) the same way, and
the parent gets ACTOR_EDEPTH.
"""

import _libactor

# Nothing heavy is imported up front: every import here is paid by every
# actor's start (traceback, for one, pulls in a dozen modules); it is
# imported when an exception is reported.

HELLO, CALL, RETURN, ERROR, ITEM, END, CANCEL, STOP = range(8)

name = _libactor.name
backend = _libactor.backend
max_frame = _libactor.max_frame

__all__ = ["Cancelled", "FrameTooBig", "TooDeep", "Call", "duplex", "serve", "name",
           "backend", "max_frame"]

# Defined in C (one per interpreter), so that the runtime can inject them.
Cancelled = _libactor.Cancelled
FrameTooBig = _libactor.FrameTooBig
TooDeep = _libactor.TooDeep


def _guard_process_exits():
    """In an isolated sub-interpreter the process is the host's: os._exit()
    and os.abort() would end the parent.  They end the actor instead (the
    same exit status as on subproc for os._exit).  Fork is refused in such
    an interpreter, so no forked child depends on the real ones."""
    import os
    import posix

    def _exit(status):
        raise SystemExit(status)

    def abort():
        raise SystemExit("os.abort() called in a sub-interpreter actor")

    for m in (os, posix):
        m._exit = _exit
        m.abort = abort


if _libactor.guard_exits:
    _guard_process_exits()


def _wait(cid):
    """The next message of the main queue (cid 0) or of call `cid`."""
    while True:
        m = _libactor.recv(None, cid)
        if m is not None:
            return m
        # None: woken without a message (lets an injected exception land).


class Call:
    """A call seen from the actor, for @duplex functions."""

    def __init__(self, cid):
        self.id = cid
        self._ended = False

    def send(self, value):
        """Stream one item to the parent (from any thread)."""
        _libactor.send_item(self.id, value)

    def end(self):
        """End the actor's stream (the parent sees ACTOR_EV_END)."""
        _libactor.send_end(self.id)

    def __iter__(self):
        return self

    def __next__(self):
        """The parent's next item; StopIteration when it ends its side."""
        if self._ended:
            raise StopIteration
        m = _wait(self.id)
        if m[0] == END:
            self._ended = True
            raise StopIteration
        if isinstance(m[2], BaseException):
            raise m[2]
        return m[2]


def duplex(fn):
    """Mark `fn` as a two-way stream: it gets the Call as first argument."""
    fn._libactor_duplex = True
    return fn


def _qualname(exc):
    t = type(exc)
    mod = getattr(t, "__module__", "builtins")
    return t.__qualname__ if mod in ("builtins", "__main__") else mod + "." + t.__qualname__


def _errtype(exc):
    """The ERROR type the parent maps to a code (docs/protocol.md)."""
    if isinstance(exc, FrameTooBig):
        return "libactor.FrameTooBig"
    if isinstance(exc, TooDeep):
        return "libactor.TooDeep"
    if isinstance(exc, Cancelled):
        return "libactor.Cancelled"
    return _qualname(exc)


def _fail(cid, e, tb):
    msg = str(e)
    if isinstance(e, Cancelled) and not msg:
        msg = "the actor is stopping" if _libactor.stopping() else "call cancelled"
    if tb:
        import traceback
        tb = "".join(traceback.format_exception(e))
    _libactor.send_error(cid, _errtype(e), msg, tb or "")


def _failed(cid, e):
    """A call served by _libactor.serve_calls raised e (neither the
    runtime's interrupt nor an exit): the call's ERROR, as in _run."""
    _fail(cid, e, not isinstance(e, (Cancelled, FrameTooBig, TooDeep)))


def _drive(cid, gen):
    """Stream a generator's items; its return value is the call's.  A
    Cancelled that lands between items is thrown in at its yield."""
    send = _libactor.send_item
    try:
        item = next(gen)
        while True:
            try:
                send(cid, item)
            except Cancelled as c:
                item = gen.throw(c)
                continue
            item = next(gen)
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()


def _invoke(cid, fn, pos, kw, duplex):
    result = fn(Call(cid), *pos, **kw) if duplex else fn(*pos, **kw)
    if hasattr(result, "__next__") and hasattr(result, "throw"):
        result = _drive(cid, result)
    return result


def _run(functions, cid, fname, args):
    fn = functions.get(fname)
    if fn is None:
        _libactor.forget(cid)
        _libactor.send_error(cid, "libactor.NoSuchFunction",
                             "actor %r has no function %r" % (name, fname), "")
        return
    if isinstance(args, BaseException):  # arguments that did not convert
        _libactor.forget(cid)
        _libactor.send_error(cid, _errtype(args), str(args), "")
        return
    pos, kw = (), {}
    if isinstance(args, list):
        pos = args
    elif isinstance(args, dict):
        kw = args
    elif args is not None:
        pos = (args,)
    duplex = getattr(fn, "_libactor_duplex", False)
    try:
        # Cancelled can be injected only inside this call (inbox.c), which
        # also drops the call's input queue when it ends.
        result = _libactor.call(cid, _invoke, cid, fn, pos, kw, duplex)
        _libactor.send_return(cid, result)
    except (Cancelled, FrameTooBig, TooDeep) as e:
        _fail(cid, e, False)
    except (KeyboardInterrupt, SystemExit, EOFError):
        raise  # the runtime's interrupt, an exit, or the parent is gone
    except BaseException as e:
        _fail(cid, e, True)


def serve(functions):
    """Serve calls to `functions` (a dict: name -> callable) until the
    parent stops the actor (returns) or goes away (EOFError)."""
    functions = dict(functions)
    # The loop is in C (_libactor.serve_calls: a call costs no Python frame
    # of its own); it comes back here when woken without a message, so that
    # an injected exception lands, and returns False at STOP.
    while _libactor.serve_calls(functions, _run, _failed, _drive):
        pass
    # Calls that arrived after STOP are cancelled, not dropped.
    try:
        while True:
            m = _libactor.recv(0)
            if m is None:
                break
            if m[0] == CALL:
                _libactor.forget(m[1])
                _libactor.send_error(m[1], "libactor.Cancelled",
                                     "the actor is stopping", "")
    except EOFError:
        pass  # the parent is gone: nobody to answer
