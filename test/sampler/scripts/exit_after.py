"""A target that exits while pylens records it (test/sampler/shapes.test.ts).

python exit_after.py SECONDS: prints `ready`, then the main thread and a daemon thread
busy-loop; after SECONDS the main thread returns and the interpreter finalizes and exits
normally (status 0) while the daemon thread is still spinning.
"""
import sys
import threading
import time


def spin(until):
    while time.monotonic() < until: pass


end = time.monotonic() + float(sys.argv[1])
threading.Thread(target=spin, args=(end + 60,), daemon=True).start()
print("ready", flush=True)
spin(end)
