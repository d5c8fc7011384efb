/**
 * pstats dumps: what `cProfile` / `profile` write with `-o FILE` or `Stats.dump_stats`
 * (CPython `Lib/cProfile.py`, `Lib/profile.py`, `Lib/pstats.py`).
 *
 * The file is `marshal.dump(stats)` (see ./marshal.ts) of a dict:
 *   (filename, firstlineno, funcname) → (cc, nc, tt, ct, callers)
 *   callers: (caller key) → (nc, cc, tt, ct)   — cProfile: this call edge's share
 *            (caller key) → nc                 — the pure-Python `profile` module
 * cc = primitive (non-recursive) calls, nc = all calls, tt = self time, ct = cumulative
 * time, in seconds. C functions have keys ('~', 0, "<built-in method …>") (cProfile),
 * ('', 0, "stat") (`profile`) or (module, 0, name) (yappi: ('posix', 0, 'stat')) and
 * become native frames; the pure-Python module's own entries ('profile', 0, …) become
 * marker frames. yappi's `save(type="pstat")` puts (all calls, primitive calls) in the
 * (cc, nc) slots, the other way round from cProfile, so calls = max(cc, nc).
 * CPython 3.15's sampling profiler adds a ("__sampled__",) key, which is skipped.
 *
 * From call edges to stacks (an approximation: cProfile records who called whom, not
 * whole stacks). For every function f we emit one row per reconstructed call path
 * root → … → g → f, with
 *   calls = f's nc, self = f's tt, total = f's ct, each split over the paths.
 * The split: first over f's direct callers g by the edge's own numbers (cProfile has
 * them exactly per edge: nc, tt and ct; `profile` only has counts, used for all three),
 * then above g over g's callers in proportion to each edge's cumulative time (the
 * gprof assumption: every call of g costs the same, whoever made it), and so on up.
 * A function's share that no caller accounts for (it was running when profiling began)
 * makes a path rooted at it. Recursion is cut: a caller already on the path is dropped
 * and its share spread over the others (the recursive time stays with the outer call).
 * Paths stop at MAX_DEPTH and branches under MIN_FRACTION of f's value; their share goes
 * to a "[callers truncated]" marker root so nothing is lost.
 * Times are integer nanoseconds and every split uses largest-remainder rounding, so
 * per function the rows sum exactly to round(tt × 1e9), round(ct × 1e9) and nc: the top
 * table's self column equals pstats' tottime, and the flame graph's widths are the
 * best guess the edges allow.
 */
import { ProfileBuilder } from '../model/builder.ts';
import type { FrameSpec, Profile, ValueType } from '../model/profile.ts';
import { decodeMarshal, encodeMarshal, isCode, isDict, isTuple, marshalKey, type MarshalCode, type MarshalFail, type MarshalValue, type MarshalWritable } from './marshal.ts';
import { NOT_MINE, ParseError, type Exporter, type Importer, type InputFile, type NotMine } from './types.ts';
import { frameInfo, type FrameInfo } from '../model/profile.ts';

/** (filename, firstlineno, funcname); `profile -m` puts the script's code object in funcname. */
export type PstatsKey = [file: string, line: number, name: string | MarshalCode];

export interface PstatsCaller {
  key: PstatsKey;
  /** cProfile: [nc, cc, tt, ct] for this edge; pure-Python `profile`: the call count. */
  value: [number, number, number, number] | number;
}

export interface PstatsEntry {
  key: PstatsKey;
  cc: number;
  nc: number;
  tt: number;
  ct: number;
  callers: PstatsCaller[];
}

export interface PstatsData {
  entries: PstatsEntry[];
  /** The 3.15 sampling profiler's ("__sampled__",) marker was present. */
  sampled: boolean;
}

const num = (v: MarshalValue): number | null => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : typeof v === 'boolean' ? Number(v) : null);

