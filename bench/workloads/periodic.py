"""Periodic work for the aliasing check (issue 12, part 3): a() and b() alternate, each
burning H ms of CPU (by the thread's own clock), forever or for S seconds. A sampler with a
fixed period locks onto the cycle and sees one half far more often than the other; the
truth is 50/50. Prints "ready" when the loop starts. stdlib only, Python 3.8+.
Usage: python periodic.py [H_ms=5] [seconds]"""
import sys
import time

HALF = float(sys.argv[1]) / 1000 if len(sys.argv) > 1 else 0.005
END = time.monotonic() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)


def spin(seconds):
    # the thread's own CPU clock: each half is H ms on a CPU, however loaded the machine (a
    # wall clock gave the half that was preempted more often less CPU, beyond sampling noise)
    clock = time.thread_time
    end = clock() + seconds
    while clock() < end:
        pass


def a():
    spin(HALF)


def b():
    spin(HALF)


print("ready", flush=True)
while time.monotonic() < END:
    a()
    b()
