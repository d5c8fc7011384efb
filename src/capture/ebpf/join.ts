/**
 * `record --backend ebpf`: the kernel's CPU samples (bpftrace `profile:hz`, exact timing,
 * kernel and user stacks, any process) joined with the pylens sampler's Python stacks.
 *
 * The kernel decides when and where CPU was used; the sampler says which Python code was
 * running. For each eBPF sample record (thread T, time t, count n): the sampler's sample of
 * T nearest to t within `windowNs` gives the Python frames (root first); the user stack's
 * leaf frames up to the eval loop or the call machinery (these CPythons have no frame
 * pointers, so bpftrace's frame-pointer walk is only trustworthy at the leaf) go under
 * them as native frames, then the kernel stack. Where the sampler missed ticks (a busy
 * machine), a sample past the window between two sampler samples of the same functions
 * (`bridgeNs`) takes the nearer's stack. Samples of threads the sampler does not
 * cover (other processes with `--all`, a thread between samples) keep their native and
 * kernel frames under a `process PID (comm)` root, and are counted.
 */
import { isEvalFrame, isPlumbing } from '../../analysis/interpreter.ts';
import { ProfileBuilder } from '../../model/builder.ts';
import { frameInfo, type FrameSpec, type IndexIntoFrames, type Profile, type ProfileMeta } from '../../model/profile.ts';
import type { CpuStackSample } from './cpu.ts';

export interface JoinOptions {
  /** Monotonic ns of the sampler's time 0 (its sample times are ns since then). */
  samplerOriginNs: number;
  /** Farthest a sampler sample may be from an eBPF sample to lend it its Python stack. */
  windowNs: number;
  /**
   * Past the window, up to this far on both sides: when the thread's sampler samples just
   * before and just after the eBPF sample are in the same functions (lines may differ), the
   * nearer lends its stack (a sampler that missed ticks on a busy machine, while the thread
   * ran in one place). 0 or absent: no bridging.
   */
  bridgeNs?: number;
  /** Most native leaf frames taken from the user stack under the Python frames. */
  maxNativeLeaf?: number;
  meta?: Partial<ProfileMeta>;
}

export interface JoinStats {
  /** eBPF samples (counts summed) that got Python frames. */
  matched: number;
  /** Of `matched`: lent across a gap in the sampler's samples (`bridgeNs`). */
  bridged: number;
  /** Samples of threads the sampler saw, but none of its samples was near enough. */
  unmatched: number;
  /** Samples of threads the sampler does not follow (other processes). */
  foreign: number;
}

interface ThreadSamples {
  times: Float64Array;
  stacks: Int32Array;
  name: string | undefined;
}

/** The leaf part of a user stack (leaf first) that is not the interpreter: what runs under the Python leaf. */
export function nativeLeaf(ustack: readonly string[], max = 8, libs?: readonly (string | undefined)[]): string[] {
  const out: string[] = [];
  for (let k = 0; k < ustack.length; k++) {
    const name = ustack[k]!;
    if (out.length >= max || isEvalFrame(name) || isPlumbing(name, libs?.[k])) break;
    out.push(name);
  }
  return out;
}

