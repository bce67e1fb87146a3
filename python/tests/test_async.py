"""The loop driven from asyncio (add_reader + timer, no thread) and trio."""
import asyncio
import threading

import pytest

import libactor
from conftest import ACTORS, PATH, WORKER


def test_50_actors_spawned_concurrently_from_asyncio():
    async def main():
        async with libactor.Runtime() as rt:
            threads = threading.active_count()
            actors = [rt.spawn(ACTORS, backend="subint", path=PATH)
                      if i % 2 else rt.spawn(program=WORKER)
                      for i in range(50)]
            got = await asyncio.gather(*(a.start("add", i, 1)
                                         for i, a in enumerate(actors)))
            assert got == [i + 1 for i in range(50)]
            # No thread of ours: only the actors' own (subint threads and
            # their watchers).
            assert threading.active_count() == threads
            items = [x async for x in actors[1].start("count", 100)]
            assert items == list(range(100))
            c = actors[1].start("echo")
            c.send(41)
            assert await c.__anext__() == 42
            c.end()
            assert await c == 1
            with pytest.raises(libactor.RemoteError):
                await actors[1].start("fail", "x")
            actors[0].stop()
            info = await actors[0].exited()
            assert info.status == 0
    asyncio.run(main())


def test_asyncio_idle_loop_does_not_spin():
    async def main():
        async with libactor.Runtime() as rt:
            a = rt.spawn(program=WORKER)
            assert await a.start("add", 1, 2) == 3
            d = rt._driver
            runs = []
            orig = d.service

            def counted():
                runs.append(1)
                orig()
            d.loop.remove_reader(d.fd)
            d.loop.add_reader(d.fd, counted)
            await asyncio.sleep(0.3)
            # An idle actor: the loop's timers are far; no busy polling.
            assert len(runs) < 20, len(runs)
    asyncio.run(main())


def test_trio():
    trio = pytest.importorskip("trio")

    async def main():
        async with libactor.Runtime() as rt:
            a = rt.spawn(ACTORS, backend="subint", path=PATH)
            b = rt.spawn(program=WORKER)
            assert await a.start("add", 1, 2) == 3
            assert await b.start("add", 2, 2) == 4
            assert [x async for x in a.start("count", 10)] == list(range(10))
    trio.run(main)


def test_trio_close_never_leaves_the_driver_waiting_on_a_closed_fd():
    # aclose() frees the runtime (closing its fd) when the last actor is
    # gone; trio may run the driver's new wait on that fd after it, which
    # failed the whole run with TrioInternalError (EBADF) about once in 20
    # closes.  Many closes, each racing its driver.
    trio = pytest.importorskip("trio")

    async def main():
        for i in range(40):
            async with libactor.Runtime() as rt:
                a = rt.spawn(ACTORS, backend="subint", path=PATH)
                b = rt.spawn(program=WORKER)
                assert await a.start("add", i, 1) == i + 1
                assert await b.start("add", i, 2) == i + 2
                assert [x async for x in a.start("count", 3)] == [0, 1, 2]
    trio.run(main)


def test_awaiting_a_blocking_runtime_is_a_clear_error(rt):
    a = rt.spawn(program=WORKER)

    async def main():
        with pytest.raises(libactor.StateError, match="async with"):
            await a.start("add", 1, 2)
    asyncio.run(main())
    assert a.call("add", 1, 2) == 3
