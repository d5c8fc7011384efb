/**
 * Austin's collapsed samples (P403n1x87/austin; fixtures from Austin 1.0.1 in
 * fixtures/austin/3.8/). One line per sample, in time order, root first:
 *
 *   Austin 1.x  Thread <hex>;func (file);L<line>;func (file);L<line> <µs>       default
 *               Thread <hex>;func (file:line);… <µs>                              -a
 *               Thread <hex>;… <µs> <+mem bytes> <-mem bytes>                     -f
 *               Process <pid>;Thread <hex>;…                                      -C
 *   Austin 2/3  P<pid>;T<tid>;file:func:line;… <µs>                              (3.x default)
 *               P<pid>;T<tid>;file:func;L<line>;… <µs>                           (3.x -a)
 *               P<pid>;T<tid>;… <µs>,<idle 0|1>,<rss delta bytes>                (3.x -f)
 *               `# key: value` metadata lines (austin, interval, mode, python, duration)
 *
 * Line frames `L<n>` attach their line number to the preceding function frame. `:GC:`
 * and other `:NAME:` frames become marker frames. A root with no frames (`Thread x 2107`)
 * is a sample with an empty stack (the thread held no Python frame).
 *
 * Thread ids: 1.x and 2.x–3.3 print the pthread id in hex (`Thread 7f34cd932cc0`,
 * `T7ffb7f2e4740`), read as a hex number; 3.4+ prints `T<interpreter>:<native tid>`,
 * read as the decimal native tid. pid 0 when the line has no process root.
 *
 * Values: the time metric is microseconds → value type {time, nanoseconds} (×1000).
 * Full metrics add {memory-allocated, bytes} and {memory-freed, bytes} (3.x: the signed RSS
 * delta split into the two; the idle flag becomes the sample state). `# mode: memory`
 * makes the single metric {memory, bytes}. Without a header the single metric is taken
 * as time (Austin 1.x writes no header; its `-m` output cannot be told apart).
 *
 * Times: each metric is the time since the thread's previous sample, so a sample's time
 * is the sum of the thread's earlier deltas (each sample starts where the last ended).
 */
import { ProfileBuilder } from '../model/builder.ts';
import type { FrameSpec, Profile, ProfileMode, SampleState, ValueType } from '../model/profile.ts';
import { endsWithCount, headLines, LineScanner, looksBinary, mostLinesMatch, parseCount, parsePyLabel, shortName } from './collapsed.ts';
import { NOT_MINE, ParseError, type Importer, type InputFile, type NotMine } from './types.ts';

const ROOT_RE = /^(?:P(\d+);T([0-9a-fA-FxX:]+)|(?:Process (\d+);)?Thread ([0-9a-fA-FxX:]+))(?=;|[ \t]|$)/;

function parseTid(id: string): number {
  const colon = id.lastIndexOf(':');
  if (colon >= 0) return Number(id.slice(colon + 1)); // 3.4+: <iid>:<native tid>, decimal
  const hex = id.startsWith('0x') || id.startsWith('0X') ? id.slice(2) : id;
  return parseInt(hex, 16);
}

interface ParsedStack {
  thread: number;
  stack: number;
}

type Layout = 'time' | 'memory' | 'full1' | 'full3';

/** Split off the metrics of the current line into `out`; false when they are missing. */
function popMetrics(sc: LineScanner, layout: Layout, out: number[]): boolean {
  if (layout === 'full1') {
    const c = sc.popCount();
    const b = sc.popCount();
    const a = sc.popCount();
    if (Number.isNaN(a) || Number.isNaN(b) || Number.isNaN(c)) return false;
    out[0] = a;
    out[1] = b;
    out[2] = c;
    return true;
  }
  if (layout === 'full3') {
    // last token "t,idle,mem"
    const t = sc.text;
    let i = sc.end - 1;
    while (i >= sc.start && t.charCodeAt(i) !== 32 && t.charCodeAt(i) !== 9) i--;
    if (i < sc.start) return false;
    const parts = t.slice(i + 1, sc.end).split(',');
    if (parts.length !== 3) return false;
    for (let k = 0; k < 3; k++) {
      const v = parseCount(parts[k]!, 0, parts[k]!.length);
      if (Number.isNaN(v)) return false;
      out[k] = v;
    }
    let e = i;
    while (e > sc.start && (t.charCodeAt(e - 1) === 32 || t.charCodeAt(e - 1) === 9)) e--;
    sc.end = e;
    return true;
  }
  const v = sc.popCount();
  if (Number.isNaN(v)) return false;
  out[0] = v;
  return true;
}

