"""asyncio tasks of known shapes for `dump --async` (test/sampler/asyncio.test.ts): a sleeper,
a task blocked on a held asyncio.Lock, a parent awaiting its child task, and main. Prints
one JSON line — every live task's name and coroutine as the program sees them — then waits.
stdlib only, Python 3.8+."""
import asyncio
import json


async def sleeper():
    await asyncio.sleep(3600)


async def locker(lock):
    async with lock:
        pass


async def child():
    await asyncio.sleep(3600)


async def parent():
    await asyncio.ensure_future(child())


async def main():
    lock = asyncio.Lock()
    await lock.acquire()
    tasks = [asyncio.ensure_future(sleeper()), asyncio.ensure_future(locker(lock)), asyncio.ensure_future(parent())]
    tasks[0].set_name("sleeper-task")
    tasks[1].set_name("locker-task")
    await asyncio.sleep(0.2)
    seen = {t.get_name(): t.get_coro().__qualname__ for t in asyncio.all_tasks()}
    # printed by the loop once main is suspended in its last await (a reader then sees it there)
    asyncio.get_event_loop().call_soon(lambda: print(json.dumps(seen), flush=True))
    await asyncio.sleep(3600)


asyncio.run(main())
