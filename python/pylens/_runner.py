"""Run the user's program under an interpreter lens, as `python` itself would run it.

Stdlib only, CPython 3.8+. Called by ../pylens_boot.py with:
    LENS RESULT_FILE OPTIONS_JSON -- (script.py | -m module | -c code) args...

What is preserved, as with plain `python`:
- `__main__`: a fresh module named `__main__` (sys.modules['__main__']) holds the program,
  with `__file__` for a script; `-m` goes through runpy like `python -m`.
- sys.argv (`[script, args...]`, `[module file, args...]`, `['-c', args...]`) and sys.path[0]
  (the script's real directory, the working directory for -m, '' for -c).
- the exit code (SystemExit's code, 1 for an uncaught exception, death by SIGINT for an
  uncaught KeyboardInterrupt), stdio (untouched) and the traceback of an uncaught exception
  (printed by sys.excepthook without pylens's own frames).

The lens (module `pylens._lens_<LENS>`) has `create(options, info)` returning an object with
`start()` (called just before the program's first line), `stop()` (once, at the very end:
after non-daemon threads ended and the program's own atexit handlers ran), `result()` (its
JSON-ready data) and optionally `overhead()` ({"fraction": float or None, "method": str}),
`warnings()` (list of str), `enter_region(name)` / `exit_region(name)` (see pylens.region).
The result file is JSON, written atomically; its shape is in ../README.md.
"""
import atexit
import importlib
import io
import json
import os
import platform
import signal
import sys
import time
import traceback
import types

import pylens

RESULT_FORMAT = "pylens-interp"
RESULT_VERSION = 1

_HELPER_DIR = os.path.dirname(os.path.abspath(__file__))


class _State:
    def __init__(self):
        self.lens = None
        self.lens_name = ""
        self.result_file = ""
        self.target = {}
        self.t0 = 0
        self.start_unix_ns = 0
        self.exit_code = 0
        self.exception = None
        self.interrupted = False
        # SIGTERM/SIGHUP that ended the program (re-raised after the result is written)
        self.signum = None
        self.finished = False
        self.helper_error = None
        self.pid = os.getpid()


_state = _State()


def _on_terminate(signum, frame):
    """SIGTERM/SIGHUP where the program kept the default (death): write what the lens has,
    then die by the same signal, as the program would have without pylens (no unwinding,
    no waiting for threads, no atexit)."""
    st = _state
    if os.getpid() != st.pid:
        # a forked child inherited the handler: it dies as it would have, writing nothing
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    st.signum = signum
    st.exit_code = 128 + signum
    _finish()


def _catch_termination():
    """Only where the program left the default (death) in place; its own handlers win."""
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _on_terminate)


def _usage(msg):
    sys.stderr.write("pylens helper: %s\n" % msg)
    sys.exit(2)


def _exit_code_of(e):
    """What `python` exits with for SystemExit(e.code)."""
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def _user_traceback(tb):
    """Drop the helper's own frames from the front of a traceback."""
    while tb is not None and os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) == _HELPER_DIR:
        tb = tb.tb_next
    return tb


def _fresh_main(file=None):
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__ if isinstance(__builtins__, dict) else __builtins__.__dict__
    if file is not None:
        main.__file__ = file
        main.__cached__ = None
        try:
            from importlib.machinery import SourceFileLoader

            main.__loader__ = SourceFileLoader("__main__", file)
        except Exception:
            pass
    main.__package__ = None
    main.__spec__ = None
    sys.modules["__main__"] = main
    return main


def _prepare(target_argv):
    """Parse the target like `python` does; set sys.argv and sys.path[0]. Returns a runner."""
    if not target_argv:
        _usage("nothing to run after --")
    first = target_argv[0]
    if first == "-m":
        if len(target_argv) < 2:
            _usage("-m needs a module name")
        mod = target_argv[1]
        sys.argv = [mod] + target_argv[2:]  # runpy puts the module's file in argv[0]
        sys.path.insert(0, os.getcwd())
        _state.target = {"kind": "module", "value": mod}

        def run():
            import runpy

            _fresh_main()
            run_as_main = getattr(runpy, "_run_module_as_main", None)
            if run_as_main is not None:
                run_as_main(mod, alter_argv=True)
            else:  # pragma: no cover - every CPython 3.8-3.13 has it
                runpy.run_module(mod, run_name="__main__", alter_sys=True)

        return run
    if first == "-c":
        if len(target_argv) < 2:
            _usage("-c needs a command")
        code_text = target_argv[1]
        sys.argv = ["-c"] + target_argv[2:]
        sys.path.insert(0, "")
        _state.target = {"kind": "code", "value": code_text}

        def run():
            main = _fresh_main()
            exec(compile(code_text, "<string>", "exec"), main.__dict__)

        return run
    path = first
    sys.argv = list(target_argv)
    _state.target = {"kind": "script", "value": os.path.abspath(path)}
    if not os.path.exists(path):
        exe = os.path.basename(sys.executable) or "python"
        sys.stderr.write("%s: can't open file %r: [Errno 2] No such file or directory\n" % (exe, os.path.abspath(path)))
        sys.exit(2)
    if os.path.isdir(path) or not path.endswith((".py", ".pyw")) and _is_zip(path):
        sys.path.insert(0, path)

        def run():
            import runpy

            runpy.run_path(path, run_name="__main__")

        return run
    sys.path.insert(0, os.path.dirname(os.path.realpath(path)))

    def run():
        with io.open_code(path) as f:
            source = f.read()
        # 3.9+ gives the main script an absolute __file__ (and code file name)
        fname = os.path.abspath(path) if sys.version_info >= (3, 9) else path
        code = compile(source, fname, "exec")
        main = _fresh_main(fname)
        exec(code, main.__dict__)

    return run


