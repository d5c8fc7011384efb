"""A short CI scenario for bench/check-cost.ts: ~0.3 s of CPU in encode(), then exit. stdlib."""
import time


def encode(n):
    return sum(i * i for i in range(n))


end = time.perf_counter() + 0.3
while time.perf_counter() < end:
    encode(5000)
