/**
 * Text helpers shared by the collapsed-stack dialects: folded (`folded.ts`), py-spy raw
 * (`pyspy-raw.ts`), Austin (`austin.ts`), CPython 3.15 collapsed (`tachyon.ts`); `shortName`
 * is also used by the speedscope and Chrome trace importers.
 *
 * - `LineScanner` walks decoded text line by line; `parseCount` reads a count.
 * - `headLines`, `mostLinesMatch`, `endsWithCount`, `looksBinary`: structural sniffing.
 * - `shortName`, `parsePyLabel`: frame labels.
 * - `StackRows`: the aggregation of identical stack lines into one sample row each.
 */
import type { ProfileBuilder } from '../model/builder.ts';
import type { FrameKind, FrameSpec } from '../model/profile.ts';

// ---------------------------------------------------------------------------------------
// Shared line scanner for every collapsed-stack dialect.
// ---------------------------------------------------------------------------------------

const SPACE = 32;
const TAB = 9;
const CR = 13;
const HASH = 35;

function isWs(c: number): boolean {
  return c === SPACE || c === TAB || c === CR || c === 11 || c === 12;
}

/**
 * Parse `text[start, end)` as a count: `[-]digits[.digits]` (also `7.`, `.5`, and an
 * exponent). Returns NaN when it is not a number. Fast path for plain integers.
 */
export function parseCount(text: string, start: number, end: number): number {
  if (start >= end) return NaN;
  let i = start;
  let neg = false;
  if (text.charCodeAt(i) === 45 /* - */) {
    neg = true;
    i++;
    if (i === end) return NaN;
  }
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    v = v * 10 + c;
    digits++;
  }
  if (i === end) {
    if (digits === 0 || digits > 15) return digits === 0 ? NaN : slowCount(text, start, end);
    return neg ? -v : v;
  }
  return slowCount(text, start, end);
}

/** A whole count token: `[-]digits[.digits]`, `.5`, `7.`, optional exponent. */
export const NUMBER_RE = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
function slowCount(text: string, start: number, end: number): number {
  const s = text.slice(start, end);
  return NUMBER_RE.test(s) ? Number(s) : NaN;
}

/**
 * Walks the lines of a decoded text with indexOf (no split, no per-line regex).
 * After `next()` returns true, the current line's content is `text[start, end)` with
 * trailing whitespace removed; `line` is its 1-based number. Blank lines are skipped.
 */
export class LineScanner {
  readonly text: string;
  pos = 0;
  line = 0;
  start = 0;
  end = 0;

  constructor(text: string) {
    this.text = text;
  }

  next(): boolean {
    const t = this.text;
    const len = t.length;
    while (this.pos < len) {
      let nl = t.indexOf('\n', this.pos);
      if (nl < 0) nl = len;
      const s = this.pos;
      let e = nl;
      this.pos = nl + 1;
      this.line++;
      while (e > s && isWs(t.charCodeAt(e - 1))) e--;
      if (e === s) continue;
      this.start = s;
      this.end = e;
      return true;
    }
    return false;
  }

  /** Whether the current line starts with `#` (a comment for every collapsed dialect). */
  isComment(): boolean {
    return this.text.charCodeAt(this.start) === HASH;
  }

  /**
   * Parse the last whitespace-separated token of the current line as a number. On success
   * shrink `end` to exclude it and the whitespace before it, and return the number;
   * otherwise return NaN and leave the line alone. A line that is only a number is not
   * a "stack count" line: it returns NaN unless `allowBare`.
   */
  popCount(allowBare = false): number {
    const t = this.text;
    let i = this.end - 1;
    while (i >= this.start && !isWs(t.charCodeAt(i))) i--;
    // token is (i, end)
    if (i < this.start && !allowBare) return NaN;
    const v = parseCount(t, i + 1, this.end);
    if (Number.isNaN(v)) return NaN;
    let e = i;
    while (e > this.start && isWs(t.charCodeAt(e - 1))) e--;
    this.end = Math.max(e, this.start);
    return v;
  }

  /** The current line's remaining content. */
  content(): string {
    return this.text.slice(this.start, this.end);
  }
}

/** First `max` content (non-blank, non-comment) lines of a head, dropping a cut-off last line. */
export function headLines(head: string, max = 8, complete = false): string[] {
  const out: string[] = [];
  let lines = head.split('\n');
  // The head may end in the middle of a line; keep it only if it is the only one.
  if (lines.length > 1 || complete) lines = complete ? lines : lines.slice(0, -1);
  for (const raw of lines) {
    const l = raw.replace(/[\s]+$/, '');
    if (l === '' || l.startsWith('#')) continue;
    out.push(l);
    if (out.length >= max) break;
  }
  return out;
}

/**
 * Structural sniff shared by the collapsed dialects: the first head line must match and at
 * least half of the others (one damaged line should give a ParseError naming it, not
 * "unknown format").
 */
export function mostLinesMatch(lines: readonly string[], ok: (line: string) => boolean): boolean {
  if (lines.length === 0 || !ok(lines[0]!)) return false;
  let n = 0;
  for (const l of lines) if (ok(l)) n++;
  return n * 2 >= lines.length;
}