/** Decide the metrics layout from the first sample line. */
function detectLayout(line: string, headerMode: string | undefined): Layout {
  if (/[ \t]-?\d+,-?\d+,-?\d+$/.test(line)) return 'full3';
  if (/[ \t]-?\d+(?:\.\d+)?[ \t]+-?\d+[ \t]+-?\d+$/.test(line)) return 'full1';
  return headerMode === 'memory' ? 'memory' : 'time';
}

export function austinFrames(s: string, file: string, line: number): { frames: FrameSpec[] } {
  const frames: FrameSpec[] = [];
  if (s === '') return { frames };
  for (const part of s.split(';')) {
    if (part.length > 1 && part.charCodeAt(0) === 76 /* L */ && /^L\d+$/.test(part)) {
      const prev = frames[frames.length - 1];
      if (!prev || prev.kind !== 'python') throw new ParseError('austin', file, { line }, `expected a function frame before the line frame "${part}"`);
      prev.line = Number(part.slice(1));
      continue;
    }
    const py = parsePyLabel(part, false);
    if (py) {
      // Austin 1.0.1 on 3.8 writes an empty name for non-ASCII function names (seen in
      // fixtures/austin/3.8/mixed.austin.txt: " (unicode_names.py);L17").
      if (py.name === '') py.name = '<unknown>';
      py.qualname = py.name;
      py.name = shortName(py.name);
      frames.push(py);
      continue;
    }
    if (part.length > 2 && part.startsWith(':') && part.endsWith(':')) {
      frames.push({ name: part.slice(1, -1), kind: 'marker' });
      continue;
    }
    // Austin 3: file:func:line or file:func (alt format, line follows as L<n>).
    const m = /^(.*):([^:]+):(\d+)$/.exec(part) ?? /^(.+):([^:]+)$/.exec(part);
    if (m) {
      frames.push({ name: shortName(m[2]!), qualname: m[2]!, file: m[1]!, line: m[3] ? Number(m[3]) : 0, kind: 'python' });
      continue;
    }
    frames.push({ name: part, kind: 'native' });
  }
  return { frames };
}