/** Read a pstats dump into its entries, in file order. Throws through `fail` on anything else. */
export function readPstats(bytes: Uint8Array, fail: MarshalFail): PstatsData {
  const { value, offsets } = decodeMarshal(bytes, fail);
  if (!isDict(value)) fail(0, 'top level is not a dict');
  const at = (v: MarshalValue, fallback: number): number => (typeof v === 'object' && v !== null ? (offsets.get(v) ?? fallback) : fallback);
  const key = (k: MarshalValue, what: string, near: number): PstatsKey => {
    if (!isTuple(k) || k.items.length !== 3) fail(at(k, near), `${what} is not a (filename, line, function) tuple`);
    const [file, line, name] = k.items;
    const ln = num(line!);
    if (typeof file !== 'string' || ln === null || !(typeof name === 'string' || isCode(name!))) fail(at(k, near), `${what} is not a (str, int, str) tuple`);
    return [file, ln, name as string | MarshalCode];
  };
  const entries: PstatsEntry[] = [];
  let sampled = false;
  const dictAt = at(value, 0);
  for (const [k, v] of value.entries) {
    if (isTuple(k) && k.items.length === 1 && k.items[0] === '__sampled__') {
      sampled = true;
      continue;
    }
    const near = at(k, dictAt);
    const fk = key(k, 'a stats key', near);
    if (!isTuple(v) || v.items.length !== 5) fail(at(v, near), 'a stats value is not a (cc, nc, tt, ct, callers) tuple');
    const [cc, nc, tt, ct] = v.items.slice(0, 4).map(num);
    const callersDict = v.items[4]!;
    if (cc == null || nc == null || tt == null || ct == null || !isDict(callersDict)) fail(at(v, near), 'a stats value is not a (cc, nc, tt, ct, callers) tuple of numbers and a dict');
    const callers: PstatsCaller[] = [];
    for (const [ck, cv] of callersDict.entries) {
      const cnear = at(ck, at(callersDict, near));
      const ckey = key(ck, 'a caller key', cnear);
      if (isTuple(cv)) {
        const vals = cv.items.map(num);
        if (vals.length !== 4 || vals.some((x) => x === null)) fail(at(cv, cnear), 'a caller value is not an (nc, cc, tt, ct) tuple');
        callers.push({ key: ckey, value: vals as [number, number, number, number] });
      } else {
        const n = num(cv);
        if (n === null) fail(cnear, 'a caller value is neither a tuple nor a call count');
        callers.push({ key: ckey, value: n });
      }
    }
    entries.push({ key: fk, cc, nc, tt, ct, callers });
  }
  return { entries, sampled };
}

// ---------------------------------------------------------------------------------------
// Call graph → stacks

const MAX_DEPTH = 64;
const MIN_FRACTION = 1e-4;
/** Ancestor nodes expanded per leaf function before the rest is truncated. */
const NODE_BUDGET = 5000;
const TRUNCATED = -1;

interface Edge {
  from: number;
  /** Weights for [calls, self, total]. */
  w: [number, number, number];
}

interface Fn {
  spec: FrameSpec;
  /** [calls, self, total] in the units of the edge weights (all call counts for `profile`). */
  totals: [number, number, number];
  callers: Edge[];
}

function codeLabel(c: MarshalCode): string {
  return `<code object ${c.name}, file "${c.filename}", line ${c.firstlineno}>`;
}

const PY_SOURCE = /\.(py|pyw|pyx)$|^</;

/** A C function's key: cProfile ('~', 0, …), `profile` ('', 0, …), yappi ('posix', 0, 'stat'). */
function isBuiltinKey(k: PstatsKey): boolean {
  return k[1] === 0 && typeof k[2] === 'string' && k[0] !== 'profile' && !PY_SOURCE.test(k[0]);
}

/** The model frame of a pstats key. */
export function pstatsFrameSpec(k: PstatsKey): FrameSpec {
  const [file, line, name] = k;
  if (isBuiltinKey(k)) {
    const n = name as string;
    const module = file === '~' || file === '' || file === '__builtin__' || n.startsWith('<') ? '' : file;
    return module ? { name: n, qualname: `${module}.${n}`, kind: 'native' } : { name: n, kind: 'native' };
  }
  if (file === 'profile' && line === 0) {
    const label = `profile:0(${typeof name === 'string' ? name : codeLabel(name)})`;
    return { name: label, kind: 'marker' };
  }
  if (typeof name !== 'string') return { name: name.name, qualname: name.qualname, file: name.filename, line: name.firstlineno, kind: 'python' };
  return { name, file, line: Math.max(0, Math.trunc(line)), kind: 'python' };
}

