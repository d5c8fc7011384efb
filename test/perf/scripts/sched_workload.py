"""Two threads with known scheduler behaviour, each measuring itself.

  sleeper: time.sleep(SLEEP) N times; measures the wall time spent inside sleep()
           (which includes re-taking the GIL) and its own CPU time.
  spinner: spins on the CPU for SPIN seconds of wall time; measures its CPU time
           (time.thread_time) and wall time.

Usage: sched_workload.py OUT.json [N=40] [SLEEP=0.05] [SPIN=2.0] [--wait-stdin]
Writes OUT.json with the thread ids (threading.get_native_id) and the timings.
With --wait-stdin it prints "ready PID" and waits for a line on stdin before starting
(for attach tests), then stays alive until stdin closes.
"""
import json
import sys
import threading
import time

out = sys.argv[1]
pos = [a for a in sys.argv[2:] if not a.startswith("--")]
N = int(pos[0]) if len(pos) > 0 else 40
SLEEP = float(pos[1]) if len(pos) > 1 else 0.05
SPIN = float(pos[2]) if len(pos) > 2 else 2.0
wait_stdin = "--wait-stdin" in sys.argv

result = {}


def sleeper():
    result["sleeper_tid"] = threading.get_native_id()
    slept = 0.0
    c0 = time.thread_time()
    w0 = time.perf_counter()
    for _ in range(N):
        t = time.perf_counter()
        time.sleep(SLEEP)
        slept += time.perf_counter() - t
    result["sleeper"] = {"slept": slept, "cpu": time.thread_time() - c0, "wall": time.perf_counter() - w0}


def spinner():
    result["spinner_tid"] = threading.get_native_id()
    c0 = time.thread_time()
    w0 = time.perf_counter()
    x = 0
    while time.perf_counter() - w0 < SPIN:
        for i in range(2000):
            x += i
    result["spinner"] = {"cpu": time.thread_time() - c0, "wall": time.perf_counter() - w0}


if wait_stdin:
    import os

    print(f"ready {os.getpid()}", flush=True)
    sys.stdin.readline()
result["main_tid"] = threading.get_native_id()
threads = [threading.Thread(target=sleeper, name="sleeper"), threading.Thread(target=spinner, name="spinner")]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(out, "w") as f:
    json.dump(result, f)
print("done", flush=True)
if wait_stdin:
    sys.stdin.read()
