"""The `trace` lens: every call, deterministically (stdlib only, CPython 3.8+).

Backends:
- "sys.monitoring" (3.12+, PEP 669): a tool id, PY_START/PY_RESUME/PY_THROW push a frame on a
  per-thread shadow stack, PY_RETURN/PY_YIELD/PY_UNWIND pop it; with `builtins`, CALL pushes a
  C function (builtin_function_or_method / method descriptor) and C_RETURN/C_RAISE pop it.
  The result is an exact call tree per thread (node = path of functions). Code objects that
  the filters exclude get DISABLE'd, so their time goes to the nearest recorded caller.
- "cProfile" (any version; the only one before 3.12): one cProfile.Profile per thread
  (threading.setprofile starts one in each new thread), its stats per thread.
- 3.12+ default for a whole-program trace (no include/exclude/region/within/builtins):
  cProfile (C callbacks, 4-5x cheaper than the Python ones above) while the program has one
  thread; threading.Thread.start and _thread's starters are wrapped so that the first new
  thread hands over to "sys.monitoring" first, the open calls becoming its first frames.
  Backend "cProfile" if no thread started, "cProfile, then sys.monitoring" if one did.

Options (JSON): include, exclude (lists of module or path globs), region (name or null),
within (list of "module:qualname" or "qualname"), backend ("auto"|"monitoring"|"cprofile"),
builtins (bool: record C functions too).

Result `data`:
  {
    "backend": "sys.monitoring" | "cProfile" | "cProfile, then sys.monitoring",
    "funcs": [[kind, name, qualname, file, line, module], ...]   kind "py" | "c"
    "threads": [{"ident": int, "tid": int|null, "name": str|null,
                 # sys.monitoring: call-tree nodes, parent index -1 for a root, before children
                 "nodes": [[parent, func, calls, self_ns, total_ns], ...],
                 # cProfile: pstats entries, times in seconds, funcs as indexes
                 "entries": [[func, cc, nc, tt, ct, [[caller, nc, cc, tt, ct], ...]], ...]}],
    "keep": [bool per func]  (cProfile only: whether the function passes include/exclude;
                               the converter removes the others, their self time going to the
                               nearest kept caller)
    "events": int            (hook events recorded, for the overhead estimate)
    "calibration": {"ns_per_event": float, "calls": int}
  }
"""
import fnmatch
import os
import sys
import threading
import time

from pylens._overhead import slowdown

_HELPER_DIR = os.path.dirname(os.path.abspath(__file__))
_BOOT_FILE = os.path.join(os.path.dirname(_HELPER_DIR), "pylens_boot.py")
_perf = time.perf_counter_ns
_get_ident = threading.get_ident


def _calib_leaf(x):
    return x


def _calib_target(x):
    return _calib_leaf(x)


def _calib_loop(n):
    f = _calib_target
    for i in range(n):
        f(i)


