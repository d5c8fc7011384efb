"""A target with a stack of a given depth (default 30 Python frames of descend()) spinning
at the bottom until killed, for the per-sample CPU and highest-rate parts of
bench/sampler-overhead.ts. Prints "ready <pid>" once at the bottom. stdlib only, 3.8+.
  python deep.py [DEPTH]"""
import os
import sys


def spin():
    x = 0
    while True:
        for i in range(10000):
            x += i


def descend(n):
    if n <= 1:
        print("ready", os.getpid(), flush=True)
        spin()
    return descend(n - 1)


descend(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
