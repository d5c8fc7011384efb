/**
 * The yappi lens's result → a pylens profile with one thread row per Python thread.
 *
 * The helper (python/pylens/_lens_yappi.py) writes `data` of this shape (times in seconds):
 *   clock: 'cpu' | 'wall'            yappi's clock for the function times
 *   yappi_version: string | null
 *   process_cpu: number              time.process_time() over the run
 *   threads: [{ ctx_id, name, ident, native_id, main, daemon,
 *               cpu, wall,            each thread's CPU time (time.thread_time, from inside it)
 *                                     and wall lifetime, measured in the same run whatever the clock
 *               alive_at_exit,        a daemon thread still running at the end (read from outside)
 *               yappi_ttot, sched_count }]   yappi's per-thread total in its clock, switches
 *   functions: [{ ctx_id, index, name, module, lineno, ncall, nactualcall, ttot, tsub,
 *                 children: [[index, ncall, nactualcall, ttot, tsub], …] }]   one per (thread, function)
 *   calibration: { py | rec | c: { calls, off_ns, on_ns, cost_ns } } | null   yappi's added cost per
 *                                     plain Python call, recursive call and C call, measured at start
 *
 * Stacks. yappi keeps, per thread, caller→callee edges with the edge's own calls, total and
 * self time — the same information as a cProfile dump. Each thread's functions become a
 * PstatsData (callee's callers = the edges pointing at it: nc = ncall, cc = nactualcall,
 * tt = tsub, ct = ttot) and src/formats/pstats.ts's pstatsToProfile reconstructs the
 * approximate stacks (see there: the edges' split, recursion, truncation); the per-thread
 * profiles are then merged into one profile, each on its own thread row (pid, native thread
 * id, threading name). Value types calls / self / total (ns), default self.
 */
import { spawnSync } from 'node:child_process';
import { ProfileBuilder } from '../../model/builder.ts';
import { frameInfo, stackFrames, type FrameSpec, type Profile, type ProfileMeta } from '../../model/profile.ts';
import { CALL_DEFAULT_VALUE, CALL_VALUE_TYPES, pstatsToProfile, type PstatsData, type PstatsEntry } from '../../formats/pstats.ts';
import { HelperError, type PythonCommand } from './helper.ts';

export type YappiClock = 'cpu' | 'wall';
export const YAPPI_CLOCKS: readonly YappiClock[] = ['cpu', 'wall'];

export interface YappiThread {
  ctx_id: number | null;
  name: string;
  ident: number;
  native_id: number | null;
  main: boolean;
  daemon: boolean;
  cpu: number | null;
  wall: number | null;
  alive_at_exit: boolean;
  yappi_ttot: number | null;
  sched_count: number | null;
}

export type YappiChild = [index: number, ncall: number, nactualcall: number, ttot: number, tsub: number];

export interface YappiFunction {
  ctx_id: number;
  index: number;
  name: string;
  module: string;
  lineno: number;
  ncall: number;
  nactualcall: number;
  ttot: number;
  tsub: number;
  children: YappiChild[];
}

export interface YappiData {
  clock: YappiClock;
  yappi_version: string | null;
  process_cpu: number;
  threads: YappiThread[];
  functions: YappiFunction[];
  calibration: Record<'py' | 'rec' | 'c', { calls: number; off_ns: number; on_ns: number; cost_ns: number }> | null;
}

const PROBE = [
  'import sys',
  'try:',
  '    import yappi',
  'except BaseException as e:',
  "    sys.stdout.write('MISSING %s: %s' % (type(e).__name__, e))",
  '    sys.exit(0)',
  'v = ""',
  'try:',
  '    from importlib import metadata',
  '    v = metadata.version("yappi")',
  'except Exception:',
  '    pass',
  "sys.stdout.write('OK ' + v)",
].join('\n');

/**
 * Whether `command`'s interpreter (with its own options and the caller's environment) can
 * import yappi; returns its version ('' when unknown). Throws HelperError saying how to get
 * it otherwise. The program itself is not run.
 */
export function checkYappi(command: PythonCommand, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(command.python, [...command.interpreterArgs, '-c', PROBE], { encoding: 'utf8', env, timeout: 30_000 });
  const out = (r.stdout ?? '').trim();
  if (!r.error && r.status === 0 && out.startsWith('OK')) return out.slice(2).trim();
  const why = out.startsWith('MISSING ') ? out.slice(8) : r.error ? r.error.message : (r.stderr ?? '').trim().split('\n').pop() || `exit status ${r.status}`;
  const py = command.python;
  const debian = /^\/usr\/bin\/python3(?:\.\d+)?$/.test(py);
  throw new HelperError(
    `yappi is not importable by ${py} (${why}); the program was not run`,
    debian
      ? `install it for that interpreter: apt-get install python3-yappi (Debian/Ubuntu), or run the program with a Python that has yappi`
      : `install it into that interpreter: ${py} -m pip install yappi (or run the program with a Python that has yappi, e.g. Debian's /usr/bin/python3 with python3-yappi)`,
  );
}

/** yappi's "Class.method" → the model's name / qualname. */
function frameSpecOf(fn: YappiFunction): FrameSpec {
  const dot = fn.name.lastIndexOf('.');
  const name = dot > 0 && !fn.name.startsWith('<') ? fn.name.slice(dot + 1) : fn.name;
  return { name, qualname: fn.name, file: fn.module, line: Math.max(0, Math.trunc(fn.lineno)), kind: 'python' };
}

