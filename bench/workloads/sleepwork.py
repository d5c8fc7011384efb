"""CPU-attribution workload (issue 12, part 2): one thread loops over nap()
(time.sleep(0.01): almost no CPU), crunch() (about 6 ms of CPU) and brief() (about 2 ms).
On a machine with every CPU busy, a thread woken from the sleep waits in the run queue
while its Python frame is still the sleep call: a sampler that takes "runnable" for
"running" gives nap() a large share of CPU it never used.

Protocol (as shares.py): prints "ready <pid>" and loops; SIGUSR1 resets the counters (start
of the measured window); SIGUSR2 prints one JSON line and exits:
  {"total": <thread CPU s in the window>, "funcs": {"nap": s, "crunch": s, "brief": s}}
Each function's CPU is its calls in the window times its mean CPU per call, measured with
time.thread_time() around every 8th call only: a thread_time() syscall brings the kernel's
accounting up to date and so becomes where a busy machine preempts the thread, which would
pile samples up on the measuring line itself; CPU per call changes when the machine is busy
(a busy sibling hyperthread), so it is measured throughout, not once.
stdlib only, Python 3.8+.
Usage: python sleepwork.py [crunch_loops] [brief_loops] [nap_s]"""
import json
import os
import signal
import sys
import time

CRUNCH = int(sys.argv[1]) if len(sys.argv) > 1 else 120000
BRIEF = int(sys.argv[2]) if len(sys.argv) > 2 else 40000
NAP = float(sys.argv[3]) if len(sys.argv) > 3 else 0.01

calls = {"nap": 0, "crunch": 0, "brief": 0}
timed = {"nap": [0, 0.0], "crunch": [0, 0.0], "brief": [0, 0.0]}
window_start = [0.0]
done = [False]


def burn(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def nap():
    time.sleep(NAP)


def crunch():
    return burn(CRUNCH)


def brief():
    return burn(BRIEF)


def reset(*_):
    for k in calls:
        calls[k] = 0
        timed[k] = [0, 0.0]
    window_start[0] = time.thread_time()


def finish(*_):
    done[0] = True


signal.signal(signal.SIGUSR1, reset)
signal.signal(signal.SIGUSR2, finish)
reset()
print("ready", os.getpid(), flush=True)
FUNCS = (("nap", nap), ("crunch", crunch), ("brief", brief))
clock = time.thread_time
turn = 0
while not done[0]:
    turn += 1
    if turn % 8:
        nap()
        crunch()
        brief()
    else:
        for name, fn in FUNCS:
            t0 = clock()
            fn()
            t = timed[name]
            t[0] += 1
            t[1] += clock() - t0
    for name in calls:
        calls[name] += 1
spent = {k: calls[k] * timed[k][1] / max(timed[k][0], 1) for k in calls}
print(json.dumps({"total": time.thread_time() - window_start[0], "funcs": spent}), flush=True)