/** Whether a line ends with whitespace + a count (the shape every collapsed dialect shares). */
export function endsWithCount(line: string): boolean {
  const m = /[ \t](-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$/.exec(line);
  return m !== null && m.index > 0;
}

/** Text looks binary: NUL bytes or many replacement characters in the head. */
export function looksBinary(head: string): boolean {
  if (head.includes('\u0000')) return true;
  let bad = 0;
  for (let i = 0; i < head.length; i++) if (head.charCodeAt(i) === 0xfffd) bad++;
  return bad > 4;
}

/** `a.b.<locals>.c` → `c`; used to fill FrameSpec.name from a qualified name. */
export function shortName(qualname: string): string {
  const i = qualname.lastIndexOf('.');
  if (i <= 0 || i === qualname.length - 1) return qualname;
  // Leave dotted names inside <…> alone (e.g. "<frozen importlib._bootstrap>").
  if (qualname.startsWith('<') && qualname.endsWith('>')) return qualname;
  return qualname.slice(i + 1);
}

const PY_FILE_RE = /(?:\.pyw?|\.pyx|\.pxd|\.pyi)$|^<.*>$/;
const NATIVE_FILE_RE = /(?:\.(?:c|h|cc|cpp|cxx|hpp|rs|s|S)|\.so(?:\.[0-9.]+)?|\.dylib|\.dll|\.pyd)$/;

/**
 * Parse a py-spy style label `name (file:line)` / `name (file)`. Returns null when the
 * label has no ` (…)` part. `requirePythonFile` (folded) only accepts the line-less form
 * for Python-looking files, since `foo (deleted)` and similar are common in native stacks.
 */
export function parsePyLabel(label: string, requirePythonFile: boolean): FrameSpec | null {
  if (label.charCodeAt(label.length - 1) !== 41 /* ) */) return null;
  const open = label.lastIndexOf(' (');
  if (open < 0) return null;
  const inner = label.slice(open + 2, -1);
  if (inner === '') return null;
  const name = label.slice(0, open);
  const colon = inner.lastIndexOf(':');
  let file = inner;
  let line = 0;
  if (colon > 0) {
    const ls = inner.slice(colon + 1);
    if (/^\d+$/.test(ls)) {
      line = Number(ls);
      file = inner.slice(0, colon);
    }
  }
  if (line === 0 && requirePythonFile && !PY_FILE_RE.test(file)) return null;
  const kind: FrameKind = NATIVE_FILE_RE.test(file) ? 'native' : 'python';
  if (kind === 'native' && /\.so(?:\.[0-9.]+)?$|\.dylib$|\.dll$|\.pyd$/.test(file)) return { name, file, line, kind, lib: file };
  return { name, file, line, kind };
}

// ---------------------------------------------------------------------------------------
// Aggregation: one sample row per distinct stack line.
// ---------------------------------------------------------------------------------------

/**
 * The sample rows of a collapsed file that is untimed and unordered: identical stack lines
 * (by `key`, the line without its count) add up into one row. Frames are interned once per
 * distinct label (`toFrame` is called on a label's first appearance) and rows are emitted
 * in order of first appearance.
 */
export class StackRows {
  readonly builder: ProfileBuilder;
  readonly toFrame: (label: string) => FrameSpec;
  private readonly rows = new Map<string, number>();
  private readonly rowStack: number[] = [];
  private readonly rowThread: number[] = [];
  private counts = new Float64Array(256);
  private readonly frameCache = new Map<string, number>();

  constructor(builder: ProfileBuilder, toFrame: (label: string) => FrameSpec) {
    this.builder = builder;
    this.toFrame = toFrame;
  }

  /** Row of a stack line seen before, or undefined. */
  get(key: string): number | undefined {
    return this.rows.get(key);
  }

  /**
   * A new row for `key`: its stack is built from `labels` (frame labels joined by `;`, root
   * first; '' for an empty stack) on builder thread `thread`. Its count starts at 0.
   */
  addRow(key: string, labels: string, thread: number): number {
    const b = this.builder;
    let st = -1;
    if (labels !== '') {
      for (const label of labels.split(';')) {
        let f = this.frameCache.get(label);
        if (f === undefined) {
          f = b.frame(this.toFrame(label));
          this.frameCache.set(label, f);
        }
        st = b.stack(st, f);
      }
    }
    const row = this.rowStack.length;
    this.rowStack.push(st);
    this.rowThread.push(thread);
    this.rows.set(key, row);
    if (row === this.counts.length) {
      const g = new Float64Array(this.counts.length * 2);
      g.set(this.counts);
      this.counts = g;
    }
    return row;
  }

  /** Add `value` to the count of `row`. */
  add(row: number, value: number): void {
    this.counts[row] += value;
  }

  /** Write one sample per row, in order of first appearance. */
  emit(): void {
    const b = this.builder;
    for (let r = 0; r < this.rowStack.length; r++) b.sample(this.rowStack[r]!, this.counts[r]!, this.rowThread[r]!);
  }
}
