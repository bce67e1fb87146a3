"""The Pythonic layer: Runtime, Actor, Call.

The C library never calls into Python: its actors' and calls' callbacks
are the library's own event-queue callbacks (actor_evq_*), and the runtime
drains the queue after every run of the loop (docs/python.md, "Why an
event queue").  Runs of the loop are driven in one of three ways:

  blocking  Call.result(), iterating a Call, Actor.wait(): poll(2) on the
            loop's backend fd for the loop's own timeout — in Python, so
            that a signal (Ctrl-C) raises at once — then a non-blocking run.
            Actor.call(): the same wait in C (actor_evq_call), which
            returns that call's reply directly and leaves every other
            event queued; a signal ends it with -EINTR, and a wait that
            ends without the reply hands the call to the Call path.
  asyncio   `async with Runtime()`: the backend fd is an add_reader of the
            running loop, and a timer is re-armed from the loop's timeout
            after every non-blocking run (call_soon while it is 0).  No
            thread, no busy polling.
  trio      `async with Runtime()` under trio: a system task that waits
            for the fd (trio.lowlevel.wait_readable) or the timeout.
"""
import collections
import errno
import os
import select
import threading
import time

from . import _codec
from ._lib import ffi, lib
from .errors import (Error, HandleGone, RemoteError, StateError, WrongThread,
                     exception_for)

__all__ = ["Runtime", "Actor", "Call", "ExitInfo", "check", "backends",
           "backend_available"]

_NOWAIT = lib.ACTOR_RUN_NOWAIT
_EV_CALL = lib.ACTOR_EVQ_CALL
_EV_HELLO = lib.ACTOR_EVQ_HELLO
_EV_EXIT = lib.ACTOR_EVQ_EXIT
_EV_OUTPUT = lib.ACTOR_EVQ_OUTPUT
_ITEM = lib.ACTOR_EV_ITEM
_END = lib.ACTOR_EV_END
_DONE = lib.ACTOR_EV_DONE
_buffer = ffi.buffer
_string = ffi.string
_unpackb = ffi.unpack
_cast = ffi.cast
_NULL = ffi.NULL
_now = time.perf_counter
_POLL_CAP_MS = 250
_EINTR = -errno.EINTR
_ETIMEDOUT = -errno.ETIMEDOUT
_evq_call = lib.actor_evq_call
_evq_len = lib.actor_evq_len
_pack = _codec.pack
_pack_args = _codec.pack_args
_unpack = _codec.unpack
_ONE = _codec._ONE
_NOT_ONE = _codec._NOT_ONE
_get_ident = threading.get_ident
_NO_ARGS = _pack(())

# Function names as C strings, encoded once (a host calls a few names many
# times); bounded, in case a program makes up names.
_names = {}


def _name(fn):
    b = _names.get(fn)
    if b is None:
        b = fn.encode()
        if len(_names) < 4096:
            _names[fn] = b
    return b


def _err(code, message=None):
    name = _string(lib.actor_err_name(code)).decode()
    if not message:
        message = _string(lib.actor_strerror(code)).decode()
    return exception_for(code, name, message)


def _reentered():
    return StateError(
        0, "ESTATE", "this libactor.Runtime is in use further up this "
        "thread's stack (Actor.call is reading its reply): a signal handler "
        "must not use it")


def check(code, rt=None):
    """Raise the exception for a negative code (with the runtime's message
    when it has one); return the code otherwise."""
    if code < 0:
        msg = None
        if rt is not None:
            msg = _string(lib.actor_rt_errmsg(rt)).decode(errors="replace")
        raise _err(code, msg)
    return code


def backends():
    """The compiled-in backends' names."""
    names = lib.actor_backend_names()
    out = []
    i = 0
    while names[i] != ffi.NULL:
        out.append(_string(names[i]).decode())
        i += 1
    return out


def backend_available(name):
    """None if `name` can spawn here, otherwise the exception saying why."""
    why = ffi.new("const char **")
    r = lib.actor_backend_available(name.encode(), why)
    if r == 0:
        return None
    msg = _string(why[0]).decode() if why[0] != ffi.NULL else None
    return _err(r, msg)


