"""asyncio shapes for record/dump --async (test/sampler/asyncio.test.ts): nested gather, a
TaskGroup (3.11+), a wait_for timeout that keeps firing and a task cancelled over and over,
and a second thread running its own loop. Prints "ready", runs until killed. stdlib, 3.8+."""
import asyncio
import sys
import threading


async def leaf(d):
    await asyncio.sleep(d)


async def branch():
    await asyncio.gather(leaf(3600), leaf(3600))


async def gatherer():
    await asyncio.gather(branch(), leaf(3600))


async def grouped():
    async with asyncio.TaskGroup() as tg:
        tg.create_task(leaf(3600), name="in-group-1")
        tg.create_task(leaf(3600), name="in-group-2")


async def timeouts():
    while True:
        try:
            await asyncio.wait_for(leaf(0.05), 0.01)
        except asyncio.TimeoutError:
            pass


async def cancelled():
    while True:
        t = asyncio.ensure_future(leaf(1))
        await asyncio.sleep(0.005)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass


async def in_thread():
    await asyncio.sleep(3600)


def thread_main():
    asyncio.run(in_thread())


async def main():
    threading.Thread(target=thread_main, name="loop-thread", daemon=True).start()
    tasks = [asyncio.ensure_future(gatherer()), asyncio.ensure_future(timeouts()), asyncio.ensure_future(cancelled())]
    if sys.version_info >= (3, 11):
        tasks.append(asyncio.ensure_future(grouped()))
    await asyncio.sleep(0.3)
    print("ready", flush=True)
    await asyncio.gather(*tasks)


asyncio.run(main())
