"""
pylens's start gate (see src/capture/session/README.md). Stdlib only, CPython 3.8+.

pylens launches a program it samples with this folder first on PYTHONPATH and, in
PYLENS_GATE_FD, the number of a socket it holds the other end of. `site` imports this
module once the interpreter is initialised (its runtime and main thread exist, so the
sampler can attach) and before any of the program's own code runs. Here:

1. PYTHONPATH loses this folder and PYLENS_GATE_FD is removed, in os.environ and sys.path:
   the program and its children see the environment they would have without pylens, and
   children do not wait.
2. "pylens-gate PID" is written to the socket, then one byte is read from it: pylens
   sends it once the sampler and the tools beside it (perf, bpftrace) are attached. EOF
   (pylens gone) or 60 s without an answer: the program carries on regardless. A Ctrl-C
   while waiting ends the process by SIGINT, as it would a program that had not started.
3. The socket is closed and the sitecustomize module that this one shadows, if any (a
   user's, a distribution's), is imported from the rest of sys.path, as site would have.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_TIMEOUT_S = 60.0


def _ours(entry):
    return bool(entry) and os.path.abspath(entry) == _HERE


def _unshadow():
    sys.path[:] = [p for p in sys.path if not _ours(p)]
    env = os.environ.get("PYTHONPATH")
    if env is not None:
        rest = [p for p in env.split(os.pathsep) if not _ours(p)]
        if any(rest):
            os.environ["PYTHONPATH"] = os.pathsep.join(rest)
        else:
            del os.environ["PYTHONPATH"]


def _wait(fd):
    import stat

    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return
    except OSError:
        return
    try:
        try:
            os.write(fd, ("pylens-gate %d\n" % os.getpid()).encode("ascii"))
        except OSError:
            return  # pylens is gone, or let the program go already
        import select

        try:
            ready, _, _ = select.select([fd], [], [], _TIMEOUT_S)
            if ready:
                os.read(fd, 1)
        except KeyboardInterrupt:
            import signal

            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            os._exit(130)
        except OSError:
            pass
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def _gate():
    _unshadow()
    fd = os.environ.pop("PYLENS_GATE_FD", None)
    if fd is not None and fd.isdigit():
        _wait(int(fd))
    # the sitecustomize this one shadows, found further down sys.path (a module may replace
    # itself in sys.modules while it is being imported: the import returns the new one);
    # when there is none, or it fails, this one stays (importlib takes the module back out
    # of sys.modules by name once this one has run)
    me = sys.modules.pop(__name__)
    try:
        import sitecustomize  # noqa: F401
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise
    finally:
        sys.modules.setdefault(__name__, me)


_gate()