class ExitInfo(collections.namedtuple(
        "ExitInfo", "status signal error error_name reason")):
    """How an actor ended: exit status (-1 if it did not exit normally),
    the signal that ended it (0), the runtime's error code (0 for a normal
    end) and its name, and a sentence."""


_STDIO = {None: lib.ACTOR_STDIO_INHERIT, "inherit": lib.ACTOR_STDIO_INHERIT,
          "discard": lib.ACTOR_STDIO_DISCARD,
          "capture": lib.ACTOR_STDIO_CAPTURE}
_MODES = {"isolated": lib.ACTOR_SUBINT_ISOLATED,
          "legacy": lib.ACTOR_SUBINT_LEGACY}


class Runtime:
    """A libactor runtime on a loop of its own, owned by the thread that
    creates it.  A context manager: leaving the block (normally, by an
    exception or by Ctrl-C) stops every actor — each within its own
    deadlines — and waits for them.  `async with` drives it from the
    running asyncio or trio loop instead."""

    def __init__(self, *, max_frame=None, max_queue=None, event_limit=0,
                 spin_us=None):
        self._thread = threading.get_ident()
        if spin_us is None:
            spin_us = 50 if len(os.sched_getaffinity(0)) > 1 else 0
        self._spin = spin_us / 1e6
        self._spin_us = int(spin_us)
        self._busy = False  # Actor.call is reading what its C wait left
        self._rt = ffi.NULL
        self._q = ffi.NULL
        p = ffi.new("actor_rt **")
        check(lib.actor_rt_new(p, ffi.NULL))
        self._rt = p[0]
        q = ffi.new("actor_evq **")
        r = lib.actor_evq_new(q, self._rt, event_limit)
        if r:
            lib.actor_rt_free(self._rt)
            self._rt = ffi.NULL
            check(r)
        self._q = q[0]
        self._ev = ffi.new("actor_evq_event *")
        self._cp = ffi.new("actor_call **")
        if max_frame is not None:
            check(lib.actor_rt_set_max_frame(self._rt, max_frame), self._rt)
        if max_queue is not None:
            check(lib.actor_rt_set_max_queue(self._rt, max_queue), self._rt)
        self._fd = lib.actor_rt_backend_fd(self._rt)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._actors = {}  # token -> Actor
        self._calls = {}  # address of the actor_call -> Call
        self._next_token = 1
        self._driver = None
        self._closed = False

    # ---- context manager ----------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    async def __aenter__(self):
        self._attach()
        return self

    async def __aexit__(self, *exc):
        await self.aclose()
        return False

    def __del__(self):
        # A runtime dropped without close(): shut it down if this is its
        # thread; elsewhere it cannot be touched, and is left (a leak,
        # never a crash).
        try:
            if (self._rt != ffi.NULL and not self._closed
                    and threading.get_ident() == self._thread):
                self.close()
        except Exception:
            pass

    # ---- state ----------------------------------------------------------------

    def _check(self):
        if threading.get_ident() != self._thread:
            raise WrongThread(
                "this libactor.Runtime belongs to thread %d (its loop's); it "
                "was used from thread %d: use a runtime per thread"
                % (self._thread, threading.get_ident()))
        if self._closed:
            raise HandleGone("the runtime is closed")

    @property
    def closed(self):
        return self._closed

    @property
    def actors(self):
        """The actors not yet exited."""
        return list(self._actors.values())

    def actor_count(self):
        self._check()
        return lib.actor_rt_actor_count(self._rt)

    # ---- the fork server ----------------------------------------------------------

    def forkserver(self, *, preload=(), path=(), load=(), start=None):
        """Configure this runtime's fork server (the forkserver backend)
        before it starts: Python modules to import ahead of time (their
        children inherit them copy-on-write), directories for its sys.path,
        shared objects whose C entries children run.  start="python" or
        "c" starts it now rather than at the first forkserver spawn.
        Returns the server's pid (0 while none runs)."""
        self._check()
        enc = os.fsencode
        if isinstance(preload, str):
            preload = (preload,)
        if isinstance(path, str):
            path = (path,)
        if isinstance(load, str):
            load = (load,)
        for m in preload:
            check(lib.actor_rt_forkserver_preload(self._rt, m.encode()),
                  self._rt)
        for d in path:
            check(lib.actor_rt_forkserver_add_path(self._rt, enc(d)),
                  self._rt)
        for so in load:
            check(lib.actor_rt_forkserver_load(self._rt, enc(so)), self._rt)
        if start is not None:
            if start not in ("python", "c"):
                raise ValueError('start must be "python" or "c"')
            check(lib.actor_rt_forkserver_start(self._rt,
                                                1 if start == "python" else 0),
                  self._rt)
        return lib.actor_rt_forkserver_pid(self._rt)

    @property
    def forkserver_pid(self):
        """The fork server's pid, 0 while none runs."""
        self._check()
        return lib.actor_rt_forkserver_pid(self._rt)

    # ---- spawning ---------------------------------------------------------------

    def spawn(self, entry=None, *, backend=None, program=None, args=(),
              env=None, clear_env=False, cwd=None, name=None, path=(),
              subint_mode=None, deadlines=None, stdout=None, stderr=None,
              on_output=None, c_entry=None, fork_subint=False):
        """Start an actor and return its Actor at once (calls made now are
        delivered after it says hello).

        entry: "package.module:function" of a Python actor (subint, or
          subproc through actor-pyhost); program: an executable (subproc).
        backend: "subproc" (default), "subint", or any name the library
          knows (backends()); an unknown or unavailable one raises
          BackendUnavailable with the library's reason.
        args, env ({name: value} or ["N=v"]), clear_env, cwd, name,
        path (directories put in front of sys.path), subint_mode
        ("isolated", "legacy"), deadlines (hello, graceful, term, kill) in
        seconds (None keeps a default), stdout/stderr ("inherit",
        "discard", "capture"; captured lines go to on_output(fd, line) or
        Actor.output).
        forkserver: entry runs in the forked child's main interpreter, or
          with fork_subint=True in a fresh sub-interpreter of subint_mode;
          c_entry="libfoo.so:function" runs a C entry instead (see
          Runtime.forkserver for what the server preloads)."""
        self._check()
        o = ffi.new("actor_opts **")
        check(lib.actor_opts_new(o))
        o = o[0]
        token = self._next_token
        self._next_token += 1
        try:
            def s(v):
                return v.encode() if isinstance(v, str) else bytes(v)
            if backend is not None:
                check(lib.actor_opts_set_backend(o, s(backend)))
            if program is not None:
                check(lib.actor_opts_set_program(o, s(program)))
            for a in args:
                check(lib.actor_opts_add_arg(o, s(a)))
            if clear_env:
                check(lib.actor_opts_clear_env(o))
            if env:
                items = (["%s=%s" % kv for kv in env.items()]
                         if isinstance(env, dict) else env)
                for kv in items:
                    check(lib.actor_opts_add_env(o, s(kv)))
            if cwd is not None:
                check(lib.actor_opts_set_cwd(o, s(cwd)))
            if name is not None:
                check(lib.actor_opts_set_name(o, s(name)))
            if entry is not None:
                check(lib.actor_opts_set_entry(o, s(entry)))
            if isinstance(path, str):
                path = (path,)
            for d in path:
                check(lib.actor_opts_add_path(o, s(d)))
            if subint_mode is not None:
                check(lib.actor_opts_set_subint_mode(o, _MODES[subint_mode]))
            if c_entry is not None:
                check(lib.actor_opts_set_c_entry(o, s(c_entry)))
            if fork_subint:
                check(lib.actor_opts_set_fork_subint(o, 1))
            if deadlines is not None:
                ms = [0 if d is None else max(1, int(d * 1000))
                      for d in deadlines]
                ms += [0] * (4 - len(ms))
                check(lib.actor_opts_set_deadlines(o, *ms))
            for fd, mode in ((1, stdout), (2, stderr)):
                if mode is not None:
                    check(lib.actor_opts_set_stdio(o, fd, _STDIO[mode]))
            check(lib.actor_opts_on_exit(o, lib.actor_evq_exit_cb, self._q))
            check(lib.actor_opts_on_hello(o, lib.actor_evq_hello_cb, self._q))
            check(lib.actor_opts_on_output(o, lib.actor_evq_output_cb,
                                           self._q))
            ap = ffi.new("actor **")
            check(lib.actor_spawn(self._rt, o, ap), self._rt)
        finally:
            lib.actor_opts_free(o)
        a = Actor(self, ap[0], token, on_output)
        lib.actor_set_data(ap[0], _cast("void *", token))
        self._actors[token] = a
        self._kick()
        return a

    # ---- the loop -------------------------------------------------------------

    def _drain(self):
        """Take every queued event and hand it to its Python object.

        No user code runs and no C handle is touched until every event is
        taken: an actor's handle is freed by the run that queued its EXIT,
        which may sit behind its other events.  So output callbacks run,
        and pids are read, once the queue is empty (exited actors have
        dropped their handles by then)."""
        if self._busy:
            raise _reentered()
        q = self._q
        ev = self._ev
        calls = self._calls
        later = []
        while lib.actor_evq_next(q, ev):
            kind = ev.kind
            if kind == _EV_CALL:
                key = int(_cast("uintptr_t", ev.handle))
                c = calls.get(key)
                if c is None:
                    continue
                e = ev.event
                if e == _ITEM:
                    c._item(_buffer(ev.bytes, ev.len)[:])
                elif e == _END:
                    c._end()
                else:
                    del calls[key]
                    if ev.status == 0:
                        c._done(0, _buffer(ev.bytes, ev.len)[:], None)
                    else:
                        c._done(ev.status, None, (
                            _string(ev.error_type).decode(errors="replace"),
                            _string(ev.error_message).decode(
                                errors="replace"),
                            _string(ev.traceback).decode(errors="replace")))
            else:
                token = int(_cast("uintptr_t", ev.data))
                a = self._actors.get(token)
                if a is None:
                    continue
                if kind == _EV_EXIT:
                    del self._actors[token]
                    a._exited(ExitInfo(
                        ev.exit_status, ev.exit_signal, ev.status,
                        _string(lib.actor_err_name(ev.status)).decode()
                        if ev.status else "",
                        _string(ev.bytes).decode(errors="replace")))
                elif kind == _EV_HELLO:
                    a._hello(ev.status)
                    later.append((a, None, None))
                elif kind == _EV_OUTPUT:
                    later.append((a, ev.event, _buffer(ev.bytes, ev.len)[:]))
        for a, fd, line in later:
            if fd is None:
                a._refresh()
            else:
                a._output(fd, line)

    def _run_nowait(self):
        if self._busy:
            raise _reentered()
        r = lib.actor_rt_run(self._rt, _NOWAIT)
        self._drain()
        return r

    def run_once(self, timeout=None):
        """One blocking step: wait for the loop's fd (at most `timeout`
        seconds, and no longer than the loop's own timers), run the loop
        without blocking, dispatch its events.  Returns whether the loop
        has anything left to do."""
        self._check()
        more = self._run_nowait()
        t = lib.actor_rt_backend_timeout(self._rt)
        if timeout is not None:
            ms = max(0, int(timeout * 1000))
            t = ms if t < 0 else min(t, ms)
        if t != 0:
            self._poll.poll(t)  # in Python: a signal raises here
        return self._run_nowait() or more

    def _wait(self, done, timeout=None, what="it"):
        """Run the loop until done() is true; TimeoutError after `timeout`
        seconds."""
        if self._driver is not None and self._driver.running():
            raise StateError(
                0, "ESTATE", "the runtime is driven by an async loop: await "
                "instead of blocking in it")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._run_nowait()
        while not done():
            t = lib.actor_rt_backend_timeout(self._rt)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out waiting for %s" % what)
                ms = int(left * 1000) + 1
                t = ms if t < 0 else min(t, ms)
            if t != 0 and self._spin:
                # A reply usually comes within microseconds from an actor
                # on another core: look for it before going to sleep (a
                # wake-up costs tens of microseconds on a shared VM).
                end = _now() + self._spin
                while _now() < end:
                    self._run_nowait()
                    if done():
                        return
            if t != 0:
                # Capped: a signal delivered to another thread of the
                # process does not interrupt this poll(), and its Python
                # handler (KeyboardInterrupt) runs only when we return.
                self._poll.poll(_POLL_CAP_MS if t < 0 or t > _POLL_CAP_MS
                                else t)
            if not self._run_nowait() and not done() and t == 0:
                raise StateError(0, "ESTATE",
                                 "nothing left to run while waiting for %s"
                                 % what)

    def _async_wait(self, waiters):
        d = self._driver
        if d is None or not d.running():
            raise StateError(0, "ESTATE", "awaiting needs the runtime driven "
                             "by the running loop: `async with Runtime()`")
        return d.wait(waiters)

    def _kick(self):
        if self._driver is not None:
            self._driver.kick()

    # ---- closing ------------------------------------------------------------

    def close(self):
        """Stop every actor (each within its deadlines: graceful, then
        SIGTERM, then SIGKILL), wait for all, free the runtime.
        Idempotent; blocking."""
        if self._closed:
            return
        if threading.get_ident() != self._thread:
            raise WrongThread("a libactor.Runtime is closed by its own thread")
        if self._busy:
            raise _reentered()
        if self._driver is not None:
            self._driver.detach()
            self._driver = None
        self._closed = True
        rt = self._rt
        lib.actor_rt_close(rt, ffi.NULL, ffi.NULL)
        try:
            # The same steps as actor_rt_shutdown, polled from Python so
            # that the events are dispatched as they come.
            while lib.actor_rt_free(rt) == lib.ACTOR_ESTATE:
                t = lib.actor_rt_backend_timeout(rt)
                if t != 0:
                    self._poll.poll(t if t > 0 else 50)
                lib.actor_rt_run(rt, _NOWAIT)
                self._drain_quietly()
        except BaseException:
            # A second Ctrl-C: finish without Python in the way, then
            # re-raise.
            lib.actor_rt_shutdown(rt)
            self._finish_close()
            raise
        self._finish_close()

    def _drain_quietly(self):
        try:
            self._drain()
        except Exception:
            pass

    def _finish_close(self):
        self._drain_quietly()
        self._rt = ffi.NULL
        lib.actor_evq_free(self._q)
        self._q = ffi.NULL
        for a in list(self._actors.values()):
            a._forget()
        self._actors.clear()
        for c in list(self._calls.values()):
            c._forget()
        self._calls.clear()

    async def aclose(self):
        """close() for async code: the loop keeps running while the actors
        are stopped."""
        if self._closed:
            return
        self._check()
        if self._busy:
            raise _reentered()
        lib.actor_rt_close(self._rt, ffi.NULL, ffi.NULL)
        d = self._driver
        try:
            while lib.actor_rt_free(self._rt) == lib.ACTOR_ESTATE:
                if d is not None and d.running():
                    d.kick()
                    await d.sleep_until_event()
                else:
                    self._run_nowait()
                    self._poll.poll(10)
        except BaseException:
            # Detached first: the driver must neither run the loop of a
            # freed runtime nor wait on its closed fd.
            if d is not None:
                d.detach()
            self._driver = None
            lib.actor_rt_shutdown(self._rt)
            self._closed = True
            self._finish_close()
            raise
        if d is not None:
            d.detach()
        self._driver = None
        self._closed = True
        self._finish_close()

    # ---- async drivers --------------------------------------------------------

    def _attach(self):
        self._check()
        from . import _aio
        self._driver = _aio.driver_for(self)


