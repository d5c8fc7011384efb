/**
 * The `trace` lens's result → a pylens profile (lens 'interpreter', mode 'calls', value types
 * calls / self ns / total ns, default self; one thread row per Python thread).
 *
 * The helper's `data` (python/pylens/_lens_trace.py):
 *   backend: 'sys.monitoring' | 'cProfile' | 'cProfile, then sys.monitoring' (3.12+ default: cProfile
 *            until the program starts a second thread; those threads have `nodes`)
 *   funcs:   [kind 'py'|'c', name, qualname, file, line, module][]
 *   threads: { ident, tid, name,
 *              nodes?:   [parent, func, calls, self_ns, total_ns][]   (sys.monitoring: an exact
 *                        call tree, parents before children, parent -1 for a root)
 *              entries?: [func, cc, nc, tt, ct, [caller, nc, cc, tt, ct][]][] (cProfile, seconds) }[]
 *   keep?:   boolean[] per func (cProfile: functions that pass --include/--exclude; the others
 *            are removed here, their self time going to the nearest kept caller)
 *   events:  hook events recorded; calibration: { ns_per_event, calls }
 *
 * sys.monitoring: one sample row per call-tree node, stack = the node's path, values = its
 * [calls, self, total]. cProfile: each thread's stats go through the pstats importer's
 * edge → path reconstruction (pstatsToProfile), then into the same builder with the thread.
 * Threads whose native id repeats (the helper starts a new record when a thread's stack
 * empties) merge into one thread row.
 */
import { ProfileBuilder } from '../../model/builder.ts';
import { frameInfo, stackFrames, type FrameSpec, type Profile, type ProfileMeta } from '../../model/profile.ts';
import { CALL_DEFAULT_VALUE, CALL_VALUE_TYPES, functionStats, pstatsToProfile, type FunctionStat, type PstatsEntry } from '../../formats/pstats.ts';

export type TraceFunc = [kind: 'py' | 'c', name: string, qualname: string, file: string, line: number, module: string];
export interface TraceThread {
  ident: number;
  tid: number | null;
  name: string | null;
  nodes?: Array<[parent: number, func: number, calls: number, selfNs: number, totalNs: number]>;
  entries?: Array<[func: number, cc: number, nc: number, tt: number, ct: number, callers: Array<[caller: number, nc: number, cc: number, tt: number, ct: number]>]>;
}
export interface TraceData {
  backend: 'sys.monitoring' | 'cProfile' | 'cProfile, then sys.monitoring';
  funcs: TraceFunc[];
  threads: TraceThread[];
  keep?: boolean[];
  events: number;
  calibration: { ns_per_event: number; calls: number };
}


/** The model frame of a traced function. */
export function traceFrameSpec(f: TraceFunc): FrameSpec {
  const [kind, name, qualname, file, line] = f;
  if (kind === 'c') return { name, kind: 'native' };
  return { name, qualname, file, line, kind: 'python' };
}

