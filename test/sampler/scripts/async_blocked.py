"""An event loop blocked by synchronous work, for record --async (test/sampler/asyncio.test.ts):
task "cruncher" computes for ~60 ms at a time without awaiting (the loop is blocked), then
sleeps 20 ms; task "napper" sleeps. Prints "ready", runs until killed. stdlib only, 3.8+."""
import asyncio
import time


def crunch(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += sum(range(200))
    return n


async def cruncher():
    while True:
        crunch(0.06)
        await asyncio.sleep(0.02)


async def napper():
    while True:
        await asyncio.sleep(0.05)


async def main():
    a = asyncio.ensure_future(cruncher())
    a.set_name("cruncher")
    b = asyncio.ensure_future(napper())
    b.set_name("napper")
    await asyncio.sleep(0.1)
    print("ready", flush=True)
    await asyncio.gather(a, b)


asyncio.run(main())
