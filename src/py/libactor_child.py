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

Cancellation is an exception: `Cancelled` is raised in a function whose call
is cancelled, where the function waits for the parent (iterating a duplex
call) or between the items of a generator.  It derives from BaseException so
that `except Exception` does not swallow it.  When the parent stops the
actor, every call in progress is cancelled and serve() returns.

A function that never yields control (a long computation) cannot see a
cancellation; if the parent has to stop the actor, the runtime interrupts it
with KeyboardInterrupt, which ends the actor.
"""

import _libactor

# Nothing heavy is imported up front: every import here is paid by every
# actor's start (traceback, for one, pulls in a dozen modules); it is
# imported when an exception is reported.

HELLO, CALL, RETURN, ERROR, ITEM, END, CANCEL, STOP = range(8)

name = _libactor.name
backend = _libactor.backend

__all__ = ["Cancelled", "Call", "duplex", "serve", "name", "backend"]


class Cancelled(BaseException):
    """The call was cancelled (by the parent, or because the actor stops)."""


# Messages read while a function was running that belong to someone else.
_backlog = []
_stopping = False


def _recv():
    """The next message, waiting as long as it takes."""
    if _backlog:
        return _backlog.pop(0)
    while True:
        m = _libactor.recv(None)
        if m is not None:
            return m
        # None: woken without a message (lets an injected exception land).


def _poll():
    """A message if one is ready now, else None."""
    if _backlog:
        return _backlog.pop(0)
    if not _libactor.pending():
        return None
    return _libactor.recv(0)


def _take_cancel(cid, wait):
    """Look for the parent's items for call `cid` (when `wait`) or for its
    cancellation.  Messages for other calls are kept for serve()."""
    global _stopping
    while True:
        m = _recv() if wait else _poll()
        if m is None:
            return None
        kind, mid = m[0], m[1]
        if kind == STOP:
            _stopping = True
            _backlog.insert(0, m)
            raise Cancelled("the actor is stopping")
        if mid == cid:
            if kind == CANCEL:
                raise Cancelled("call cancelled")
            if kind in (ITEM, END):
                return m
        if kind == CALL:
            _backlog.append(m)  # served when this call is done
        # stale ITEM/END/CANCEL for calls already answered: dropped


class Call:
    """A call seen from the actor, for @duplex functions."""

    def __init__(self, cid):
        self.id = cid
        self._ended = False

    def send(self, value):
        """Stream one item to the parent."""
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
        m = _take_cancel(self.id, True)
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


def _run(functions, cid, fname, args):
    fn = functions.get(fname)
    if fn is None:
        _libactor.send_error(cid, "libactor.NoSuchFunction",
                             "actor %r has no function %r" % (name, fname), "")
        return
    if isinstance(args, BaseException):  # arguments that did not convert
        _libactor.send_error(cid, _qualname(args), str(args), "")
        return
    try:
        pos, kw = (), {}
        if isinstance(args, list):
            pos = args
        elif isinstance(args, dict):
            kw = args
        elif args is not None:
            pos = (args,)
        if getattr(fn, "_libactor_duplex", False):
            result = fn(Call(cid), *pos, **kw)
        else:
            result = fn(*pos, **kw)
        if hasattr(result, "__next__") and hasattr(result, "throw"):
            result = _drive(cid, result)
        _libactor.send_return(cid, result)
    except Cancelled as e:
        _libactor.send_error(cid, "libactor.Cancelled", str(e) or "call cancelled", "")
    except (KeyboardInterrupt, SystemExit, EOFError):
        raise  # the runtime's interrupt, an exit, or the parent is gone
    except BaseException as e:
        import traceback
        _libactor.send_error(cid, _qualname(e), str(e), traceback.format_exc())


def _drive(cid, gen):
    """Stream a generator's items; its return value is the call's."""
    try:
        item = next(gen)
        while True:
            _libactor.send_item(cid, item)
            try:
                _take_cancel(cid, False)
            except Cancelled as c:
                item = gen.throw(c)
                continue
            item = next(gen)
    except StopIteration as stop:
        return stop.value


def serve(functions):
    """Serve calls to `functions` (a dict: name -> callable) until the
    parent stops the actor (returns) or goes away (EOFError)."""
    global _stopping
    functions = dict(functions)
    while not _stopping:
        m = _recv()
        kind = m[0]
        if kind == STOP:
            _stopping = True
            break
        if kind == CALL:
            _run(functions, m[1], m[2], m[3])
    # Calls that arrived while we were stopping are cancelled, not dropped.
    while _backlog:
        m = _backlog.pop(0)
        if m[0] == CALL:
            _libactor.send_error(m[1], "libactor.Cancelled", "the actor is stopping", "")
