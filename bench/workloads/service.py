"""A mostly idle service for bench/agent-cost.ts: 30 Python frames deep, it works WORK_MS
then sleeps until the next PERIOD_MS, forever (default 1 ms of every 100 ms: 1 % of a CPU,
like a lightly loaded web worker). Prints "ready <pid>" once at the bottom. stdlib only, 3.8+.
  python service.py [DEPTH] [WORK_MS] [PERIOD_MS]"""
import os
import sys
import time


def serve(work_s, period_s):
    nxt = time.monotonic()
    while True:
        end = time.monotonic() + work_s
        x = 0
        while time.monotonic() < end:
            for i in range(200):
                x += i
        nxt += period_s
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.monotonic()


def descend(n, work_s, period_s):
    if n <= 1:
        print("ready", os.getpid(), flush=True)
        serve(work_s, period_s)
    return descend(n - 1, work_s, period_s)


args = sys.argv[1:]
descend(int(args[0]) if args else 30, (float(args[1]) if len(args) > 1 else 1.0) / 1000, (float(args[2]) if len(args) > 2 else 100.0) / 1000)
