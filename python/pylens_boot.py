"""pylens interpreter-lens entry point (stdlib only, CPython 3.8+).

    python [interpreter options] pylens_boot.py LENS RESULT_FILE OPTIONS_JSON -- TARGET...

TARGET is `script.py args...`, `-m module args...` or `-c code args...`, as after `python`.
The user's program runs as `__main__` with its own sys.argv, sys.path[0], exit code, stdio
and exceptions; the lens's result is written to RESULT_FILE (see README.md next to this
file). This file only puts the helper package on the path and hands over.
"""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or os.getcwd()) == _here:
    del sys.path[0]
sys.path.append(_here)

from pylens._runner import main  # noqa: E402

main(sys.argv[1:])