/** Build the profile; `meta` is lensMeta()'s. */
export function traceToProfile(data: TraceData, pid: number, meta: Partial<ProfileMeta>): Profile {
  const b = new ProfileBuilder({
    meta: { ...meta, lens: 'interpreter', backend: data.backend, mode: 'calls', extra: { ...(meta.extra ?? {}), events: data.events, stacks: STACKS[data.backend] } },
    valueTypes: CALL_VALUE_TYPES.map((v) => ({ ...v })),
    defaultValue: CALL_DEFAULT_VALUE,
    timed: false,
  });
  const frameOf = new Map<number, number>();
  const frame = (fi: number) => {
    let f = frameOf.get(fi);
    if (f === undefined) frameOf.set(fi, (f = b.frame(traceFrameSpec(data.funcs[fi]!))));
    return f;
  };
  let rows = 0;
  for (const t of data.threads) {
    const thread = b.thread(pid, t.tid ?? t.ident, t.name ?? undefined);
    if (t.nodes) {
      const stackOf = new Int32Array(t.nodes.length);
      t.nodes.forEach(([parent, fi, calls, self, total], i) => {
        const s = b.stack(parent >= 0 ? stackOf[parent]! : -1, frame(fi));
        stackOf[i] = s;
        b.sample(s, [calls, self, total], thread);
        rows++;
      });
    } else if (t.entries) {
      const key = (fi: number): PstatsEntry['key'] => {
        const f = data.funcs[fi]!;
        return [f[3], f[4], f[1]];
      };
      const entries: PstatsEntry[] = t.entries.map(([fi, cc, nc, tt, ct, callers]) => ({ key: key(fi), cc, nc, tt, ct, callers: callers.map(([c, enc, ecc, ett, ect]) => ({ key: key(c), value: [enc, ecc, ett, ect] as [number, number, number, number] })) }));
      const sub = pstatsToProfile({ entries, sampled: false });
      const frames = new Map<number, number>();
      const mapFrame = (f: number) => {
        let g = frames.get(f);
        if (g === undefined) {
          const fi = frameInfo(sub, f);
          frames.set(f, (g = b.frame({ name: fi.name, qualname: fi.qualname, ...(fi.file !== null ? { file: fi.file } : {}), line: fi.line, kind: fi.kind })));
        }
        return g;
      };
      for (let i = 0; i < sub.samples.length; i++) {
        const st = sub.samples.stack[i]!;
        b.sample(b.stackOf(stackFrames(sub, st).map(mapFrame)), [sub.samples.values[0]![i]!, sub.samples.values[1]![i]!, sub.samples.values[2]![i]!], thread);
        rows++;
      }
    }
  }
  b.meta.sampleCount = rows;
  let p = b.build();
  if (data.keep && data.keep.some((k) => !k)) {
    const drop = new Set<string>();
    data.funcs.forEach((f, i) => {
      if (!data.keep![i]) drop.add(frameKey(traceFrameSpec(f)));
    });
    p = removeFrames(p, (fi) => drop.has(frameKey({ name: fi.name, kind: fi.kind, ...(fi.kind === 'python' ? { file: fi.file ?? '', line: fi.line } : {}) })));
  }
  return p;
}

function frameKey(s: FrameSpec): string {
  return s.kind === 'native' ? `c\u0000${s.name}` : `py\u0000${s.name}\u0000${s.file ?? ''}\u0000${s.line ?? 0}`;
}

/**
 * Remove the frames `drop` selects from every row: a row whose leaf is removed gives its
 * self time (not its calls or total) to the nearest kept caller; with no kept frame left
 * its self time goes to a "[other code]" marker root.
 */
export function removeFrames(p: Profile, drop: (fi: ReturnType<typeof frameInfo>) => boolean): Profile {
  const b = new ProfileBuilder({ meta: { ...p.meta }, valueTypes: p.valueTypes, defaultValue: p.defaultValue, timed: false });
  const gone = new Uint8Array(p.frames.length);
  const map = new Int32Array(p.frames.length).fill(-1);
  for (let f = 0; f < p.frames.length; f++) {
    const fi = frameInfo(p, f);
    if (drop(fi)) gone[f] = 1;
    else map[f] = b.frame({ name: fi.name, qualname: fi.qualname, ...(fi.file !== null ? { file: fi.file } : {}), line: fi.line, kind: fi.kind, ...(fi.lib !== null ? { lib: fi.lib } : {}) });
  }
  const threads = new Int32Array(p.threads.length);
  for (let t = 0; t < p.threads.length; t++) threads[t] = b.thread(p.threads.pid[t]!, p.threads.tid[t]!, p.threads.name[t]! >= 0 ? p.strings[p.threads.name[t]!] : undefined);
  const si = p.valueTypes.findIndex((v) => v.name === 'self');
  let other = -1;
  for (let i = 0; i < p.samples.length; i++) {
    const frames = p.samples.stack[i]! >= 0 ? stackFrames(p, p.samples.stack[i]!) : [];
    const leafGone = frames.length > 0 && gone[frames[frames.length - 1]!] === 1;
    const kept = frames.filter((f) => !gone[f]).map((f) => map[f]!);
    let vals = p.samples.values.map((col) => col[i]!);
    if (leafGone) vals = vals.map((v, c) => (c === si ? v : 0));
    if (vals.every((v) => v === 0)) continue;
    let s: number;
    if (kept.length) s = b.stackOf(kept);
    else {
      if (other < 0) other = b.frame({ name: '[other code]', kind: 'marker' });
      s = b.stackOf([other]);
    }
    b.sample(s, vals, threads[p.samples.thread[i]!]!);
  }
  b.meta.sampleCount = b.sampleRows;
  return b.build();
}

