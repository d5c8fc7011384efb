"""
Workload for test/perf/symbols.test.ts: work done mostly inside the interpreter's own C code
(object allocation, dicts, str, json's encoder calling back into it), where a stripped
interpreter's frames show as unknown addresses. Runs for SECONDS (default 2) of CPU.

usage: interp_work.py [SECONDS]
"""
import json
import sys
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def strings():
    s = 0
    for i in range(20000):
        s += len(str(i) * 3) + len(json.dumps({"a": i, "b": [i, i]}))
    return s


def main(secs):
    end = time.process_time() + secs
    while time.process_time() < end:
        fib(18)
        strings()
        sorted(range(20000), key=lambda x: -x)


main(float(sys.argv[1]) if len(sys.argv) > 1 else 2)
