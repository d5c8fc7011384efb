/**
 * Chrome Trace Event format ("JSON Array Format" / "JSON Object Format" of the Trace Event
 * Format document; catapult's trace viewer and Perfetto's JSON importer):
 *
 *   [ {name, cat, ph, ts, pid, tid, args?}, … ]           array form; the closing "]" may
 *                                                          be missing (streamed writers)
 *   { "traceEvents": [ … ], "displayTimeUnit": "ms"|"ns", "otherData": {…} }
 *
 * `ts` and `dur` are microseconds in both forms, whatever `displayTimeUnit` says: it only
 * picks the unit the viewer displays (catapult accepts "ms" and "ns" only; Perfetto once
 * read it as the unit of `ts` and went back to the spec in 2022, google/perfetto#274).
 *
 * Import
 *   - `B`/`E` nest per (pid, tid): an `E` closes the innermost open `B` on its thread; an
 *     `E` with nothing open, an `E` whose name differs from the open `B`'s, or an `E` that
 *     ends before its `B` is a ParseError naming the event index (and its line). `B`s still
 *     open at the end (a truncated trace) end at the thread's last timestamp.
 *   - `X` (complete) events span [ts, ts+dur]; a child sticking out of its parent is
 *     clipped to the parent.
 *   - `M` thread_name → thread names; process_name → meta.name (first one). py-spy writes
 *     tids remapped to 0, 1, … and the real id in the name ("139888: MainThread";
 *     benfred/py-spy `src/chrometrace.rs` at 11d05313cec8a3ffa1ae4af9b4f7abf91afa9636): for
 *     `cat: "py-spy"` the real tid and name are taken from there.
 *   - Other phases (instant, counter, async, flow, …) are ignored.
 *   - The spans of each thread become samples of self time: for every interval between
 *     span boundaries, the open stack gets one sample with the interval as its value
 *     ({time, nanoseconds}) and its start as the time (ns since the earliest event).
 *   - Frames: name, `args.filename` (py-spy) or `args.file`, `args.line` / `args.lineno`;
 *     `cat` python/native/kernel/marker sets the kind (pylens' export writes it), else a
 *     frame with a file is python and one without is native.
 *
 * Export (object form, displayTimeUnit "ms", ts/dur in µs with ns precision):
 *   - Timed profiles: per thread, samples in time order; consecutive stacks are diffed into
 *     `E` (leaf first) and `B` (root first) events, so each sample lasts until the next
 *     sample on its thread; the last one lasts the thread's median sampling interval, or
 *     1/rateHz, or 1 ms. When the exported value is in nanoseconds it is the sample's own
 *     duration: the sample ends after it (or at the next sample, whichever is first), so
 *     gaps survive and a chrome → chrome round trip keeps every value.
 *   - Untimed profiles: per thread, the merged call tree laid out left-heavy (heaviest
 *     child first, from ts 0) as `X` events; a value of 1 sample lasts 1/rateHz (1 ms when
 *     the rate is unknown), nanoseconds are themselves, other units 1 µs per unit.
 *   - `M` thread_name per named thread, process_name from meta.name.
 *   Not lossless: values become durations.
 */
import { ProfileBuilder } from '../model/builder.ts';
import { stackFrames, type FrameKind, type FrameSpec, type Profile } from '../model/profile.ts';
import { PYLENS_VERSION } from '../version.ts';
import { shortName } from './collapsed.ts';
import { jsonErrorLine, jsonOffset, lineAt } from './speedscope.ts';
import { NOT_MINE, ParseError, type ExportOptions, type Exporter, type Importer, type InputFile, type NotMine } from './types.ts';

const KINDS: ReadonlySet<string> = new Set(['python', 'native', 'kernel', 'marker']);
const NATIVE_FILE_RE = /\.(?:c|h|cc|cpp|cxx|hpp|rs)$|\.so(?:\.[0-9.]+)?$|\.dylib$|\.dll$|\.pyd$/;

