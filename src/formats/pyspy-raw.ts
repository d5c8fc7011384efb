/**
 * py-spy "raw" output (`py-spy record --format raw`): folded stacks whose frames are
 * `name (file:line)` (or `name (file)` with `--nolineno`), written by py-spy's
 * `src/flamegraph.rs` (benfred/py-spy; `"{} ({}:{});"` per frame at commit
 * 00beaf62d39a4bfcf3dff226a5793dc1ab52ccab; the thread/process roots come from later
 * versions, see fixtures/README.md), optionally rooted at
 *
 *     process PID:"cmdline"              with --subprocesses (nested for each child level)
 *     thread (0x7F3A9CA1C740)            with --threads (pthread id in hex)
 *     thread (0x7F3A9CA1C740): name      … with the Python thread name when known
 *     thread (48213): name               … newer py-spy prints the OS thread id in decimal
 *
 * Choice: thread and process roots become the samples' thread-table entries — pid from
 * the innermost `process` root (0 when absent), tid from the thread root (hex or decimal;
 * 0 when absent), name from the text after `: ` — instead of marker frames. That keeps
 * stacks comparable across threads and lets exporters that have no thread dimension
 * re-add roots with `withThreadRoots` (in pylens' own `process P;thread T (name)` form,
 * not py-spy's). Command lines are kept in `meta.extra["cmdline.<pid>"]`, the process
 * tree in `meta.extra["parent.<pid>"]`; `meta.pid` is the outermost process when there is
 * exactly one.
 *
 * The command line is not escaped by py-spy and may contain `;` and `"`: a process root
 * ends at the first `";` that is followed by another root (`process …` / `thread (`), or
 * else at the first `";`.
 *
 * Frame kinds: files ending in .c/.h/.cpp/.rs/… or shared objects (py-spy --native) are
 * native; everything else is python. Counts are sample counts.
 */
import { ProfileBuilder } from '../model/builder.ts';
import type { FrameSpec, Profile } from '../model/profile.ts';
import { endsWithCount, headLines, LineScanner, looksBinary, mostLinesMatch, parsePyLabel, StackRows } from './collapsed.ts';
import { NOT_MINE, ParseError, type Importer, type InputFile, type NotMine } from './types.ts';

interface Roots {
  /** pid of each `process` root, outermost first, with its command line. */
  processes: Array<{ pid: number; cmdline: string }>;
  tid?: number;
  threadName?: string;
  /** Offset in the stack text where the frames begin (after the roots and their `;`). */
  framesAt: number;
  /** Description of a malformed root, when there is one. */
  error?: string;
}

const PROCESS_RE = /^process (\d+):"/;

/** Split the `process …;thread (…)` roots off a py-spy stack string. */
export function pyspyRoots(s: string): Roots {
  const r: Roots = { processes: [], framesAt: 0 };
  let p = 0;
  while (s.startsWith('process ', p)) {
    const m = PROCESS_RE.exec(s.slice(p, p + 40));
    if (!m) break;
    const cmdStart = p + m[0].length;
    let end = -1;
    let first = -1;
    for (let c = s.indexOf('";', cmdStart); c >= 0; c = s.indexOf('";', c + 1)) {
      if (first < 0) first = c;
      if (s.startsWith('process ', c + 2) || s.startsWith('thread (', c + 2)) {
        end = c;
        break;
      }
    }
    if (end < 0) end = first;
    if (end < 0) {
      // The process root is the whole stack (no frames), or it is not a root after all.
      if (s.endsWith('"') && s.length - 1 >= cmdStart) {
        r.processes.push({ pid: Number(m[1]), cmdline: s.slice(cmdStart, -1) });
        r.framesAt = s.length;
        return r;
      }
      break;
    }
    r.processes.push({ pid: Number(m[1]), cmdline: s.slice(cmdStart, end) });
    p = end + 2;
  }
  if (s.startsWith('thread (', p)) {
    const close = s.indexOf(')', p + 8);
    if (close < 0) {
      r.error = 'a thread root "thread (<id>)" without its closing ")"';
      r.framesAt = p;
      return r;
    }
    const id = s.slice(p + 8, close);
    const tid = /^0[xX][0-9a-fA-F]+$/.test(id) ? parseInt(id.slice(2), 16) : /^\d+$/.test(id) ? Number(id) : NaN;
    if (!Number.isFinite(tid)) {
      r.error = `a thread id (hex "0x…" or decimal) in "thread (${id})"`;
      r.framesAt = p;
      return r;
    }
    r.tid = tid;
    let q = close + 1;
    if (s.startsWith(': ', q)) {
      const semi = s.indexOf(';', q + 2);
      r.threadName = s.slice(q + 2, semi < 0 ? s.length : semi);
      q = semi < 0 ? s.length : semi;
    }
    if (q < s.length && s.charCodeAt(q) !== 59 /* ; */) {
      r.error = `";" after the thread root "${s.slice(p, q)}"`;
      r.framesAt = p;
      return r;
    }
    p = q < s.length ? q + 1 : q;
  }
  r.framesAt = p;
  return r;
}

