"""The one rule every lens's overhead estimate follows (stdlib only, CPython 3.8+)."""


def slowdown(cost_ns, run_ns):
    """The slowdown a hook cost `cost_ns` gave a run that took `run_ns` with it: cost over the
    run's time without it. None past 90 % of the run, where an estimate cannot tell 10x from
    100x (the lenses then say "at least 10x")."""
    return cost_ns / (run_ns - cost_ns) if cost_ns < 0.9 * run_ns else None
