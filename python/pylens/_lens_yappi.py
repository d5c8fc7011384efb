"""The yappi lens: per-thread function statistics from yappi, with each thread's CPU and wall time.

Stdlib only apart from yappi itself, which must be importable by the target interpreter
(pylens checks that before running the program; create() checks again and stops with a
one-line message and exit code 3 before the program's first line).

Options: {"clock": "cpu" | "wall"} — yappi's clock for the function times.

How. yappi.set_clock_type(clock); yappi.start(builtins=False, profile_threads=True) just
before the program's first line; yappi.stop() at the end (after non-daemon threads ended).
Independently of yappi's clock, every thread started through `threading` records, from
inside itself, its wall lifetime (time.perf_counter) and its CPU time (time.thread_time) —
Thread._bootstrap_inner is wrapped for that; the main thread is measured from start() to
stop(). A daemon thread still running at stop() is read from outside
(time.pthread_getcpuclockid) and marked alive. So one run gives both clocks per thread;
the function times are in yappi's one clock.

Result `data` shape (times in seconds, floats):
  {
    "clock": "cpu" | "wall",            yappi's clock for ttot/tsub below
    "yappi_version": str | null,
    "process_cpu": float,                time.process_time() over the run
    "threads": [{
        "ctx_id": int | null,            yappi's context id (null: yappi never saw the thread)
        "name": str,                     threading name (last seen)
        "ident": int,                    threading.get_ident()
        "native_id": int | null,         the OS thread id
        "main": bool,
        "daemon": bool,
        "cpu": float | null,             thread CPU time (time.thread_time)
        "wall": float | null,            wall lifetime while profiled
        "alive_at_exit": bool,           still running at stop() (measured from outside)
        "yappi_ttot": float | null,      yappi's per-thread total in its clock
        "sched_count": int | null        yappi's count of switches to the thread
    }],
    "functions": [{                      one per (thread context, function)
        "ctx_id": int, "index": int,     index: yappi's id of this entry
        "name": str,                     yappi's name, e.g. "Class.method"
        "module": str, "lineno": int,    code file and first line
        "ncall": int, "nactualcall": int,  all calls, non-recursive calls
        "ttot": float, "tsub": float,    total (with callees) and self time
        "children": [[index, ncall, nactualcall, ttot, tsub], ...]   caller→callee edges
    }],
    "calibration": {"py" | "rec" | "c": {"calls": int, "off_ns": float, "on_ns": float,
                    "cost_ns": float}} | null   per-call cost: plain, recursive and C calls
  }
Functions of pylens's own helper and of yappi are left out (edges from them dropped, so
what they called becomes a root). A callee yappi does not list (C functions: builtins=False)
has its time added to its caller's tsub and its edge dropped, so tsub is the time in the
function's own Python code and the C functions it called, as cProfile(builtins=False) counts it.
"""
import os
import sys
import threading
import time

from pylens._overhead import slowdown

_HERE = os.path.dirname(os.path.abspath(__file__))
_HIDDEN_FILES = {
    os.path.join(_HERE, "_runner.py"),
    os.path.join(_HERE, "_lens_yappi.py"),
    os.path.join(os.path.dirname(_HERE), "pylens_boot.py"),
}


def _hidden(module):
    if module in _HIDDEN_FILES or module == "_yappi":
        return True
    return os.path.basename(module) == "yappi.py"


# calibration workloads: non-recursive nested calls, recursive calls, C calls
def _c3():
    pass


def _c2():
    _c3()
    _c3()


def _c1():
    _c2()
    _c2()


def _calib_tree():  # 15 calls, none recursive
    _c1()
    _c1()


def _calib_fib(n):  # fib(12): 465 calls, 464 of them recursive
    return n if n < 2 else _calib_fib(n - 1) + _calib_fib(n - 2)


def _calib_loop(n, f, *args):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        f(*args)
    return time.perf_counter_ns() - t0


_CALIB = (
    # name, repeats, function, args, calls per repeat
    ("py", 60, _calib_tree, (), 15),
    ("rec", 1, _calib_fib, (12,), 464),
    ("c", 1000, abs, (-1,), 1),
)


class _ThreadRecord:
    __slots__ = ("ident", "native_id", "name", "daemon", "main", "wall0", "cpu0", "wall", "cpu", "done", "thread")

    def __init__(self, thread, main=False):
        self.thread = thread
        self.ident = threading.get_ident()
        self.native_id = _native_id()
        self.name = thread.name if thread is not None else "?"
        self.daemon = bool(getattr(thread, "daemon", False))
        self.main = main
        self.wall0 = time.perf_counter()
        self.cpu0 = time.thread_time()
        self.wall = None
        self.cpu = None
        self.done = False

    def finish(self):
        self.cpu = time.thread_time() - self.cpu0
        self.wall = time.perf_counter() - self.wall0
        if self.thread is not None:
            self.name = self.thread.name
        self.done = True