/** One thread's functions as pstats data (callers from the callers' children edges). */
export function threadPstats(fns: YappiFunction[]): PstatsData {
  const byIndex = new Map<number, YappiFunction>();
  for (const f of fns) byIndex.set(f.index, f);
  const key = (f: YappiFunction): PstatsEntry['key'] => [f.module, f.lineno, f.name];
  const entries = new Map<number, PstatsEntry>();
  for (const f of fns) entries.set(f.index, { key: key(f), cc: f.nactualcall, nc: f.ncall, tt: f.tsub, ct: f.ttot, callers: [] });
  for (const parent of fns) {
    for (const [idx, ncall, nactual, ttot, tsub] of parent.children) {
      const child = entries.get(idx);
      if (!child || !byIndex.has(idx)) continue;
      child.callers.push({ key: key(parent), value: [ncall, nactual, tsub, ttot] });
    }
  }
  return { entries: [...entries.values()], sampled: false };
}

export interface YappiThreadRow {
  name: string;
  /** native thread id when known, else threading's ident */
  tid: number;
  ident: number;
  main: boolean;
  daemon: boolean;
  aliveAtExit: boolean;
  /** CPU and wall time of the thread, ns (null when unknown) */
  cpuNs: number | null;
  wallNs: number | null;
  /** cpu / wall */
  cpuShare: number | null;
  /** yappi's total for the thread in its clock, ns */
  yappiNs: number | null;
  /** Python calls yappi recorded on the thread */
  calls: number;
  functions: number;
}

const ns = (s: number | null | undefined): number | null => (typeof s === 'number' && Number.isFinite(s) ? Math.max(0, Math.round(s * 1e9)) : null);

/** The per-thread table: one row per thread, in yappi's order (main first). */
export function yappiThreadRows(data: YappiData): YappiThreadRow[] {
  const rows = data.threads.map((t) => {
    const fns = data.functions.filter((f) => t.ctx_id !== null && f.ctx_id === t.ctx_id);
    const cpuNs = ns(t.cpu);
    const wallNs = ns(t.wall);
    return {
      name: t.name,
      tid: t.native_id ?? t.ident,
      ident: t.ident,
      main: t.main,
      daemon: t.daemon,
      aliveAtExit: t.alive_at_exit,
      cpuNs,
      wallNs,
      cpuShare: cpuNs !== null && wallNs ? cpuNs / wallNs : null,
      yappiNs: ns(t.yappi_ttot),
      calls: fns.reduce((s, f) => s + f.ncall, 0),
      functions: fns.length,
    };
  });
  return rows.sort((a, b) => Number(b.main) - Number(a.main));
}

/** The whole result as a profile: per-thread reconstructions merged, one thread row each. */
export function yappiToProfile(data: YappiData, pid: number, meta: Partial<ProfileMeta>): Profile {
  const b = new ProfileBuilder({
    meta: { lens: 'interpreter', backend: 'yappi', mode: data.clock, ...meta },
    valueTypes: CALL_VALUE_TYPES.map((v) => ({ ...v })),
    defaultValue: CALL_DEFAULT_VALUE,
    timed: false,
  });
  const specs = new Map<string, FrameSpec>();
  for (const f of data.functions) specs.set(`${f.module}\u0000${f.lineno}\u0000${f.name}`, frameSpecOf(f));
  let calls = 0;
  for (const t of data.threads) {
    const thread = b.thread(pid, t.native_id ?? t.ident, t.name);
    if (t.ctx_id === null) continue;
    const fns = data.functions.filter((f) => f.ctx_id === t.ctx_id);
    if (fns.length === 0) continue;
    calls += fns.reduce((s, f) => s + f.ncall, 0);
    const sub = pstatsToProfile(threadPstats(fns));
    const map = new Int32Array(sub.frames.length).fill(-1);
    const frameOf = (f: number): number => {
      if (map[f]! < 0) {
        const fi = frameInfo(sub, f);
        const spec: FrameSpec = fi.kind === 'python' && fi.file !== null ? (specs.get(`${fi.file}\u0000${fi.line}\u0000${fi.qualname}`) ?? { name: fi.name, qualname: fi.qualname, file: fi.file, line: fi.line, kind: fi.kind }) : { name: fi.name, qualname: fi.qualname, kind: fi.kind, ...(fi.file !== null ? { file: fi.file, line: fi.line } : {}) };
        map[f] = b.frame(spec);
      }
      return map[f]!;
    };
    const stackMap = new Map<number, number>();
    for (let i = 0; i < sub.samples.length; i++) {
      const s = sub.samples.stack[i]!;
      let st = stackMap.get(s);
      if (st === undefined) {
        st = b.stackOf(stackFrames(sub, s).map(frameOf));
        stackMap.set(s, st);
      }
      b.sample(st, sub.samples.values.map((col) => col[i]!), thread);
    }
  }
  b.meta.sampleCount = calls;
  b.meta.extra = {
    ...(b.meta.extra ?? {}),
    clock: data.clock,
    ...(data.yappi_version ? { yappiVersion: data.yappi_version } : {}),
    threads: data.threads.length,
    functions: data.functions.length,
    totalCalls: calls,
    stacks: 'reconstructed per thread from yappi caller→callee edges (approximate)',
  };
  return b.build();
}
