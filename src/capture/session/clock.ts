/**
 * Clock alignment between the sampler and the tools beside it. The sampler's sample times
 * are `performance.now()` (libuv's CLOCK_MONOTONIC) relative to its first deadline; perf
 * (`-k CLOCK_MONOTONIC`) and bpftrace (`nsecs`) stamp absolute CLOCK_MONOTONIC.
 */
import { monotonicOffsetNs, realClock, type SamplerClock } from '../sampler/sampler.ts';

export { monotonicOffsetNs };

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

  sleepUntilSyncNs(t: number): void {
    realClock.sleepUntilSyncNs!(t);
  }

  /** Absolute CLOCK_MONOTONIC ns of the samples' time 0; undefined when sampling never started. */
  originNs(): number | undefined {
    return this.startNs === undefined ? undefined : this.startNs + monotonicOffsetNs();
  }
}