def _native_id():
    f = getattr(threading, "get_native_id", None)
    return f() if f is not None else None


class _Yappi:
    def __init__(self, options):
        import yappi

        self.yappi = yappi
        clock = options.get("clock", "cpu")
        if clock not in ("cpu", "wall"):
            raise ValueError("clock must be cpu or wall, not %r" % (clock,))
        self.clock = clock
        self.records = []
        self.records_lock = threading.Lock()
        self.main_record = None
        self.cpu0 = 0.0
        self.wall0 = 0.0
        self.wall = 0.0
        self.process_cpu = 0.0
        self.functions = []
        self.threads = []
        self.calls = 0
        self.rec_calls = 0
        self.c_calls = 0
        self.calibration = None
        self.orig_bootstrap = None
        self._warnings = []
        self.stopped = False

    # -- calibration: yappi's cost per Python call, measured in this process and clock
    def _calibrate(self):
        yappi = self.yappi
        off = {}
        on = {}
        for name, reps, fn, args, _calls in _CALIB:
            off[name] = min(_calib_loop(reps, fn, *args) for _ in range(3))
        yappi.start(builtins=False, profile_threads=True)
        try:
            for name, reps, fn, args, _calls in _CALIB:
                on[name] = min(_calib_loop(reps, fn, *args) for _ in range(3))
        finally:
            yappi.stop()
            yappi.clear_stats()
        cal = {}
        for name, reps, _fn, _args, calls in _CALIB:
            n = reps * calls
            cal[name] = {"calls": n, "off_ns": off[name] / n, "on_ns": on[name] / n, "cost_ns": max(0.0, (on[name] - off[name]) / n)}
        # a recursive call costs yappi more than a plain one (its recursion bookkeeping); the
        # fib workload's non-recursive calls are few, counted at the plain cost
        cal["rec"]["cost_ns"] = max(0.0, (on["rec"] - off["rec"] - cal["py"]["cost_ns"]) / (cal["rec"]["calls"]))
        self.calibration = cal

    def _wrap_threads(self):
        lens = self
        orig = threading.Thread._bootstrap_inner
        self.orig_bootstrap = orig

        def _bootstrap_inner(thread):
            rec = _ThreadRecord(thread)
            with lens.records_lock:
                lens.records.append(rec)
            try:
                orig(thread)
            finally:
                rec.finish()

        threading.Thread._bootstrap_inner = _bootstrap_inner

    def start(self):
        yappi = self.yappi
        yappi.set_clock_type(self.clock)
        try:
            self._calibrate()
        except Exception as e:  # the run goes on without an overhead figure
            self._warnings.append("overhead calibration failed: %s: %s" % (type(e).__name__, e))

        def name_of_thread():
            # no lock taken (see yappi's own _ctx_name_callback): a dict lookup only
            t = threading._active.get(threading.get_ident())
            return None if t is None else t.name

        yappi.set_context_name_callback(name_of_thread)
        self._wrap_threads()
        self.main_record = _ThreadRecord(threading.main_thread(), main=True)
        self.records.append(self.main_record)
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()
        yappi.start(builtins=False, profile_threads=True)

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        yappi = self.yappi
        yappi.stop()
        self.wall = time.perf_counter() - self.wall0
        self.process_cpu = time.process_time() - self.cpu0
        self.main_record.finish()
        if self.orig_bootstrap is not None:
            threading.Thread._bootstrap_inner = self.orig_bootstrap
        self._collect()

    def _collect(self):
        import _yappi

        yappi = self.yappi
        contexts = []
        _yappi.enum_context_stats(lambda e: contexts.append(tuple(e[:5])))
        raw = []
        _yappi.enum_func_stats(lambda e: raw.append(tuple(e[:13])), {})
        yappi.clear_stats()

        hidden_index = set()
        kept = set()
        for e in raw:
            if _hidden(e[1]):
                hidden_index.add(e[8])
            else:
                kept.add(e[8])
        calls = 0
        rec_calls = 0
        c_calls = 0
        for (name, module, lineno, ncall, nactual, builtin, ttot, tsub, index, children, ctx_id, _ctx_name, _tag) in raw:
            if index in hidden_index:
                continue
            calls += ncall
            rec_calls += max(0, ncall - nactual)
            # a callee yappi does not report (a C function under builtins=False): its time is
            # the caller's own, as cProfile without builtins would count it
            edges = []
            for c in children:
                if c[0] in kept:
                    edges.append(list(c[:5]))
                else:
                    tsub += c[3]
                    c_calls += c[1]
            self.functions.append(
                {
                    "ctx_id": ctx_id,
                    "index": index,
                    "name": name,
                    "module": module,
                    "lineno": lineno,
                    "ncall": ncall,
                    "nactualcall": nactual,
                    "ttot": ttot,
                    "tsub": tsub,
                    "children": edges,
                }
            )
        self.calls = calls
        self.rec_calls = rec_calls
        self.c_calls = c_calls

        # match yappi's contexts (by thread ident, in creation order) with our own records
        now_wall = time.perf_counter()
        by_ident = {}
        for rec in self.records:
            by_ident.setdefault(rec.ident, []).append(rec)
        used = set()
        for (cname, ctx_id, tid, ttot, scnt) in sorted(contexts, key=lambda c: c[1]):
            recs = [r for r in by_ident.get(tid, []) if id(r) not in used]
            rec = recs[0] if recs else None
            if rec is not None:
                used.add(id(rec))
            self.threads.append(self._thread_row(rec, ctx_id, tid, cname, ttot, scnt, now_wall))
        for rec in self.records:
            if id(rec) not in used:
                self.threads.append(self._thread_row(rec, None, rec.ident, rec.name, None, None, now_wall))

    def _thread_row(self, rec, ctx_id, tid, cname, ttot, scnt, now_wall):
        row = {
            "ctx_id": ctx_id,
            "name": cname if cname is not None else "?",
            "ident": tid,
            "native_id": None,
            "main": False,
            "daemon": False,
            "cpu": None,
            "wall": None,
            "alive_at_exit": False,
            "yappi_ttot": ttot,
            "sched_count": scnt,
        }
        if rec is None:
            return row
        row.update(name=rec.name, native_id=rec.native_id, main=rec.main, daemon=rec.daemon)
        if rec.done:
            row.update(cpu=rec.cpu, wall=rec.wall)
        else:
            # still running (a daemon thread): read its CPU clock from outside
            row["alive_at_exit"] = True
            row["wall"] = now_wall - rec.wall0
            try:
                clk = time.pthread_getcpuclockid(rec.ident)
                row["cpu"] = time.clock_gettime(clk) - rec.cpu0
            except Exception:
                pass
        return row

    def result(self):
        return {
            "clock": self.clock,
            "yappi_version": _yappi_version(self.yappi),
            "process_cpu": self.process_cpu,
            "threads": self.threads,
            "functions": self.functions,
            "calibration": self.calibration,
        }

    def overhead(self):
        c = self.calibration
        if not c or not self.wall:
            return {"fraction": None, "method": "not measured (calibration failed)"}
        py, rec, cc = c["py"]["cost_ns"], c["rec"]["cost_ns"], c["c"]["cost_ns"]
        plain = self.calls - self.rec_calls
        cost = py * plain + rec * self.rec_calls + cc * self.c_calls
        wall = self.wall * 1e9
        fraction = slowdown(cost, wall)
        return {
            "fraction": fraction,
            "method": "calibrated at start: nested Python calls, recursive calls and C calls (abs) timed with and without "
            "yappi (%s clock) running, best of 3: %.0f ns added per plain call, %.0f ns per recursive call, %.0f ns per "
            "C call; times the run's %d plain, %d recursive and %d C calls yappi saw (about %.0f ms), over the "
            "run's wall time less that cost (unknown past 90 %% of the run: at least 10x); an estimate: yappi's cost varies with the call pattern"
            % (self.clock, py, rec, cc, plain, self.rec_calls, self.c_calls, cost / 1e6),
        }

    def warnings(self):
        return list(self._warnings)


def _yappi_version(yappi):
    """From the dist-info / egg-info next to yappi (importlib.metadata costs ~100 ms)."""
    try:
        where = os.path.dirname(os.path.abspath(yappi.__file__))
        for entry in sorted(os.listdir(where)):
            low = entry.lower()
            if low.startswith("yappi-") and low.endswith((".dist-info", ".egg-info")):
                return entry[6:].rsplit(".", 1)[0].split("-py")[0]
    except Exception:
        pass
    return None


def create(options, info):
    try:
        import yappi  # noqa: F401
    except ImportError as e:
        sys.stderr.write(
            "pylens yappi: yappi is not importable by %s (%s); install it into that interpreter: %s -m pip install yappi\n"
            % (sys.executable, e, sys.executable)
        )
        sys.stderr.flush()
        os._exit(3)
    return _Yappi(options)