/** Split integer `total` over `shares` (non-negative, any sum > 0) so the parts sum exactly to `total`. */
function apportion(total: number, shares: number[]): number[] {
  const sum = shares.reduce((a, b) => a + b, 0);
  const out = new Array<number>(shares.length).fill(0);
  if (total === 0 || !(sum > 0)) return out;
  const rem: Array<[number, number]> = [];
  let given = 0;
  for (let i = 0; i < shares.length; i++) {
    const exact = (total * shares[i]!) / sum;
    out[i] = Math.floor(exact);
    given += out[i]!;
    rem.push([exact - out[i]!, i]);
  }
  rem.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; given < total; k = (k + 1) % rem.length, given++) out[rem[k]![1]]! += 1;
  return out;
}

interface Prefix {
  /** Functions above the first caller, root first (TRUNCATED = marker). */
  frames: number[];
  frac: number;
}

/** Paths above `g` (exclusive), with the fraction of g's time each accounts for. */
function ancestors(fns: Fn[], g: number, onPath: Set<number>, frac: number, depth: number, budget: { left: number }, out: Prefix[], suffix: number[]): void {
  const fn = fns[g]!;
  let all = 0;
  let den = 0;
  const cands: Edge[] = [];
  for (const e of fn.callers) {
    const w = e.w[2];
    if (!(w > 0)) continue;
    all += w;
    if (!onPath.has(e.from)) {
      cands.push(e);
      den += w;
    }
  }
  const rootW = Math.max(0, fn.totals[2] - all);
  den += rootW;
  if (cands.length === 0 || !(den > 0)) {
    out.push({ frames: suffix.slice().reverse(), frac });
    return;
  }
  if (rootW > 0) out.push({ frames: suffix.slice().reverse(), frac: (frac * rootW) / den });
  let cut = 0;
  for (const e of cands) {
    const f = (frac * e.w[2]) / den;
    if (depth >= MAX_DEPTH || f < MIN_FRACTION || budget.left <= 0) {
      cut += f;
      continue;
    }
    budget.left--;
    onPath.add(e.from);
    suffix.push(e.from);
    ancestors(fns, e.from, onPath, f, depth + 1, budget, out, suffix);
    suffix.pop();
    onPath.delete(e.from);
  }
  if (cut > 0) out.push({ frames: [TRUNCATED, ...suffix.slice().reverse()], frac: cut });
}

/**
 * The value columns of call profiles (pstats, trace, yappi): calls, self time, total time.
 * `total` is per row (per path) and must not be summed up a stack; self is the default.
 */
export const CALL_VALUE_TYPES: readonly ValueType[] = [
  { name: 'calls', unit: 'calls' },
  { name: 'self', unit: 'nanoseconds' },
  { name: 'total', unit: 'nanoseconds' },
];
export const CALL_DEFAULT_VALUE = 1;

