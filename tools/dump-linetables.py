"""Dump line tables and their expected lines for test/sampler/linetable.test.ts.

Runs on CPython 3.8 to 3.13, stdlib only. Compiles every .py file of a few stdlib
packages (plus a synthetic module with large line and address jumps), walks every code
object (recursing into co_consts) and prints one JSON document on stdout:

  {"version": "3.11.7", "codes": [{"t": base64 line table, "f": co_firstlineno,
   "l": [expected line or null for every instruction offset 0, 2, 4, ...]}, ...]}

Expected lines come from CPython itself: code.co_lines() on 3.10+ (start <= o < end),
dis.findlinestarts() on 3.8/3.9 (line of the last line start <= o).
Usage: python3.X tools/dump-linetables.py [max_code_objects]
"""
import base64
import dis
import json
import os
import sys
import sysconfig

PACKAGES = ["json", "email", "asyncio", "http", "logging", "unittest", "xml", "concurrent", "importlib", "urllib", "collections"]
MODULES = ["argparse.py", "typing.py", "inspect.py", "dataclasses.py", "pathlib.py", "subprocess.py", "tarfile.py", "zipfile.py"]


def synthetic():
    """Line jumps > 127 and < -128, long functions (address jumps > 255), multi-line expressions."""
    parts = ["def far():\n    a = 1\n" + "\n" * 300 + "    b = 2\n" + "\n" * 70000 + "    return a + b\n"]
    body = "".join("    x{0} = y{0} if z else w{0}\n".format(i) for i in range(400))
    parts.append("def big(z):\n    y0 = w0 = 0\n" + body + "    return 0\n")
    parts.append("def back(a):\n    return (\n        a +\n" + "\n" * 200 + "        a\n    ) if a else [\n" + ",\n".join("        a" for _ in range(300)) + "\n    ]\n")
    parts.append("async def agen():\n    async for a in b:\n        yield a\n    try:\n        pass\n    finally:\n        pass\n")
    parts.append("class C:\n    def m(self):\n        with open(x) as f:\n            return [i for i in f if i]\n")
    return "\n".join(parts)


def sources():
    lib = sysconfig.get_paths()["stdlib"]
    yield "<synthetic>", synthetic()
    paths = []
    for pkg in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(lib, pkg)):
            dirnames.sort()
            if "test" in dirnames:
                dirnames.remove("test")
            paths.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    paths.extend(os.path.join(lib, m) for m in MODULES)
    for path in paths:
        try:
            with open(path, "rb") as f:
                yield path, f.read()
        except OSError:
            pass


def walk(code, out):
    out.append(code)
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            walk(c, out)


def expected_lines(code):
    n = len(code.co_code)
    if sys.version_info >= (3, 10):
        lines = [None] * (n // 2)
        for start, end, line in code.co_lines():
            for o in range(start, min(end, n), 2):
                lines[o // 2] = line
        return lines
    starts = list(dis.findlinestarts(code))
    lines = []
    k = -1
    for o in range(0, n, 2):
        while k + 1 < len(starts) and starts[k + 1][0] <= o:
            k += 1
        lines.append(starts[k][1] if k >= 0 else None)
    return lines


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    codes = []
    for path, src in sources():
        try:
            walk(compile(src, path, "exec", dont_inherit=True), codes)
        except (SyntaxError, ValueError):
            continue
        if len(codes) >= limit:
            break
    table = "co_linetable" if sys.version_info >= (3, 10) else "co_lnotab"
    out = []
    for code in codes:
        out.append({
            "t": base64.b64encode(getattr(code, table)).decode("ascii"),
            "f": code.co_firstlineno,
            "l": expected_lines(code),
        })
    json.dump({"version": "%d.%d.%d" % sys.version_info[:3], "codes": out}, sys.stdout, separators=(",", ":"))


main()
