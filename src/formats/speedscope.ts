/**
 * speedscope's file format (jlfwong/speedscope `src/lib/file-format-spec.ts` at commit
 * 5236f55296c3946e960a2c8f259adc76a8f548f6):
 *
 *   { "$schema": "https://www.speedscope.app/file-format-schema.json",
 *     "shared": { "frames": [{ name, file?, line?, col? }] },
 *     "profiles": [ SampledProfile | EventedProfile ], name?, activeProfileIndex?, exporter? }
 *   SampledProfile  { type: "sampled", name, unit, startValue, endValue,
 *                     samples: number[][] (frame indexes, root first), weights: number[] }
 *   EventedProfile  { type: "evented", name, unit, startValue, endValue,
 *                     events: [{ type: "O" | "C", frame, at }] }   (at non-decreasing, balanced)
 *   unit: none | nanoseconds | microseconds | milliseconds | seconds | bytes
 *
 * Import
 *   - Each profile becomes a thread. Names are read for pid/tid: py-spy's
 *     `Process 123 Thread 456` (optionally followed by ` "name"`), `name (456)`, `name`;
 *     without numbers, threads get sequential tids 1, 2, … (pid 0).
 *   - Units: time units → {time, nanoseconds}; none → {samples, samples}; bytes →
 *     {bytes, bytes}. A file mixing unit kinds gets one value column per kind.
 *   - Sampled: one sample per entry with its weight; when the unit is a time unit, the
 *     sample's time is startValue + the sum of the earlier weights (speedscope's layout).
 *   - Evented: self time per interval: between consecutive event times the open stack gets
 *     the elapsed time as one sample (zero-length intervals are dropped). `at` must not go
 *     backwards, a "C" must close the innermost open frame, and every "O" must be closed:
 *     otherwise a ParseError naming the JSON path and line.
 *   - The profile is timed when every profile's unit is a time unit.
 *   - Frames: `file` → python frame (native for .c/.so/… files); no file → native; a name
 *     ending in `_[k]` → kernel. The name is the qualified name; `col` is not kept.
 *
 * Export: one sampled profile per (pid, tid) thread, named `Process P Thread T "name"` so
 * pid, tid and name come back; shared frames {name: qualified name, file: full path,
 * line}; kernel frames get a `_[k]` suffix; weights are the default (or chosen) value
 * column in its unit (nanoseconds for time, none for samples/calls, bytes). Samples keep
 * their order, so a timed profile stays in time order. Lossless for stacks, threads and
 * weights; frame kinds other than kernel, native libs and sample states are not kept.
 */
import { ProfileBuilder } from '../model/builder.ts';
import type { FrameKind, FrameSpec, Profile, ValueType, ValueUnit } from '../model/profile.ts';
import { carriedMeta, restoreMeta } from './carried-meta.ts';
import { PYLENS_VERSION } from '../version.ts';
import { shortName } from './collapsed.ts';
import { NOT_MINE, ParseError, type ExportOptions, type Exporter, type Importer, type InputFile, type NotMine } from './types.ts';

export const SPEEDSCOPE_SCHEMA = 'https://www.speedscope.app/file-format-schema.json';

// ---------------------------------------------------------------------------------------
// JSON positions for error messages (shared with chrome-trace.ts)
// ---------------------------------------------------------------------------------------

/** 1-based line of a character offset. */
export function lineAt(text: string, offset: number): number {
  let line = 1;
  const end = Math.min(offset, text.length);
  for (let i = text.indexOf('\n'); i >= 0 && i < end; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/** Line of a JSON.parse SyntaxError (V8 reports "position N"); the last line when it ran out of input. */
export function jsonErrorLine(text: string, e: unknown): number {
  const m = /position (\d+)/.exec(String((e as Error)?.message));
  return m ? lineAt(text, Number(m[1])) : lineAt(text, text.length);
}

function skipWs(t: string, i: number): number {
  while (i < t.length) {
    const c = t.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) break;
    i++;
  }
  return i;
}

function skipString(t: string, i: number): number {
  // t[i] === '"'
  for (i++; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c === 92) i++;
    else if (c === 34) return i + 1;
  }
  return t.length;
}

