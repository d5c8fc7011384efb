/**
 * CPython 3.15 `python -m profiling.sampling … --collapsed` ("Tachyon") output, written by
 * `CollapsedStackCollector.export` in `Lib/profiling/sampling/stack_collector.py`:
 *
 *     tid:<tid>;<file>:<func>:<line>;…;<file>:<func>:<line> <count>
 *
 * root first, file is the base name, func the code object's qualified name, sorted by
 * count descending. Frames whose code has file "~" and line 0 (the synthetic `<GC>` and
 * `<native>` frames, and pstats-style built-ins) are written as the bare name.
 *
 * Import: the `tid:` root becomes the sample's thread (pid 0: the format has no pid);
 * `file:func:line` becomes a python frame — func and line are the last two `:` fields, so
 * a file name containing `:` still parses; bare `<…>` names become marker frames and any
 * other bare name a native frame. Counts are sample counts.
 */
import { ProfileBuilder } from '../model/builder.ts';
import type { FrameSpec, Profile } from '../model/profile.ts';
import { endsWithCount, headLines, LineScanner, looksBinary, mostLinesMatch, shortName, StackRows } from './collapsed.ts';
import { NOT_MINE, ParseError, type Importer, type InputFile, type NotMine } from './types.ts';

const ROOT_RE = /^tid:(\d+)(?:;|$)/;

/** One tachyon frame string → frame spec. */
export function tachyonFrame(s: string): FrameSpec {
  const c2 = s.lastIndexOf(':');
  if (c2 > 0) {
    const lineText = s.slice(c2 + 1);
    const c1 = s.lastIndexOf(':', c2 - 1);
    if (c1 > 0 && c1 < c2 - 1 && /^-?\d+$/.test(lineText)) {
      const func = s.slice(c1 + 1, c2);
      return { name: shortName(func), qualname: func, file: s.slice(0, c1), line: Math.max(0, Number(lineText)), kind: 'python' };
    }
  }
  if (s.startsWith('<') && s.endsWith('>')) return { name: s, kind: 'marker' };
  return { name: s, kind: 'native' };
}

export const tachyonImporter: Importer = {
  id: 'tachyon-collapsed',
  extensions: [],
  detect(input: InputFile): boolean {
    const head = input.head();
    if (looksBinary(head)) return false;
    return mostLinesMatch(headLines(head, 8, input.bytes.length <= 4096), (l) => endsWithCount(l) && /^tid:\d+[; ]/.test(l));
  },
  parse(input: InputFile): Profile | NotMine {
    if (looksBinary(input.head(512))) return NOT_MINE;
    const file = input.label;
    const text = input.text();
    const sc = new LineScanner(text);
    const b = new ProfileBuilder({ meta: { backend: 'tachyon', mode: 'unknown' }, timed: false });
    const rows = new StackRows(b, tachyonFrame);
    let seen = false;
    while (sc.next()) {
      if (sc.isComment()) continue;
      const v = sc.popCount();
      if (Number.isNaN(v)) {
        if (!seen) return NOT_MINE;
        throw new ParseError('tachyon-collapsed', file, { line: sc.line }, 'expected "tid:<tid>;<frames> <count>" but the line has no count');
      }
      const key = text.slice(sc.start, sc.end);
      let row = rows.get(key);
      if (row === undefined) {
        const m = ROOT_RE.exec(key);
        if (!m) {
          if (!seen) return NOT_MINE;
          throw new ParseError('tachyon-collapsed', file, { line: sc.line }, `expected the stack to start with "tid:<tid>;" but it starts with "${key.slice(0, 30)}"`);
        }
        const t = b.thread(0, Number(m[1]));
        row = rows.addRow(key, key.slice(m[0].length), t);
      }
      seen = true;
      rows.add(row, v);
    }
    if (!seen) return NOT_MINE;
    rows.emit();
    return b.build();
  },
};
