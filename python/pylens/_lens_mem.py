"""The `mem` lens: tracemalloc over the whole run (stdlib only, CPython 3.8+).

Options (JSON): {"interval": seconds between snapshots (0 = only the one at exit),
"frames": traceback depth given to tracemalloc.start (default 16), "top": lines the
report shows (the result keeps more)}.

What it does. start() calibrates the tracing cost (see overhead()), then
tracemalloc.start(frames). A daemon thread polls get_traced_memory() every 50 ms, takes a
snapshot every `interval` seconds (line statistics, RSS) and, when the traced memory
climbs 25 % (and 1 MiB) above the largest snapshot so far, a "peak" snapshot whose
tracebacks are kept: the live allocations nearest the peak that the thread saw. stop()
takes the final snapshot (what is still alive at interpreter exit). Every snapshot is
filtered: allocations whose most recent frame is in pylens's helper or in tracemalloc
itself are not the program's. On 3.9+ the peak is kept exact by reading it before each
snapshot and calling tracemalloc.reset_peak() after (so pylens's own snapshot memory is
not counted); on 3.8 there is no reset_peak: the peak is the highest reading before a
snapshot raised it (a warning says so when snapshots raised it).

Result `data`:
  options: {interval, frames, top}
  current: bytes alive at exit (final snapshot, filtered);  current_blocks: their count
  peak: the program's peak traced bytes (see above);  peak_raw: tracemalloc's own reading
  peak_exact: false when (3.8) a snapshot raised the peak
  traced_raw: get_traced_memory()[0] at stop (unfiltered)
  tracemalloc_bytes: get_tracemalloc_memory() at stop (tracemalloc's own bookkeeping)
  rss: resident bytes at stop (/proc/self/statm; null elsewhere); rss_peak: ru_maxrss bytes
  snapshots: [{t: s since start, kind: "interval"|"exit", traced, blocks, rss, peak}]
  lines: [{file, line, function, sizes: [bytes per snapshot], counts: [blocks per snapshot]}]
         (the lines biggest at exit, at their maximum, and growing most; aligned with snapshots)
  frames: [[file, line, function]]
  stacks: {"exit": [[frame indices root->leaf, bytes, blocks]], "peak": same or null}
          (helper and runpy frames removed; a first frame index of -1 = "older frames cut")
  peak_snapshot: {t, traced, rss} or null (the snapshot stacks.peak came from)
  timing: {calibration_ns, snapshot_ns, snapshots_taken, final_ns, slowdown}
"""
import ast
from collections import defaultdict
from operator import itemgetter
import linecache
import os
import sys
import threading
import time
import tracemalloc

from _tracemalloc import _get_traces

_HELPER_DIR = os.path.dirname(os.path.abspath(__file__))
_BOOT_FILE = os.path.join(os.path.dirname(_HELPER_DIR), "pylens_boot.py")
_TM_FILE = tracemalloc.__file__
_SELF_FILE = __file__
_SIZE = itemgetter(1)
_POLL = 0.05
_MAX_SNAPSHOTS = 240
_MAX_STACKS = 20000
_PEAK_RATIO = 1.25
_PEAK_MIN = 1 << 20


def _rss():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except Exception:
        return None


def _rss_peak():
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb * 1024 if sys.platform != "darwin" else kb
    except Exception:
        return None


def _calib_loop(n):
    for i in range(n):
        a = [i, i + 1000]
        b = (i, a)
        c = {"k": b}
        d = str(i + 1000)
        del a, b, c, d