interface Span {
  start: number;
  end: number;
  seq: number;
  frame: FrameSpec;
}

interface ThreadData {
  pid: unknown;
  tid: unknown;
  spans: Span[];
  open: Array<{ start: number; seq: number; name: string; frame: FrameSpec; index: number }>;
  lastTs: number;
}

function looksLikeEvent(x: unknown): boolean {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && typeof (x as Record<string, unknown>)['ph'] === 'string';
}

/** Parse the JSON text into the events array; NOT_MINE when it is not a trace. */
function readEvents(text: string, file: string): { events: unknown[]; doc: Record<string, unknown> | null; arrayForm: boolean } | NotMine {
  const lead = /^\s*/.exec(text)![0].length;
  const c = text.charCodeAt(lead);
  if (c === 123 /* { */) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      if (/^\s*\{\s*"traceEvents"\s*:/.test(text.slice(0, 200))) {
        throw new ParseError('chrome-trace', file, { line: jsonErrorLine(text, e) }, `expected a complete JSON object but ${shortJsonError(e)}`);
      }
      return NOT_MINE;
    }
    if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as Record<string, unknown>)['traceEvents'])) return NOT_MINE;
    return { events: (doc as Record<string, unknown[]>)['traceEvents']!, doc: doc as Record<string, unknown>, arrayForm: false };
  }
  if (c !== 91 /* [ */) return NOT_MINE;
  let arr: unknown;
  try {
    arr = JSON.parse(text);
  } catch (e) {
    // The closing "]" may be missing (and a trailing comma left): try closing it.
    let s = text.trimEnd();
    if (s.endsWith(',')) s = s.slice(0, -1);
    try {
      arr = JSON.parse(s + ']');
    } catch {
      if (/^\s*\[\s*\{[^]{0,400}?"ph"\s*:/.test(text.slice(0, 500))) {
        throw new ParseError('chrome-trace', file, { line: jsonErrorLine(text, e) }, `expected a JSON array of trace events (its closing "]" may be missing) but ${shortJsonError(e)}`);
      }
      return NOT_MINE;
    }
  }
  if (!Array.isArray(arr) || arr.length === 0) return NOT_MINE;
  // Every element must be an event object; look at the first few to decide.
  for (let i = 0; i < Math.min(arr.length, 8); i++) if (!looksLikeEvent(arr[i])) return NOT_MINE;
  return { events: arr, doc: null, arrayForm: true };
}

function shortJsonError(e: unknown): string {
  const m = String((e as Error)?.message ?? e).replace(/ in JSON at position \d+.*$/, '');
  return m.charAt(0).toLowerCase() + m.slice(1);
}

function frameOfEvent(ev: Record<string, unknown>): FrameSpec {
  const name = typeof ev['name'] === 'string' ? (ev['name'] as string) : ev['name'] === undefined ? '<unnamed>' : String(ev['name']);
  const args = typeof ev['args'] === 'object' && ev['args'] !== null ? (ev['args'] as Record<string, unknown>) : {};
  const f = args['filename'] ?? args['file'];
  const file = typeof f === 'string' && f !== '' ? f : undefined;
  const l = args['line'] ?? args['lineno'];
  const line = typeof l === 'number' && Number.isInteger(l) && l > 0 ? l : 0;
  const cat = typeof ev['cat'] === 'string' ? (ev['cat'] as string) : '';
  let kind: FrameKind;
  let nm = name;
  if (KINDS.has(cat)) kind = cat as FrameKind;
  else if (file !== undefined) kind = NATIVE_FILE_RE.test(file) ? 'native' : 'python';
  else kind = 'native';
  if (kind === 'kernel' && nm.endsWith('_[k]')) nm = nm.slice(0, -4);
  const spec: FrameSpec = { name: kind === 'python' ? shortName(nm) : nm, qualname: nm, kind };
  if (file !== undefined && kind !== 'kernel' && kind !== 'marker') {
    spec.file = file;
    spec.line = line;
  }
  return spec;
}

export function parseChromeTrace(text: string, file: string): Profile | NotMine {
  const read = readEvents(text, file);
  if (read === NOT_MINE) return NOT_MINE;
  const { events, doc, arrayForm } = read;
  const prefix: Array<string | number> = arrayForm ? [] : ['traceEvents'];
  const fail = (i: number, msg: string): never => {
    throw new ParseError('chrome-trace', file, { line: lineAt(text, jsonOffset(text, [...prefix, i])) }, `${arrayForm ? `event ${i}` : `traceEvents[${i}]`}: ${msg}`);
  };
  const threads = new Map<string, ThreadData>();
  const threadNames = new Map<string, string>();
  const realTid = new Map<string, number>();
  let processName: string | undefined;
  let pyspy = false;
  let origin = Infinity;
  let maxTs = -Infinity;
  const threadOf = (ev: Record<string, unknown>): ThreadData => {
    const pid = ev['pid'] ?? 0;
    const tid = ev['tid'] ?? pid;
    const key = `${typeof pid}:${String(pid)}/${typeof tid}:${String(tid)}`;
    let t = threads.get(key);
    if (!t) {
      t = { pid, tid, spans: [], open: [], lastTs: -Infinity };
      threads.set(key, t);
    }
    return t;
  };
  const keyOf = (ev: Record<string, unknown>) => {
    const pid = ev['pid'] ?? 0;
    const tid = ev['tid'] ?? pid;
    return `${typeof pid}:${String(pid)}/${typeof tid}:${String(tid)}`;
  };
  let seq = 0;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i] as Record<string, unknown>;
    if (typeof ev !== 'object' || ev === null || Array.isArray(ev)) fail(i, 'expected an event object {name, ph, ts, pid, tid}');
    const ph = ev['ph'];
    if (typeof ph !== 'string') fail(i, `expected a "ph" phase string but got ${JSON.stringify(ph)}`);
    if (ev['cat'] === 'py-spy') pyspy = true;
    if (ph === 'M') {
      const args = (typeof ev['args'] === 'object' && ev['args'] !== null ? ev['args'] : {}) as Record<string, unknown>;
      const nm = args['name'];
      if (typeof nm !== 'string') continue;
      if (ev['name'] === 'thread_name') {
        const m = ev['cat'] === 'py-spy' ? /^(\d+): ([^]*)$/.exec(nm) : null;
        if (m) {
          realTid.set(keyOf(ev), Number(m[1]));
          if (m[2] !== '') threadNames.set(keyOf(ev), m[2]!);
        } else threadNames.set(keyOf(ev), nm);
      } else if (ev['name'] === 'process_name' && processName === undefined) processName = nm;
      continue;
    }
    if (ph !== 'B' && ph !== 'E' && ph !== 'X') continue;
    const ts = ev['ts'];
    if (typeof ts !== 'number' || !Number.isFinite(ts)) fail(i, `expected a numeric "ts" (µs) on a "${ph}" event but got ${JSON.stringify(ts)}`);
    const t = threadOf(ev);
    const tsn = ts as number;
    origin = Math.min(origin, tsn);
    maxTs = Math.max(maxTs, tsn);
    t.lastTs = Math.max(t.lastTs, tsn);
    if (ph === 'B') {
      const frame = frameOfEvent(ev);
      t.open.push({ start: tsn, seq: seq++, name: typeof ev['name'] === 'string' ? (ev['name'] as string) : '', frame, index: i });
    } else if (ph === 'E') {
      const top = t.open[t.open.length - 1];
      if (!top) fail(i, `expected a "B" event before this "E" on pid ${String(t.pid)} tid ${String(t.tid)} but nothing is open there`);
      const name = ev['name'];
      if (typeof name === 'string' && name !== '' && top!.name !== '' && name !== top!.name) {
        fail(i, `expected an "E" for "${top!.name}" (the innermost open "B", event ${top!.index}) on pid ${String(t.pid)} tid ${String(t.tid)} but it ends "${name}"`);
      }
      if (tsn < top!.start) fail(i, `expected the "E" at or after its "B" (event ${top!.index}, ts ${top!.start}) but it is at ts ${tsn}`);
      t.open.pop();
      t.spans.push({ start: top!.start, end: tsn, seq: top!.seq, frame: top!.frame });
    } else {
      const dur = ev['dur'] ?? 0;
      if (typeof dur !== 'number' || !Number.isFinite(dur) || dur < 0) fail(i, `expected a "dur" ≥ 0 (µs) on an "X" event but got ${JSON.stringify(dur)}`);
      t.spans.push({ start: tsn, end: tsn + (dur as number), seq: seq++, frame: frameOfEvent(ev) });
      maxTs = Math.max(maxTs, tsn + (dur as number));
      t.lastTs = Math.max(t.lastTs, tsn + (dur as number));
    }
  }
  if (!Number.isFinite(origin)) origin = 0;

  const otherData = doc && typeof doc['otherData'] === 'object' && doc['otherData'] !== null ? (doc['otherData'] as Record<string, unknown>) : {};
  const b = new ProfileBuilder({
    meta: {
      backend: pyspy ? 'py-spy' : typeof otherData['generator'] === 'string' ? String(otherData['generator']).replace(/@.*$/, '') : 'unknown',
      mode: 'wall',
      ...(processName !== undefined ? { name: processName } : {}),
    },
    valueTypes: [{ name: 'time', unit: 'nanoseconds' }],
    timed: true,
  });
  // Numeric ids for non-numeric pids/tids.
  const idMap = new Map<string, number>();
  const numeric = (v: unknown): number => {
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
    const k = String(v);
    let n = idMap.get(k);
    if (n === undefined) {
      n = 1_000_000_000 + idMap.size;
      idMap.set(k, n);
    }
    return n;
  };
  const frameCache = new Map<string, number>();
  const frameIdx = (spec: FrameSpec): number => {
    const k = `${spec.kind}\u0000${spec.qualname}\u0000${spec.file ?? '\u0001'}\u0000${spec.line ?? 0}`;
    let f = frameCache.get(k);
    if (f === undefined) {
      f = b.frame(spec);
      frameCache.set(k, f);
    }
    return f;
  };
  const µsToNs = (x: number) => Math.round((x - origin) * 1000);
  for (const [key, t] of threads) {
    // Close what is still open (a trace cut short) at the thread's last timestamp.
    while (t.open.length) {
      const o = t.open.pop()!;
      t.spans.push({ start: o.start, end: Math.max(o.start, t.lastTs), seq: o.seq, frame: o.frame });
    }
    const pid = numeric(t.pid);
    const tid = realTid.get(key) ?? numeric(t.tid);
    const th = b.thread(pid, tid, threadNames.get(key));
    const spans = t.spans.sort((a, c) => a.start - c.start || c.end - a.end || a.seq - c.seq);
    const stack: Array<{ end: number; st: number }> = [];
    let cursor = -Infinity;
    const emit = (from: number, to: number, st: number) => {
      if (to > from) b.sample(st, µsToNs(to) - µsToNs(from), th, 'unknown', µsToNs(from));
    };
    for (const sp of spans) {
      while (stack.length && stack[stack.length - 1]!.end <= sp.start) {
        const top = stack.pop()!;
        emit(cursor, top.end, top.st);
        cursor = top.end;
      }
      if (stack.length) emit(cursor, sp.start, stack[stack.length - 1]!.st);
      cursor = sp.start;
      const parent = stack[stack.length - 1];
      const end = parent ? Math.min(sp.end, parent.end) : sp.end;
      stack.push({ end, st: b.stack(parent ? parent.st : -1, frameIdx(sp.frame)) });
    }
    while (stack.length) {
      const top = stack.pop()!;
      emit(cursor, top.end, top.st);
      cursor = Math.max(cursor, top.end);
    }
  }
  if (Number.isFinite(maxTs) && maxTs > origin) b.meta.durationNs = µsToNs(maxTs);
  return b.build();
}

