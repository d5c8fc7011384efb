import time
T0 = time.time()  # the program's first line: everything from here on must be recorded
"""
A program whose interesting part is its first 100 ms, for the launch tests and
bench/launch-gap.ts: `first.py MODE RESULT [AFTER_S]`.

MODE (what `first_100ms` does from the first line on):
- burn: 100 ms of CPU in pure Python
- zlib: 100 ms of CPU in zlib.compress (native frames under first_100ms)
- wait: a 100 ms wait on a held threading.Lock (off the CPU)
- io:   O_DIRECT|O_DSYNC 4 KiB writes to a file next to RESULT for 100 ms (block I/O)
then `afterwards` burns AFTER_S (default 0.3) seconds of CPU, and RESULT gets
{"pid", "t0", "t1", "end", "writes"} (times from time.time()).
"""
import json
import os
import sys

MODE = sys.argv[1]
RESULT = sys.argv[2]
AFTER_S = float(sys.argv[3]) if len(sys.argv) > 3 else 0.3
writes = 0


def first_100ms():
    global writes
    if MODE == "burn":
        # inline, not a call: perf on 3.12 names only the innermost Python function
        # (the clock is read every 2,000 iterations, so nearly all the time is in Python
        # code: perf's unwinding of the clock's system call would not reach the Python frame)
        end = time.thread_time() + 0.1
        x = 0
        while time.thread_time() < end:
            for i in range(2000):
                x += i
    elif MODE == "zlib":
        import zlib
        data = os.urandom(1 << 16) * 4
        end = time.thread_time() + 0.1
        while time.thread_time() < end:
            zlib.compress(data, 9)
    elif MODE == "wait":
        import threading
        lock = threading.Lock()
        lock.acquire()
        lock.acquire(timeout=0.1)
    elif MODE == "io":
        import mmap
        buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
        buf.write(b"x" * 4096)
        fd = os.open(RESULT + ".data", os.O_WRONLY | os.O_CREAT | os.O_DIRECT | os.O_DSYNC, 0o644)
        end = time.monotonic() + 0.1
        try:
            while time.monotonic() < end:
                os.pwrite(fd, buf, 4096 * (writes % 256))
                writes += 1
        finally:
            os.close(fd)
            os.unlink(RESULT + ".data")
    else:
        raise SystemExit("unknown mode " + MODE)


def afterwards(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i


first_100ms()
T1 = time.time()
afterwards(AFTER_S)
with open(RESULT, "w") as f:
    json.dump({"pid": os.getpid(), "t0": T0, "t1": T1, "end": time.time(), "writes": writes}, f)
