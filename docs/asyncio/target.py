# Tiny asyncio target for out-of-process inspection tests.
# Usage: pythonX.Y target.py OUT.json
import asyncio, json, os, sys, time

OUT = sys.argv[1]


async def mid_sleep():
    await asyncio.sleep(3600)


async def outer_sleep():
    await mid_sleep()


async def take_lock(lock):
    async with lock:
        await asyncio.sleep(3600)


async def join(t):
    await t


async def unnamed(ev):
    await ev.wait()


async def blocker():
    time.sleep(20)
    await asyncio.sleep(0)


def chain(obj):
    out = []
    seen = 0
    while obj is not None and seen < 20:
        seen += 1
        out.append({"type": type(obj).__name__, "id": hex(id(obj)),
                    "name": getattr(obj, "__qualname__", None)
                    if type(obj).__name__ in ("coroutine", "generator") else None})
        if hasattr(obj, "cr_await"):
            obj = obj.cr_await
        elif hasattr(obj, "gi_yieldfrom"):
            obj = obj.gi_yieldfrom
        else:
            break
    return out


async def main():
    lock = asyncio.Lock()
    await lock.acquire()          # held by main forever -> "locker" blocks
    ev = asyncio.Event()
    t1 = asyncio.create_task(outer_sleep(), name="sleeper")
    t2 = asyncio.create_task(take_lock(lock), name="locker")
    t3 = asyncio.create_task(join(t1), name="joiner")
    t4 = asyncio.create_task(unnamed(ev))          # no name: lazy in 3.13?
    t5 = asyncio.create_task(join(t1), name="joiner2")   # 2nd waiter on t1 -> fut_callbacks list
    await asyncio.sleep(0.2)       # let everyone suspend
    truth = {"pid": os.getpid(), "version": sys.version.split()[0], "tasks": []}
    for t in (t1, t2, t3, t4, t5):
        coro = t.get_coro()
        truth["tasks"].append({
            "id": hex(id(t)),
            # do NOT call get_name() on t4 (it may materialise a lazy name)
            "name": t.get_name() if t is not t4 else None,
            "coro": hex(id(coro)),
            "coro_qualname": coro.__qualname__,
            "await_chain": chain(coro),
            "fut_waiter": hex(id(t._fut_waiter)) if t._fut_waiter is not None else None,
            "fut_waiter_type": type(t._fut_waiter).__name__,
        })
    truth["main_task"] = hex(id(asyncio.current_task()))
    with open(OUT + ".tmp", "w") as f:
        json.dump(truth, f, indent=1)
    os.rename(OUT + ".tmp", OUT)
    # "blocker": blocks the loop thread in time.sleep (no CPU) so that an
    # outside reader can observe current_tasks / an executing coroutine.
    # On 3.12+ it is created eagerly (runs synchronously inside create_task).
    if sys.version_info >= (3, 12):
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    asyncio.create_task(blocker(), name="blocker")
    asyncio.get_running_loop().set_task_factory(None)
    # main now waits (suspended) on the event; self-terminate after 10 min.
    try:
        await asyncio.wait_for(ev.wait(), 600)
    except asyncio.TimeoutError:
        pass


asyncio.run(main())