export function pstatsToProfile(data: PstatsData, name?: string): Profile {
  const index = new Map<string, number>();
  const fns: Fn[] = [];
  const fnOf = (k: PstatsKey): number => {
    const id = marshalKey({ type: 'tuple', items: [k[0], k[1], k[2]] });
    let i = index.get(id);
    if (i === undefined) {
      i = fns.length;
      index.set(id, i);
      fns.push({ spec: pstatsFrameSpec(k), totals: [0, 0, 0], callers: [] });
    }
    return i;
  };
  const ns = (s: number) => (Number.isFinite(s) ? Math.max(0, Math.round(s * 1e9)) : 0);
  const cnt = (n: number) => (Number.isFinite(n) ? Math.max(0, Math.round(n)) : 0);
  let pure = false;
  let yappi = false;
  let totalCalls = 0;
  let primCalls = 0;
  let totalTt = 0;
  for (const e of data.entries) {
    const f = fnOf(e.key);
    fns[f]!.totals = [cnt(Math.max(e.cc, e.nc)), ns(e.tt), ns(e.ct)];
    totalCalls += Math.max(e.cc, e.nc);
    primCalls += Math.min(e.cc, e.nc);
    if (e.key[1] === 0 && isBuiltinKey(e.key) && e.key[0] !== '~' && e.key[0] !== '') yappi = true;
    totalTt += e.tt;
    for (const c of e.callers) {
      const from = fnOf(c.key);
      if (typeof c.value === 'number') {
        pure = true;
        const n = cnt(c.value);
        fns[f]!.callers.push({ from, w: [n, n, n] });
      } else fns[f]!.callers.push({ from, w: [cnt(c.value[0]), ns(c.value[2]), ns(c.value[3])] });
    }
  }
  if (pure) {
    // Call counts are the only edge weights: compare them with call counts everywhere.
    for (const fn of fns) fn.totals = [fn.totals[0], fn.totals[0], fn.totals[0]];
  }

  const backend = data.sampled ? 'profiling.sampling' : pure ? 'profile' : yappi ? 'yappi' : 'cProfile';
  const b = new ProfileBuilder({
    meta: {
      lens: 'interpreter',
      backend,
      mode: 'calls',
      ...(name ? { name } : {}),
      durationNs: ns(totalTt),
      extra: {
        functions: data.entries.length,
        totalCalls,
        primitiveCalls: primCalls,
        stacks: 'reconstructed from caller→callee edges (approximate)',
        ...(data.sampled ? { sampled: 1 } : {}),
      },
    },
    valueTypes: CALL_VALUE_TYPES.map((v) => ({ ...v })),
    defaultValue: CALL_DEFAULT_VALUE,
    timed: false,
  });
  const thread = b.thread(0, 0);
  const frameIdx = new Int32Array(fns.length).fill(-1);
  const frame = (f: number): number => {
    if (f === TRUNCATED) return b.frame({ name: '[callers truncated]', kind: 'marker' });
    if (frameIdx[f]! < 0) frameIdx[f] = b.frame(fns[f]!.spec);
    return frameIdx[f]!;
  };

  // The values to split per leaf (fns[].totals may hold counts instead, see above).
  const leafTotals = data.entries.map((e) => [fnOf(e.key), cnt(Math.max(e.cc, e.nc)), ns(e.tt), ns(e.ct)] as const);
  for (const [f, calls, self, total] of leafTotals) {
    if (calls === 0 && self === 0 && total === 0) continue;
    const fn = fns[f]!;
    const T = [calls, self, total];
    // Leaf level: direct callers (recursive self-edges dropped) plus f as a root.
    const direct = fn.callers.filter((e) => e.from !== f);
    const rootShare = [0, 1, 2].map((c) => Math.max(0, fn.totals[c]! - fn.callers.reduce((s, e) => s + e.w[c]!, 0)));
    const paths: number[][] = [[f]];
    const shares: number[][] = [[], [], []];
    const dens = [0, 1, 2].map((c) => direct.reduce((s, e) => s + e.w[c]!, 0) + rootShare[c]!);
    for (let c = 0; c < 3; c++) shares[c]!.push(dens[c]! > 0 ? rootShare[c]! / dens[c]! : 1);
    const budget = { left: NODE_BUDGET };
    for (const e of direct) {
      const prefixes: Prefix[] = [];
      ancestors(fns, e.from, new Set([f, e.from]), 1, 1, budget, prefixes, [e.from]);
      for (const p of prefixes) {
        paths.push([...p.frames, f]);
        for (let c = 0; c < 3; c++) shares[c]!.push(dens[c]! > 0 ? (e.w[c]! / dens[c]!) * p.frac : 0);
      }
    }
    const parts = [0, 1, 2].map((c) => apportion(T[c]!, shares[c]!));
    for (let i = 0; i < paths.length; i++) {
      const v = [parts[0]![i]!, parts[1]![i]!, parts[2]![i]!];
      if (v[0] === 0 && v[1] === 0 && v[2] === 0) continue;
      b.sample(b.stackOf(paths[i]!.map(frame)), v, thread);
    }
  }
  return b.build();
}

