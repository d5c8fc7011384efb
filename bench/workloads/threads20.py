"""20 threads for bench/sampler-memory.ts, each in its own functions at a stack depth of
10–20, alternating between spinning (a loop in one of several leaf functions) and short
sleeps, so that the sampler sees many threads, changing leaves and lines, runnable and
idle states. Runs until killed. Prints "ready <pid>" once all threads are started.
stdlib only, Python 3.8+.   python threads20.py [THREADS]"""
import os
import sys
import threading
import time


def leaf_sum(n):
    x = 0
    for i in range(n):
        x += i
    return x


def leaf_str(n):
    return "".join(str(i) for i in range(n // 20))


def leaf_dict(n):
    d = {}
    for i in range(n // 4):
        d[i & 255] = i
    return len(d)


def leaf_sleep(n):
    time.sleep(0.002)
    return n


LEAVES = [leaf_sum, leaf_str, leaf_dict, leaf_sleep]


def make_level(k):
    # distinct function objects (and code names) per level: level_0 … level_19
    def level(depth, idx, rounds):
        if depth <= 0:
            f = LEAVES[(idx + rounds) % len(LEAVES)]
            return f(2000 + 100 * idx)
        return LEVELS[(idx + depth) % len(LEVELS)](depth - 1, idx, rounds)

    # the sampler reads names from the code object: give each level its own
    name = "level_%d" % k
    kw = {"co_name": name}
    if hasattr(level.__code__, "co_qualname"):
        kw["co_qualname"] = name
    level.__code__ = level.__code__.replace(**kw)
    level.__name__ = level.__qualname__ = name
    return level


LEVELS = [make_level(k) for k in range(20)]


def worker(idx):
    depth = 10 + idx % 11  # 10..20
    rounds = 0
    while True:
        LEVELS[idx % len(LEVELS)](depth, idx, rounds)
        rounds += 1
        if rounds % 7 == 0:
            time.sleep(0.005)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    for i in range(n):
        threading.Thread(target=worker, args=(i,), name="worker-%d" % i, daemon=True).start()
    print("ready", os.getpid(), flush=True)
    while True:
        time.sleep(1)


main()