def _raise_outcome(code, err):
    """Raise a failed call's error: its code, and (type, message,
    traceback) as the DONE event carried them."""
    etype, emsg, tb = err
    name = _string(lib.actor_err_name(code)).decode()
    if name == "ACTOR_EREMOTE":
        raise RemoteError(code, name, "%s: %s" % (etype, emsg), etype,
                          emsg, tb)
    msg = emsg or _string(lib.actor_strerror(code)).decode()
    raise exception_for(code, name, msg)


class _Waitable:
    """Something async code awaits: wakers registered by the driver."""

    def _wake(self):
        w = self._waiters
        self._waiters = []
        for f in w:
            f()


class Actor(_Waitable):
    """One actor.  Valid until its exit has been seen; after that its
    handle is gone and every operation but the read-only properties raises
    HandleGone (never a crash)."""

    def __init__(self, rt, handle, token, on_output):
        self._rt = rt
        self._a = handle
        self._token = token
        self._on_output = on_output
        self.output = collections.deque(maxlen=10000)
        self.hello_status = None
        self.exit = None  # ExitInfo once it has exited
        self._name = _string(lib.actor_name(handle)).decode()
        self._backend = _string(lib.actor_backend(handle)).decode()
        self._pid = lib.actor_pid(handle)
        self._id = lib.actor_id(handle)
        self._waiters = []

    def __repr__(self):
        st = "exited" if self.exit is not None else "alive"
        return "<libactor.Actor %r %s pid=%d %s>" % (
            self._name, self._backend, self._pid, st)

    name = property(lambda self: self._name)
    backend = property(lambda self: self._backend)
    @property
    def pid(self):
        """The child's pid (0 if none).  A forkserver actor's is known once
        its fork server has answered (by its HELLO at the latest)."""
        self._refresh()
        return self._pid

    def _refresh(self):
        if self._pid == 0 and self._a is not None:
            self._pid = lib.actor_pid(self._a)
    id = property(lambda self: self._id)

    def _handle(self):
        self._rt._check()
        if self._a is None:
            raise HandleGone("actor %r has exited (%s): its handle is gone"
                             % (self._name, self.exit.reason if self.exit
                                else "its runtime is closed"))
        return self._a

    @property
    def alive(self):
        return self._a is not None

    @property
    def state(self):
        return lib.actor_state(self._handle())

    # ---- calls --------------------------------------------------------------

    def start(self, fn, *args, **kwargs):
        """Start a call and return its Call (not waiting).  Positional
        arguments travel as a msgpack array, keyword ones as a map (the
        actor spreads them); not both."""
        a = self._handle()
        if kwargs:
            if args:
                raise TypeError("pass positional or keyword arguments, not "
                                "both (a call carries one msgpack value)")
            data = _pack(kwargs)
        else:
            data = _pack_args(args) if args else _NO_ARGS
        cp = ffi.new("actor_call **")
        rt = self._rt
        check(lib.actor_call_start(a, fn.encode(), data, len(data),
                                   lib.actor_evq_call_cb, rt._q, cp), rt._rt)
        c = Call(rt, cp[0], self, fn)
        rt._calls[int(_cast("uintptr_t", cp[0]))] = c
        rt._kick()
        return c

    def call(self, fn, *args, timeout=None, **kwargs):
        """Call `fn` and return its value, or raise: RemoteError for the
        actor's exception (its type, message and traceback), or the error
        for the code (libactor.errors)."""
        rt = self._rt
        if rt._driver is not None:
            # Driven by an async loop: the Call path (which says that a
            # blocking call there is an error while that loop runs).
            return self.start(fn, *args, **kwargs).result(timeout=timeout)
        if (_get_ident() != rt._thread or rt._closed or self._a is None):
            self._handle()  # raises WrongThread / HandleGone
        if kwargs:
            if args:
                raise TypeError("pass positional or keyword arguments, not "
                                "both (a call carries one msgpack value)")
            data = _pack(kwargs)
        elif args:
            data = _pack_args(args)
        else:
            data = _NO_ARGS
        # actor_evq_call: start the call and run the loop in C until its
        # DONE, which comes back here directly (no Call object, no pass
        # through _drain per event).  Everything else that arrived meanwhile
        # is queued, in order, and drained below before returning, as any
        # run of the loop is.  The first wait is capped like a poll(): a
        # signal delivered to another thread must not wait longer.
        if timeout is None:
            first = _POLL_CAP_MS
        else:
            t0 = time.monotonic()
            first = min(_POLL_CAP_MS, max(0, int(timeout * 1000)))
        if rt._busy:
            raise _reentered()
        ev = rt._ev
        q = rt._q
        cp = rt._cp
        call = None
        # From the C call until what it left in `ev`, `cp` and the queue's
        # taken event is read, nothing may use the queue: a signal handler
        # runs right after the C function returns, and one that used this
        # runtime would free that event under us (_busy refuses it).
        rt._busy = True
        try:
            r = _evq_call(q, self._a, _names.get(fn) or _name(fn), data,
                          len(data), rt._spin_us, first, ev, cp)
            if r == 1:
                status = ev.status
                if status == 0:
                    value = _NOT_ONE
                    n = ev.len
                    if n == 1:  # None, a bool, a small int: by table
                        value = _ONE[ev.bytes[0][0]]
                    if value is _NOT_ONE:
                        raw = _unpackb(ev.bytes, n)
                else:
                    err = (_string(ev.error_type).decode(errors="replace"),
                           _string(ev.error_message).decode(errors="replace"),
                           _string(ev.traceback).decode(errors="replace"))
            else:
                c = cp[0]
                if c != _NULL:
                    # Still in flight (timed out, interrupted by a signal,
                    # the queue at its bound, ...): from here on an
                    # ordinary Call, whose events the queue carries.
                    call = Call(rt, c, self, fn)
                    rt._calls[int(_cast("uintptr_t", c))] = call
        finally:
            rt._busy = False
        if r == 1:
            if _evq_len(q):
                rt._drain()
            if status == 0:
                return _unpack(raw) if value is _NOT_ONE else value
            _raise_outcome(status, err)
        if call is None:
            check(r, rt._rt)  # refused (nothing sent), or its DONE was lost
        if timeout is not None:
            timeout = max(0.0, timeout - (time.monotonic() - t0))
        return call.result(timeout=timeout)

    def stream(self, fn, *args, **kwargs):
        """A call whose items are iterated (for item in actor.stream(...));
        the same as start()."""
        return self.start(fn, *args, **kwargs)

    # ---- ending -------------------------------------------------------------

    def stop(self):
        """Ask the actor to finish (STOP; SIGTERM, SIGKILL after the
        deadlines).  Idempotent; wait() for the end."""
        check(lib.actor_stop(self._handle()), self._rt._rt)
        self._rt._drain()  # (a stop may complete calls at once)
        self._rt._kick()

    def kill(self, hard=False):
        check(lib.actor_kill(self._handle(), 1 if hard else 0), self._rt._rt)
        self._rt._drain()  # (a stop may complete calls at once)
        self._rt._kick()

    def wait(self, timeout=None):
        """Block until the actor has exited; its ExitInfo."""
        if self.exit is None:
            self._handle()
            self._rt._wait(lambda: self.exit is not None, timeout,
                           "actor %r to exit" % self._name)
        return self.exit

    def wait_ready(self, timeout=None):
        """Block until HELLO (or its failure, raised)."""
        if self.hello_status is None:
            self._handle()
            self._rt._wait(lambda: self.hello_status is not None,
                           timeout, "actor %r to say hello" % self._name)
        if self.hello_status:
            raise _err(self.hello_status, self.exit.reason if self.exit
                       else None)

    async def exited(self):
        """Await the actor's end; its ExitInfo."""
        while self.exit is None:
            self._handle()
            await self._rt._async_wait(self._waiters)
        return self.exit

    # ---- events -------------------------------------------------------------

    def _hello(self, status):
        self.hello_status = status
        self._wake()

    def _exited(self, info):
        self.exit = info
        self._a = None
        self._wake()

    def _output(self, fd, line):
        line = line.decode(errors="replace")
        if self._on_output is not None:
            self._on_output(fd, line)
        else:
            self.output.append((fd, line))

    def _forget(self):
        self._a = None
        self._wake()


