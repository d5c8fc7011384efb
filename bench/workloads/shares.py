"""Accuracy workload for bench/sampler-accuracy.ts: one thread, four functions with known
shares of the CPU work (10/20/30/40 % of the calls, each call the same unit of work), in
random order so that no sampling rate can alias with a cycle. A unit is long (100 000
loop turns, a few ms): thread_time() is a syscall, and when the sampler has to share a CPU
with the target the scheduler tends to switch the target out at a syscall exit, so a
sampler on the same CPU sees those call sites far too often (the bench's "other" column and
preemption count show it); fewer syscalls per second keep that artefact small.

Protocol: prints "ready <pid>" and spins; SIGUSR1 resets the counters (start of the
measured window); SIGUSR2 prints one JSON line and exits:
  {"total": <thread CPU s in the window>, "funcs": {"f10": <thread CPU s inside f10>, ...}}
Thread CPU is time.thread_time() around every call. stdlib only, Python 3.8+.
Usage: python shares.py [unit_loops]"""
import json
import random
import signal
import sys
import os
import time

UNIT = int(sys.argv[1]) if len(sys.argv) > 1 else 100000

spent = {"f10": 0.0, "f20": 0.0, "f30": 0.0, "f40": 0.0}
window_start = [time.thread_time()]
done = [False]


def burn(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def f10(n):
    return burn(n)


def f20(n):
    return burn(n)


def f30(n):
    return burn(n)


def f40(n):
    return burn(n)


def on_reset(signum, frame):
    for k in spent:
        spent[k] = 0.0
    window_start[0] = time.thread_time()


def on_stop(signum, frame):
    done[0] = True


def main():
    signal.signal(signal.SIGUSR1, on_reset)
    signal.signal(signal.SIGUSR2, on_stop)
    table = [f10] * 1 + [f20] * 2 + [f30] * 3 + [f40] * 4
    names = [f.__name__ for f in table]
    rnd = random.Random(12345).random
    tt = time.thread_time
    print("ready", os.getpid(), flush=True)
    while not done[0]:
        k = int(rnd() * 10)
        t0 = tt()
        table[k](UNIT)
        t1 = tt()
        # a reset (SIGUSR1) during the call: count only the part after it
        spent[names[k]] += t1 - max(t0, window_start[0])
    total = time.thread_time() - window_start[0]
    print(json.dumps({"total": total, "funcs": spent}), flush=True)


main()