// ---------------------------------------------------------------------------------------
// Importer

/** A marshalled dict whose first key is a tuple (or an empty dict). */
function magic(b: Uint8Array): boolean {
  if (b.length < 2 || (b[0]! & 0x7f) !== 0x7b) return false; // '{'
  if (b[1] === 0x30) return b.length === 2; // '0': empty dict
  const t = b[1]! & 0x7f;
  if (t === 0x29) return b.length >= 4 && (b[2] === 3 || b[2] === 1) && /[zZaAut]/.test(String.fromCharCode(b[3]! & 0x7f)); // ')' n, then a str
  if (t === 0x28) return b.length >= 7 && b[2] === 3 && b[3] === 0 && b[4] === 0 && b[5] === 0; // '(' i32 3
  return false;
}

function parse(input: InputFile): Profile | NotMine {
  if (!magic(input.bytes.subarray(0, 64))) return NOT_MINE;
  const fail: MarshalFail = (offset, message) => {
    throw new ParseError('pstats', input.label, { offset }, message);
  };
  return pstatsToProfile(readPstats(input.bytes, fail), input.name);
}

export const pstatsImporter: Importer = {
  id: 'pstats',
  extensions: ['.pstats', '.prof', '.cprofile'],
  magic,
  detect: (input) => magic(input.bytes.subarray(0, 64)),
  parse,
};

// ---------------------------------------------------------------------------------------
// Exporter: a profile → per-function stats → a pstats dump that `pstats.Stats(FILE)` loads.
//
// Per function (frames with the same pstats key merged, threads merged as cProfile does):
//   nc = Σ calls of the rows whose leaf it is; cc = the same over rows where it is not also
//   an ancestor (primitive calls); tt = Σ self; ct = Σ total over rows where it is not an
//   ancestor (recursion counted once). Edges caller → callee are the rows' last two frames.
// Columns: `calls`, `self`, `total` by name when the profile has them (interpreter lenses,
// pstats imports); otherwise self is the default value (ns, or samples ÷ rateHz), calls 0,
// and ct is the self time of every row the function is on (outermost occurrence).

/** A function's pstats numbers; times in seconds. */
export interface FunctionStat {
  key: [file: string, line: number, name: string];
  frame: FrameInfo;
  cc: number;
  nc: number;
  tt: number;
  ct: number;
  callers: Map<string, { key: [string, number, string]; nc: number; cc: number; tt: number; ct: number }>;
}

/** The pstats key of a frame: Python (file, firstline, name), anything else ('~', 0, label). */
export function pstatsKeyOf(fi: FrameInfo): [string, number, string] {
  if (fi.kind === 'python') return [fi.file ?? '~', fi.file ? fi.line : 0, fi.name];
  if (fi.kind === 'native') return ['~', 0, fi.name.startsWith('<') ? fi.name : `<built-in method ${fi.qualname || fi.name}>`];
  return ['~', 0, fi.name];
}