function skipValue(t: string, i: number): number {
  i = skipWs(t, i);
  const c = t.charCodeAt(i);
  if (c === 34) return skipString(t, i);
  if (c === 123 || c === 91) {
    let depth = 0;
    for (; i < t.length; i++) {
      const d = t.charCodeAt(i);
      if (d === 34) i = skipString(t, i) - 1;
      else if (d === 123 || d === 91) depth++;
      else if (d === 125 || d === 93) {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    return t.length;
  }
  while (i < t.length) {
    const d = t.charCodeAt(i);
    if (d === 44 || d === 93 || d === 125 || d === 32 || d === 10 || d === 13 || d === 9) break;
    i++;
  }
  return i;
}

/**
 * Character offset of the value at `path` (object keys and array indexes) in valid JSON
 * text; the deepest offset reached when the path does not exist. Only used for messages.
 */
export function jsonOffset(t: string, path: ReadonlyArray<string | number>): number {
  let i = skipWs(t, 0);
  for (const key of path) {
    const open = t.charCodeAt(i);
    if (typeof key === 'number') {
      if (open !== 91) return i;
      i = skipWs(t, i + 1);
      for (let k = 0; k < key; k++) {
        i = skipWs(t, skipValue(t, i));
        if (t.charCodeAt(i) !== 44) return i;
        i = skipWs(t, i + 1);
      }
    } else {
      if (open !== 123) return i;
      i = skipWs(t, i + 1);
      let found = false;
      while (i < t.length && t.charCodeAt(i) === 34) {
        const end = skipString(t, i);
        let name: string;
        try {
          name = JSON.parse(t.slice(i, end)) as string;
        } catch {
          return i;
        }
        i = skipWs(t, end);
        if (t.charCodeAt(i) !== 58) return i;
        i = skipWs(t, i + 1);
        if (name === key) {
          found = true;
          break;
        }
        i = skipWs(t, skipValue(t, i));
        if (t.charCodeAt(i) !== 44) return i;
        i = skipWs(t, i + 1);
      }
      if (!found) return i;
    }
  }
  return i;
}

/** `profiles[0].events[3]` */
export function jsonPathText(path: ReadonlyArray<string | number>): string {
  let s = '';
  for (const k of path) s += typeof k === 'number' ? `[${k}]` : s === '' ? k : `.${k}`;
  return s;
}

// ---------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------

const TIME_SCALE: Record<string, number> = { nanoseconds: 1, microseconds: 1e3, milliseconds: 1e6, seconds: 1e9 };
const NATIVE_FILE_RE = /\.(?:c|h|cc|cpp|cxx|hpp|rs)$|\.so(?:\.[0-9.]+)?$|\.dylib$|\.dll$|\.pyd$/;

interface SpeedscopeFrame {
  name?: unknown;
  file?: unknown;
  line?: unknown;
  col?: unknown;
}

/** Parse a py-spy / pylens profile name into (pid, tid, name). */
export function parseThreadName(name: string): { pid?: number; tid?: number; name?: string } {
  let m = /^Process (\d+) Thread (\d+)(?: "([^]*)")?$/.exec(name);
  if (m) return { pid: Number(m[1]), tid: Number(m[2]), ...(m[3] !== undefined ? { name: m[3] } : {}) };
  m = /^(.*) \((\d+)\)$/.exec(name);
  if (m) return { tid: Number(m[2]), name: m[1]! };
  return name === '' ? {} : { name };
}

function frameSpec(fr: SpeedscopeFrame): FrameSpec {
  let name = typeof fr.name === 'string' ? fr.name : String(fr.name ?? '');
  const file = typeof fr.file === 'string' && fr.file !== '' ? fr.file : undefined;
  const line = typeof fr.line === 'number' && Number.isInteger(fr.line) && fr.line > 0 ? fr.line : 0;
  let kind: FrameKind;
  if (name.endsWith('_[k]') && file === undefined) {
    name = name.slice(0, -4);
    kind = 'kernel';
  } else if (file === undefined) kind = 'native';
  else kind = NATIVE_FILE_RE.test(file) ? 'native' : 'python';
  const spec: FrameSpec = { name: kind === 'python' ? shortName(name) : name, qualname: name, kind };
  if (file !== undefined) {
    spec.file = file;
    spec.line = line;
  }
  return spec;
}

/** Two shared frames with the same name/file/line (speedscope matches "C" to "O" by frame key). */
function sameFrame(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return false;
  const x = a as SpeedscopeFrame;
  const y = b as SpeedscopeFrame;
  return x.name === y.name && x.file === y.file && x.line === y.line;
}

function unitType(unit: string): ValueType {
  if (unit in TIME_SCALE) return { name: 'time', unit: 'nanoseconds' };
  if (unit === 'bytes') return { name: 'bytes', unit: 'bytes' };
  return { name: 'samples', unit: 'samples' };
}

/** Decide whether parsed JSON is a speedscope document. */
function isSpeedscope(doc: unknown): doc is { shared: { frames: unknown[] }; profiles: unknown[] } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return false;
  const d = doc as Record<string, unknown>;
  if (d['$schema'] === SPEEDSCOPE_SCHEMA) return true;
  const shared = d['shared'] as Record<string, unknown> | undefined;
  return typeof shared === 'object' && shared !== null && Array.isArray(shared['frames']) && Array.isArray(d['profiles']);
}

export function parseSpeedscope(text: string, file: string): Profile | NotMine {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    // Not JSON at all: not ours, unless it starts like a speedscope file (then it is damaged).
    if (text.slice(0, 4096).includes(SPEEDSCOPE_SCHEMA)) {
      throw new ParseError('speedscope', file, { line: jsonErrorLine(text, e) }, `expected a complete JSON document but ${(e as Error).message.replace(/ in JSON at position \d+.*$/, '')}`);
    }
    return NOT_MINE;
  }
  if (!isSpeedscope(doc)) return NOT_MINE;
  const fail = (path: Array<string | number>, msg: string): never => {
    throw new ParseError('speedscope', file, { line: lineAt(text, jsonOffset(text, path)) }, `${jsonPathText(path)}: ${msg}`);
  };
  const d = doc as Record<string, unknown>;
  const shared = d['shared'] as Record<string, unknown> | undefined;
  if (typeof shared !== 'object' || shared === null || !Array.isArray(shared['frames'])) fail(['shared'], 'expected an object with a "frames" array');
  if (!Array.isArray(d['profiles'])) fail(['profiles'], 'expected an array of profiles');
  const frames = (shared as { frames: unknown[] }).frames;
  const profiles = d['profiles'] as unknown[];

  // Value columns: one per kind of unit present.
  const units: string[] = [];
  for (let i = 0; i < profiles.length; i++) {
    const pr = profiles[i] as Record<string, unknown> | null;
    if (typeof pr !== 'object' || pr === null) fail(['profiles', i], 'expected a profile object');
    const unit = (pr as Record<string, unknown>)['unit'] ?? 'none';
    if (typeof unit !== 'string' || !(unit in TIME_SCALE || unit === 'none' || unit === 'bytes')) {
      fail(['profiles', i, 'unit'], `expected a unit (none, nanoseconds, microseconds, milliseconds, seconds, bytes) but got ${JSON.stringify(unit)}`);
    }
    units.push(unit as string);
  }
  const valueTypes: ValueType[] = [];
  const columnOf = new Map<string, number>();
  for (const u of units) {
    const vt = unitType(u);
    if (!columnOf.has(vt.name)) {
      columnOf.set(vt.name, valueTypes.length);
      valueTypes.push(vt);
    }
  }
  if (valueTypes.length === 0) valueTypes.push({ name: 'samples', unit: 'samples' });
  const timed = units.length > 0 && units.every((u) => u in TIME_SCALE);

  const b = new ProfileBuilder({
    meta: {
      backend: typeof d['exporter'] === 'string' ? String(d['exporter']).replace(/@.*$/, '') : 'speedscope',
      mode: 'unknown',
      ...(typeof d['name'] === 'string' ? { name: d['name'] as string } : {}),
    },
    valueTypes,
    timed,
  });
  const frameIdx = new Int32Array(frames.length).fill(-1);
  const frameOf = (k: unknown, path: Array<string | number>): number => {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= frames.length) {
      return fail(path, `expected a frame index 0…${frames.length - 1} but got ${JSON.stringify(k)}`);
    }
    let f = frameIdx[k]!;
    if (f < 0) {
      const fr = frames[k] as SpeedscopeFrame | null;
      if (typeof fr !== 'object' || fr === null || (typeof fr.name !== 'string' && typeof fr.name !== 'number')) fail(['shared', 'frames', k], 'expected a frame {name, file?, line?}');
      f = b.frame(frameSpec(fr as SpeedscopeFrame));
      frameIdx[k] = f;
    }
    return f;
  };

  // Threads: parse names; sequential tids for those without numbers.
  const used = new Set<string>();
  const threadOf: number[] = [];
  const parsed = profiles.map((pr) => parseThreadName(typeof (pr as Record<string, unknown>)['name'] === 'string' ? ((pr as Record<string, unknown>)['name'] as string) : ''));
  for (const t of parsed) if (t.tid !== undefined) used.add(`${t.pid ?? 0}/${t.tid}`);
  let nextTid = 1;
  for (const t of parsed) {
    let tid = t.tid;
    const pid = t.pid ?? 0;
    if (tid === undefined) {
      while (used.has(`${pid}/${nextTid}`)) nextTid++;
      tid = nextTid;
      used.add(`${pid}/${tid}`);
    }
    threadOf.push(b.thread(pid, tid, t.name));
  }

  // Common time origin (ns) so threads line up.
  let origin = Infinity;
  if (timed) {
    for (let i = 0; i < profiles.length; i++) {
      const pr = profiles[i] as Record<string, unknown>;
      const sv = typeof pr['startValue'] === 'number' ? (pr['startValue'] as number) : 0;
      origin = Math.min(origin, sv * TIME_SCALE[units[i]!]!);
      if (pr['type'] === 'evented' && Array.isArray(pr['events']) && pr['events'].length) {
        const at = (pr['events'][0] as Record<string, unknown>)?.['at'];
        if (typeof at === 'number') origin = Math.min(origin, at * TIME_SCALE[units[i]!]!);
      }
    }
    if (!Number.isFinite(origin)) origin = 0;
  }

  const nv = valueTypes.length;
  const vals = new Array<number>(nv).fill(0);
  let durationNs = 0;
  for (let i = 0; i < profiles.length; i++) {
    const pr = profiles[i] as Record<string, unknown>;
    const unit = units[i]!;
    const scale = TIME_SCALE[unit] ?? 1;
    const col = columnOf.get(unitType(unit).name)!;
    const thread = threadOf[i]!;
    const startValue = typeof pr['startValue'] === 'number' ? (pr['startValue'] as number) : 0;
    if (pr['type'] === 'sampled') {
      const samples = pr['samples'];
      const weights = pr['weights'] ?? null;
      if (!Array.isArray(samples)) fail(['profiles', i, 'samples'], 'expected an array of stacks');
      const sArr = samples as unknown[];
      if (weights !== null && (!Array.isArray(weights) || weights.length !== sArr.length)) {
        fail(['profiles', i, 'weights'], `expected ${sArr.length} weights (one per sample) but got ${Array.isArray(weights) ? weights.length : JSON.stringify(weights)}`);
      }
      const wArr = weights as number[] | null;
      let t = startValue * scale - origin;
      for (let s = 0; s < sArr.length; s++) {
        const stackArr = sArr[s];
        if (!Array.isArray(stackArr)) fail(['profiles', i, 'samples', s], 'expected an array of frame indexes');
        let st = -1;
        const sa = stackArr as unknown[];
        for (let k = 0; k < sa.length; k++) st = b.stack(st, frameOf(sa[k], ['profiles', i, 'samples', s, k]));
        const w = wArr ? wArr[s] : 1;
        if (typeof w !== 'number' || !Number.isFinite(w)) fail(['profiles', i, 'weights', s], `expected a number but got ${JSON.stringify(w)}`);
        vals.fill(0);
        vals[col] = (w as number) * scale;
        b.sample(st, vals, thread, 'unknown', t);
        if (timed) t += (w as number) * scale;
      }
      if (timed) durationNs = Math.max(durationNs, t);
    } else if (pr['type'] === 'evented') {
      const events = pr['events'];
      if (!Array.isArray(events)) fail(['profiles', i, 'events'], 'expected an array of events');
      const ev = events as unknown[];
      const open: number[] = []; // speedscope frame indexes
      const openStack: number[] = [-1]; // model stack per depth
      let last = -Infinity;
      for (let e = 0; e < ev.length; e++) {
        const x = ev[e] as Record<string, unknown> | null;
        if (typeof x !== 'object' || x === null) fail(['profiles', i, 'events', e], 'expected an event {type, frame, at}');
        const at = (x as Record<string, unknown>)['at'];
        const type = (x as Record<string, unknown>)['type'];
        const frame = (x as Record<string, unknown>)['frame'];
        if (typeof at !== 'number' || !Number.isFinite(at)) fail(['profiles', i, 'events', e, 'at'], `expected a number but got ${JSON.stringify(at)}`);
        if ((at as number) < last) fail(['profiles', i, 'events', e, 'at'], `expected "at" ≥ ${last} (events in time order) but got ${at}`);
        if (e > 0 && open.length > 0 && (at as number) > last) {
          // The interval [last, at) belongs to the innermost open frame.
          vals.fill(0);
          vals[col] = ((at as number) - last) * scale;
          b.sample(openStack[openStack.length - 1]!, vals, thread, 'unknown', last * scale - origin);
        }
        last = at as number;
        if (type === 'O') {
          const f = frameOf(frame, ['profiles', i, 'events', e, 'frame']);
          open.push(frame as number);
          openStack.push(b.stack(openStack[openStack.length - 1]!, f));
        } else if (type === 'C') {
          if (open.length === 0) fail(['profiles', i, 'events', e], `expected an "O" event before this "C" (no frame is open)`);
          const top = open[open.length - 1]!;
          if (frame !== top && !sameFrame(frames[top], frames[frame as number])) fail(['profiles', i, 'events', e, 'frame'], `expected "C" to close frame ${top} (the innermost open frame) but it closes ${JSON.stringify(frame)}`);
          open.pop();
          openStack.pop();
        } else fail(['profiles', i, 'events', e, 'type'], `expected "O" or "C" but got ${JSON.stringify(type)}`);
      }
      if (open.length) fail(['profiles', i, 'events'], `expected every "O" to be closed but ${open.length} frame(s) are still open at the end (innermost: ${open[open.length - 1]})`);
      if (timed && Number.isFinite(last)) durationNs = Math.max(durationNs, last * scale - origin);
    } else fail(['profiles', i, 'type'], `expected "sampled" or "evented" but got ${JSON.stringify(pr['type'])}`);
  }
  if (timed && durationNs > 0) b.meta.durationNs = durationNs;
  const built = b.build();
  built.meta = restoreMeta(built.meta, (d['pylens'] as Record<string, unknown> | undefined)?.['meta']);
  return built;
}

