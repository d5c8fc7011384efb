# Code objects created and freed in a loop, each in its own globals (like modules imported
# one after another): CPython's allocator hands the new code object the address of the one
# just freed, which is how a sampler's code-object cache goes stale. Each generated function
# has its own name and file. The globals dicts are kept alive (emptied), so each one has its
# own address, as distinct modules do.
import time


def spin(seconds):
    t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        pass


print("ready", flush=True)
i = 0
kept = []
deadline = time.time() + 60
while time.time() < deadline:
    ns = {"spin": spin}
    exec(compile("def gen_%d():\n    spin(0.01)\n" % i, "<gen_%d>" % i, "exec"), ns)
    ns["gen_%d" % i]()
    ns.clear()  # break the function <-> globals cycle: code object freed now, its address reused next
    kept.append(ns)
    i += 1
