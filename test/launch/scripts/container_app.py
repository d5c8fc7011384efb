"""
The target of test/launch/namespaces.test.ts, run inside a PID and mount namespace of its
own (a container without Docker): `container_app.py [SECONDS]`.

The main thread spins in leaf_spin under middle_layer; a thread named "sleepy" sleeps in
sleeper_leaf under sleeper_outer. Prints "ready PID" (its PID in its own namespace) once
both run; runs SECONDS seconds, or until killed when none are given.
"""
import os
import sys
import threading
import time


def leaf_spin(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def middle_layer(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        leaf_spin(20000)


def sleeper_leaf():
    while True:
        time.sleep(0.05)


def sleeper_outer():
    sleeper_leaf()


threading.Thread(target=sleeper_outer, name="sleepy", daemon=True).start()
print("ready", os.getpid(), flush=True)
middle_layer(float(sys.argv[1]) if len(sys.argv) > 1 else float("inf"))
