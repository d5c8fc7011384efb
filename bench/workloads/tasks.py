"""asyncio load for bench/async-cost.ts: N tasks, each a chain of three coroutines that sleeps a
random 10-100 ms, does a little work and sleeps again, forever (tasks wake ~20 times a second
each, so chains change between samples). Prints "ready" once all are started.
Usage: python tasks.py [N]. stdlib only, Python 3.8+."""
import asyncio
import random
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


async def leaf():
    await asyncio.sleep(random.uniform(0.01, 0.1))
    return sum(range(50))


async def middle():
    return await leaf()


async def worker():
    while True:
        await middle()


async def main():
    tasks = [asyncio.ensure_future(worker()) for _ in range(N)]
    await asyncio.sleep(0.5)
    print("ready", flush=True)
    await asyncio.gather(*tasks)


asyncio.run(main())
