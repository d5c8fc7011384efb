"""A lens that measures nothing: the runner alone (tests and the overhead baseline)."""


class _None:
    def __init__(self, options):
        self.options = options
        self.regions = []

    def start(self):
        pass

    def stop(self):
        pass

    def enter_region(self, name):
        self.regions.append(("enter", name))

    def exit_region(self, name):
        self.regions.append(("exit", name))

    def result(self):
        return {"options": self.options, "regions": self.regions}

    def overhead(self):
        return {"fraction": 0.0, "method": "the none lens does nothing"}


def create(options, info):
    return _None(options)
