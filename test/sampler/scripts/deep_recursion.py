"""Deep recursion for pylens' live walker tests (test/sampler/shapes.test.ts).

python deep_recursion.py DEPTH: recurse(DEPTH) calls itself DEPTH times (DEPTH + 1
recurse frames under <module>), prints `ready {"depth": .., "markers": ..}` from the
innermost frame, then busy-loops there forever.
"""
import json
import sys

TAG = "#" + " @"
sys.setrecursionlimit(5000)


def _markers():
    out = {}
    with open(__file__, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if TAG in line:
                out[line.rsplit(TAG, 1)[1].strip()] = i
    return out


def recurse(n):
    if n:
        return recurse(n - 1)  # @recurse
    depth = 0
    f = sys._getframe()
    while f is not None:
        depth += 1
        f = f.f_back
    print("ready " + json.dumps({"depth": depth, "markers": _markers()}), flush=True)
    while True: pass  # @spin


recurse(int(sys.argv[1]))  # @module