class Call(_Waitable):
    """One call: iterate it for the actor's stream items (blocking, or
    `async for`); result() / `await call` for the return value; send()
    and end() for a two-way stream; cancel().  Valid until it completes;
    after that send/end/cancel raise HandleGone."""

    def __init__(self, rt, handle, actor, fn):
        self._rt = rt
        self._c = handle
        self.actor = actor
        self.fn = fn
        self._items = collections.deque()
        self._ended = False
        self._status = None
        self._value = None
        self._error = None
        self._waiters = []

    def __repr__(self):
        return "<libactor.Call %s() of %r %s>" % (
            self.fn, self.actor.name, "done" if self.done else "running")

    @property
    def done(self):
        return self._status is not None

    def _handle(self):
        self._rt._check()
        if self._c is None:
            raise HandleGone("call %s() has completed: its handle is gone"
                             % self.fn)
        return self._c

    # ---- events -------------------------------------------------------------

    def _item(self, data):
        self._items.append(data)
        self._wake()

    def _end(self):
        self._ended = True
        self._wake()

    def _done(self, status, data, err):
        self._c = None
        self._status = status
        if status == 0:
            self._value = data
        else:
            self._error = err
        self._wake()

    def _forget(self):
        if self._status is None:
            self._c = None
            self._status = lib.ACTOR_ECLOSED
            self._error = ("", "the runtime was closed", "")
        self._wake()

    # ---- the outcome ------------------------------------------------------------

    def _outcome(self):
        if self._status == 0:
            return _codec.unpack(self._value)
        _raise_outcome(self._status, self._error)

    def result(self, timeout=None):
        """Block until the call completes; its value, or raise its error.
        Stream items not iterated are discarded."""
        if self._status is None:
            self._rt._check()
            self._rt._wait(lambda: self._status is not None, timeout,
                           "%s()" % self.fn)
        self._items.clear()
        return self._outcome()

    def __await__(self):
        while self._status is None:
            self._rt._check()
            yield from self._rt._async_wait(self._waiters).__await__()
        self._items.clear()
        return self._outcome()

    # ---- streams ------------------------------------------------------------

    def __iter__(self):
        return self

    def __next__(self):
        if not self._items and not self._ended and self._status is None:
            self._rt._check()
            self._rt._wait(lambda: self._items or self._ended
                           or self._status is not None, None,
                           "an item of %s()" % self.fn)
        if self._items:
            return _codec.unpack(self._items.popleft())
        if self._status not in (None, 0):
            self._outcome()  # raises the call's error
        raise StopIteration

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self._items and not self._ended and self._status is None:
            self._rt._check()
            await self._rt._async_wait(self._waiters)
        if self._items:
            return _codec.unpack(self._items.popleft())
        if self._status not in (None, 0):
            self._outcome()
        raise StopAsyncIteration

    def send(self, item):
        """Send one item to the actor's side of a two-way call."""
        c = self._handle()
        data = _codec.pack(item)
        check(lib.actor_call_send(c, data, len(data)), self._rt._rt)
        self._rt._kick()

    def end(self):
        """End this side of a two-way call (the actor sees end of input)."""
        check(lib.actor_call_end(self._handle()), self._rt._rt)
        self._rt._kick()

    def cancel(self):
        """Ask the actor to cancel: from now on no more items, only the
        end (normally Cancelled).  Idempotent; a completed call is left
        alone."""
        if self._c is None:
            self._rt._check()
            return
        check(lib.actor_call_cancel(self._c), self._rt._rt)
        self._items.clear()
        self._rt._drain()
        self._rt._kick()
