/**
 * Queries over the model, shared by the CLI, exporters and renderers.
 * All functions are pure: they return new profiles or plain data.
 */
import { ProfileBuilder } from './builder.ts';
import { shortestUniquePaths } from './labels.ts';
import {
  FRAME_KINDS,
  SAMPLE_STATES,
  frameInfo,
  type IndexIntoFrames,
  type IndexIntoStacks,
  type Profile,
  type SampleState,
} from './profile.ts';

export interface LabelOptions {
  /** Append ":line" (default true). */
  lineno?: boolean;
  /** Show the file (default true). */
  file?: boolean;
  /** Full file path instead of the base name (default false). */
  fullFilenames?: boolean;
  /** Use the qualified name (default true). */
  qualified?: boolean;
  /** Native frames: append the library, `name (libz.so.1)` (default false; top tables turn it on). */
  lib?: boolean;
  /** How a file is shown when not full (default: its base name); e.g. the shortest unambiguous tail (model/labels.ts) */
  fileLabel?: (file: string) => string;
}

function shortFile(file: string): string {
  const i = file.lastIndexOf('/');
  return i >= 0 ? file.slice(i + 1) : file;
}

/** Human label of a frame, py-spy style: `qualname (file:line)`; kernel frames get `_[k]`. */
export function frameLabel(p: Profile, f: IndexIntoFrames, o: LabelOptions = {}): string {
  const fr = p.frames;
  const name = p.strings[(o.qualified ?? true) ? fr.qualname[f]! : fr.name[f]!]!;
  const fileIdx = fr.file[f]!;
  const kind = fr.kind[f]!;
  if (kind === 'kernel') return name.endsWith('_[k]') ? name : `${name}_[k]`;
  if (kind === 'native' && o.lib && fr.lib[f]! >= 0) return `${name} (${shortFile(p.strings[fr.lib[f]!]!)})`;
  if (kind === 'marker' || fileIdx < 0 || o.file === false) return name;
  const file = o.fullFilenames ? p.strings[fileIdx]! : o.fileLabel ? o.fileLabel(p.strings[fileIdx]!) : shortFile(p.strings[fileIdx]!);
  const line = fr.line[f]!;
  return (o.lineno ?? true) && line > 0 ? `${name} (${file}:${line})` : `${name} (${file})`;
}

/** Integrity check: every index points at something; parents precede children. Throws on the first problem. */
export function validateProfile(p: Profile): void {
  const fail = (m: string) => {
    throw new Error(`invalid profile: ${m}`);
  };
  const ns = p.strings.length;
  const fr = p.frames;
  for (const col of ['name', 'qualname', 'file', 'line', 'kind', 'lib'] as const) {
    if (fr[col].length !== fr.length) fail(`frames.${col} has ${fr[col].length} rows, expected ${fr.length}`);
  }
  for (let f = 0; f < fr.length; f++) {
    if (!(fr.name[f]! >= 0 && fr.name[f]! < ns)) fail(`frame ${f} name ${fr.name[f]}`);
    if (!(fr.qualname[f]! >= 0 && fr.qualname[f]! < ns)) fail(`frame ${f} qualname ${fr.qualname[f]}`);
    if (!(fr.file[f]! >= -1 && fr.file[f]! < ns)) fail(`frame ${f} file ${fr.file[f]}`);
    if (!(fr.lib[f]! >= -1 && fr.lib[f]! < ns)) fail(`frame ${f} lib ${fr.lib[f]}`);
    if (!FRAME_KINDS.includes(fr.kind[f]!)) fail(`frame ${f} kind ${fr.kind[f]}`);
    if (!Number.isInteger(fr.line[f])) fail(`frame ${f} line ${fr.line[f]}`);
  }
  const st = p.stacks;
  if (st.frame.length !== st.length || st.parent.length !== st.length) fail('stack table column lengths');
  for (let s = 0; s < st.length; s++) {
    if (!(st.frame[s]! >= 0 && st.frame[s]! < fr.length)) fail(`stack ${s} frame ${st.frame[s]}`);
    if (!(st.parent[s]! >= -1 && st.parent[s]! < s)) fail(`stack ${s} parent ${st.parent[s]}`);
  }
  const th = p.threads;
  if (th.tid.length !== th.length || th.pid.length !== th.length || th.name.length !== th.length) fail('thread table column lengths');
  const sm = p.samples;
  if (sm.stack.length !== sm.length || sm.thread.length !== sm.length || sm.state.length !== sm.length) fail('sample column lengths');
  if (sm.time && sm.time.length !== sm.length) fail('sample time column length');
  if (sm.values.length !== p.valueTypes.length) fail(`${sm.values.length} value columns for ${p.valueTypes.length} value types`);
  for (const col of sm.values) if (col.length !== sm.length) fail('sample value column length');
  if (!(p.defaultValue >= 0 && p.defaultValue < p.valueTypes.length)) fail(`defaultValue ${p.defaultValue}`);
  for (let i = 0; i < sm.length; i++) {
    if (!(sm.stack[i]! >= -1 && sm.stack[i]! < st.length)) fail(`sample ${i} stack ${sm.stack[i]}`);
    if (!(sm.thread[i]! >= 0 && sm.thread[i]! < th.length)) fail(`sample ${i} thread ${sm.thread[i]}`);
    if (sm.state[i]! >= SAMPLE_STATES.length) fail(`sample ${i} state ${sm.state[i]}`);
  }
}

