"""A FastAPI service whose latency comes from a 2-connection "database pool" (an
asyncio.Semaphore around a 10 ms query), for record --async on a real framework
(test/sampler/asyncio-fastapi.test.ts). GET /item waits for the pool, then the query; it times
both itself. GET /truth returns those seconds so far. Needs Debian's python3-fastapi."""
import asyncio
import time

from fastapi import FastAPI

app = FastAPI()
pool = None
spent = {"pool": 0.0, "query": 0.0, "requests": 0}


@app.on_event("startup")
async def startup():
    global pool
    pool = asyncio.Semaphore(2)


async def query():
    await asyncio.sleep(0.01)


@app.get("/item")
async def get_item():
    t0 = time.perf_counter()
    async with pool:
        t1 = time.perf_counter()
        await query()
    t2 = time.perf_counter()
    spent["pool"] += t1 - t0
    spent["query"] += t2 - t1
    spent["requests"] += 1
    return {"ok": True}


@app.get("/truth")
def truth():
    return spent