export function joinEbpfSamples(samples: readonly CpuStackSample[], sampler: Profile | undefined, o: JoinOptions): { profile: Profile; stats: JoinStats } {
  const b = new ProfileBuilder({
    meta: { lens: 'ebpf', backend: 'bpftrace', mode: 'cpu', ...(o.meta ?? {}) },
    valueTypes: [{ name: 'samples', unit: 'samples' }],
    timed: true,
  });
  // the sampler's samples per OS thread, in time order
  const byTid = new Map<number, ThreadSamples>();
  const copied = new Map<number, IndexIntoFrames>();
  if (sampler) {
    const sm = sampler.samples;
    const lists = new Map<number, number[]>();
    for (let i = 0; i < sm.length; i++) {
      const tid = sampler.threads.tid[sm.thread[i]!]!;
      let l = lists.get(tid);
      if (!l) lists.set(tid, (l = []));
      l.push(i);
    }
    for (const [tid, l] of lists) {
      l.sort((x, y) => sm.time![x]! - sm.time![y]!);
      const t = sampler.threads.name[sm.thread[l[0]!]!]!;
      byTid.set(tid, {
        times: Float64Array.from(l, (i) => sm.time![i]! + o.samplerOriginNs),
        stacks: Int32Array.from(l, (i) => sm.stack[i]!),
        name: t >= 0 ? sampler.strings[t] : undefined,
      });
    }
  }
  const pythonFrames = new Map<number, IndexIntoFrames[]>();
  const framesOf = (stack: number): IndexIntoFrames[] => {
    let r = pythonFrames.get(stack);
    if (r) return r;
    r = [];
    for (let s = stack; s >= 0; s = sampler!.stacks.parent[s]!) {
      const f = sampler!.stacks.frame[s]!;
      let g = copied.get(f);
      if (g === undefined) {
        const fi = frameInfo(sampler!, f);
        const spec: FrameSpec = { name: fi.name, qualname: fi.qualname, line: fi.line, kind: fi.kind, ...(fi.file !== null ? { file: fi.file } : {}), ...(fi.lib !== null ? { lib: fi.lib } : {}) };
        g = b.frame(spec);
        copied.set(f, g);
      }
      r.push(g);
    }
    r.reverse();
    pythonFrames.set(stack, r);
    return r;
  };
  // a stack's functions, root first, without lines: two stacks with the same key ran the same calls
  const functionKeys = new Map<number, string>();
  const functionsOf = (stack: number): string => {
    let k = functionKeys.get(stack);
    if (k !== undefined) return k;
    const parts: string[] = [];
    for (let s = stack; s >= 0; s = sampler!.stacks.parent[s]!) {
      const fi = frameInfo(sampler!, sampler!.stacks.frame[s]!);
      parts.push(`${fi.file ?? ''}\u0000${fi.qualname || fi.name}`);
    }
    k = parts.join('\u0001');
    functionKeys.set(stack, k);
    return k;
  };
  const bridgeNs = o.bridgeNs ?? 0;
  const native = (name: string, lib?: string) => b.frame({ name, kind: 'native', ...(lib ? { lib } : {}) });
  const kernel = (name: string) => b.frame({ name, kind: 'kernel' });
  const stats: JoinStats = { matched: 0, bridged: 0, unmatched: 0, foreign: 0 };
  let t0 = Infinity;
  for (const s of samples) t0 = Math.min(t0, s.timeNs);
  if (sampler && sampler.samples.length && Number.isFinite(o.samplerOriginNs)) t0 = Math.min(t0, o.samplerOriginNs);
  const maxLeaf = o.maxNativeLeaf ?? 8;
  for (const s of samples) {
    const ts = byTid.get(s.tid);
    let hit = -1;
    if (ts) {
      // nearest by binary search
      let lo = 0;
      let hi = ts.times.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ts.times[mid]! < s.timeNs) lo = mid + 1;
        else hi = mid;
      }
      let best = Infinity;
      for (const k of [lo - 1, lo]) {
        if (k < 0 || k >= ts.times.length) continue;
        const d = Math.abs(ts.times[k]! - s.timeNs);
        if (d < best) {
          best = d;
          hit = k;
        }
      }
      if (best > o.windowNs) {
        hit = -1;
        const before = lo - 1;
        const after = lo;
        if (
          bridgeNs > 0 &&
          before >= 0 &&
          after < ts.times.length &&
          s.timeNs - ts.times[before]! <= bridgeNs &&
          ts.times[after]! - s.timeNs <= bridgeNs &&
          functionsOf(ts.stacks[before]!) === functionsOf(ts.stacks[after]!)
        ) {
          hit = s.timeNs - ts.times[before]! <= ts.times[after]! - s.timeNs ? before : after;
          stats.bridged += s.count;
        }
      }
    }
    let st = -1;
    if (hit >= 0) {
      for (const f of framesOf(ts!.stacks[hit]!)) st = b.stack(st, f);
      const leaf = nativeLeaf(s.ustack, maxLeaf, s.ulibs);
      for (let k = leaf.length - 1; k >= 0; k--) st = b.stack(st, native(leaf[k]!, s.ulibs?.[k]));
      stats.matched += s.count;
    } else {
      st = b.stack(st, b.frame({ name: `process ${s.pid} (${s.comm})`, kind: 'marker' }));
      for (let k = s.ustack.length - 1; k >= 0; k--) st = b.stack(st, native(s.ustack[k]!, s.ulibs?.[k]));
      if (ts) stats.unmatched += s.count;
      else stats.foreign += s.count;
    }
    for (let k = s.kstack.length - 1; k >= 0; k--) st = b.stack(st, kernel(s.kstack[k]!));
    const th = b.thread(s.pid, s.tid, ts?.name ?? s.comm);
    b.sample(st, s.count, th, 'on-cpu', s.timeNs - t0);
  }
  b.meta = { ...b.meta, sampleCount: samples.reduce((a, s) => a + s.count, 0), errorCount: 0 };
  return { profile: b.build(), stats };
}
