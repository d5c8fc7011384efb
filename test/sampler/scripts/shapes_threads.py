"""Stack shapes for pylens' live walker tests (test/sampler/shapes.test.ts).

Worker threads each park in a known stack: nested-class methods and closures
(qualnames), a resumed generator, a generator expression, a list comprehension,
a `yield from` chain and an asyncio coroutine chain a -> b -> c where c
busy-loops. Once every thread is parked, the main thread reads what Python
itself sees (sys._current_frames) and prints it as one JSON line:

    ready {"threads": {NAME: {"ident": .., "native": .., "frames": [leaf first]}},
           "main": {"ident": .., "native": ..}, "markers": {KEY: LINE}}

then parks in hold(). Lines that matter end in a marker comment (hash, space,
at-sign, key); the markers map gives their line numbers.
"""
import asyncio
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


def hold():
    time.sleep(3600)  # @hold


# ---- qualnames ------------------------------------------------------------------


class Outer:
    class Inner:
        def method(self):
            return func()  # @method


def func():
    class Local:
        def meth(self):
            hold()  # @local_meth

    def inner():
        return (lambda: Local().meth())()  # @inner

    return inner()  # @func


def t_qual():
    Outer.Inner().method()  # @t_qual


# ---- generators -----------------------------------------------------------------


def gen_body():
    yield 1  # @gen_first_yield
    hold()  # @gen_body
    yield 2


def consumer():
    g = gen_body()
    next(g)  # suspended at the first yield
    next(g)  # @consumer


def t_gen():
    consumer()  # @t_gen


def pause_at(x, when):
    if x == when:
        hold()  # @pause_at
    return x


def t_genexpr():
    list(pause_at(x, 1) for x in range(3))  # @t_genexpr


def t_listcomp():
    [hold() for _ in range(1)]  # @t_listcomp


# ---- yield from -----------------------------------------------------------------


def inner_gen():
    yield "first"  # @inner_first_yield
    hold()  # @inner_gen
    yield "second"


def middle_gen():
    yield from inner_gen()  # @middle_gen


def outer_gen():
    yield from middle_gen()  # @outer_gen


def drive():
    g = outer_gen()
    next(g)  # the whole chain suspends at inner_gen's first yield
    next(g)  # @drive


def t_yield_from():
    drive()  # @t_yield_from


# ---- asyncio --------------------------------------------------------------------


async def c():
    while True: pass  # @c


async def b():
    await asyncio.sleep(0)  # the chain suspends once and is resumed by the loop
    await c()  # @b


async def a():
    await b()  # @a


def t_async():
    asyncio.run(a())  # @t_async


# ---- main -----------------------------------------------------------------------

WORKERS = {
    # name: (target, leaf function name, leaf marker)
    "qual": (t_qual, "hold", "hold"),
    "gen": (t_gen, "hold", "hold"),
    "genexpr": (t_genexpr, "hold", "hold"),
    "listcomp": (t_listcomp, "hold", "hold"),
    "yield_from": (t_yield_from, "hold", "hold"),
    "async": (t_async, "c", "c"),
}


def describe(frame):
    out = []
    while frame is not None:
        code = frame.f_code
        out.append({
            "name": code.co_name,
            "qualname": getattr(code, "co_qualname", code.co_name),
            "file": code.co_filename,
            "line": frame.f_lineno,
            "firstLine": code.co_firstlineno,
        })
        frame = frame.f_back
    return out


def settle(threads, timeout=10.0):
    """sys._current_frames() once every worker's leaf is its parking line."""
    deadline = time.monotonic() + timeout
    while True:
        frames = sys._current_frames()
        ok = True
        for name, t in threads.items():
            _, leaf, marker = WORKERS[name]
            f = frames.get(t.ident)
            if f is None or f.f_code.co_name != leaf or f.f_lineno != MARKERS[marker]:
                ok = False
        if ok:
            return frames
        if time.monotonic() > deadline:
            raise SystemExit("workers did not settle")
        time.sleep(0.005)


def main():
    threads = {}
    for name, (target, _, _) in WORKERS.items():
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        threads[name] = t
    frames = settle(threads)
    doc = {
        "threads": {
            name: {"ident": t.ident, "native": t.native_id, "frames": describe(frames[t.ident])}
            for name, t in threads.items()
        },
        "main": {"ident": threading.get_ident(), "native": threading.get_native_id()},
        "markers": MARKERS,
    }
    del frames
    print("ready " + json.dumps(doc), flush=True)


main()
hold()  # @main