export const speedscopeImporter: Importer = {
  id: 'speedscope',
  extensions: ['.speedscope.json', '.speedscope'],
  detect(input: InputFile): boolean {
    const head = input.head();
    if (!/^\s*\{/.test(head)) return false;
    return head.includes(SPEEDSCOPE_SCHEMA) || (/"shared"\s*:/.test(head) && /"profiles"\s*:/.test(head)) || (/"shared"\s*:\s*\{\s*"frames"/.test(head));
  },
  parse(input: InputFile): Profile | NotMine {
    const head = input.head(64);
    if (!/^\s*\{/.test(head)) return NOT_MINE;
    return parseSpeedscope(input.text(), input.label);
  },
};

// ---------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------

function speedscopeUnit(u: ValueUnit): string {
  return u === 'nanoseconds' ? 'nanoseconds' : u === 'bytes' ? 'bytes' : 'none';
}

export function writeSpeedscope(p: Profile, opts: ExportOptions = {}): string {
  const vi = opts.valueIndex ?? p.defaultValue;
  const col = p.samples.values[vi]!;
  const unit = speedscopeUnit(p.valueTypes[vi]!.unit);
  // Shared frames, one per model frame (identical {name,file,line} rows may repeat; harmless).
  const frames = new Array<Record<string, unknown>>(p.frames.length);
  for (let f = 0; f < p.frames.length; f++) {
    const kind = p.frames.kind[f]!;
    const qual = p.strings[p.frames.qualname[f]!]!;
    const fileIdx = p.frames.file[f]!;
    const fr: Record<string, unknown> = { name: kind === 'kernel' && !qual.endsWith('_[k]') ? `${qual}_[k]` : qual };
    if (fileIdx >= 0 && kind !== 'kernel' && kind !== 'marker') {
      fr['file'] = p.strings[fileIdx]!;
      if (p.frames.line[f]! > 0) fr['line'] = p.frames.line[f]!;
    }
    frames[f] = fr;
  }
  // Frame index lists per stack, built lazily.
  const stackFramesCache = new Map<number, number[]>();
  const framesOf = (s: number): number[] => {
    if (s < 0) return [];
    let r = stackFramesCache.get(s);
    if (!r) {
      r = [...framesOf(p.stacks.parent[s]!), p.stacks.frame[s]!];
      stackFramesCache.set(s, r);
    }
    return r;
  };
  const perThread: Array<{ samples: number[][]; weights: number[]; start: number; end: number }> = [];
  for (let t = 0; t < p.threads.length; t++) perThread.push({ samples: [], weights: [], start: Infinity, end: -Infinity });
  const time = p.samples.time;
  for (let i = 0; i < p.samples.length; i++) {
    const pt = perThread[p.samples.thread[i]!]!;
    pt.samples.push(framesOf(p.samples.stack[i]!));
    pt.weights.push(col[i]!);
    if (time) {
      pt.start = Math.min(pt.start, time[i]!);
      pt.end = Math.max(pt.end, time[i]! + (unit === 'nanoseconds' ? col[i]! : 0));
    }
  }
  const profiles: unknown[] = [];
  for (let t = 0; t < p.threads.length; t++) {
    // Threads without samples are written too (empty profiles), so the thread set survives.
    const pt = perThread[t]!;
    const nm = p.threads.name[t]!;
    const name = `Process ${p.threads.pid[t]} Thread ${p.threads.tid[t]}${nm >= 0 ? ` "${p.strings[nm]!}"` : ''}`;
    let total = 0;
    for (const w of pt.weights) total += w;
    const useTime = unit === 'nanoseconds' && time && Number.isFinite(pt.start);
    profiles.push({
      type: 'sampled',
      name,
      unit,
      startValue: useTime ? pt.start : 0,
      endValue: useTime ? Math.max(pt.end, pt.start + total) : total,
      samples: pt.samples,
      weights: pt.weights,
    });
  }
  const doc = {
    $schema: SPEEDSCOPE_SCHEMA,
    shared: { frames },
    profiles,
    name: p.meta.name ?? 'pylens profile',
    activeProfileIndex: 0,
    exporter: `pylens@${PYLENS_VERSION}`,
    // pylens's metadata (formats/carried-meta.ts): read back by this importer, ignored by speedscope
    pylens: { meta: carriedMeta(p.meta) },
  };
  return JSON.stringify(doc);
}

export const speedscopeExporter: Exporter = {
  id: 'speedscope',
  extension: '.speedscope.json',
  lossless: true,
  write: (p: Profile, opts?: ExportOptions) => writeSpeedscope(p, opts),
};