class _Mem:
    def __init__(self, options, info):
        self.interval = float(options.get("interval", 1.0) or 0)
        self.nframes = max(1, min(int(options.get("frames", 16) or 16), 1000))
        self.top = int(options.get("top", 15) or 15)
        self.target = info.get("target") or {}
        self.excluded = {}  # file name -> an allocation there is pylens's or tracemalloc's
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = None
        self.t0 = 0.0
        self.snapshots = []  # dicts (see the docstring)
        self.series = {}  # (file, line) -> [[sizes], [counts]]
        self.peak_clean = 0  # the program's peak as far as read
        self.peak_exact = True
        self.has_reset = hasattr(tracemalloc, "reset_peak")
        self.helper_bytes = 0
        self.best_total = 0  # the largest filtered total a snapshot saw
        self.peak_stats = None  # traceback statistics of the largest peak snapshot
        self.peak_info = None
        self.calibration_ns = 0
        self.slowdown = None
        self.snapshot_ns = 0
        self.snapshots_taken = 0
        self.final_ns = 0
        self.warns = []
        self.data = None

    # --- calibration -------------------------------------------------------------------
    def _calibrate(self):
        """Time a small-object allocation loop untraced and traced (best of 3 each)."""
        c0 = time.perf_counter_ns()
        n = 500
        _calib_loop(100)

        def best(k=3):
            b = None
            for _ in range(k):
                t = time.perf_counter_ns()
                _calib_loop(n)
                d = time.perf_counter_ns() - t
                b = d if b is None or d < b else b
            return b

        plain = best()
        tracemalloc.start(self.nframes)
        try:
            traced = best()
        finally:
            tracemalloc.stop()
        plain = min(plain, best())
        self.slowdown = max(0.0, traced / plain - 1.0) if plain > 0 else None
        self.calibration_ns = time.perf_counter_ns() - c0

    # --- lens protocol -----------------------------------------------------------------
    def start(self):
        if tracemalloc.is_tracing():
            self.warns.append("tracemalloc was already tracing (PYTHONTRACEMALLOC or -X tracemalloc); its traceback depth is kept and the overhead estimate is skipped")
        else:
            if self.target.get("kind") == "module":
                import runpy  # noqa: F401 - what `python -m` has loaded before the program (the runner imports it later)
            try:
                self._calibrate()
            except Exception as e:  # the estimate is optional
                self.warns.append("overhead calibration failed: %s" % e)
            tracemalloc.start(self.nframes)
        self.nframes = tracemalloc.get_traceback_limit()
        self.t0 = time.perf_counter()
        self.thread = threading.Thread(target=self._loop, name="pylens-mem", daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)
        if not tracemalloc.is_tracing():
            self.warns.append("the program stopped tracemalloc itself; the figures end there")
            self.data = self._build(None, None)
            return
        t = time.perf_counter_ns()
        with self.lock:
            stats = self._snapshot("exit", want_stacks=True)
            cur_raw, peak_raw = tracemalloc.get_traced_memory()
            tm_bytes = tracemalloc.get_tracemalloc_memory()
            tracemalloc.stop()
        self.data = self._build(stats, (cur_raw, peak_raw, tm_bytes))
        self.final_ns = time.perf_counter_ns() - t
        self.data["timing"]["final_ns"] = self.final_ns

    def result(self):
        return self.data

    def warnings(self):
        return list(self.warns)

    def overhead(self):
        t_snap = self.snapshot_ns + self.final_ns
        wall = max(1, int((time.perf_counter() - self.t0) * 1e9)) if self.t0 else 1
        parts = "the snapshots took %.1f ms (%d, measured)" % (t_snap / 1e6, self.snapshots_taken)
        if self.slowdown is None:
            return {"fraction": None, "method": parts + "; the tracing cost is unknown (not calibrated)"}
        s = self.slowdown
        # Python counts no allocations (only live blocks), so the tracing cost of this run
        # cannot be scaled from the calibration: say what is known instead of a number that
        # would only be an upper bound
        return {
            "fraction": None,
            "method": "not measurable as a share: tracing makes every allocation slower (at start, a small-object allocation loop ran %.1fx slower with %d-frame tracebacks, best of 3 traced vs untraced), and Python keeps no count of the allocations a run makes, so the cost lies between nothing (code that rarely allocates) and that factor (code that does little else); the snapshots (%d while running, and the final one) took %.1f ms = %.1f %% of the run, measured; fewer --frames lowers the per-allocation cost"
            % (1.0 + s, self.nframes, self.snapshots_taken, t_snap / 1e6, 100.0 * t_snap / wall),
        }

    # --- snapshots ---------------------------------------------------------------------
    def _loop(self):
        next_t = self.t0 + self.interval if self.interval > 0 else None
        while not self.stopping.wait(_POLL):
            try:
                now = time.perf_counter()
                if next_t is not None and now >= next_t:
                    with self.lock:
                        if self.stopping.is_set():
                            return
                        self._snapshot("interval", want_stacks=False)
                    next_t += self.interval
                    if next_t <= time.perf_counter():  # fell behind: skip, don't burst
                        next_t = time.perf_counter() + self.interval
                    continue
                cur = tracemalloc.get_traced_memory()[0] - self.helper_bytes
                if cur > self.best_total * _PEAK_RATIO and cur - self.best_total > _PEAK_MIN:
                    with self.lock:
                        if self.stopping.is_set():
                            return
                        self._snapshot("peak", want_stacks=True)
            except Exception as e:  # never kill the program's run
                self.warns.append("a snapshot failed: %s: %s" % (type(e).__name__, e))
                return

    def _excluded(self, filename):
        ex = self.excluded.get(filename)
        if ex is None:
            ex = self.excluded[filename] = (
                filename == _TM_FILE or (not filename.startswith("<") and (os.path.dirname(os.path.abspath(filename)) == _HELPER_DIR or os.path.abspath(filename) == _BOOT_FILE))
            )
        return ex

    def _snapshot(self, kind, want_stacks):
        """One snapshot from tracemalloc's raw traces (domain, size, traceback most recent
        first[, total_nframe]): aggregated here, ~10x faster than Snapshot.statistics()."""
        t_ns = time.thread_time_ns()
        cur0, peak0 = tracemalloc.get_traced_memory()
        # the program's peak up to now (pylens's own retained bytes taken out)
        self.peak_clean = max(self.peak_clean, peak0 - self.helper_bytes)
        traces = _get_traces()
        # every allocation made here is traced too (a few us each): the loop allocates
        # nothing per trace (sizes are appended to per-key lists, summed in C)
        everything = sum(map(_SIZE, traces))
        lines = defaultdict(list)
        mine = []  # the program's traces (references only)
        excluded = self.excluded
        own = {}
        for tr in traces:
            tb = tr[2]
            if not tb:
                continue
            fn = tb[0][0]
            ex = excluded.get(fn)
            if ex is None:
                ex = self._excluded(fn)
            if ex:
                continue
            # made under the lens's own code (its thread, its start()): not the program's
            ex = own.get(tb)
            if ex is None:
                ex = own[tb] = any(f[0] == _SELF_FILE for f in tb)
            if ex:
                continue
            lines[tb[0]].append(tr[1])
            mine.append(tr)
        del own
        by_line = {k: (sum(v), len(v)) for k, v in lines.items()}
        del lines
        total = sum(e[0] for e in by_line.values())
        blocks = len(mine)
        # tracebacks: at exit, and whenever this is the largest snapshot so far by a margin
        by_tb = None
        if want_stacks or (total > self.best_total * _PEAK_RATIO and total - self.best_total > _PEAK_MIN):
            tbs = defaultdict(list)
            nframes_of = {}
            for tr in mine:
                tbs[tr[2]].append(tr[1])
                if len(tr) > 3:
                    nframes_of[tr[2]] = tr[3]
            by_tb = {(k, nframes_of.get(k)): (sum(v), len(v)) for k, v in tbs.items()}
            del tbs
        del mine
        del traces
        rss = _rss()
        t = time.perf_counter() - self.t0
        if kind in ("interval", "exit"):
            self._add_series(by_line, {"t": t, "kind": kind, "traced": total, "blocks": blocks, "rss": rss, "peak": 0})
        if kind != "exit" and by_tb is not None:
            self.peak_stats = by_tb
            self.peak_info = {"t": t, "traced": total, "rss": rss}
        self.best_total = max(self.best_total, total)
        del by_line
        cur1, peak1 = tracemalloc.get_traced_memory()
        if self.has_reset:
            tracemalloc.reset_peak()
        elif peak1 > peak0 and kind != "exit":
            self.peak_exact = False
        # what pylens keeps between snapshots (series, kept stacks) is not the program's
        self.helper_bytes = max(0, everything - total)
        if self.snapshots:
            self.snapshots[-1]["peak"] = self.peak_clean
        if kind != "exit":
            self.snapshot_ns += time.thread_time_ns() - t_ns
            self.snapshots_taken += 1
        return by_tb

    def _add_series(self, by_line, info):
        k = len(self.snapshots)
        self.snapshots.append(info)
        for key, e in by_line.items():
            ser = self.series.get(key)
            if ser is None:
                ser = self.series[key] = ([0] * k, [0] * k)
            ser[0].append(e[0])
            ser[1].append(e[1])
        for key, ser in self.series.items():
            if key not in by_line:
                ser[0].append(0)
                ser[1].append(0)
        if info["kind"] == "interval" and len(self.snapshots) >= _MAX_SNAPSHOTS:
            # thin: keep every other interval snapshot, twice the interval from now on
            keep = list(range(0, len(self.snapshots), 2))
            if keep[-1] != len(self.snapshots) - 1:
                keep.append(len(self.snapshots) - 1)
            self.snapshots = [self.snapshots[i] for i in keep]
            for ser in self.series.values():
                ser[0][:] = [ser[0][i] for i in keep]
                ser[1][:] = [ser[1][i] for i in keep]
            self.interval *= 2
            if not any("thinned" in w for w in self.warns):
                self.warns.append("more than %d snapshots: every other one was dropped and the interval doubled (now %.3g s)" % (_MAX_SNAPSHOTS, self.interval))

    # --- the result --------------------------------------------------------------------
    def _build(self, exit_stats, raw):
        names = _Names(self.target)
        frames = []
        frame_ix = {}

        def fid(filename, lineno):
            key = (filename, lineno)
            i = frame_ix.get(key)
            if i is None:
                i = frame_ix[key] = len(frames)
                frames.append([filename, lineno, names.function(filename, lineno)])
            return i

        def stacks_of(tb_stats):
            if tb_stats is None:
                return None
            out = []
            items = sorted(tb_stats.items(), key=lambda x: -x[1][0])
            other_size = other_count = 0
            for (raw_tb, total_nframe), (size, count) in items:
                if len(out) >= _MAX_STACKS:
                    other_size += size
                    other_count += count
                    continue
                fr = raw_tb[::-1]  # oldest first
                cut = False
                if total_nframe is not None:
                    cut = total_nframe > len(fr)
                elif len(fr) >= self.nframes:
                    cut = True
                i = 0
                while i < len(fr) and self._excluded(fr[i][0]):
                    i += 1
                if i > 0:
                    cut = False
                    if self.target.get("kind") == "module":
                        while i < len(fr) and _is_runpy(fr[i][0]):
                            i += 1
                ids = [fid(f[0], f[1]) for f in fr[i:]]
                if cut:
                    ids.insert(0, -1)
                out.append([ids, size, count])
            if other_size:
                out.append([[-2], other_size, other_count])
            return out

        stacks = {"exit": stacks_of(exit_stats), "peak": stacks_of(self.peak_stats)}
        # the lines worth sending: biggest at exit, biggest ever, growing most
        keys = list(self.series.keys())
        n_keep = max(200, 10 * self.top)
        chosen = set()
        if keys:
            for rank in (
                lambda k: self.series[k][0][-1],
                lambda k: max(self.series[k][0]),
                lambda k: self.series[k][0][-1] - self.series[k][0][0],
            ):
                chosen.update(sorted(keys, key=rank, reverse=True)[:n_keep])
        lines = []
        for key in sorted(chosen, key=lambda k: -self.series[k][0][-1]):
            ser = self.series[key]
            if max(ser[0]) == 0:
                continue
            lines.append({"file": key[0], "line": key[1], "function": names.function(key[0], key[1]), "sizes": ser[0], "counts": ser[1]})
        exit_snap = self.snapshots[-1] if self.snapshots and self.snapshots[-1]["kind"] == "exit" else None
        cur_raw, peak_raw, tm_bytes = raw if raw else (None, None, None)
        peak = self.peak_clean
        if not self.peak_exact:
            self.warns.append(
                "Python %d.%d has no tracemalloc.reset_peak(): pylens's snapshots raised tracemalloc's peak to %d bytes, so the peak shown is the highest reading before that (the program's own peak may be higher); --interval 0 avoids it"
                % (sys.version_info[0], sys.version_info[1], peak_raw or 0)
            )
        return {
            "options": {"interval": self.interval, "frames": self.nframes, "top": self.top},
            "current": exit_snap["traced"] if exit_snap else None,
            "current_blocks": exit_snap["blocks"] if exit_snap else None,
            "peak": peak,
            "peak_raw": peak_raw,
            "peak_exact": self.peak_exact,
            "traced_raw": cur_raw,
            "tracemalloc_bytes": tm_bytes,
            "rss": _rss(),
            "rss_peak": _rss_peak(),
            "snapshots": self.snapshots,
            "lines": lines,
            "frames": frames,
            "stacks": stacks,
            "peak_snapshot": self.peak_info,
            "timing": {
                "calibration_ns": self.calibration_ns,
                "snapshot_ns": self.snapshot_ns,
                "snapshots_taken": self.snapshots_taken,
                "final_ns": self.final_ns,
                "slowdown": self.slowdown,
            },
        }


