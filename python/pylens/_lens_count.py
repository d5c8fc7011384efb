"""The `count` lens: exact call counts (and optionally time) of named functions.

Stdlib only, CPython 3.8+. Options (JSON): {"functions": ["module:qualname", ...],
"time": bool, "calibrate": bool (default true; the pytest plugin counts without it)}. Callers are not changed: the lens watches the target functions' code objects.

Mechanism
- 3.12+: sys.monitoring LOCAL events on the target code objects only (PY_START; with time
  also PY_RESUME, PY_RETURN, PY_YIELD, plus the global-only PY_UNWIND and PY_THROW, whose
  callbacks return at once for other code). Nothing fires for other code in count mode.
- 3.8-3.11: sys.setprofile (and threading.setprofile, so threads started through `threading`
  count) with a profile function that compares frame.f_code with the target code objects.
  Every call and C call of the program goes through it: that is the cost before 3.12.

Resolving `module:qualname` (nested: `mod:outer.<locals>.inner`, methods: `mod:Cls.meth`):
- `__main__` (and the module named by `-m`): a short-lived profile hook waits for the main
  module's `<module>` frame and walks its code object (co_consts, recursively) before the
  first line runs.
- other modules: a sys.meta_path finder (first in line) asks the other finders for the
  module's spec and wraps that loader instance's get_code, so the module's code object is
  walked when it is imported, before any of its code runs; after exec_module, names the walk
  did not find are looked up as attributes (functions made at run time, through __wrapped__).
- modules already imported when the program starts: attribute lookup (then co_consts for
  `<locals>` parts).
A qualname matches every function code object with that qualname (a property's getter and
setter, a function defined twice), summed. Functions created later (closures, methods) share
the compile-time code object, so they count too. A generator/coroutine counts once per
generator object, when it starts running, not at each resumption.

Result `data`:
    {"mechanism": "sys.monitoring" | "sys.setprofile", "time": bool,
     "functions": [{"spec": "mod:qual", "module": "mod", "qualname": "qual",
                    "resolved": bool, "how": "import"|"main"|"loaded"|"attribute"|null,
                    "calls": int, "total_ns": int|null,   # null without --time
                    "codes": [{"file": str, "line": int, "name": str}],
                    "error": str|null}]}
total_ns: wall time inside the function, summed over threads; a recursive call inside an
activation of the same function is not counted twice (like cProfile's cumulative time);
generators: time between each resume and the next yield/return.
"""
import _thread
import difflib
import os
import itertools
import sys
import time

from pylens._overhead import slowdown

_MON = sys.version_info >= (3, 12) and hasattr(sys, "monitoring")
_CO_OPTIMIZED = 0x1
_CO_NEWLOCALS = 0x2
_GEN_FLAGS = 0x20 | 0x80 | 0x100 | 0x200  # generator, coroutine, iterable coroutine, async generator


def _is_function_code(code):
    return (code.co_flags & (_CO_OPTIMIZED | _CO_NEWLOCALS)) == (_CO_OPTIMIZED | _CO_NEWLOCALS)


def _walk(code, qual, is_function, out):
    """(qualname, code) of every code object nested in `code`, whose own qualname is `qual`."""
    for c in code.co_consts:
        if not hasattr(c, "co_code"):
            continue
        q = getattr(c, "co_qualname", None)
        if q is None:
            if qual is None:
                q = c.co_name
            elif is_function:
                q = qual + ".<locals>." + c.co_name
            else:
                q = qual + "." + c.co_name
        fn = _is_function_code(c)
        out.append((q, c, fn))
        _walk(c, q, fn, out)
    return out


def _module_functions(module):
    """qualnames of a loaded module's own functions and its classes' methods (for "did you mean")."""
    out = []
    name = getattr(module, "__name__", None)
    for k, v in list(vars(module).items()):
        if getattr(v, "__module__", None) != name:
            continue
        if isinstance(v, type):
            out.extend("%s.%s" % (k, m) for m, f in vars(v).items() if callable(getattr(f, "__func__", f)))
        elif callable(v):
            out.append(k)
    return out


