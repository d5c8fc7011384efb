"""A target that has been running a while before pylens attaches (test/sampler/shapes.test.ts).

Before it prints `ready {...}` it churns: 20 short-lived threads started and joined (their
thread states freed and reused), modules imported, garbage allocated and collected,
functions defined and dropped. Then one daemon thread parks in `background -> hold` and
the main thread runs `serve -> handle`, busy, forever.
"""
import gc
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


def churn():
    import asyncio, decimal, email.parser, xml.dom.minidom  # noqa: F401
    junk = [{"k": [i] * 10} for i in range(20000)]
    for _ in range(20):
        t = threading.Thread(target=lambda: sum(range(10000)))
        t.start()
        t.join()
    for i in range(200):
        exec(f"def tmp_{i}(x):\n    return x + {i}\n", {})
    del junk
    gc.collect()


def hold():
    time.sleep(3600)  # @hold


def background():
    hold()  # @background


def handle(request):
    while True: request += 1  # @handle


def serve():
    handle(0)  # @serve


churn()
bg = threading.Thread(target=background, name="background", daemon=True)
bg.start()
doc = {
    "background": {"ident": bg.ident, "native": bg.native_id},
    "main": {"ident": threading.get_ident(), "native": threading.get_native_id()},
    "markers": _markers(),
}
print("ready " + json.dumps(doc), flush=True)
serve()  # @main
