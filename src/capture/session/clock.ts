/**
 * Clock alignment between the sampler and the tools beside it. The sampler's sample times
 * are `performance.now()` (libuv's CLOCK_MONOTONIC) relative to its first deadline; perf
 * (`-k CLOCK_MONOTONIC`) and bpftrace (`nsecs`) stamp absolute CLOCK_MONOTONIC.
 */
import { realClock, type SamplerClock } from '../sampler/sampler.ts';

/** Absolute CLOCK_MONOTONIC ns minus `performance.now()` in ns (the best of a few readings). */
export function monotonicOffsetNs(): number {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 5; i++) {
    const a = performance.now();
    const h = process.hrtime.bigint();
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      offset = Number(h) - ((a + b) / 2) * 1e6;
    }
  }
  return offset;
}

/** The real clock, remembering its first reading: the sampler's first deadline, time 0 of its samples. */
export class AlignedClock implements SamplerClock {
  /** clock time of the first reading (performance.now() ns) */
  startNs: number | undefined;

  nowNs(): number {
    const t = realClock.nowNs();
    this.startNs ??= t;
    return t;
  }

  sleepUntilNs(t: number, signal?: AbortSignal): Promise<void> {
    return realClock.sleepUntilNs(t, signal);
  }

  /** Absolute CLOCK_MONOTONIC ns of the samples' time 0; undefined when sampling never started. */
  originNs(): number | undefined {
    return this.startNs === undefined ? undefined : this.startNs + monotonicOffsetNs();
  }
}
