"""Workloads with known off-CPU time for the eBPF capture tests (stdlib only).

Usage: capture_workload.py MODE. Prints {"pid": ...} and waits for a line on stdin (the
recording is attached by then), runs MODE, prints one JSON line with its own timing of
each worker thread, then waits for stdin to close before exiting.

Modes:
  sleep  a thread calls time.sleep(0.05) 20 times; reports the time spent in the calls and
         how many of them blocked (its voluntary context switches went up)
  lock   a thread blocks on a threading.Lock held 3 x 0.3 s by the main thread; reports
         the time spent in acquire()
  gil    two CPU-bound threads for about 1.5 s: each waits for the GIL the other holds
"""
import json
import sys
import threading
import time

mode = sys.argv[1]
print(json.dumps({"pid": __import__("os").getpid()}), flush=True)
sys.stdin.readline()

result = {"mode": mode, "threads": {}}


def record(name, **kw):
    result["threads"][name] = dict(tid=threading.get_native_id(), **kw)


def voluntary_switches():
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return -1


def sleeper():
    total = 0.0
    blocked = 0
    for _ in range(20):
        v0 = voluntary_switches()
        t0 = time.monotonic()
        time.sleep(0.05)
        total += time.monotonic() - t0
        # a sleep whose deadline passed while the thread was preempted on its way into
        # clock_nanosleep returns at once without blocking (a loaded machine)
        if voluntary_switches() > v0:
            blocked += 1
    record("sleeper", sleep_s=total, blocked_sleeps=blocked)


def locker():
    lock = threading.Lock()
    lock.acquire()
    waited = [0.0]

    def waiter():
        for _ in range(3):
            t0 = time.monotonic()
            lock.acquire()
            waited[0] += time.monotonic() - t0
            lock.release()
            time.sleep(0.02)
        record("waiter", wait_s=waited[0])

    t = threading.Thread(target=waiter, name="waiter")
    t.start()
    for i in range(3):
        time.sleep(0.3)
        lock.release()
        time.sleep(0.005)
        # take it back once the waiter got it and let it go
        while not lock.acquire(timeout=0.001):
            pass
    lock.release()
    t.join()


def spin(name, seconds):
    t0 = time.monotonic()
    c0 = time.thread_time()
    n = 0
    while time.monotonic() - t0 < seconds:
        n += 1
    record(name, wall_s=time.monotonic() - t0, cpu_s=time.thread_time() - c0, loops=n)


if mode == "sleep":
    t = threading.Thread(target=sleeper, name="sleeper")
    t.start()
    t.join()
elif mode == "lock":
    locker()
elif mode == "gil":
    ts = [threading.Thread(target=spin, args=(f"spin{i}", 1.5), name=f"spin{i}") for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
else:
    raise SystemExit(f"unknown mode {mode}")

print(json.dumps(result), flush=True)
sys.stdin.read()
