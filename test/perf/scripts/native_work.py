"""
Workload for test/perf/native.test.ts: rounds of four phases of different lengths, each in
its own function —
zlib.compress (compress_loop), hashlib.sha256 (hash_loop), a C extension's spin
(spin_loop) and pure Python (python_loop). It measures the time spent inside the C calls
itself and prints it as JSON when done.

usage: native_work.py EXTENSION.so GO_FILE ROUNDS
Waits (sleeping) until GO_FILE exists, so that only the measured part runs while recorded.
"""
import hashlib
import importlib.util
import json
import os
import sys
import time
import zlib

ext_path, go_file, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = importlib.util.spec_from_file_location("pylens_native_spin", ext_path)
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)

rng = os.urandom(1 << 16)
# compressible but not trivially: random blocks repeated at distances deflate's window misses
to_compress = b"".join(rng[i : i + 4096] + bytes(range(256)) * 4 for i in range(0, len(rng), 4096)) * 6
to_hash = os.urandom(1 << 22)
clock = time.perf_counter


def compress_loop():
    inside = 0.0
    end = clock() + 0.3
    while clock() < end:
        t = clock()
        zlib.compress(to_compress, 6)
        inside += clock() - t
    return inside


def hash_loop():
    inside = 0.0
    end = clock() + 0.15
    while clock() < end:
        t = clock()
        hashlib.sha256(to_hash).digest()
        inside += clock() - t
    return inside


def spin_loop():
    inside = 0.0
    end = clock() + 0.22
    while clock() < end:
        t = clock()
        ext.spin(0.01)
        inside += clock() - t
    return inside


def python_loop():
    end = clock() + 0.18
    n = 0
    while clock() < end:
        for i in range(2000):
            n += i * i % 7
    return n


def run():
    inside = {"compress": 0.0, "hash": 0.0, "spin": 0.0}
    start = clock()
    for _ in range(rounds):
        inside["compress"] += compress_loop()
        inside["hash"] += hash_loop()
        inside["spin"] += spin_loop()
        python_loop()
    return inside, clock() - start


print("ready", flush=True)
while not os.path.exists(go_file):
    time.sleep(0.005)
inside, total = run()
print(json.dumps({"inside": inside, "total": total}), flush=True)
