"""Two call chains that never meet, taken in turn as fast as they go: a(3) and b(8) recurse to
the same leaf(). A stack with both a() and b() in it, or with a() or b() at another depth
above leaf(), never existed: a walk that mixed two moments of the thread (frames reused
while the picture was copied). For bench/sampler-cuts.ts and the trust tests. Prints
"apart.py ready <pid>" once running. stdlib only, 3.8+.
  python apart.py [SECONDS]"""
import os
import sys
import time


def leaf():
    x = 0
    for i in range(3000):
        x += i


def a(n):
    if n:
        return a(n - 1)
    leaf()


def b(n):
    if n:
        return b(n - 1)
    leaf()


def main(seconds):
    print("apart.py ready", os.getpid(), flush=True)
    end = time.time() + seconds
    while time.time() < end:
        a(3)
        b(8)


main(float(sys.argv[1]) if len(sys.argv) > 1 else 3600)
