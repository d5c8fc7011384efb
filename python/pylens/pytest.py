"""pylens's pytest plugin: performance budgets per test, as markers (stdlib + pytest's hooks).

    PYTHONPATH="$(pylens pythonpath)" pytest -p pylens.pytest

    @pytest.mark.pylens(calls={"app.db:query": 3}, peak_memory="50 MB")
    def test_orders(client): ...

Budgets (keyword arguments of the marker; a class's or module's marker applies to its tests,
the closest one wins per budget):
- calls: {"module:qualname": max}: exact calls of each function while the test body runs
  (the count lens's machinery: sys.monitoring on 3.12+, sys.setprofile before). A name that
  never resolves fails the test with the count lens's message ("did you mean ...").
- peak_memory: "50 MB" / "512 KiB" / bytes: the most memory the test body held at once
  beyond what was live when it started (tracemalloc's traced peak).
Only the test function's call is measured (not its fixtures' setup). A broken budget is an
ordinary pytest failure whose message has the numbers; a bad marker fails the test's setup
naming the test and the key.

Environment:
- PYLENS_PYTEST_REPORT=FILE: also write every measured test's budgets (and every failed
  test) as JSON there at the end of the session (`pylens check` reads it).
- PYLENS_PYTEST=off: markers are accepted and nothing is measured (for timed runs).

Report (version 1):
    {"format": "pylens-pytest", "version": 1, "python": "3.11.2", "exitstatus": 0,
     "tests": [{"nodeid": "tests/test_a.py::test_x", "file": "/abs/tests/test_a.py",
                "line": 12, "outcome": "passed" | "failed" | "skipped" | "error",
                "message": str | null,         # the first line of a failure
                "budgets": [{"kind": "calls", "spec": "app.db:query", "max": 3,
                             "value": 5, "verdict": "fail", "error": null,
                             "source": {"file": "/abs/app/db.py", "line": 40} | null},
                            {"kind": "peak-memory", "max": 50000000, "text": "50 MB",
                             "value": 61234, "verdict": "pass", "error": null}]}]}
"""
import json
import os
import re
import sys
import tracemalloc

import pytest

_KEYS = ("calls", "peak_memory")
_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_QTY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUAL = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|<locals>|<lambda>)$")

_tests = []
_off = os.environ.get("PYLENS_PYTEST", "").lower() in ("off", "0", "no")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        'pylens(calls=None, peak_memory=None): performance budgets pylens measures for this test, '
        'e.g. calls={"app.db:query": 3}, peak_memory="50 MB"',
    )


def _close(word, words):
    import difflib

    m = difflib.get_close_matches(word, words, n=1)
    return " (did you mean %s?)" % m[0] if m else ""


def _parse_bytes(v):
    if isinstance(v, bool):
        raise ValueError("peak_memory must be a size like \"50 MB\", not %r" % (v,))
    if isinstance(v, int):
        if v < 0:
            raise ValueError("peak_memory must not be negative")
        return v, "%d B" % v
    if not isinstance(v, str):
        raise ValueError("peak_memory must be a size like \"50 MB\" or a number of bytes, not %r" % (v,))
    m = _QTY.match(v)
    unit = (m.group(2) if m else "").lower()
    if not m or unit not in _BYTES:
        raise ValueError('cannot read peak_memory=%r as a size (use B, KB, MB, GB, KiB, MiB or GiB, e.g. "50 MB")' % (v,))
    return int(float(m.group(1)) * _BYTES[unit]), v.strip()


def _check_spec(spec):
    mod, colon, qual = spec.partition(":")
    if not colon or not mod or not qual:
        return "%r is not module:qualname (e.g. \"app.db:query\")" % (spec,)
    if not all(_IDENT.match(p) for p in mod.split(".")):
        return "%r: %r is not a module name" % (spec, mod)
    if not all(_QUAL.match(p) for p in qual.split(".")):
        return "%r: %r is not a qualified name (e.g. Class.method or outer.<locals>.inner)" % (spec, qual)
    if mod == "__main__":
        return "%r: under pytest __main__ is pytest itself; name the module the function is defined in" % (spec,)
    return None


def _budgets(item):
    """The item's budgets, merged from its markers (closest first); raises ValueError on a bad one."""
    merged = {}
    for mark in item.iter_markers(name="pylens"):
        if mark.args:
            raise ValueError("@pytest.mark.pylens takes keyword arguments only (calls=..., peak_memory=...), got %d positional" % len(mark.args))
        for k, v in mark.kwargs.items():
            if k not in _KEYS:
                raise ValueError("@pytest.mark.pylens: unknown budget %r%s; budgets: %s" % (k, _close(k, _KEYS), ", ".join(_KEYS)))
            merged.setdefault(k, v)
    if not merged:
        return None
    out = {}
    calls = merged.get("calls")
    if calls is not None:
        if not isinstance(calls, dict) or not calls:
            raise ValueError('@pytest.mark.pylens: calls must be a dict of "module:qualname": max, e.g. calls={"app.db:query": 3}')
        out["calls"] = []
        for spec, mx in calls.items():
            if not isinstance(spec, str):
                raise ValueError("@pytest.mark.pylens: calls: %r is not a \"module:qualname\" string" % (spec,))
            bad = _check_spec(spec)
            if bad:
                raise ValueError("@pytest.mark.pylens: calls: " + bad)
            if isinstance(mx, bool) or not isinstance(mx, int) or mx < 0:
                raise ValueError("@pytest.mark.pylens: calls[%r] must be a whole number >= 0, got %r" % (spec, mx))
            out["calls"].append((spec, mx))
    if merged.get("peak_memory") is not None:
        out["peak_memory"] = _parse_bytes(merged["peak_memory"])
    return out


