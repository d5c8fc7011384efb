"""A thread pool, mostly idle: N workers blocked on a queue, a few items of ~1 ms of work a
second, beside one busy thread (bench/sampler-threads.ts). Prints "ready", runs until killed.

    python pool.py [N]
"""
import queue
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
q = queue.Queue()


def worker():
    while True:
        q.get()
        s = 0
        for i in range(20000):
            s += i


def busy():
    x = 0
    while True:
        x += 1


for i in range(N):
    threading.Thread(target=worker, name=f"pool{i}", daemon=True).start()
threading.Thread(target=busy, name="busy", daemon=True).start()
print("ready", flush=True)
while True:
    q.put(1)
    time.sleep(0.02)