class _Filter:
    """include/exclude/within decisions for a code object or a (file, module) pair."""

    def __init__(self, options, info):
        self.include = [str(p) for p in options.get("include") or []]
        self.exclude = [str(p) for p in options.get("exclude") or []]
        self.within = []
        target = (info or {}).get("target") or {}
        self.main_names = {"__main__"}
        if target.get("kind") == "script":
            self.main_names.add(os.path.splitext(os.path.basename(target.get("value", "")))[0])
        elif target.get("kind") == "module":
            self.main_names.add(target.get("value"))
        for w in options.get("within") or []:
            w = str(w)
            if ":" in w:
                mod, fn = w.split(":", 1)
            else:
                mod, fn = None, w
            self.within.append((mod, fn))
        self._mods = {}
        self._nmods = -1

    def module_of(self, filename):
        m = self._mods.get(filename)
        if m is not None:
            return m
        if len(sys.modules) != self._nmods:
            self._nmods = len(sys.modules)
            for name, mod in list(sys.modules.items()):
                f = getattr(mod, "__file__", None)
                if isinstance(f, str) and f not in self._mods:
                    self._mods[f] = name
                    if not os.path.isabs(f):
                        self._mods[os.path.abspath(f)] = name
        m = self._mods.get(filename)
        if m is None:
            m = ""
            self._mods[filename] = m
        return m

    @staticmethod
    def _match(pat, module, path):
        if "/" in pat or pat.endswith((".py", ".pyw")):
            if not path:
                return False
            if fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(path, "*/" + pat.lstrip("/")):
                return True
            ap = os.path.abspath(pat).rstrip("/")
            return path.startswith(ap + "/") or fnmatch.fnmatchcase(path, ap + "/*")
        if not module:
            return False
        return fnmatch.fnmatchcase(module, pat) or fnmatch.fnmatchcase(module, pat + ".*")

    def helper(self, path):
        return bool(path) and (os.path.dirname(path) == _HELPER_DIR or path == _BOOT_FILE)

    def keep(self, module, path):
        if self.helper(path):
            return False
        names = self.main_names if module == "__main__" else (module,)
        for p in self.exclude:
            if any(self._match(p, m, path) for m in names):
                return False
        if self.include:
            for p in self.include:
                if any(self._match(p, m, path) for m in names):
                    return True
            return False
        return True

    def is_within(self, module, qualname, name):
        for mod, fn in self.within:
            if fn != qualname and fn != name:
                continue
            if mod is None or mod == module or (module == "__main__" and mod in self.main_names) or (mod == "__main__" and module in self.main_names):
                return True
        return False


def _code_path(code):
    f = code.co_filename
    if f.startswith("<"):
        return f
    return os.path.abspath(f)


class _TraceBase:
    backend = ""

    def __init__(self, options, info):
        self.options = options
        self.filter = _Filter(options, info)
        # `<string>` code is the program's own only for `python -c`; elsewhere it is exec'd
        # source (namedtuple, dataclasses), which belongs to no module
        self.string_module = "__main__" if (info.get("target") or {}).get("kind") == "code" else ""
        self.region = options.get("region")
        self._warnings = []
        self.funcs = []
        self.func_index = {}
        self.calib = {"ns_per_event": 0.0, "calls": 0}
        self.t_start = 0
        self.t_stop = 0
        self.stopped = False

    def warnings(self):
        return list(self._warnings)

    def overhead(self):
        events = self.events()
        per = self.calib.get("ns_per_event") or 0.0
        run = max(1, self.t_stop - self.t_start)
        cost = per * events
        frac = slowdown(cost, run)
        return {
            "fraction": frac,
            "method": "calibrated at start: a loop of %d calls of a small function (calling another) timed with and without the %s hook gives %.0f ns per hook event; "
            "that cost x %d events recorded / the traced run's time without it (unknown past 90 %% of the run: at least 10x)" % (self.calib.get("calls", 0), self.backend, per, events),
        }

    def _median_ns(self, fn, reps=7):
        # the fastest of a few runs: the least disturbed by the rest of the machine
        ts = []
        for _ in range(reps):
            t0 = _perf()
            fn()
            ts.append(_perf() - t0)
        return min(ts)


# ---------------------------------------------------------------------------------------
# sys.monitoring (3.12+)


class _TState:
    """One thread's shadow stack and call tree (kept in a threading.local, and listed)."""

    __slots__ = ("stack", "times", "nodes", "ident", "tid", "name", "depth", "within")

    def __init__(self, ident):
        # a node: [children by id(code or C function), calls, total_ns, code or function,
        #          func index, own index, parent index]; self time is worked out at the end
        # (total less the children's totals), so a return touches one node
        self.stack = [[{}, 0, 0, None, -1, -1, -1]]  # the root sentinel, then the open calls
        self.times = [0]  # when each open call started, parallel to stack
        self.nodes = []
        self.ident = ident
        self.tid = threading.get_native_id() if hasattr(threading, "get_native_id") else None
        t = threading._active.get(ident)
        self.name = getattr(t, "_name", None) if t is not None else None
        self.depth = 0  # regions entered
        self.within = 0  # within-frames on the stack