/** Per-function stats of a profile (see above). Throws when its values cannot be read as times. */
export function functionStats(p: Profile): FunctionStat[] {
  const idx = (n: string) => p.valueTypes.findIndex((v) => v.name === n);
  const ci = idx('calls');
  const si = idx('self');
  const ti = idx('total');
  let selfCol: Float64Array;
  let selfScale: number;
  if (si >= 0 && p.valueTypes[si]!.unit === 'nanoseconds') {
    selfCol = p.samples.values[si]!;
    selfScale = 1e-9;
  } else {
    const vt = p.valueTypes[p.defaultValue]!;
    selfCol = p.samples.values[p.defaultValue]!;
    if (vt.unit === 'nanoseconds') selfScale = 1e-9;
    else if (vt.unit === 'samples' && p.meta.rateHz) selfScale = 1 / p.meta.rateHz;
    else throw new Error(`a pstats file holds times: this profile's ${vt.name} values are in ${vt.unit}${vt.unit === 'samples' ? ' with no sampling rate' : ''}`);
  }
  const callsCol = ci >= 0 ? p.samples.values[ci]! : null;
  const totalCol = ti >= 0 && p.valueTypes[ti]!.unit === 'nanoseconds' ? p.samples.values[ti]! : null;
  const keyId = new Map<string, number>();
  const stats: FunctionStat[] = [];
  const fnOfFrame = new Int32Array(p.frames.length).fill(-1);
  const fn = (f: number): number => {
    if (fnOfFrame[f]! >= 0) return fnOfFrame[f]!;
    const fi = frameInfo(p, f);
    const key = pstatsKeyOf(fi);
    const id = JSON.stringify(key);
    let k = keyId.get(id);
    if (k === undefined) {
      k = stats.length;
      keyId.set(id, k);
      stats.push({ key, frame: fi, cc: 0, nc: 0, tt: 0, ct: 0, callers: new Map() });
    }
    fnOfFrame[f] = k;
    return k;
  };
  const edge = (to: FunctionStat, from: number) => {
    const fk = stats[from]!.key;
    const id = JSON.stringify(fk);
    let e = to.callers.get(id);
    if (!e) to.callers.set(id, (e = { key: fk, nc: 0, cc: 0, tt: 0, ct: 0 }));
    return e;
  };
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    if (s < 0) continue;
    const path: number[] = [];
    for (let a = s; a >= 0; a = p.stacks.parent[a]!) path.push(fn(p.stacks.frame[a]!));
    path.reverse();
    const calls = callsCol ? callsCol[i]! : 0;
    const self = selfCol[i]! * selfScale;
    const leaf = path[path.length - 1]!;
    const st = stats[leaf]!;
    const primitive = path.indexOf(leaf) === path.length - 1;
    st.nc += calls;
    st.tt += self;
    if (primitive) st.cc += calls;
    const caller = path.length > 1 ? path[path.length - 2]! : -1;
    const e = caller >= 0 ? edge(st, caller) : undefined;
    if (e) {
      e.nc += calls;
      e.tt += self;
      if (primitive) e.cc += calls;
    }
    if (totalCol) {
      if (primitive) {
        const tot = totalCol[i]! * 1e-9;
        st.ct += tot;
        if (e) e.ct += tot;
      }
    } else {
      for (let d = 0; d < path.length; d++) {
        const f = path[d]!;
        if (path.indexOf(f) !== d) continue; // outermost occurrence only
        stats[f]!.ct += self;
        if (d > 0) edge(stats[f]!, path[d - 1]!).ct += self;
      }
    }
  }
  return stats.filter((x) => x.nc > 0 || x.tt > 0 || x.ct > 0);
}

const fl = (value: number): MarshalWritable => ({ type: 'float', value });
const keyTuple = (k: [string, number, string]): MarshalWritable => ({ type: 'tuple', items: [k[0], k[1], k[2]] });

/** The pstats dump (marshalled dict) of a profile, or of stats already made. */
export function writePstats(p: Profile | FunctionStat[]): Uint8Array {
  const stats = Array.isArray(p) ? p : functionStats(p);
  const entries: Array<[MarshalWritable, MarshalWritable]> = stats.map((st) => [
    keyTuple(st.key),
    {
      type: 'tuple',
      items: [
        Math.round(st.cc),
        Math.round(st.nc),
        fl(st.tt),
        fl(st.ct),
        { type: 'dict', entries: [...st.callers.values()].map((e): [MarshalWritable, MarshalWritable] => [keyTuple(e.key), { type: 'tuple', items: [Math.round(e.nc), Math.round(e.cc), fl(e.tt), fl(e.ct)] }]) },
      ],
    },
  ]);
  return encodeMarshal({ type: 'dict', entries });
}

export const pstatsExporter: Exporter = {
  id: 'pstats',
  extension: '.pstats',
  extensions: ['.prof'],
  lossless: false,
  write: (p: Profile) => writePstats(p),
};
