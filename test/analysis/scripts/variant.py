"""A program recorded before and after a change, for the diff tests: `variant.py SECONDS
VARIANT`. It loops over parse(), render() and checksum(); VARIANT "slow" makes render() do
three times as much, as a regression would. stdlib only."""
import sys
import time


def parse(n):
    return [str(i) for i in range(n)]


def render(items, extra):
    out = []
    for _ in range(6 if extra else 2):
        out.append(",".join(items))
    return out


def checksum(items):
    return sum(len(s) for s in items)


def main(seconds, slow):
    end = time.time() + seconds
    while time.time() < end:
        items = parse(2000)
        render(items, slow)
        checksum(items)


main(float(sys.argv[1]), len(sys.argv) > 2 and sys.argv[2] == "slow")
