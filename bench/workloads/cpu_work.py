"""CPU-bound workload of fixed work with a known hot function, for bench/sampler-overhead.ts
and bench/sampler-peers.ts. stdlib only, Python 3.8+.

  python cpu_work.py ROUNDS [--wait] [--delay S]

Each round calls hot() (two thirds of the loop turns) and cold() (one third) once; both
are plain loops of a few ms, called from work(). --wait: print "ready <pid>" and wait for
a line on stdin before starting (so that a sampler can attach first). --delay: sleep S
seconds first (lets a profiler that launches the command get going). At the end prints one
JSON line: {"wall": s of the work, "cpu": thread CPU s of the work, "hot": thread CPU s in
hot(), "rounds": ROUNDS}. Only the work is timed, not start-up.
  python cpu_work.py --calibrate   prints the wall seconds of one round (median of 15)"""
import json
import os
import sys
import time

HOT = 60000
COLD = 30000


def hot(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def cold(n):
    x = 0
    for i in range(n):
        x ^= i
    return x


def work(rounds):
    tt = time.thread_time
    in_hot = 0.0
    for _ in range(rounds):
        t0 = tt()
        hot(HOT)
        in_hot += tt() - t0
        cold(COLD)
    return in_hot


def main():
    args = sys.argv[1:]
    if args and args[0] == "--calibrate":
        times = []
        for _ in range(15):
            t = time.perf_counter()
            work(1)
            times.append(time.perf_counter() - t)
        print(sorted(times)[len(times) // 2])
        return
    rounds = int(args[0])
    if "--delay" in args:
        time.sleep(float(args[args.index("--delay") + 1]))
    if "--wait" in args:
        print("ready", os.getpid(), flush=True)
        sys.stdin.readline()
    c0 = time.thread_time()
    t0 = time.perf_counter()
    in_hot = work(rounds)
    wall = time.perf_counter() - t0
    cpu = time.thread_time() - c0
    print(json.dumps({"wall": wall, "cpu": cpu, "hot": in_hot, "rounds": rounds}), flush=True)


main()