const STACKS: Record<TraceData['backend'], string> = {
  'sys.monitoring': 'exact call tree',
  cProfile: 'reconstructed from caller→callee edges (approximate)',
  'cProfile, then sys.monitoring': 'reconstructed from caller→callee edges until the second thread started, an exact call tree after',
};

/**
 * cProfile's own per-function numbers, threads merged (as one cProfile would have them),
 * without the functions the helper marked as not kept (its own frames) and their edges.
 * Exact where the reconstructed profile is not (primitive calls, per-edge times). For the
 * 3.12+ hand-over, cProfile's part plus the exact tree's (hybridStats). Undefined for
 * sys.monitoring data, or when --include/--exclude removed user code (the removed
 * functions' time must then move to their callers: use the profile).
 */
export function cprofileStats(data: TraceData, filtered: boolean): FunctionStat[] | undefined {
  if (filtered) return undefined;
  if (data.backend === 'cProfile, then sys.monitoring') return hybridStats(data);
  if (data.backend !== 'cProfile') return undefined;
  const keep = data.keep ?? [];
  const key = (fi: number): [string, number, string] => {
    const f = data.funcs[fi]!;
    return [f[3], f[4], f[1]];
  };
  const byFunc = new Map<number, FunctionStat>();
  for (const t of data.threads) {
    for (const [fi, cc, nc, tt, ct, callers] of t.entries ?? []) {
      if (keep[fi] === false) continue;
      let st = byFunc.get(fi);
      if (!st) {
        const f = data.funcs[fi]!;
        const k = key(fi);
        st = { key: k, frame: { name: f[1], qualname: f[2], file: f[0] === 'c' ? null : f[3], line: f[4], kind: f[0] === 'c' ? 'native' : 'python', lib: null }, cc: 0, nc: 0, tt: 0, ct: 0, callers: new Map() };
        byFunc.set(fi, st);
      }
      addCounts(st, nc, cc, tt, ct);
      for (const [c, enc, ecc, ett, ect] of callers) {
        if (keep[c] === false) continue;
        const id = JSON.stringify(key(c));
        let e = st.callers.get(id);
        if (!e) st.callers.set(id, (e = { key: key(c), nc: 0, cc: 0, tt: 0, ct: 0 }));
        addCounts(e, enc, ecc, ett, ect);
      }
    }
  }
  return [...byFunc.values()];
}

/**
 * The hybrid's numbers: cProfile's own for the part it traced, the exact tree's for the rest,
 * added up per function (a call open when the tracer changed counts once, in cProfile's part;
 * its time is split at the change and adds up).
 */
function hybridStats(data: TraceData): FunctionStat[] {
  const before = cprofileStats({ ...data, backend: 'cProfile', threads: data.threads.filter((t) => t.entries) }, false)!;
  const after = functionStats(traceToProfile({ ...data, backend: 'sys.monitoring', threads: data.threads.filter((t) => t.nodes), keep: undefined }, 0, {}));
  // both lists were just built: the first of each function takes in the other
  const byKey = new Map<string, FunctionStat>();
  for (const st of [...before, ...after]) {
    const id = JSON.stringify(st.key);
    const had = byKey.get(id);
    if (!had) {
      byKey.set(id, st);
      continue;
    }
    addCounts(had, st.nc, st.cc, st.tt, st.ct);
    for (const [k, e] of st.callers) {
      const h = had.callers.get(k);
      if (h) addCounts(h, e.nc, e.cc, e.tt, e.ct);
      else had.callers.set(k, e);
    }
  }
  return [...byKey.values()];
}

/** A function's or a caller edge's calls and times, added to. */
function addCounts(into: { nc: number; cc: number; tt: number; ct: number }, nc: number, cc: number, tt: number, ct: number): void {
  into.nc += nc;
  into.cc += cc;
  into.tt += tt;
  into.ct += ct;
}
