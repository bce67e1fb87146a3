"""asyncio: the runtime's loop runs inside the asyncio loop (its fd is an
add_reader, its timers a call_later); 20 actors called concurrently."""
import asyncio

import _where
import libactor


async def main():
    async with libactor.Runtime() as rt:
        actors = [rt.spawn("pyworker:main", backend="subint",
                           path=[_where.EXAMPLES]) for _ in range(10)]
        actors += [rt.spawn(program=_where.WORKER) for _ in range(10)]
        sums = await asyncio.gather(*(a.start("add", i, i)
                                      for i, a in enumerate(actors)))
        print("sums:", sums)
        print("squares:", [x async for x in actors[0].start("squares", 6)])

asyncio.run(main())