def _is_runpy(filename):
    return filename == "<frozen runpy>" or os.path.basename(filename) == "runpy.py"


class _Names:
    """Function names for (file, line): tracemalloc keeps only files and lines; the
    enclosing def/class comes from the source's syntax tree (qualified like co_qualname)."""

    def __init__(self, target):
        self.target = target
        self.files = {}

    def function(self, filename, lineno):
        spans = self.files.get(filename)
        if spans is None:
            spans = self.files[filename] = self._spans(filename)
        best = None
        for start, end, qual in spans:
            if start <= lineno <= end and (best is None or start >= best[0]):
                best = (start, end, qual)
        if best is not None:
            return best[2]
        return "<module>"

    def _spans(self, filename):
        try:
            if filename == "<string>" and self.target.get("kind") == "code":
                src = self.target.get("value") or ""
            else:
                src = "".join(linecache.getlines(filename))
            if not src:
                return []
            tree = ast.parse(src)
        except Exception:
            return []
        spans = []

        def walk(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    qual = prefix + child.name
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    end = getattr(child, "end_lineno", None) or child.lineno
                    spans.append((start, end, qual))
                    inner = qual + (".<locals>." if not isinstance(child, ast.ClassDef) else ".")
                    walk(child, inner)
                else:
                    walk(child, prefix)

        walk(tree, "")
        return spans


def create(options, info):
    return _Mem(options, info)
