"""asyncio load for bench/async-accuracy.ts and the asyncio accuracy tests: W workers, each
looping over three awaited call sites -- a sleep (site_sleep), a one-slot semaphore shared by
four workers and held for 1-4 ms (site_sem), a reply queue its own server task answers after
2-15 ms (site_queue) -- and a churner that starts short-lived tasks at a high rate (churn_task: one sleep, then done).

The truth is measured in-process: perf_counter around each `await site_*()` in the workers,
summed per site. After SECONDS it writes {"sites": {name: seconds}, "churned": n} as JSON to
OUT and exits. Prints "ready" once the workers run.
Usage: python async_sites.py SECONDS OUT [WORKERS]. stdlib only, Python 3.8+."""
import asyncio
import json
import random
import sys
import time

SECONDS = float(sys.argv[1])
OUT = sys.argv[2]
WORKERS = int(sys.argv[3]) if len(sys.argv) > 3 else 20
spent = {"site_sleep": 0.0, "site_sem": 0.0, "site_queue": 0.0}
churned = 0


async def site_sleep():
    await asyncio.sleep(random.uniform(0.002, 0.02))


async def site_sem(sem):
    async with sem:
        await asyncio.sleep(random.uniform(0.001, 0.004))


async def site_queue(requests, replies):
    requests.put_nowait(1)
    return await replies.get()


async def server(requests, replies):
    """answers each request after 2-15 ms"""
    while True:
        await requests.get()
        await asyncio.sleep(random.uniform(0.002, 0.015))
        replies.put_nowait(1)


async def worker(sem, requests, replies):
    while True:
        for name, site, args in (("site_sleep", site_sleep, ()), ("site_sem", site_sem, (sem,)), ("site_queue", site_queue, (requests, replies))):
            t0 = time.perf_counter()
            await site(*args)
            spent[name] += time.perf_counter() - t0


async def churn_task():
    await asyncio.sleep(random.uniform(0.0005, 0.003))


async def churner():
    global churned
    while True:
        for _ in range(10):
            asyncio.ensure_future(churn_task())
            churned += 1
        await asyncio.sleep(0.002)


async def main():
    loop = asyncio.get_event_loop()
    tasks = []
    for i in range(WORKERS):
        if i % 4 == 0:
            sem = asyncio.Semaphore(1)  # one slot for each four workers
        requests, replies = asyncio.Queue(), asyncio.Queue()
        tasks.append(loop.create_task(worker(sem, requests, replies)))
        tasks.append(loop.create_task(server(requests, replies)))
    tasks.append(loop.create_task(churner()))
    print("ready", flush=True)
    await asyncio.sleep(SECONDS)
    with open(OUT, "w") as f:
        json.dump({"sites": spent, "churned": churned}, f)
    for t in tasks:
        t.cancel()


asyncio.run(main())