/** Aggregate samples by stack into folded lines `a;b;c` → summed value. Sorted by line text. */
export function foldedStacks(p: Profile, o: LabelOptions & { valueIndex?: number } = {}): Array<[string, number]> {
  const vi = o.valueIndex ?? p.defaultValue;
  const perStack = new Float64Array(p.stacks.length);
  let empty = 0;
  const col = p.samples.values[vi]!;
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    if (s < 0) empty += col[i]!;
    else perStack[s] += col[i]!;
  }
  const labels = new Array<string>(p.frames.length);
  // a folded line is `a;b;c N`: a ';' or line break inside a label would split it
  for (let f = 0; f < p.frames.length; f++) labels[f] = frameLabel(p, f, o).replace(/[;\r\n]/g, (c) => (c === ';' ? ':' : ' '));
  const paths = new Array<string>(p.stacks.length);
  const agg = new Map<string, number>();
  for (let s = 0; s < p.stacks.length; s++) {
    const parent = p.stacks.parent[s]!;
    const label = labels[p.stacks.frame[s]!]!;
    paths[s] = parent < 0 ? label : `${paths[parent]};${label}`;
    if (perStack[s]! !== 0) agg.set(paths[s]!, (agg.get(paths[s]!) ?? 0) + perStack[s]!);
  }
  if (empty !== 0) agg.set('', empty);
  return [...agg.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

export interface TopRow {
  /** Display label (function, or function at line). */
  label: string;
  name: string;
  file: string | null;
  line: number;
  kind: string;
  self: number;
  total: number;
  selfPct: number;
  totalPct: number;
}

export type AggregateBy = 'function' | 'line' | 'file' | 'module';

/**
 * The Python module a file holds, from its path: what follows site-packages/, dist-packages/
 * or lib/pythonX.Y/ (`pydantic/main.py` → `pydantic.main`, `json/__init__.py` → `json`);
 * `<frozen importlib._bootstrap>` → `importlib._bootstrap`; anything else, its name without .py.
 */
export function moduleOf(file: string): string {
  const frozen = /^<frozen ([\w.]+)>$/.exec(file);
  if (frozen) return frozen[1]!;
  const m = /\/(?:site|dist)-packages\/(.+)$/.exec(file) ?? /\/lib\/python\d+(?:\.\d+)?\/(.+)$/.exec(file);
  const rel = m ? m[1]! : file.slice(file.lastIndexOf('/') + 1);
  return rel.replace(/\.py[cw]?$/, '').replace(/\/__init__$/, '').replace(/\//g, '.');
}

/**
 * The identity of what a top table's row adds up, across frames: a function (kind, qualname,
 * file, library), a line (and its line), a file, or a module (native frames: their library).
 */
export function aggregateKey(fi: { kind: string; qualname: string; file: string | null; line: number; lib: string | null }, by: AggregateBy | boolean): string {
  const b: AggregateBy = by === true ? 'line' : by === false ? 'function' : by;
  if (b === 'file') return fi.file ? `file\u0000${fi.file}` : `${fi.kind}\u0000${fi.lib ?? fi.qualname}`;
  if (b === 'module') return fi.file && fi.kind === 'python' ? `module\u0000${moduleOf(fi.file)}` : `${fi.kind}\u0000${fi.lib ?? fi.qualname}`;
  return `${fi.kind}\u0000${fi.qualname}\u0000${fi.file ?? ''}\u0000${b === 'line' ? fi.line : ''}\u0000${fi.lib ?? ''}`;
}

/**
 * Top table: self and total value per function (or per line). Recursion counts once
 * towards total. Sorted by self descending, then total, then label.
 */
export function aggregate(p: Profile, o: { by?: AggregateBy; valueIndex?: number; fullFilenames?: boolean } = {}): { rows: TopRow[]; grandTotal: number; keys: string[] } {
  // files by their shortest unambiguous tail (`pydantic/main.py` beside `uvicorn/main.py`)
  const files = shortestUniquePaths(p.frames.file.filter((f) => f >= 0).map((f) => p.strings[f]!));
  const fileLabel = (f: string) => files.get(f) ?? shortFile(f);
  const vi = o.valueIndex ?? p.defaultValue;
  const by = o.by ?? 'function';
  const byLine = by === 'line';
  // Map frames to aggregation keys.
  const keyOf = new Int32Array(p.frames.length);
  const keys = new Map<string, number>();
  const keyFrame: number[] = [];
  for (let f = 0; f < p.frames.length; f++) {
    const fi = frameInfo(p, f);
    const k = aggregateKey(fi, by);
    let id = keys.get(k);
    if (id === undefined) {
      id = keyFrame.length;
      keys.set(k, id);
      keyFrame.push(f);
    }
    keyOf[f] = id;
  }
  const perStack = new Float64Array(p.stacks.length);
  const col = p.samples.values[vi]!;
  let grand = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    grand += col[i]!;
    if (s >= 0) perStack[s] += col[i]!;
  }
  const self = new Float64Array(keyFrame.length);
  const total = new Float64Array(keyFrame.length);
  const seen = new Int32Array(keyFrame.length).fill(-1);
  for (let s = 0; s < p.stacks.length; s++) {
    const v = perStack[s]!;
    if (v === 0) continue;
    self[keyOf[p.stacks.frame[s]!]!] += v;
    for (let a = s; a >= 0; a = p.stacks.parent[a]!) {
      const k = keyOf[p.stacks.frame[a]!]!;
      if (seen[k] === s) continue;
      seen[k] = s;
      total[k] += v;
    }
  }
  const rows: TopRow[] = [];
  const rowKey = new Map<TopRow, string>();
  const keyNames = [...keys.keys()];
  for (let k = 0; k < keyFrame.length; k++) {
    if (total[k] === 0) continue;
    const f = keyFrame[k]!;
    const fi = frameInfo(p, f);
    const native = fi.kind !== 'python' || !fi.file;
    const whole = by === 'file' || by === 'module';
    rows.push({
      label: !whole || native ? frameLabel(p, f, { lineno: byLine, fullFilenames: o.fullFilenames, lib: true, fileLabel }) : by === 'file' ? (o.fullFilenames ? fi.file! : fileLabel(fi.file!)) : moduleOf(fi.file!),
      name: whole && !native ? (by === 'file' ? fi.file! : moduleOf(fi.file!)) : fi.qualname,
      file: fi.file,
      line: byLine ? fi.line : 0,
      kind: fi.kind,
      self: self[k]!,
      total: total[k]!,
      selfPct: grand ? (100 * self[k]!) / grand : 0,
      totalPct: grand ? (100 * total[k]!) / grand : 0,
    });
    rowKey.set(rows[rows.length - 1]!, keyNames[k]!);
  }
  rows.sort((a, b) => b.self - a.self || b.total - a.total || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  // keys[i]: rows[i]'s aggregateKey, to join other per-function queries (analysis/report.ts)
  return { rows, grandTotal: grand, keys: rows.map((r) => rowKey.get(r)!) };
}

/**
 * Rebuild a profile with each sample's stack rewritten by `fn` (root-first frame indices
 * of the *source* profile; return null to drop the sample). Frames, strings and threads
 * are re-interned so the result holds only what it uses.
 */
export function mapSamples(
  p: Profile,
  fn: (frames: IndexIntoFrames[], sample: number) => IndexIntoFrames[] | null,
  opts: { thread?: (sample: number) => { pid: number; tid: number; name?: string } } = {},
): Profile {
  const b = new ProfileBuilder({
    meta: { ...p.meta },
    valueTypes: p.valueTypes,
    defaultValue: p.defaultValue,
    timed: p.samples.time !== null,
  });
  const frameMap = new Int32Array(p.frames.length).fill(-1);
  const mapFrame = (f: number): number => {
    let m = frameMap[f]!;
    if (m < 0) {
      const fi = frameInfo(p, f);
      m = b.frame({ name: fi.name, qualname: fi.qualname, file: fi.file ?? undefined, line: fi.line, kind: fi.kind, lib: fi.lib ?? undefined });
      frameMap[f] = m;
    }
    return m;
  };
  const cache = new Map<number, IndexIntoFrames[]>();
  const framesOf = (s: IndexIntoStacks): IndexIntoFrames[] => {
    if (s < 0) return [];
    let fr = cache.get(s);
    if (!fr) {
      fr = [];
      for (let a = s; a >= 0; a = p.stacks.parent[a]!) fr.push(p.stacks.frame[a]!);
      fr.reverse();
      cache.set(s, fr);
    }
    return fr;
  };
  const threadMap = new Map<number, number>();
  const nv = p.valueTypes.length;
  const vals = new Array<number>(nv);
  const sm = p.samples;
  for (let i = 0; i < sm.length; i++) {
    const out = fn(framesOf(sm.stack[i]!).slice(), i);
    if (out === null) continue;
    let st = -1;
    for (const f of out) st = b.stack(st, mapFrame(f));
    let t: number;
    if (opts.thread) {
      const d = opts.thread(i);
      t = b.thread(d.pid, d.tid, d.name);
    } else {
      const src = sm.thread[i]!;
      let m = threadMap.get(src);
      if (m === undefined) {
        const nm = p.threads.name[src]!;
        m = b.thread(p.threads.pid[src]!, p.threads.tid[src]!, nm >= 0 ? p.strings[nm] : undefined);
        threadMap.set(src, m);
      }
      t = m;
    }
    for (let v = 0; v < nv; v++) vals[v] = sm.values[v]![i]!;
    b.sample(st, vals, t, SAMPLE_STATES[sm.state[i]!]!, sm.time ? sm.time[i]! : 0);
  }
  return b.build();
}

export interface SampleFilter {
  /** Keep only these thread ids (OS tids). */
  tids?: number[];
  /** Keep only these process ids. */
  pids?: number[];
  /** Keep only samples in these states. */
  states?: SampleState[];
  /** Keep only asyncio task samples (under a `task NAME` root, record --async) of these tasks; '*' for every task. */
  tasks?: string[];
  /** Leave asyncio task samples out (the threads alone). */
  noTasks?: boolean;
}

/** The root marker a sampler puts over an asyncio task's await chain: `task NAME` (record --async). */
export const TASK_ROOT_PREFIX = 'task ';

/** Per frame: the task name when the frame is a `task NAME` root marker, else null. */
export function taskRoots(p: Profile): (string | null)[] {
  const out: (string | null)[] = new Array(p.frames.length).fill(null);
  for (let f = 0; f < p.frames.length; f++) {
    if (p.frames.kind[f] !== 'marker') continue;
    const name = p.strings[p.frames.name[f]!]!;
    if (name.startsWith(TASK_ROOT_PREFIX)) out[f] = name.slice(TASK_ROOT_PREFIX.length);
  }
  return out;
}

export function filterSamples(p: Profile, f: SampleFilter): Profile {
  const tids = f.tids ? new Set(f.tids) : null;
  const pids = f.pids ? new Set(f.pids) : null;
  const states = f.states ? new Set(f.states) : null;
  const tasks = f.tasks ? new Set(f.tasks) : null;
  const roots = tasks || f.noTasks ? taskRoots(p) : [];
  return mapSamples(p, (frames, i) => {
    const t = p.samples.thread[i]!;
    if (tids && !tids.has(p.threads.tid[t]!)) return null;
    if (pids && !pids.has(p.threads.pid[t]!)) return null;
    if (states && !states.has(SAMPLE_STATES[p.samples.state[i]!]!)) return null;
    if (tasks || f.noTasks) {
      let task: string | null = null;
      for (const fr of frames) if ((task = roots[fr]!) !== null) break;
      if (f.noTasks && task !== null) return null;
      if (tasks && (task === null || !(tasks.has('*') || tasks.has(task)))) return null;
    }
    return frames;
  });
}

/** All samples onto one thread per process (tid = pid), like "merge threads" in viewers. */
export function mergeThreads(p: Profile): Profile {
  return mapSamples(p, (frames) => frames, {
    thread: (i) => {
      const pid = p.threads.pid[p.samples.thread[i]!]!;
      return { pid, tid: pid };
    },
  });
}

/**
 * Focus on a function: keep samples whose stack contains a frame matching `match`
 * (by qualified name, or `name (file)`), re-rooted at the outermost match.
 */
export function focus(p: Profile, match: string | ((p: Profile, f: IndexIntoFrames) => boolean)): Profile {
  const pred =
    typeof match === 'function'
      ? (f: number) => match(p, f)
      : (f: number) => {
          const q = p.strings[p.frames.qualname[f]!]!;
          return q === match || p.strings[p.frames.name[f]!] === match || frameLabel(p, f, { lineno: false }) === match;
        };
  const hit = new Int8Array(p.frames.length);
  for (let f = 0; f < p.frames.length; f++) hit[f] = pred(f) ? 1 : 0;
  return mapSamples(p, (frames) => {
    const at = frames.findIndex((f) => hit[f] === 1);
    return at < 0 ? null : frames.slice(at);
  });
}

/**
 * Prepend process and thread marker frames (py-spy `--threads` / `--subprocesses` style),
 * for exporters that have no thread dimension.
 */
export function withThreadRoots(
  p: Profile,
  o: { processes?: boolean; threads?: boolean; processLabel?: (pid: number) => string } = { processes: true, threads: true },
): Profile {
  const q = cloneProfile(p);
  const markerFrame = new Map<string, number>();
  const addMarker = (name: string): number => {
    let f = markerFrame.get(name);
    if (f === undefined) {
      const si = q.strings.push(name) - 1;
      f = q.frames.length++;
      q.frames.name.push(si);
      q.frames.qualname.push(si);
      q.frames.file.push(-1);
      q.frames.line.push(0);
      q.frames.kind.push('marker');
      q.frames.lib.push(-1);
      markerFrame.set(name, f);
    }
    return f;
  };
  const rootFrames: number[][] = [];
  for (let t = 0; t < p.threads.length; t++) {
    const r: number[] = [];
    const nm = p.threads.name[t]!;
    if (o.processes) r.push(addMarker(o.processLabel ? o.processLabel(p.threads.pid[t]!) : `process ${p.threads.pid[t]}`));
    if (o.threads) r.push(addMarker(nm >= 0 ? `thread ${p.threads.tid[t]} (${p.strings[nm]})` : `thread ${p.threads.tid[t]}`));
    rootFrames.push(r);
  }
  return mapSamples(q, (frames, i) => [...rootFrames[q.samples.thread[i]!]!, ...frames]);
}

export function cloneProfile(p: Profile): Profile {
  return {
    version: p.version,
    meta: structuredClone(p.meta),
    valueTypes: p.valueTypes.map((v) => ({ ...v })),
    defaultValue: p.defaultValue,
    strings: p.strings.slice(),
    frames: {
      name: p.frames.name.slice(),
      qualname: p.frames.qualname.slice(),
      file: p.frames.file.slice(),
      line: p.frames.line.slice(),
      kind: p.frames.kind.slice(),
      lib: p.frames.lib.slice(),
      length: p.frames.length,
    },
    stacks: { frame: p.stacks.frame.slice(), parent: p.stacks.parent.slice(), length: p.stacks.length },
    samples: {
      stack: p.samples.stack.slice(),
      thread: p.samples.thread.slice(),
      state: p.samples.state.slice(),
      time: p.samples.time ? p.samples.time.slice() : null,
      values: p.samples.values.map((v) => v.slice()),
      length: p.samples.length,
    },
    threads: { tid: p.threads.tid.slice(), pid: p.threads.pid.slice(), name: p.threads.name.slice(), length: p.threads.length },
  };
}

/** A node of the merged call tree. */
export interface CallTreeNode {
  frame: IndexIntoFrames;
  self: number;
  total: number;
  children: CallTreeNode[];
}

/**
 * Merged call tree (children sorted by total, heaviest first: "left heavy").
 * The root is a synthetic node with frame -1.
 */
export function callTree(p: Profile, valueIndex = p.defaultValue): CallTreeNode {
  const perStack = new Float64Array(p.stacks.length);
  const col = p.samples.values[valueIndex]!;
  let rootSelf = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    if (s < 0) rootSelf += col[i]!;
    else perStack[s] += col[i]!;
  }
  const nodes: CallTreeNode[] = new Array(p.stacks.length);
  const root: CallTreeNode = { frame: -1, self: rootSelf, total: rootSelf, children: [] };
  for (let s = 0; s < p.stacks.length; s++) nodes[s] = { frame: p.stacks.frame[s]!, self: perStack[s]!, total: perStack[s]!, children: [] };
  for (let s = p.stacks.length - 1; s >= 0; s--) {
    const parent = p.stacks.parent[s]!;
    const node = nodes[s]!;
    const into = parent < 0 ? root : nodes[parent]!;
    into.total += node.total;
    if (node.total !== 0) into.children.push(node);
  }
  // Iterative sort to survive very deep trees.
  const stack: CallTreeNode[] = [root];
  while (stack.length) {
    const n = stack.pop()!;
    n.children.sort((a, b) => b.total - a.total || a.frame - b.frame);
    for (const c of n.children) stack.push(c);
  }
  return root;
}