class _Monitoring(_TraceBase):
    backend = "sys.monitoring"

    def __init__(self, options, info):
        _TraceBase.__init__(self, options, info)
        self.mon = sys.monitoring
        self.tool = None
        # per thread: a threading.local is cheaper to reach than a dict keyed by get_ident(),
        # and a new thread that reuses an old one's ident gets a new state by itself
        self.local = threading.local()
        self.all_states = []
        # id(code) -> (func index or -1 excluded, is_within, code): keyed by id because hashing a
        # code object hashes its contents; the code in the value keeps the id from being reused
        self.code_info = {}
        self.builtins = bool(options.get("builtins"))
        self.cfunc = {}  # id(callable) -> func index
        self.has_within = bool(self.filter.within)
        self.has_region = self.region is not None

    # -- classification
    def _classify(self, code):
        path = _code_path(code)
        module = self.filter.module_of(code.co_filename) if not path.startswith("<") else (self.string_module if path == "<string>" else "")
        if not module and path.startswith("<"):
            module = ""
        qual = getattr(code, "co_qualname", code.co_name)
        if not self.filter.keep(module, path):
            info = (-1, False, code)
        else:
            key = ("py", code.co_filename, code.co_firstlineno, code.co_name)
            fi = self.func_index.get(key)
            if fi is None:
                fi = len(self.funcs)
                self.func_index[key] = fi
                self.funcs.append(["py", code.co_name, qual, code.co_filename, code.co_firstlineno, module])
            info = (fi, self.has_within and self.filter.is_within(module, qual, code.co_name), code)
        self.code_info[id(code)] = info
        return info

    def _cfunc_index(self, fn):
        fi = self.cfunc.get(id(fn))
        if fi is not None:
            return fi
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
        owner = getattr(fn, "__self__", None)
        mod = getattr(fn, "__module__", None)
        if mod is None and owner is not None:
            mod = owner.__name__ if isinstance(owner, type(sys)) else type(owner).__module__
        mod = mod or "builtins"
        if not self.filter.keep(mod, ""):
            fi = -1
        else:
            label = "%s.%s" % (mod, name) if mod != "builtins" else name
            key = ("c", label)
            fi = self.func_index.get(key)
            if fi is None:
                fi = len(self.funcs)
                self.func_index[key] = fi
                self.funcs.append(["c", label, label, "~", 0, mod])
        self.cfunc[id(fn)] = fi
        self._keepalive.append(fn)
        return fi

    # -- state
    def _state(self):
        try:
            return self.local.st
        except AttributeError:
            return self._new_state()

    def _new_state(self):
        st = _TState(_get_ident())
        self.local.st = st
        self.all_states.append(st)
        return st

    def _child(self, st, parent, key, fi):
        """The node for `key` (a code object or C function) under `parent`, made on first use."""
        nodes = st.nodes
        node = [{}, 0, 0, key, fi, len(nodes), parent[5]]
        nodes.append(node)
        parent[0][id(key)] = node
        if st.name is None:
            t = threading._active.get(st.ident)
            if t is not None:
                st.name = getattr(t, "_name", None)
        return node

    def _callbacks(self):
        """The PY_* callbacks as closures over locals: the hot path of the whole lens."""
        code_info = self.code_info
        classify = self._classify
        local = self.local
        perf = _perf
        DISABLE = self.DISABLE
        new_state = self._new_state
        child = self._child
        has_within = self.has_within
        has_region = self.has_region

        def enter(code, offset):
            # the common case is three lookups and two appends: a code object seen before at
            # this place in the tree
            now = perf()
            try:
                st = local.st
            except AttributeError:
                st = new_state()
            stack = st.stack
            top = stack[-1]
            node = top[0].get(id(code))
            if node is None:
                info = code_info.get(id(code))
                if info is None:
                    info = classify(code)
                if info[0] < 0:
                    return DISABLE
                node = child(st, top, code, info[0])
            node[1] += 1
            stack.append(node)
            st.times.append(now)
            return None

        def enter_gated(code, offset):
            # --within / --region: whether to record depends on the thread's state, so the
            # code's facts are looked up on every call
            now = perf()
            info = code_info.get(id(code))
            if info is None:
                info = classify(code)
            if info[0] < 0:
                return DISABLE
            try:
                st = local.st
            except AttributeError:
                st = new_state()
            if info[1]:
                st.within += 1
            elif has_within and st.within == 0:
                return None
            if has_region and st.depth == 0:
                return None
            stack = st.stack
            top = stack[-1]
            node = top[0].get(id(code))
            if node is None:
                node = child(st, top, code, info[0])
            node[1] += 1
            stack.append(node)
            st.times.append(now)
            return None

        def leave(code, offset, value):
            now = perf()
            try:
                st = local.st
            except AttributeError:
                st = None
            if st is not None:
                if has_within:
                    info = code_info.get(id(code))
                    if info is not None and info[1] and st.within > 0:
                        st.within -= 1
                stack = st.stack
                top = stack[-1]
                if top[3] is code:
                    stack.pop()
                    top[2] += now - st.times.pop()
                    return None
            info = code_info.get(id(code))
            if info is not None and info[0] < 0:
                return DISABLE
            return None

        def unwind(code, offset, exc):
            # PY_UNWIND cannot be DISABLEd (leave only says DISABLE for excluded code)
            leave(code, offset, None)
            return None

        return (enter_gated if has_within or has_region else enter), leave, unwind

    def _ccall(self, code, offset, fn, arg0):
        now = _perf()
        if type(fn) not in self._ctypes:
            return None
        try:
            st = self.local.st
        except AttributeError:
            return None  # a C function with no recorded Python caller: its time is not ours
        stack = st.stack
        if len(stack) < 2:
            return None
        top = stack[-1]
        node = top[0].get(id(fn))
        if node is None:
            fi = self.cfunc.get(id(fn))
            if fi is None:
                fi = self._cfunc_index(fn)
            if fi < 0:
                return None
            node = self._child(st, top, fn, fi)
        node[1] += 1
        stack.append(node)
        st.times.append(now)
        return None

    def _creturn(self, code, offset, fn, arg0):
        now = _perf()
        try:
            st = self.local.st
        except AttributeError:
            return None
        stack = st.stack
        top = stack[-1]
        if top[3] is fn:
            stack.pop()
            top[2] += now - st.times.pop()
        return None

    # -- lens protocol
    def _install(self):
        mon = self.mon
        tool = None
        for t in (3, 4, mon.PROFILER_ID, 1, 0):  # 3, 4 are free for any tool; a program may use cProfile (2) itself
            if mon.get_tool(t) is None:
                tool = t
                break
        if tool is None:
            raise RuntimeError("no free sys.monitoring tool id")
        mon.use_tool_id(tool, "pylens-trace")
        self.tool = tool
        E = mon.events
        reg = mon.register_callback
        enter, leave, unwind = self._callbacks()
        reg(tool, E.PY_START, enter)
        reg(tool, E.PY_RESUME, enter)
        # PY_THROW callbacks also get the exception, and PY_THROW cannot be DISABLEd
        def throw(code, offset, exc):
            enter(code, offset)

        reg(tool, E.PY_THROW, throw)
        reg(tool, E.PY_RETURN, leave)
        reg(tool, E.PY_YIELD, leave)
        reg(tool, E.PY_UNWIND, unwind)
        ev = E.PY_START | E.PY_RESUME | E.PY_THROW | E.PY_RETURN | E.PY_YIELD | E.PY_UNWIND
        if self.builtins:
            reg(tool, E.CALL, self._ccall)
            reg(tool, E.C_RETURN, self._creturn)
            reg(tool, E.C_RAISE, self._creturn)
            ev |= E.CALL | E.C_RETURN | E.C_RAISE
        mon.set_events(tool, ev)

    def _uninstall(self):
        if self.tool is None:
            return
        mon = self.mon
        mon.set_events(self.tool, 0)
        E = mon.events
        for e in (E.PY_START, E.PY_RESUME, E.PY_THROW, E.PY_RETURN, E.PY_YIELD, E.PY_UNWIND, E.CALL, E.C_RETURN, E.C_RAISE):
            mon.register_callback(self.tool, e, None)
        mon.free_tool_id(self.tool)
        self.tool = None

    def _calibrate(self):
        n = 20000
        base = self._median_ns(lambda: _calib_loop(n))
        code = _calib_target.__code__
        self.code_info[id(code)] = (0, False, code)
        self.code_info[id(_calib_leaf.__code__)] = (1, False, _calib_leaf.__code__)
        self.code_info[id(_calib_loop.__code__)] = (-1, False, _calib_loop.__code__)
        saved_region, saved_within = self.has_region, self.has_within
        self.has_region = self.has_within = False
        self._install()
        try:
            hooked = self._median_ns(lambda: _calib_loop(n))
        finally:
            self._uninstall()
            self.has_region, self.has_within = saved_region, saved_within
        self._reset_states()
        self.code_info.clear()
        self.calib = {"ns_per_event": max(0.0, (hooked - base) / (4.0 * n)), "calls": 2 * n}

    def prepare(self, calibrate=True):
        """Calibrate and get ready to install (start does both; the hybrid installs later, and
        calibrates only once it has handed over)."""
        self.DISABLE = self.mon.DISABLE
        self._keepalive = []
        self._ctypes = (type(len), type(str.join), type(dict.__dict__["fromkeys"]), type(list.append))
        if calibrate:
            try:
                self._calibrate()
            except Exception as e:
                self._warnings.append("overhead calibration failed: %s" % e)
                self._reset_states()
        self.funcs = []
        self.func_index = {}
        self.code_info = {}
        self.cfunc = {}

    def start(self):
        self.prepare()
        self.t_start = _perf()
        self._install()

    def take_over(self, frame, now):
        """Install for a running program: `frame` and its callers become the calling thread's
        open calls (no call counted: whoever traced before counted them), started at `now`."""
        st = self._state()
        chain = []
        while frame is not None:
            chain.append(frame.f_code)
            frame = frame.f_back
        for code in reversed(chain):
            info = self.code_info.get(id(code)) or self._classify(code)
            if info[0] < 0:
                continue
            top = st.stack[-1]
            node = top[0].get(id(code)) or self._child(st, top, code, info[0])
            st.stack.append(node)
            st.times.append(now)
        self._install()

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        now = _perf()
        self._uninstall()
        self.t_stop = now
        open_frames = 0
        for st in self.all_states:
            while len(st.stack) > 1:
                open_frames += 1
                st.stack.pop()[2] += now - st.times.pop()
        if open_frames:
            self._warnings.append("%d calls were still running at exit (daemon threads, or the program's own frames); their time runs to the end" % open_frames)

    def enter_region(self, name):
        if name != self.region:
            return
        st = self._state()
        st.depth += 1

    def exit_region(self, name):
        if name != self.region:
            return
        st = self._state()
        if st.depth > 0:
            st.depth -= 1

    def _reset_states(self):
        self.local = threading.local()
        self.all_states = []

    def events(self):
        return 2 * sum(n[1] for st in self.all_states for n in st.nodes)

    def result(self):
        threads = []
        for st in self.all_states:
            if not st.nodes:
                continue
            # self time: a node's total less its children's totals (a parent comes first)
            inner = [0] * len(st.nodes)
            for n in st.nodes:
                if n[6] >= 0:
                    inner[n[6]] += n[2]
            nodes = [[n[6], n[4], n[1], n[2] - inner[n[5]], n[2]] for n in st.nodes]
            threads.append({"ident": st.ident, "tid": st.tid, "name": st.name, "nodes": nodes})
        return {
            "backend": self.backend,
            "funcs": self.funcs,
            "threads": threads,
            "events": self.events(),
            "calibration": self.calib,
        }


