"""Generator-heavy, frame-churning CPU work: the shape of JSON encoders and of
pydantic's model iteration. Nested generator expressions consumed by "".join / dict /
sum, generators driven from deep call chains, a recursive encoder yielding chunks.
Every Python stack of the main thread is rooted at <module>; of the worker threads at
threading's _bootstrap. Usage: churn.py [seconds] [threads]"""
import sys
import threading
import time


def encode(obj):
    if isinstance(obj, dict):
        return "{" + ",".join(k + ":" + encode(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(encode(v) for v in obj) + "]"
    return str(obj)


def chunks(obj, depth=0):
    if isinstance(obj, dict):
        yield "{"
        for k, v in obj.items():
            yield k
            yield from chunks(v, depth + 1)
        yield "}"
    elif isinstance(obj, list):
        for v in obj:
            yield from chunks(v, depth + 1)
    else:
        yield str(obj)


def model_items(n):
    return dict((f"f{i}", sum(j * j for j in range(i % 7))) for i in range(n))


def deep(n, fn):
    if n == 0:
        return fn()
    return deep(n - 1, fn)


DOC = {"a": [1, 2, {"b": [3, 4, 5], "c": {"d": list(range(8))}}], "e": {"f": [{"g": i} for i in range(6)]}}


def work_once():
    deep(12, lambda: encode(DOC))
    deep(6, lambda: "".join(chunks(DOC)))
    deep(3, lambda: model_items(40))
    sorted(x for x in (y * 3 % 17 for y in range(60)) if x)


def run(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        work_once()
        n += 1
    return n


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    workers = [threading.Thread(target=run, args=(seconds,), name=f"churn-{i}") for i in range(threads)]
    for t in workers:
        t.start()
    print("ready", flush=True)
    run(seconds)
    for t in workers:
        t.join()


if __name__ == "__main__":
    main()
