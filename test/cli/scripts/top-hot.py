"""Target for the `pylens top` tests: hot() burns CPU on the main thread (a quarter of it in
warm()) while a second thread waits (idle). With TOP_HOT_READY set it prints a line once
both run. argv: [seconds to run (default 60)] [exit code (default 0)]."""
import os
import sys
import threading
import time


def idle_wait(ev):
    ev.wait()


def warm():
    x = 0
    t = time.time()
    while time.time() - t < 0.01: x += 1  # noqa: E701 (one line: one row in top)
    return x


def hot():
    """about 3/4 of its time in its own loop, 1/4 in warm()"""
    x = 0
    t = time.time()
    while time.time() - t < 0.03: x += 1  # noqa: E701
    return x + warm()


def main(seconds):
    ev = threading.Event()
    threading.Thread(target=idle_wait, args=(ev,), name="idler", daemon=True).start()
    if os.environ.get("TOP_HOT_READY"):
        print("top-hot ready", flush=True)
    end = time.time() + seconds
    while time.time() < end:
        hot()


if __name__ == "__main__":
    try:
        main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
