"""Driving a Runtime's loop from asyncio or trio, on their own thread.

asyncio: the loop's backend fd is an add_reader of the running loop; after
every non-blocking run a timer is re-armed from actor_rt_backend_timeout()
(call_soon while it is 0, none while it is -1), and the runtime asks for a
run (kick) after anything that queues output.  When the loop has nothing
left to do (the run returns 0) nothing is armed until the next kick.

trio: a system task waits for the fd (trio.lowlevel.wait_readable) or the
timeout, whichever comes first, runs, and loops; kick() wakes it.
Waiters are callbacks that set an asyncio future or a trio Event."""
import sys

from ._lib import ffi, lib

_NOWAIT = lib.ACTOR_RUN_NOWAIT


def _running_trio():
    if "trio" not in sys.modules:
        return False
    import trio
    try:
        trio.lowlevel.current_trio_token()
        return True
    except RuntimeError:
        return False


def driver_for(rt):
    if _running_trio():
        return _TrioDriver(rt)
    return _AsyncioDriver(rt)


class _AsyncioDriver:
    def __init__(self, rt):
        import asyncio
        self._asyncio = asyncio
        self.rt = rt
        self.loop = asyncio.get_running_loop()
        self.fd = rt._fd
        self.timer = None
        self.soon = None
        self.attached = True
        self.loop.add_reader(self.fd, self.service)
        self.kick()

    def running(self):
        return self.attached and self.loop.is_running()

    def kick(self):
        if self.soon is None and self.attached:
            self.soon = self.loop.call_soon(self.service)

    def service(self):
        self.soon = None
        rt = self.rt
        if rt._rt == ffi.NULL:
            return
        more = lib.actor_rt_run(rt._rt, _NOWAIT)
        try:
            rt._drain()
        finally:
            self._rearm(more)

    def _rearm(self, more):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not more or not self.attached:
            return  # idle: the next spawn or call kicks
        t = lib.actor_rt_backend_timeout(self.rt._rt)
        if t == 0:
            self.kick()
        elif t > 0:
            self.timer = self.loop.call_later(t / 1000.0, self.service)

    def wait(self, waiters):
        f = self.loop.create_future()

        def wake():
            if not f.done():
                f.set_result(None)
        waiters.append(wake)
        return f

    async def sleep_until_event(self):
        # While closing: let the reader/timer run the loop; wake on the
        # next run at the latest.
        await self._asyncio.sleep(0.005)

    def detach(self):
        if not self.attached:
            return
        self.attached = False
        self.loop.remove_reader(self.fd)
        if self.timer is not None:
            self.timer.cancel()
        if self.soon is not None:
            self.soon.cancel()
        self.timer = self.soon = None


class _TrioDriver:
    def __init__(self, rt):
        import trio
        self.trio = trio
        self.rt = rt
        self.fd = rt._fd
        self.attached = True
        self.kicked = trio.Event()
        self.task_done = trio.Event()
        trio.lowlevel.spawn_system_task(self._task)

    def running(self):
        return self.attached

    def kick(self):
        self.kicked.set()

    async def _task(self):
        trio = self.trio
        try:
            while self.attached:
                rt = self.rt
                more = lib.actor_rt_run(rt._rt, _NOWAIT)
                rt._drain()
                if not self.attached:
                    break
                t = lib.actor_rt_backend_timeout(rt._rt) if more else -1
                if t == 0:
                    await trio.lowlevel.checkpoint()
                    continue
                self.kicked = trio.Event()
                with trio.move_on_after(t / 1000.0 if t > 0 else 3600):
                    async with trio.open_nursery() as n:
                        async def fd():
                            # The runtime may have been freed (its fd
                            # closed) and this driver detached between the
                            # start_soon and this task's first step: never
                            # start waiting on a closed fd (trio's epoll
                            # fails the whole run with EBADF).
                            if self.attached:
                                await trio.lowlevel.wait_readable(self.fd)
                            n.cancel_scope.cancel()

                        async def kicked():
                            await self.kicked.wait()
                            n.cancel_scope.cancel()
                        n.start_soon(fd)
                        n.start_soon(kicked)
        finally:
            self.task_done.set()

    def wait(self, waiters):
        ev = self.trio.Event()
        waiters.append(ev.set)
        return ev.wait()

    async def sleep_until_event(self):
        await self.trio.sleep(0.005)

    def detach(self):
        if self.attached:
            self.attached = False
            self.kicked.set()