def _first_start_lasti(code):
    """f_lasti of a generator frame at its first 'call' event (3.8-3.11)."""
    if sys.version_info < (3, 11):
        return -1
    import dis

    for ins in dis.get_instructions(code):
        if ins.opname == "RESUME" and ins.arg == 0:
            return ins.offset
    return -1


def _calib_fn(x):
    return x


def _calib_loop(f, n):
    t = time.perf_counter_ns()
    for _ in range(n):
        f(1)
    return time.perf_counter_ns() - t


class _Target:
    def __init__(self, spec):
        self.spec = spec
        mod, _, qual = spec.partition(":")
        self.module = mod
        self.qualname = qual
        self.codes = []
        self.how = None
        self.error = None


class _Count:
    def __init__(self, options, info):
        self.options = options
        self.timed = bool(options.get("time"))
        self.targets = [_Target(s) for s in options.get("functions") or []]
        self._warnings = []
        main_alias = None
        tgt = info.get("target") or {}
        if tgt.get("kind") == "module":
            main_alias = tgt.get("value")
        self.main_alias = main_alias
        # the script's file name: `app:f` for app.py is a common slip for `__main__:f`
        self.script_stem = None
        if tgt.get("kind") == "script":
            self.script_stem = os.path.splitext(os.path.basename(str(tgt.get("value") or "")))[0]
        # module name -> targets waiting for it
        self.pending = {}
        for t in self.targets:
            key = "__main__" if t.module == main_alias else t.module
            self.pending.setdefault(key, []).append(t)
        # code object -> counter (itertools.count().__next__: one atomic step per call)
        self.counter = {}
        self.counter_obj = {}
        self.code_target = {}
        # time mode: code -> {thread id: [depth, t0, total_ns, activations]}
        self.tstate = {}
        # 3.8-3.11 generators: code -> (f_lasti at first start, counter)
        self.gen_counter = {}
        self.first_lasti = {}
        self.events = itertools.count()
        self.events_base = 0
        self.tool = None
        self.finder = None
        self.started = False
        self.stopped = False
        self.t_start = 0
        self.t_stop = 0
        self.calib = None
        self.mechanism = "sys.monitoring" if _MON else "sys.setprofile"

    # ---- registering code objects -------------------------------------------------------
    def _add_code(self, target, code):
        if code in self.counter_obj:
            # two names for one function (e.g. `-m app` with app:f and __main__:f): both report it
            if code not in target.codes:
                target.codes.append(code)
            return
        c = itertools.count()
        self.counter_obj[code] = c
        self.counter[code] = c.__next__
        self.code_target[code] = target
        target.codes.append(code)
        if self.timed:
            self.tstate[code] = {}
            if not _MON and code.co_flags & _GEN_FLAGS:
                self.first_lasti[code] = _first_start_lasti(code)
        if _MON:
            if self.tool is not None:
                self._set_local(code)
        elif code.co_flags & _GEN_FLAGS and not self.timed:
            self.gen_counter[code] = (_first_start_lasti(code), self.counter.pop(code))

    def _set_local(self, code):
        E = sys.monitoring.events
        ev = E.PY_START
        if self.timed:
            ev |= E.PY_RESUME | E.PY_RETURN | E.PY_YIELD
        sys.monitoring.set_local_events(self.tool, code, ev)

    def _resolve_from_code(self, modname, code, how):
        targets = self.pending.get(modname)
        if not targets:
            return
        found = _walk(code, None, False, [])
        left = []
        for t in targets:
            codes = [c for q, c, fn in found if q == t.qualname and fn]
            if codes:
                for c in codes:
                    self._add_code(t, c)
                t.how = how
            else:
                if any(q == t.qualname for q, c, fn in found):
                    t.error = "%s names a class, not a function; count one of its methods, e.g. %s.__init__" % (t.spec, t.spec)
                else:
                    t.error = self._no_such(t, [q for q, c, fn in found if fn], code.co_filename)
                left.append(t)
        self.pending[modname] = left

    def _no_such(self, t, quals, where):
        close = difflib.get_close_matches(t.qualname, quals, n=3)
        hint = (" (did you mean %s?)" % ", ".join("%s:%s" % (t.module, q) for q in close)) if close else ""
        return "module %s (%s) has no function %s%s" % (t.module, where, t.qualname, hint)

    def _resolve_from_module(self, modname, module, how):
        """Attribute lookup for targets of an executed module; nested parts through co_consts."""
        targets = self.pending.get(modname)
        if not targets:
            return
        left = []
        for t in targets:
            err = self._resolve_attr(t, module)
            if err is None:
                t.how = how
                t.error = None
            else:
                if t.error is None or how == "loaded":
                    t.error = err
                left.append(t)
        self.pending[modname] = left

    def _resolve_attr(self, t, module):
        parts = t.qualname.split(".")
        obj = module
        i = 0
        while i < len(parts) and parts[i] != "<locals>":
            try:
                obj = getattr(obj, parts[i])
            except AttributeError:
                return self._no_such(t, _module_functions(module), getattr(module, "__file__", None) or "built-in")
            i += 1
        if isinstance(obj, type):
            if i == len(parts):
                return "%s names a class, not a function; count one of its methods, e.g. %s.__init__" % (t.spec, t.spec)
        obj = getattr(obj, "__func__", obj)  # bound and class methods
        for _ in range(100):
            w = getattr(obj, "__wrapped__", None)
            if w is None:
                break
            obj = getattr(w, "__func__", w)
        code = getattr(obj, "__code__", None)
        if code is None or not hasattr(code, "co_code"):
            return "%s is not a Python function (%s); count sees functions written in Python only" % (t.spec, type(obj).__name__)
        if i == len(parts):
            self._add_code(t, code)
            return None
        prefix = ".".join(parts[:i])
        found = _walk(code, prefix, True, [])
        codes = [c for q, c, fn in found if q == t.qualname and fn]
        if not codes:
            return self._no_such(t, [q for q, c, fn in found if fn], code.co_filename)
        for c in codes:
            self._add_code(t, c)
        return None

    # ---- import hook ----------------------------------------------------------------------
    def _install_finder(self):
        lens = self

        class _CountFinder:
            """Finds nothing itself: wraps the loader of a module with targets."""

            def find_spec(self, name, path=None, target=None):
                if not lens.pending.get(name) or lens.stopped:
                    return None
                for f in list(sys.meta_path):
                    if f is self:
                        continue
                    find = getattr(f, "find_spec", None)
                    if find is None:
                        continue
                    spec = find(name, path, target)
                    if spec is not None:
                        lens._wrap_loader(name, spec.loader)
                        return spec
                return None

        self.finder = _CountFinder()
        sys.meta_path.insert(0, self.finder)

    def _wrap_loader(self, name, loader):
        if loader is None or isinstance(loader, type):
            return
        lens = self
        get_code = getattr(loader, "get_code", None)
        exec_module = getattr(loader, "exec_module", None)
        try:
            if get_code is not None:

                def wrapped_get_code(fullname, _orig=get_code):
                    code = _orig(fullname)
                    if fullname == name and code is not None:
                        try:
                            lens._resolve_from_code(name, code, "import")
                        except Exception as e:  # never break the program's import
                            lens._warnings.append("could not resolve names in %s: %s: %s" % (name, type(e).__name__, e))
                    return code

                loader.get_code = wrapped_get_code
            if exec_module is not None:

                def wrapped_exec_module(module, _orig=exec_module):
                    _orig(module)
                    if getattr(module, "__name__", None) == name and lens.pending.get(name):
                        try:
                            lens._resolve_from_module(name, module, "attribute")
                        except Exception as e:
                            lens._warnings.append("could not resolve names in %s: %s: %s" % (name, type(e).__name__, e))

                loader.exec_module = wrapped_exec_module
        except (AttributeError, TypeError):
            pass

    # ---- the main module --------------------------------------------------------------------
    def _main_wait(self, frame, event, arg):
        if not _MON:
            self._profile(frame, event, arg)
        if event != "call" or frame.f_code.co_name != "<module>":
            return
        main = sys.modules.get("__main__")
        if main is None or frame.f_globals is not getattr(main, "__dict__", None):
            return
        sys.setprofile(None if _MON else self._profile)
        try:
            self._resolve_from_code("__main__", frame.f_code, "main")
        except Exception as e:
            self._warnings.append("could not resolve names in __main__: %s: %s" % (type(e).__name__, e))

    # ---- hooks: 3.8-3.11 --------------------------------------------------------------------
    def _make_profile(self):
        counter_get = self.counter.get
        gens = self.gen_counter
        gens_get = gens.get
        ev = self.events.__next__
        if not self.timed and not self.options.get("calibrate", True):
            # no overhead estimate wanted (the pytest plugin): no event count either, which
            # also keeps the hook from allocating (an int per event) under tracemalloc

            def profile(frame, event, arg):
                if event == "call":
                    c = counter_get(frame.f_code)
                    if c is not None:
                        c()
                    elif gens:
                        g = gens_get(frame.f_code)
                        if g is not None and frame.f_lasti == g[0]:
                            g[1]()

            return profile
        if not self.timed:

            def profile(frame, event, arg):
                ev()
                if event == "call":
                    c = counter_get(frame.f_code)
                    if c is not None:
                        c()
                    elif gens:
                        g = gens_get(frame.f_code)
                        if g is not None and frame.f_lasti == g[0]:
                            g[1]()

            return profile
        tstate_get = self.tstate.get
        now = time.perf_counter_ns
        get_ident = _thread.get_ident
        first_lasti = self.first_lasti

        def profile(frame, event, arg):
            ev()
            if event == "call":
                code = frame.f_code
                st = tstate_get(code)
                if st is None:
                    return
                t = now()
                if code.co_flags & _GEN_FLAGS:
                    if frame.f_lasti == first_lasti.get(code):
                        counter_get(code)()
                else:
                    counter_get(code)()
                tid = get_ident()
                s = st.get(tid)
                if s is None:
                    st[tid] = [1, t, 0, 1]
                elif s[0] <= 0:
                    s[0] = 1
                    s[1] = t
                    s[3] += 1
                else:
                    s[0] += 1
                    s[3] += 1
            elif event == "return":
                st = tstate_get(frame.f_code)
                if st is None:
                    return
                t = now()
                s = st.get(get_ident())
                if s is None or s[0] <= 0:
                    return
                s[0] -= 1
                if s[0] == 0:
                    s[2] += t - s[1]

        return profile

    # ---- hooks: 3.12+ ---------------------------------------------------------------------------
    def _mon_callbacks(self):
        counter = self.counter
        if not self.timed:

            def on_start(code, offset):
                counter[code]()

            return {"PY_START": on_start}
        tstate = self.tstate
        tstate_get = tstate.get
        now = time.perf_counter_ns
        get_ident = _thread.get_ident

        def enter(code):
            t = now()
            st = tstate_get(code)
            if st is None:
                return
            tid = get_ident()
            s = st.get(tid)
            if s is None:
                st[tid] = [1, t, 0, 1]
            elif s[0] <= 0:
                s[0] = 1
                s[1] = t
                s[3] += 1
            else:
                s[0] += 1
                s[3] += 1

        # PY_START and PY_RETURN fire at every call of a target: their bodies repeat enter's
        # and the leave step inline rather than pay one more Python call each (the hot path)
        def on_start(code, offset):
            t = now()
            counter[code]()
            st = tstate_get(code)
            if st is None:
                return
            tid = get_ident()
            s = st.get(tid)
            if s is None:
                st[tid] = [1, t, 0, 1]
            elif s[0] <= 0:
                s[0] = 1
                s[1] = t
                s[3] += 1
            else:
                s[0] += 1
                s[3] += 1

        def on_resume(code, offset):
            enter(code)

        def on_throw(code, offset, exc):
            enter(code)

        def on_end(code, offset, value):
            t = now()
            st = tstate_get(code)
            if st is None:
                return
            s = st.get(get_ident())
            if s is None or s[0] <= 0:
                return
            s[0] -= 1
            if s[0] == 0:
                s[2] += t - s[1]

        return {"PY_START": on_start, "PY_RESUME": on_resume, "PY_THROW": on_throw, "PY_RETURN": on_end, "PY_YIELD": on_end, "PY_UNWIND": on_end}

    def _mon_install(self):
        m = sys.monitoring
        for tid in [m.PROFILER_ID, 3, 4, 0, 1, 5]:
            if m.get_tool(tid) is None:
                m.use_tool_id(tid, "pylens count")
                self.tool = tid
                break
        if self.tool is None:
            raise RuntimeError("every sys.monitoring tool id is in use (another profiler or debugger is active)")
        for name, cb in self._mon_callbacks().items():
            m.register_callback(self.tool, getattr(m.events, name), cb)
        if self.timed:
            m.set_events(self.tool, m.events.PY_UNWIND | m.events.PY_THROW)
        for code in self.counter:
            self._set_local(code)

    def _mon_uninstall(self):
        m = sys.monitoring
        if self.tool is None:
            return
        for code in self.counter:
            try:
                m.set_local_events(self.tool, code, 0)
            except Exception:
                pass
        m.set_events(self.tool, 0)
        for name in ("PY_START", "PY_RESUME", "PY_THROW", "PY_RETURN", "PY_YIELD", "PY_UNWIND"):
            m.register_callback(self.tool, getattr(m.events, name), None)
        m.free_tool_id(self.tool)
        self.tool = None

    # ---- calibration: what one event costs on this machine and Python ------------------------
    def _calibrate(self):
        n = 20000
        f = _calib_fn
        code = f.__code__
        best_base = best_hook = best_other = None
        target = _Target("pylens:_calib_fn")
        self._add_code(target, code)
        if _MON:
            sys.monitoring.set_local_events(self.tool, code, 0)
        try:
            for _ in range(3):
                base = _calib_loop(f, n)
                if _MON:
                    self._set_local(code)
                    hook = _calib_loop(f, n)
                    sys.monitoring.set_local_events(self.tool, code, 0)
                    other = base
                else:
                    prof = self._profile
                    sys.setprofile(prof)
                    hook = _calib_loop(f, n)
                    sys.setprofile(None)
                    # a call of a function that is not a target
                    saved = self.counter.pop(code)
                    saved_t = self.tstate.pop(code, None)
                    sys.setprofile(prof)
                    other = _calib_loop(f, n)
                    sys.setprofile(None)
                    self.counter[code] = saved
                    if saved_t is not None:
                        self.tstate[code] = saved_t
                best_base = base if best_base is None else min(best_base, base)
                best_hook = hook if best_hook is None else min(best_hook, hook)
                best_other = other if best_other is None else min(best_other, other)
        finally:
            del self.counter[code]
            self.counter_obj.pop(code, None)
            self.code_target.pop(code, None)
            self.tstate.pop(code, None)
        self.events_base = int(repr(self.events)[6:-1])
        # per target call (extra over a non-target call), per profile event (non-target call = 2 events)
        per_target = max(0.0, (best_hook - best_other) / n)
        per_event = max(0.0, (best_other - best_base) / n / 2.0)
        self.calib = {"per_target_call_ns": per_target + 2 * per_event, "per_event_ns": per_event}

    # ---- lens protocol ---------------------------------------------------------------------------
    def start(self):
        if _MON:
            self._mon_install()
        else:
            self._profile = self._make_profile()
        # names in modules that are already imported (stdlib the runner loaded, ...)
        for modname in list(self.pending):
            mod = sys.modules.get(modname)
            if mod is not None and modname != "__main__":
                self._resolve_from_module(modname, mod, "loaded")
        if self.options.get("calibrate", True):
            try:
                self._calibrate()
            except Exception as e:
                self._warnings.append("overhead calibration failed: %s: %s" % (type(e).__name__, e))
        if any(self.pending.values()):
            self._install_finder()
        self.started = True
        if self.pending.get("__main__"):
            sys.setprofile(self._main_wait)
        elif not _MON:
            sys.setprofile(self._profile)
        if not _MON:
            import threading

            threading.setprofile(self._profile)
        self.t_start = time.perf_counter_ns()

    def stop(self):
        if self.stopped:
            return
        self.t_stop = time.perf_counter_ns()
        self.stopped = True
        if not _MON:
            current = sys.getprofile()
            if current is not None and current != self._profile and current != self._main_wait:
                self._warnings.append("the program replaced pylens's profile hook (sys.setprofile); calls after that were not counted")
            sys.setprofile(None)
            import threading

            threading.setprofile(None)
        else:
            if sys.getprofile() == self._main_wait:
                sys.setprofile(None)
            self._mon_uninstall()
        if self.finder is not None:
            try:
                sys.meta_path.remove(self.finder)
            except ValueError:
                pass

    def _calls(self, code):
        c = self.counter_obj.get(code)
        if c is None:
            return 0
        return int(repr(c)[6:-1])  # "count(N)": read without counting

    def result(self):
        out = []
        for t in self.targets:
            resolved = bool(t.codes)
            calls = sum(self._calls(c) for c in t.codes)
            total = None
            if self.timed:
                total = 0
                for c in t.codes:
                    for s in self.tstate.get(c, {}).values():
                        total += s[2]
            err = None
            if not resolved:
                err = t.error
                if err is None:
                    mod = "__main__" if t.module == self.main_alias else t.module
                    if mod == "__main__":
                        err = "the main module never ran, so %s was never resolved" % t.spec
                    elif t.module == self.script_stem:
                        err = "module %s was never imported: the script %s.py runs as __main__, so name it __main__:%s" % (t.module, t.module, t.qualname)
                    else:
                        err = "module %s was never imported by the program, so %s was never resolved (check the module name)" % (t.module, t.spec)
            out.append(
                {
                    "spec": t.spec,
                    "module": t.module,
                    "qualname": t.qualname,
                    "resolved": resolved,
                    "how": t.how,
                    "calls": calls,
                    "total_ns": total,
                    "codes": [{"file": c.co_filename, "line": c.co_firstlineno, "name": c.co_name} for c in t.codes],
                    "error": err,
                }
            )
        return {"mechanism": self.mechanism, "time": self.timed, "functions": out}

    def _activations(self):
        n = 0
        for st in self.tstate.values():
            for s in st.values():
                n += s[3]
        return n

    def overhead(self):
        if self.calib is None:
            return {"fraction": None, "method": "calibration failed"}
        wall = max(1, (self.t_stop or time.perf_counter_ns()) - self.t_start)
        calls = sum(self._calls(c) for c in self.counter_obj)
        target_calls = self._activations() if self.timed else calls
        per_t = self.calib["per_target_call_ns"]
        cost = target_calls * per_t
        if _MON:
            method = "%s: %.0f ns per %s (timed before the run: %d calls of a small function with and without its events on) x %d" % (
                self.mechanism,
                per_t,
                "activation" if self.timed else "call",
                20000,
                target_calls,
            )
        else:
            events = int(repr(self.events)[6:-1]) - self.events_base
            per_e = self.calib["per_event_ns"]
            other = max(0, events - 2 * target_calls)
            cost += other * per_e
            method = "%s: %.0f ns per profile event x %d events (every call and C call of the program) + %.0f ns per counted call x %d; per-event costs timed before the run with calls of a small function with and without the hook" % (
                self.mechanism,
                per_e,
                other,
                per_t,
                target_calls,
            )
        fraction = slowdown(cost, wall)
        return {"fraction": fraction, "method": method + ", over the run's %.3f s less that cost%s" % (wall / 1e9, "" if fraction is not None else " (the estimate is over 90 % of the run: a slowdown of at least 10x)")}

    def warnings(self):
        return list(self._warnings)


def create(options, info):
    return _Count(options, info)