# ---------------------------------------------------------------------------------------
# cProfile


class _CProfile(_TraceBase):
    backend = "cProfile"

    def __init__(self, options, info):
        _TraceBase.__init__(self, options, info)
        import cProfile

        self._cProfile = cProfile
        self.builtins = bool(options.get("builtins"))
        self.profiles = {}  # ident -> [Profile, tid, name, depth, ident] (the thread's latest)
        self.all_profiles = []
        self.main_ident = _get_ident()
        self.lock = threading.Lock()
        self._events = 0
        self._region_warned = False

    def _new(self, ident):
        t = threading._active.get(ident)
        name = getattr(t, "_name", None) if t is not None else None
        tid = getattr(t, "_native_id", None) if t is not None else None
        if tid is None and ident == self.main_ident:
            tid = os.getpid()
        rec = [self._cProfile.Profile(builtins=self.builtins), tid, name, 0, ident]
        with self.lock:
            self.profiles[ident] = rec
            self.all_profiles.append(rec)
        return rec

    def _thread_hook(self, frame, event, arg):
        # the first event in a new thread: hand the thread over to its own cProfile
        sys.setprofile(None)
        if self.stopped:
            return None
        self._new(_get_ident())[0].enable()
        return None

    def _calibrate(self):
        n = 20000
        base = self._median_ns(lambda: _calib_loop(n))
        p = self._cProfile.Profile(builtins=False)
        p.enable()
        try:
            hooked = self._median_ns(lambda: _calib_loop(n))
        finally:
            p.disable()
        self.calib = {"ns_per_event": max(0.0, (hooked - base) / (4.0 * n)), "calls": 2 * n}

    def start(self):
        try:
            self._calibrate()
        except Exception as e:
            self._warnings.append("overhead calibration failed: %s" % e)
        self.t_start = _perf()
        if self.region is None:
            if sys.version_info >= (3, 12):
                # cProfile is built on sys.monitoring there: one profiler per process, no second one
                self._warnings.append(
                    "cProfile on Python 3.12+ sees every thread through one call stack: if the program ran Python code in more than one thread, "
                    "their calls are mixed up (callers, cumulative times); the default backend switches to per-thread tracing when a second thread starts"
                )
            else:
                threading.setprofile(self._thread_hook)
            self._new(self.main_ident)[0].enable()

    def enter_region(self, name):
        if name != self.region or self.stopped:
            return
        ident = _get_ident()
        rec = self.profiles.get(ident) or self._new(ident)
        rec[3] += 1
        if rec[3] == 1:
            try:
                rec[0].enable()
            except ValueError as e:  # 3.12+: another thread's profiler is active
                if not self._region_warned:
                    self._region_warned = True
                    self._warnings.append("a region entered in thread %s while another thread's was active was not traced: %s" % (rec[2] or ident, e))

    def exit_region(self, name):
        if name != self.region or self.stopped:
            return
        rec = self.profiles.get(_get_ident())
        if rec is None or rec[3] == 0:
            return
        rec[3] -= 1
        if rec[3] == 0:
            rec[0].disable()

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        threading.setprofile(None)
        me = self.profiles.get(_get_ident())
        if me is not None:
            me[0].disable()
        self.t_stop = _perf()
        self._stats = {}
        for i, rec in enumerate(list(self.all_profiles)):
            try:
                rec[0].snapshot_stats()
                self._stats[i] = rec[0].stats
            except Exception as e:
                self._warnings.append("no stats for thread %s: %s" % (rec[2] or rec[4], e))

    def _fi(self, key):
        fi = self.func_index.get(key)
        if fi is None:
            fi = len(self.funcs)
            self.func_index[key] = fi
            file, line, name = key
            if file == "~" and line == 0:
                self.funcs.append(["c", name, name, "~", 0, ""])
            else:
                path = os.path.abspath(file) if not file.startswith("<") else file
                mod = self.filter.module_of(file) if not file.startswith("<") else (self.string_module if file == "<string>" else "")
                self.funcs.append(["py", name, name, file, line, mod])
        return fi

    def events(self):
        return self._events

    def result(self):
        threads = []
        total_calls = 0
        for i, stats in self._stats.items():
            rec = self.all_profiles[i]
            ident = rec[4]
            entries = []
            for key, (cc, nc, tt, ct, callers) in stats.items():
                f = self._fi(key)
                total_calls += nc
                cl = []
                for ck, cv in callers.items():
                    if isinstance(cv, tuple):
                        cl.append([self._fi(ck), cv[0], cv[1], cv[2], cv[3]])
                    else:
                        cl.append([self._fi(ck), cv, cv, 0.0, 0.0])
                entries.append([f, cc, nc, tt, ct, cl])
            if entries:
                threads.append({"ident": ident, "tid": rec[1], "name": rec[2], "entries": entries})
        self._events = 2 * total_calls
        # which functions pass the filters: helper code never; C functions only called by helper code neither
        keep = []
        for fn in self.funcs:
            kind, name, _q, file, _line, mod = fn
            if kind == "c":
                keep.append(self._keep_c(name))
            else:
                path = os.path.abspath(file) if not file.startswith("<") else file
                keep.append(self.filter.keep(mod, path))
        # a C function whose callers are all removed (exec from the runner) goes too
        for th in threads:
            for f, cc, nc, tt, ct, cl in th["entries"]:
                if self.funcs[f][0] == "c" and keep[f] and cl and all(not keep[c[0]] for c in cl):
                    keep[f] = False
        return {
            "backend": self.backend,
            "funcs": self.funcs,
            "threads": threads,
            "keep": keep,
            "events": self._events,
            "calibration": self.calib,
        }

    def _keep_c(self, name):
        if "_lsprof.Profiler" in name:
            return False
        # "<built-in method time.sleep>" -> module "time"
        inner = name.strip("<>").split(" ")[-1]
        mod = inner.split(".")[0] if "." in inner else "builtins"
        return self.filter.keep(mod, "")


