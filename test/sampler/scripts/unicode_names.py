"""Unicode names for pylens' live walker tests (test/sampler/shapes.test.ts).

The test copies this file to a directory and file name with non-ASCII and CJK
characters and runs it there. A worker thread parks in
  t_uni -> Ωμέγα.метод -> 計算_λ -> <249-char ASCII name> -> <215-char name
  with latin-1, Greek and CJK (incl. U+20000, outside the BMP)> -> hold
and the main thread prints what Python sees (sys._current_frames) as
  ready {"threads": {"uni": {"ident", "native", "frames"}}, "main": .., "markers": ..}
with ensure_ascii JSON, then parks in hold().
"""
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


def 長い_λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀_終():
    hold()  # @uni_long


def long_abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij_end():
    長い_λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀λü𠀀_終()  # @ascii_long


def 計算_λ():
    long_abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij_end()  # @calc


class Ωμέγα:
    def метод(self):
        計算_λ()  # @method


def t_uni():
    Ωμέγα().метод()  # @t_uni


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


def main():
    t = threading.Thread(target=t_uni, name="uni", daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while True:
        f = sys._current_frames().get(t.ident)
        if f is not None and f.f_code.co_name == "hold" and f.f_lineno == MARKERS["hold"]:
            break
        if time.monotonic() > deadline:
            raise SystemExit("worker did not settle")
        time.sleep(0.005)
    doc = {
        "threads": {"uni": {"ident": t.ident, "native": t.native_id, "frames": describe(f)}},
        "main": {"ident": threading.get_ident(), "native": threading.get_native_id()},
        "markers": MARKERS,
    }
    del f
    print("ready " + json.dumps(doc), flush=True)


main()
hold()  # @main
