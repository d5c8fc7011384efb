"""Known off-CPU time for `pylens offcpu` tests (stdlib, Python 3.8+).

    offcpu_workload.py waits GO_FILE RESULT_FILE DATA_DIR SECONDS
    offcpu_workload.py gil   GO_FILE RESULT_FILE SECONDS
    offcpu_workload.py mixed GO_FILE RESULT_FILE SECONDS

Prints "ready" once its threads exist, then waits (outside the measured functions) until
GO_FILE exists, so a profiler can attach first. Each measured function runs in its own
thread and measures its own off-CPU time: wall time minus the thread's CPU time over the
function's loop (time.thread_time). RESULT_FILE gets {function: off-CPU ns} as JSON.

waits: sleep_a_lot (time.sleep), wait_for_lock (a threading.Lock that hold_the_lock keeps
for 40 ms at a time), read_socket (recv from slow_peer, which answers after 30 ms),
write_and_fsync (writes + os.fsync in DATA_DIR).
gil: spin_a and spin_b, two CPU-bound threads taking turns with the GIL.
mixed: burn_and_sleep, one thread alternating 40 ms of computing and 40 ms of sleep.
"""
import json
import os
import socket
import sys
import threading
import time

mode = sys.argv[1]
go_file, result_file = sys.argv[2], sys.argv[3]
results = {}
results_lock = threading.Lock()


def measured(fn):
    def run(*args):
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        fn(*args)
        w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        with results_lock:
            results[fn.__name__] = {"offcpu_ns": (w1 - w0) - (c1 - c0), "wall_ns": w1 - w0, "cpu_ns": c1 - c0}

    run.__name__ = fn.__name__
    return run


def until(deadline):
    return time.monotonic() < deadline


# ---------------------------------------------------------------------------------------
# waits

def sleep_a_lot(deadline):
    while until(deadline):
        time.sleep(0.05)


lock = threading.Lock()


def hold_the_lock(deadline):
    while until(deadline + 0.1):
        with lock:
            time.sleep(0.04)
        time.sleep(0.002)


def wait_for_lock(deadline):
    time.sleep(0.001)
    while until(deadline):
        lock.acquire()
        lock.release()
        time.sleep(0)  # let the holder take it again


def slow_peer(server, deadline):
    conn, _ = server.accept()
    with conn:
        while True:
            req = conn.recv(16)
            if not req:
                return
            time.sleep(0.03)
            conn.sendall(b"x" * 16)


def read_socket(port, deadline):
    with socket.create_connection(("127.0.0.1", port)) as s:
        while until(deadline):
            s.sendall(b"q" * 16)
            got = 0
            while got < 16:
                got += len(s.recv(16 - got))


def write_and_fsync(data_dir, deadline):
    path = os.path.join(data_dir, "offcpu_fsync.dat")
    block = os.urandom(256 * 1024)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        n = 0
        while until(deadline):
            os.write(fd, block)
            os.fsync(fd)
            n += 1
            if n % 16 == 0:
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)


# ---------------------------------------------------------------------------------------
# GIL

# the loop in each function itself: the leaf Python frame is the function measured

def spin_a(deadline):
    x = 0
    while until(deadline):
        for i in range(10000):
            x += i * i
    return x


def spin_b(deadline):
    x = 0
    while until(deadline):
        for i in range(10000):
            x += i * i
    return x


def burn_and_sleep(deadline):
    x = 0
    while until(deadline):
        end = time.thread_time() + 0.04
        while time.thread_time() < end:
            for i in range(1000):
                x += i * i
        time.sleep(0.04)
    return x


def wait_for_go():
    print("ready", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.01)


def main():
    started = threading.Event()
    jobs = []
    if mode == "waits":
        data_dir, seconds = sys.argv[4], float(sys.argv[5])
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        jobs = [
            ("sleeper", measured(sleep_a_lot), ()),
            ("holder", hold_the_lock, ()),
            ("waiter", measured(wait_for_lock), ()),
            ("peer", slow_peer, (server,)),
            ("reader", measured(read_socket), (port,)),
            ("writer", measured(write_and_fsync), (data_dir,)),
        ]
    elif mode == "gil":
        seconds = float(sys.argv[4])
        jobs = [("spinner-a", measured(spin_a), ()), ("spinner-b", measured(spin_b), ())]
    else:
        seconds = float(sys.argv[4])
        jobs = [("mixed", measured(burn_and_sleep), ())]
    box = {}

    def body(fn, args):
        started.wait()
        fn(*args, box["deadline"])

    threads = [threading.Thread(target=body, args=(fn, args), name=name) for name, fn, args in jobs]
    for t in threads:
        t.start()
    wait_for_go()
    box["deadline"] = time.monotonic() + seconds
    started.set()
    for t in threads:
        t.join()
    with open(result_file, "w") as f:
        json.dump(results, f)


main()
