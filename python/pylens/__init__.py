"""pylens: the optional in-program API of the pylens interpreter lenses (stdlib only).

    import pylens
    with pylens.region("checkout"):
        handle(request)

    @pylens.region("checkout")
    def handle(request): ...

Outside a pylens run (or under a lens that does not use regions) a region does nothing.
`pylens trace --region NAME -- python app.py` traces only inside regions named NAME.
Copy this file next to your program if you want the import to work without pylens.
"""

_active = None  # the running lens, set by pylens._runner


class region:
    """Mark a named part of the program (context manager or decorator)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = str(name)

    def __enter__(self):
        lens = _active
        if lens is not None:
            enter = getattr(lens, "enter_region", None)
            if enter is not None:
                enter(self.name)
        return self

    def __exit__(self, *exc):
        lens = _active
        if lens is not None:
            leave = getattr(lens, "exit_region", None)
            if leave is not None:
                leave(self.name)
        return False

    def __call__(self, fn):
        name = self.name

        def wrapper(*args, **kwargs):
            with region(name):
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__qualname__ = getattr(fn, "__qualname__", wrapper.__name__)
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        wrapper.__wrapped__ = fn
        return wrapper
