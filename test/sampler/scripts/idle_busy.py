"""Idle and busy threads for pylens' live dump/sampler tests (test/sampler/shapes.test.ts).

Three workers: `sleeper` in time.sleep, `locker` blocked on threading.Lock().acquire()
of a lock the main thread holds, `spinner` busy-looping (the only thread that wants the
GIL). Once all three are parked the main thread prints
    ready {"sleeper": {"ident", "native"}, "locker": .., "spinner": .., "main": .., "markers": ..}
and sleeps in time.sleep too.
"""
import json
import sys
import threading
import time

TAG = "#" + " @"


def _markers():
    out = {}
    with open(__file__, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if TAG in line:
                out[line.rsplit(TAG, 1)[1].strip()] = i
    return out


MARKERS = _markers()
LOCK = threading.Lock()
LOCK.acquire()


def sleeper():
    time.sleep(3600)  # @sleeper


def locker():
    LOCK.acquire()  # @locker


def spinner():
    while True: pass  # @spinner


def main():
    threads = {}
    for target in (sleeper, locker, spinner):
        t = threading.Thread(target=target, name=target.__name__, daemon=True)
        t.start()
        threads[target.__name__] = t
    deadline = time.monotonic() + 10
    while True:
        frames = sys._current_frames()
        parked = all(
            t.ident in frames and frames[t.ident].f_code.co_name == name and frames[t.ident].f_lineno == MARKERS[name]
            for name, t in threads.items()
        )
        del frames
        if parked:
            break
        if time.monotonic() > deadline:
            raise SystemExit("workers did not settle")
        time.sleep(0.005)
    doc = {name: {"ident": t.ident, "native": t.native_id} for name, t in threads.items()}
    doc["main"] = {"ident": threading.get_ident(), "native": threading.get_native_id()}
    doc["markers"] = MARKERS
    print("ready " + json.dumps(doc), flush=True)
    while True:
        time.sleep(3600)  # @main


main()