/** A py-spy frame label → frame spec; plain names (no " (…)") are python frames without a file. */
function pyspyFrame(label: string): FrameSpec {
  return parsePyLabel(label, false) ?? { name: label, kind: 'python' };
}

/** Whether a whole stack line (count removed) looks like py-spy raw. */
function looksPyspy(stack: string): boolean {
  const r = pyspyRoots(stack);
  if (r.error) return false;
  const rest = stack.slice(r.framesAt);
  if (rest === '') return r.processes.length > 0 || r.tid !== undefined;
  return rest.split(';').every((f) => parsePyLabel(f, false) !== null);
}

export const pyspyRawImporter: Importer = {
  id: 'pyspy-raw',
  extensions: ['.raw'],
  detect(input: InputFile): boolean {
    const head = input.head();
    if (looksBinary(head)) return false;
    return mostLinesMatch(headLines(head, 8, input.bytes.length <= 4096), (l) => endsWithCount(l) && looksPyspy(l.replace(/[ \t]+\S+$/, '')));
  },
  parse(input: InputFile): Profile | NotMine {
    if (looksBinary(input.head(512))) return NOT_MINE;
    const file = input.label;
    const text = input.text();
    const sc = new LineScanner(text);
    const b = new ProfileBuilder({ meta: { backend: 'py-spy', mode: 'unknown' }, timed: false });
    const rows = new StackRows(b, pyspyFrame);
    const outer = new Set<number>();
    const extra: Record<string, string | number> = {};
    let seen = false;
    while (sc.next()) {
      if (sc.isComment()) continue;
      const v = sc.popCount();
      if (Number.isNaN(v)) {
        if (!seen) return NOT_MINE;
        throw new ParseError('pyspy-raw', file, { line: sc.line }, 'expected "stack count" but the line has no count');
      }
      const key = text.slice(sc.start, sc.end);
      let row = rows.get(key);
      if (row === undefined) {
        if (!seen && !looksPyspy(key)) return NOT_MINE;
        const r = pyspyRoots(key);
        if (r.error) throw new ParseError('pyspy-raw', file, { line: sc.line }, `expected ${r.error}`);
        let pid = 0;
        for (let i = 0; i < r.processes.length; i++) {
          const pr = r.processes[i]!;
          extra[`cmdline.${pr.pid}`] = pr.cmdline;
          if (i > 0) extra[`parent.${pr.pid}`] = r.processes[i - 1]!.pid;
          else outer.add(pr.pid);
          pid = pr.pid;
        }
        const t = b.thread(pid, r.tid ?? 0, r.threadName);
        row = rows.addRow(key, key.slice(r.framesAt), t);
      }
      seen = true;
      rows.add(row, v);
    }
    if (!seen) return NOT_MINE;
    rows.emit();
    if (outer.size === 1) b.meta.pid = [...outer][0]!;
    if (Object.keys(extra).length) b.meta.extra = extra;
    return b.build();
  },
};