def _fmt_bytes(n):
    for unit, f in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= f:
            return "%.1f %s" % (n / f, unit)
    return "%d B" % n


class _Measure:
    """Counting and tracemalloc around one test call."""

    def __init__(self, budgets):
        self.budgets = budgets
        self.count = None
        self.traced = False
        self.own_tracing = False
        self.mem0 = 0
        self.peak = None

    def start(self):
        if self.budgets.get("calls"):
            from pylens._lens_count import _Count

            self.count = _Count({"functions": [s for s, _ in self.budgets["calls"]], "time": False, "calibrate": False}, {})
            self.count.start()
        if "peak_memory" in self.budgets:
            if tracemalloc.is_tracing():
                if hasattr(tracemalloc, "reset_peak"):
                    tracemalloc.reset_peak()
                else:  # 3.8: no reset_peak; clearing the traces resets the peak
                    tracemalloc.clear_traces()
            else:
                tracemalloc.start(1)
                self.own_tracing = True
            self.traced = True
            self.mem0 = tracemalloc.get_traced_memory()[0]

    def stop(self):
        if self.traced:
            self.peak = max(0, tracemalloc.get_traced_memory()[1] - self.mem0)
            if self.own_tracing:
                tracemalloc.stop()
        if self.count is not None:
            self.count.stop()

    def results(self):
        out = []
        if self.count is not None:
            data = {f["spec"]: f for f in self.count.result()["functions"]}
            for spec, mx in self.budgets["calls"]:
                f = data.get(spec) or {}
                code = (f.get("codes") or [None])[0]
                r = {"kind": "calls", "spec": spec, "max": mx, "value": None, "verdict": None, "error": None, "source": {"file": code["file"], "line": code["line"]} if code else None}
                if not f.get("resolved"):
                    r["error"] = f.get("error") or ("%s was never resolved" % spec)
                else:
                    r["value"] = f["calls"]
                    r["verdict"] = "pass" if f["calls"] <= mx else "fail"
                out.append(r)
        if "peak_memory" in self.budgets:
            mx, text = self.budgets["peak_memory"]
            out.append({"kind": "peak-memory", "max": mx, "text": text, "value": self.peak, "verdict": "pass" if self.peak <= mx else "fail", "error": None, "source": None})
        return out


def _describe(r):
    if r["kind"] == "calls":
        if r["error"]:
            return "calls of %s: %s" % (r["spec"], r["error"])
        return "calls of %s: %d %s %d" % (r["spec"], r["value"], ">" if r["verdict"] == "fail" else "<=", r["max"])
    return "peak memory: %s %s %s" % (_fmt_bytes(r["value"]), ">" if r["verdict"] == "fail" else "<=", r["text"])


def _entry(item):
    path, line, _ = item.location
    return {"nodeid": item.nodeid, "file": os.path.abspath(str(getattr(item, "fspath", path))), "line": (line or 0) + 1, "outcome": None, "message": None, "budgets": []}


def pytest_runtest_setup(item):
    try:
        b = _budgets(item)
    except ValueError as e:
        b = str(e)
    if isinstance(b, str):
        pytest.fail("%s: %s" % (item.nodeid, b), pytrace=False)
    item._pylens_budgets = b


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    budgets = getattr(pyfuncitem, "_pylens_budgets", None)
    if not budgets or _off:
        yield
        return
    entry = _entry(pyfuncitem)
    pyfuncitem._pylens_entry = entry
    _tests.append(entry)
    fn = pyfuncitem.obj

    def measured(*args, **kwargs):
        m = _Measure(budgets)
        m.start()
        try:
            res = fn(*args, **kwargs)
        finally:
            m.stop()
            entry["budgets"] = m.results()
        broken = [r for r in entry["budgets"] if r["error"] or r["verdict"] == "fail"]
        if broken:
            pytest.fail("pylens budget broken: " + "; ".join(_describe(r) for r in broken), pytrace=False)
        return res

    # measure the test function itself: pytest calls item.obj with the fixtures' values
    pyfuncitem.obj = measured
    try:
        yield
    finally:
        pyfuncitem.obj = fn


def pytest_runtest_logreport(report):
    e = next((t for t in _tests if t["nodeid"] == report.nodeid), None)
    if report.failed:
        if e is None:
            path, line, _ = report.location
            e = {"nodeid": report.nodeid, "file": os.path.abspath(path), "line": (line or 0) + 1, "outcome": None, "message": None, "budgets": []}
            _tests.append(e)
        if e["outcome"] in (None, "passed"):
            e["outcome"] = "failed" if report.when == "call" else "error"
            text = getattr(report, "longreprtext", "") or str(report.longrepr or "")
            lines = [l for l in text.splitlines() if l.strip()]
            first = next((l[1:] for l in lines if l.startswith("E ")), lines[-1] if lines else "")
            e["message"] = first.strip()[:400]
    elif report.when == "call" and e is not None and e["outcome"] is None:
        e["outcome"] = "skipped" if report.skipped else "passed"


def pytest_terminal_summary(terminalreporter):
    measured = [t for t in _tests if t["budgets"]]
    if not measured:
        return
    tr = terminalreporter
    tr.section("pylens budgets")
    for t in measured:
        bad = any(r["error"] or r["verdict"] == "fail" for r in t["budgets"])
        tr.write_line("%s %s: %s" % ("FAIL" if bad else "ok  ", t["nodeid"], "; ".join(_describe(r) for r in t["budgets"])))


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("PYLENS_PYTEST_REPORT")
    if not path:
        return
    doc = {"format": "pylens-pytest", "version": 1, "python": "%d.%d.%d" % sys.version_info[:3], "exitstatus": int(exitstatus), "tests": _tests}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)