export const austinImporter: Importer = {
  id: 'austin',
  extensions: ['.austin'],
  detect(input: InputFile): boolean {
    const head = input.head();
    if (looksBinary(head)) return false;
    if (/^# austin: /m.test(head)) return true;
    return mostLinesMatch(headLines(head, 8, input.bytes.length <= 4096), (l) => ROOT_RE.test(l) && (endsWithCount(l) || / -?\d+,-?\d+,-?\d+$/.test(l)));
  },
  parse(input: InputFile): Profile | NotMine {
    if (looksBinary(input.head(512))) return NOT_MINE;
    const file = input.label;
    const text = input.text();
    const sc = new LineScanner(text);
    const header: Record<string, string> = {};
    let layout: Layout | undefined;
    let b: ProfileBuilder | undefined;
    const cache = new Map<string, ParsedStack>();
    const frameCache = new Map<string, number>();
    const metrics = [0, 0, 0];
    const values = [0, 0, 0];
    let clock = new Float64Array(16); // per builder thread index: ns elapsed
    let rows = 0;
    while (sc.next()) {
      if (sc.isComment()) {
        const m = /^#\s*([A-Za-z_ ]+):\s*(.*)$/.exec(sc.content());
        // Leading metadata (austin, interval, mode, python) and trailing (duration, errors).
        if (m) header[m[1]!.trim().toLowerCase()] = m[2]!.trim();
        continue;
      }
      const lineText = sc.content();
      if (!b) {
        if (!ROOT_RE.test(lineText)) return NOT_MINE;
        layout = detectLayout(lineText, header['mode']);
        const vts: ValueType[] =
          layout === 'memory'
            ? [{ name: 'memory', unit: 'bytes' }]
            : layout === 'time'
              ? [{ name: 'time', unit: 'nanoseconds' }]
              : [
                  { name: 'time', unit: 'nanoseconds' },
                  { name: 'memory-allocated', unit: 'bytes' },
                  { name: 'memory-freed', unit: 'bytes' },
                ];
        b = new ProfileBuilder({ meta: { backend: 'austin', mode: 'wall' }, valueTypes: vts, timed: true });
      }
      if (!popMetrics(sc, layout!, metrics)) {
        const what = layout === 'full1' ? '"<stack> <µs> <+mem> <-mem>"' : layout === 'full3' ? '"<stack> <µs>,<idle>,<mem>"' : layout === 'memory' ? '"<stack> <bytes>"' : '"<stack> <µs>"';
        throw new ParseError('austin', file, { line: sc.line }, `expected ${what} but the line has no such metrics`);
      }
      const key = text.slice(sc.start, sc.end);
      let ps = cache.get(key);
      if (ps === undefined) {
        const m = ROOT_RE.exec(key);
        if (!m) throw new ParseError('austin', file, { line: sc.line }, `expected the sample to start with "Thread <id>" or "P<pid>;T<tid>" but it starts with "${key.slice(0, 30)}"`);
        const pid = Number(m[1] ?? m[3] ?? 0);
        const tid = parseTid(m[2] ?? m[4]!);
        if (!Number.isFinite(tid)) throw new ParseError('austin', file, { line: sc.line }, `expected a thread id but got "${m[2] ?? m[4]}"`);
        const thread = b.thread(pid, tid);
        const rest = key.length > m[0].length ? key.slice(m[0].length + 1) : '';
        let stack = -1;
        for (const spec of austinFrames(rest, file, sc.line).frames) {
          const fk = `${spec.kind}\u0000${spec.qualname ?? spec.name}\u0000${spec.file ?? ''}\u0000${spec.line ?? 0}`;
          let f = frameCache.get(fk);
          if (f === undefined) {
            f = b.frame(spec);
            frameCache.set(fk, f);
          }
          stack = b.stack(stack, f);
        }
        ps = { thread, stack };
        cache.set(key, ps);
        if (thread >= clock.length) {
          const g = new Float64Array(Math.max(clock.length * 2, thread + 1));
          g.set(clock);
          clock = g;
        }
      }
      let state: SampleState = 'unknown';
      let dt: number;
      if (layout === 'memory') {
        values[0] = metrics[0]!;
        dt = 0;
      } else if (layout === 'full1') {
        dt = metrics[0]! * 1000;
        values[0] = dt;
        values[1] = Math.abs(metrics[1]!);
        values[2] = Math.abs(metrics[2]!);
      } else if (layout === 'full3') {
        dt = metrics[0]! * 1000;
        values[0] = dt;
        state = metrics[1] === 1 ? 'idle' : 'on-cpu';
        values[1] = metrics[2]! > 0 ? metrics[2]! : 0;
        values[2] = metrics[2]! < 0 ? -metrics[2]! : 0;
      } else {
        dt = metrics[0]! * 1000;
        values[0] = dt;
      }
      b.sample(ps.stack, values, ps.thread, state, clock[ps.thread]!);
      clock[ps.thread] += dt;
      rows++;
    }
    if (!b) return NOT_MINE;
    const mode = header['mode'];
    const modes: Record<string, ProfileMode> = { wall: 'wall', cpu: 'cpu', memory: 'allocations', full: 'wall' };
    if (mode && modes[mode]) b.meta.mode = modes[mode]!;
    const interval = Number(header['interval']);
    if (interval > 0) b.meta.rateHz = 1e6 / interval;
    const duration = Number(header['duration']);
    if (duration > 0) b.meta.durationNs = duration * 1000;
    else {
      let max = 0;
      for (let t = 0; t < clock.length; t++) max = Math.max(max, clock[t]!);
      if (max > 0) b.meta.durationNs = max;
    }
    if (header['python']) b.meta.environment = { python: { version: header['python'] } };
    if (header['austin']) b.meta.extra = { austinVersion: header['austin'] };
    b.meta.sampleCount = rows;
    return b.build();
  },
};