# ---------------------------------------------------------------------------------------
# 3.12+ whole-program default: cProfile while the program has one thread, sys.monitoring after


class _Hybrid(_TraceBase):
    """cProfile's C callbacks are 4-5x cheaper than sys.monitoring Python ones, but on 3.12+ one
    cProfile sees every thread through one call stack and mixes their calls up. So: cProfile
    while the program has one thread; when it starts a second (threading.Thread.start or
    _thread), cProfile stops (it counts the open calls up to then) and the per-thread
    sys.monitoring tracer takes over, the open calls becoming its first frames."""

    backend = "cProfile"

    def __init__(self, options, info):
        _TraceBase.__init__(self, options, info)
        self.cp = _CProfile(options, info)
        self.mt = _Monitoring(options, info)
        self.switched_ns = None
        self.why = None
        self._patched = []

    def start(self):
        try:
            self.cp._calibrate()
        except Exception as e:
            self._warnings.append("overhead calibration failed: %s" % e)
        # sys.monitoring's calibration (about 0.4 s) waits for a hand-over that may never come
        self.mt.prepare(calibrate=False)
        import _thread

        self.t_start = self.cp.t_start = self.mt.t_start = _perf()
        self.cp._new(self.cp.main_ident)[0].enable()  # before Profile.enable is wrapped below
        self._patch(threading.Thread, "start", self._switching(threading.Thread.start))
        for name in ("start_new_thread", "start_new", "start_joinable_thread"):
            orig = getattr(_thread, name, None)
            if orig is not None:
                self._patch(_thread, name, self._switching(orig))
        # the program's own cProfile needs the profiler tool id that pylens's holds
        Profile = self.cp._cProfile.Profile
        self._patch(Profile, "enable", self._switching(Profile.enable, "started a cProfile of its own"))

    def _switching(self, orig, why="started a second thread"):
        """`orig`, handing over to sys.monitoring first (as a class attribute it binds like it)."""
        hybrid = self

        def switching(*args, **kwargs):
            hybrid.switch(sys._getframe(1), why)
            return orig(*args, **kwargs)

        switching.__wrapped__ = orig
        return switching

    def _patch(self, owner, name, value):
        # a class's own attribute is put back; an inherited one is removed again
        had = name in owner.__dict__
        self._patched.append((owner, name, owner.__dict__[name] if had else None, had))
        setattr(owner, name, value)

    def _unpatch(self):
        for owner, name, value, had in reversed(self._patched):
            if had:
                setattr(owner, name, value)
            else:
                delattr(owner, name)
        self._patched = []

    def switch(self, frame, why="started a second thread"):
        if self.switched_ns is not None or self.stopped:
            return
        self.why = why
        self._unpatch()
        rec = self.cp.profiles.get(self.cp.main_ident)
        if rec is not None:
            rec[0].disable()
        now = _perf()
        self.switched_ns = now
        self.backend = "cProfile, then sys.monitoring"
        self.mt.take_over(frame, now)

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        self._unpatch()
        if self.switched_ns is not None:
            self.mt.stop()
        self.cp.stop()
        self.t_stop = self.mt.t_stop = self.cp.t_stop = _perf()
        if self.switched_ns is not None:
            # calibrated now, on a tracer of its own, so the run's call trees stay as they are
            probe = _Monitoring(self.mt.options, {})
            probe.prepare()
            self.mt.calib = probe.calib
            self._warnings.extend(probe.warnings())

    def enter_region(self, name):
        pass  # a region makes the trace gated: create() picks sys.monitoring alone

    def exit_region(self, name):
        pass

    def warnings(self):
        out = list(self._warnings) + self.cp.warnings() + self.mt.warnings()
        if self.switched_ns is not None:
            out.append(
                "the program %s %.3f s in: before that cProfile traced it (call paths rebuilt from caller-callee pairs), "
                "after it sys.monitoring traced every thread (exact call paths); --backend monitoring traces the whole run that way" % (self.why, (self.switched_ns - self.t_start) / 1e9)
            )
        return out

    def events(self):
        return self.cp.events() + (self.mt.events() if self.switched_ns is not None else 0)

    def overhead(self):
        cp_events = self.cp.events()
        mt_events = self.mt.events() if self.switched_ns is not None else 0
        cp_per = self.cp.calib.get("ns_per_event") or 0.0
        mt_per = self.mt.calib.get("ns_per_event") or 0.0
        run = max(1, self.t_stop - self.t_start)
        cost = cp_per * cp_events + mt_per * mt_events
        frac = slowdown(cost, run)
        return {
            "fraction": frac,
            "method": "calibrated at start: a loop of %d calls of a small function (calling another) timed with and without each hook gives %.0f ns per cProfile event and %.0f ns per sys.monitoring event; "
            "those costs x %d and %d events recorded / the traced run's time without them (unknown past 90 %% of the run: at least 10x)" % (self.cp.calib.get("calls", 0), cp_per, mt_per, cp_events, mt_events),
        }

    def result(self):
        r = self.cp.result()  # also counts its events
        if self.switched_ns is None:
            r["backend"] = self.backend
            return r
        m = self.mt.result()
        off = len(r["funcs"])
        for th in m["threads"]:
            for n in th["nodes"]:
                n[1] += off
        r["funcs"] = r["funcs"] + m["funcs"]
        r["keep"] = r["keep"] + [True] * len(m["funcs"])
        r["threads"] = r["threads"] + m["threads"]
        r["backend"] = self.backend
        r["events"] = self.events()
        r["calibration"] = {"ns_per_event": self.cp.calib.get("ns_per_event", 0.0), "calls": self.cp.calib.get("calls", 0), "monitoring_ns_per_event": self.mt.calib.get("ns_per_event", 0.0)}
        return r


def create(options, info):
    backend = options.get("backend") or "auto"
    has_mon = hasattr(sys, "monitoring")
    if backend == "monitoring" and not has_mon:
        lens = _CProfile(options, info)
        lens._warnings.append("sys.monitoring needs Python 3.12+; this is %d.%d, so cProfile traced the run" % sys.version_info[:2])
        return lens
    if backend == "cprofile" or not has_mon:
        lens = _CProfile(options, info)
        if options.get("within"):
            lens._warnings.append("--within needs sys.monitoring (Python 3.12+); cProfile traced everything")
        return lens
    scoped = options.get("include") or options.get("exclude") or options.get("region") is not None or options.get("within")
    if backend == "auto" and not scoped and not options.get("builtins"):
        return _Hybrid(options, info)
    return _Monitoring(options, info)