export const chromeTraceImporter: Importer = {
  id: 'chrome-trace',
  extensions: ['.trace.json', '.chrometrace.json', '.chrome.json'],
  detect(input: InputFile): boolean {
    const head = input.head();
    if (/^\s*\{\s*"traceEvents"\s*:/.test(head)) return true;
    if (/^\s*\{/.test(head)) return /"traceEvents"\s*:\s*\[/.test(head);
    return /^\s*\[\s*\{[^]{0,600}?"ph"\s*:\s*"[A-Za-z]"/.test(head);
  },
  parse(input: InputFile): Profile | NotMine {
    const head = input.head(64);
    if (!/^\s*[[{]/.test(head)) return NOT_MINE;
    return parseChromeTrace(input.text(), input.label);
  },
};

// ---------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------

interface TraceEvent {
  name: string;
  cat?: string;
  ph: string;
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

const µs = (ns: number) => Math.round(ns) / 1000;

export function writeChromeTrace(p: Profile, opts: ExportOptions = {}): string {
  const vi = opts.valueIndex ?? p.defaultValue;
  const unit = p.valueTypes[vi]!.unit;
  const col = p.samples.values[vi]!;
  const events: TraceEvent[] = [];
  const pids = [...new Set(p.threads.pid)];
  if (p.meta.name) for (const pid of pids) events.push({ name: 'process_name', ph: 'M', ts: 0, pid, tid: pid, args: { name: p.meta.name } });
  for (let t = 0; t < p.threads.length; t++) {
    const nm = p.threads.name[t]!;
    if (nm >= 0) events.push({ name: 'thread_name', ph: 'M', ts: 0, pid: p.threads.pid[t]!, tid: p.threads.tid[t]!, args: { name: p.strings[nm]! } });
  }
  const frameEvent = new Array<{ name: string; cat: string; args?: Record<string, unknown> }>(p.frames.length);
  for (let f = 0; f < p.frames.length; f++) {
    const kind = p.frames.kind[f]!;
    const qual = p.strings[p.frames.qualname[f]!]!;
    const fe: { name: string; cat: string; args?: Record<string, unknown> } = { name: kind === 'kernel' && !qual.endsWith('_[k]') ? `${qual}_[k]` : qual, cat: kind };
    const fi = p.frames.file[f]!;
    if (fi >= 0 && kind !== 'kernel' && kind !== 'marker') fe.args = p.frames.line[f]! > 0 ? { filename: p.strings[fi]!, line: p.frames.line[f]! } : { filename: p.strings[fi]! };
    frameEvent[f] = fe;
  }
  const ev = (f: number, ph: string, ns: number, pid: number, tid: number): TraceEvent => {
    const fe = frameEvent[f]!;
    const e: TraceEvent = { name: fe.name, cat: fe.cat, ph, ts: µs(ns), pid, tid };
    if (fe.args) e.args = fe.args;
    return e;
  };
  const byThread: number[][] = Array.from({ length: p.threads.length }, () => []);
  for (let i = 0; i < p.samples.length; i++) byThread[p.samples.thread[i]!]!.push(i);
  const framesCache = new Map<number, number[]>();
  const framesOf = (s: number): number[] => {
    if (s < 0) return [];
    let r = framesCache.get(s);
    if (!r) {
      r = stackFrames(p, s);
      framesCache.set(s, r);
    }
    return r;
  };
  const time = p.samples.time;
  for (let t = 0; t < p.threads.length; t++) {
    const pid = p.threads.pid[t]!;
    const tid = p.threads.tid[t]!;
    const idx = byThread[t]!;
    if (idx.length === 0) continue;
    if (time) {
      idx.sort((a, c) => time[a]! - time[c]! || a - c);
      const diffs: number[] = [];
      for (let k = 1; k < idx.length; k++) {
        const d = time[idx[k]!]! - time[idx[k - 1]!]!;
        if (d > 0) diffs.push(d);
      }
      diffs.sort((a, c) => a - c);
      const lastDur = diffs.length ? diffs[Math.floor(diffs.length / 2)]! : p.meta.rateHz ? 1e9 / p.meta.rateHz : 1e6;
      // A nanosecond value is the sample's own duration: it ends there (leaving a gap) when
      // that comes before the next sample.
      const ownDur = unit === 'nanoseconds';
      let prev: number[] = [];
      let prevEnd = 0;
      for (let j = 0; j < idx.length; j++) {
        const i = idx[j]!;
        const at = time[i]!;
        if (prev.length && prevEnd < at) {
          for (let k = prev.length - 1; k >= 0; k--) events.push(ev(prev[k]!, 'E', prevEnd, pid, tid));
          prev = [];
        }
        const cur = framesOf(p.samples.stack[i]!);
        let c = 0;
        while (c < prev.length && c < cur.length && prev[c] === cur[c]) c++;
        for (let k = prev.length - 1; k >= c; k--) events.push(ev(prev[k]!, 'E', at, pid, tid));
        for (let k = c; k < cur.length; k++) events.push(ev(cur[k]!, 'B', at, pid, tid));
        prev = cur;
        const next = j + 1 < idx.length ? time[idx[j + 1]!]! : at + (ownDur && col[i]! > 0 ? col[i]! : lastDur);
        prevEnd = ownDur && col[i]! > 0 ? Math.min(next, at + col[i]!) : next;
      }
      for (let k = prev.length - 1; k >= 0; k--) events.push(ev(prev[k]!, 'E', prevEnd, pid, tid));
    } else {
      // Merged call tree of this thread, laid out left-heavy.
      const perUnit = unit === 'nanoseconds' ? 1 : unit === 'samples' ? (p.meta.rateHz ? 1e9 / p.meta.rateHz : 1e6) : 1000;
      interface Node {
        frame: number;
        total: number;
        children: Map<number, Node>;
      }
      const root: Node = { frame: -1, total: 0, children: new Map() };
      for (const i of idx) {
        const v = col[i]! * perUnit;
        if (v <= 0) continue;
        root.total += v;
        let n = root;
        for (const f of framesOf(p.samples.stack[i]!)) {
          let ch = n.children.get(f);
          if (!ch) {
            ch = { frame: f, total: 0, children: new Map() };
            n.children.set(f, ch);
          }
          ch.total += v;
          n = ch;
        }
      }
      const work: Array<{ node: Node; start: number }> = [];
      const sortedChildren = (n: Node) => [...n.children.values()].sort((a, c) => c.total - a.total || a.frame - c.frame);
      let x = 0;
      for (const ch of sortedChildren(root)) {
        work.push({ node: ch, start: x });
        x += ch.total;
      }
      work.reverse();
      while (work.length) {
        const { node, start } = work.pop()!;
        const e = ev(node.frame, 'X', start, pid, tid);
        e.dur = µs(start + node.total) - µs(start);
        events.push(e);
        let cx = start;
        const kids: Array<{ node: Node; start: number }> = [];
        for (const ch of sortedChildren(node)) {
          kids.push({ node: ch, start: cx });
          cx += ch.total;
        }
        for (let k = kids.length - 1; k >= 0; k--) work.push(kids[k]!);
      }
    }
  }
  return JSON.stringify({ traceEvents: events, displayTimeUnit: 'ms', otherData: { generator: `pylens@${PYLENS_VERSION}`, ...(p.meta.name ? { name: p.meta.name } : {}) } });
}

export const chromeTraceExporter: Exporter = {
  id: 'chrome-trace',
  extension: '.trace.json',
  extensions: ['.chrometrace.json'],
  lossless: false,
  write: (p: Profile, opts?: ExportOptions) => writeChromeTrace(p, opts),
};