def _is_zip(path):
    try:
        import zipfile

        return zipfile.is_zipfile(path)
    except Exception:
        return False


def _write_result():
    st = _state
    data = None
    overhead = None
    warnings = []
    lens = st.lens
    if lens is not None:
        try:
            data = lens.result()
        except Exception as e:  # the lens failed: say so, keep the rest
            warnings.append("the %s lens could not produce its result: %s" % (st.lens_name, _describe(e)))
        if hasattr(lens, "overhead"):
            try:
                overhead = lens.overhead()
            except Exception as e:
                warnings.append("overhead unknown: %s" % _describe(e))
        if hasattr(lens, "warnings"):
            try:
                warnings.extend(str(w) for w in lens.warnings())
            except Exception:
                pass
    if st.helper_error:
        warnings.append(st.helper_error)
    doc = {
        "format": RESULT_FORMAT,
        "version": RESULT_VERSION,
        "lens": st.lens_name,
        "python": {
            "version": platform.python_version(),
            "implementation": sys.implementation.name,
            "executable": sys.executable,
        },
        "pid": os.getpid(),
        "argv": list(sys.argv),
        "target": st.target,
        "start_unix_ns": st.start_unix_ns,
        "wall_ns": time.perf_counter_ns() - st.t0 if st.t0 else 0,
        "exit": {
            "code": st.exit_code,
            "exception": st.exception,
            "signal": "SIGINT" if st.interrupted else signal.Signals(st.signum).name if st.signum else None,
        },
        "overhead": overhead,
        "warnings": warnings,
        "data": data,
    }
    tmp = st.result_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False, default=_json_default)
    os.replace(tmp, st.result_file)


def _json_default(o):
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def _describe(e):
    return "%s: %s" % (type(e).__name__, e)


def _finish():
    """Registered first, so it runs last at exit: stop the lens, write the result."""
    st = _state
    if st.finished:
        return
    if os.getpid() != st.pid:
        # a forked child that exits normally runs the parent's atexit handlers: the result
        # is the parent's to write
        return
    st.finished = True
    pylens._active = None
    if st.lens is not None:
        try:
            st.lens.stop()
        except Exception as e:
            st.helper_error = "the %s lens failed to stop: %s" % (st.lens_name, _describe(e))
    try:
        _write_result()
    except Exception as e:
        sys.stderr.write("pylens helper: could not write %s: %s\n" % (st.result_file, _describe(e)))
    if st.interrupted or st.signum:
        # like python: an uncaught KeyboardInterrupt ends the process by SIGINT, and a
        # SIGTERM/SIGHUP with no handler by that signal
        sig = signal.SIGINT if st.interrupted else st.signum
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)


def main(argv):
    if len(argv) < 4 or argv[3] != "--":
        _usage("usage: pylens_boot.py LENS RESULT_FILE OPTIONS_JSON -- TARGET...")
    lens_name, result_file, options_json = argv[0], argv[1], argv[2]
    try:
        options = json.loads(options_json)
    except ValueError as e:
        _usage("bad options JSON: %s" % e)
    st = _state
    st.lens_name = lens_name
    st.result_file = os.path.abspath(result_file)
    run = _prepare(argv[4:])
    try:
        module = importlib.import_module("pylens._lens_" + lens_name)
    except ImportError as e:
        _usage("no lens %r (%s)" % (lens_name, e))
    info = {"helper_dir": _HELPER_DIR, "target": st.target}
    try:
        lens = module.create(options, info)
    except SystemExit:
        raise
    except Exception as e:  # a lens that cannot start: say so before the program runs
        sys.stderr.write("pylens helper: the %s lens could not start: %s\n" % (lens_name, _describe(e)))
        traceback.print_exc()
        sys.exit(70)
    st.lens = lens
    atexit.register(_finish)
    _catch_termination()
    pylens._active = lens
    st.start_unix_ns = time.time_ns()
    st.t0 = time.perf_counter_ns()
    lens.start()
    try:
        run()
    except SystemExit as e:
        st.exit_code = _exit_code_of(e)
    except KeyboardInterrupt as e:
        st.exception = {"type": "KeyboardInterrupt", "message": str(e)}
        st.interrupted = True
        st.exit_code = 130
        tb = _user_traceback(e.__traceback__)
        traceback.print_exception(type(e), e.with_traceback(tb), tb)
    except BaseException as e:  # noqa: B036 - everything the program raises is reported like python does
        st.exception = {"type": type(e).__qualname__, "module": type(e).__module__, "message": str(e)}
        st.exit_code = 1
        tb = _user_traceback(e.__traceback__)
        sys.excepthook(type(e), e.with_traceback(tb), tb)
    sys.exit(st.exit_code)
