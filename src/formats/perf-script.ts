/**
 * `perf script` text importer (Linux perf: default output and `-F` variants).
 *
 * Shape (docs/formats.md, "perf script text"): optional `#` header lines (`perf script
 * --header`: `# cmdline : …`, `# hostname : …`), then one sample per block, blocks
 * separated by blank lines:
 *
 *     comm [pid/]tid [cpu] time: [period] event: [tracepoint text | ip sym (dso)]
 *     \t<hex addr> <sym>[+0xoff] (<dso>)          ← leaf first, one line per frame
 *     \t<hex addr> <sym>+0xoff (inlined)          ← inlined into the next real frame
 *
 * The text is "not an API", so the reader is tolerant: comm may hold spaces and be
 * left-padded, cpu/period/pid may be missing, symbols may hold spaces and parentheses
 * (C++), the dso is the last balanced `( … )` of a line, and `-F` without a callchain puts
 * one frame on the header line. Nothing is dropped: interpreter and trampoline frames stay
 * native frames for later views to fold.
 *
 * Speed (bench/perf-script.ts): the input is read as bytes, never decoded whole (V8
 * strings stop near 512 MB). A sample's callchain block is hashed (32-bit words through a
 * DataView, so the hash does not depend on alignment) and looked up in a cache of blocks
 * already seen, verified with memcmp: a repeated stack costs one hash and one compare.
 * On a miss the block without its first 1–4 lines is looked up too (a new leaf under a
 * known caller chain, the usual case), so only the new lines are parsed. Frame lines are
 * interned by their latin1 text. Line numbers are counted only when an error is reported.
 */
import { ProfileBuilder } from '../model/builder.ts';
import type { Environment, FrameKind, Profile, ProfileMode, SampleState, ValueType } from '../model/profile.ts';
import { InputFile, NOT_MINE, ParseError, type Importer, type NotMine } from './types.ts';

const FORMAT = 'perf-script';

const NL = 10;
const CR = 13;
const TAB = 9;
const SPACE = 32;
const HASH = 35;
const COLON = 58;
const BLANK_LINE = Buffer.from('\n\n');

const isDigit = (c: number) => c >= 48 && c <= 57;
const isBlank = (c: number) => c === SPACE || c === TAB;
const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);

/** Fields of a sample header line, as absolute byte offsets into the input (reused, no allocation). */
interface HeaderFields {
  commStart: number;
  commEnd: number;
  /** End of the `[pid/]tid` token: the bytes from the line start to here identify the thread. */
  keyEnd: number;
  /** -1 when perf did not print it (the default output shows the tid only). */
  pid: number;
  tid: number;
  cpu: number;
  /** Whole seconds and the fraction in nanoseconds, kept apart to stay exact. */
  sec: number;
  fracNs: number;
  /** -1 when absent. */
  period: number;
  /** The event token without its final ':'; eventStart = eventEnd when absent. */
  eventStart: number;
  eventEnd: number;
  /** Start of the text after the event (tracepoint payload or an inline `ip sym (dso)`), or -1. */
  restStart: number;
}

const newHeaderFields = (): HeaderFields => ({ commStart: 0, commEnd: 0, keyEnd: 0, pid: -1, tid: 0, cpu: -1, sec: 0, fracNs: 0, period: -1, eventStart: 0, eventEnd: 0, restStart: -1 });

/**
 * Parse `comm [pid/]tid [cpu] sec.frac: [period] event: …` in b[pos, end). The time token
 * (`digits.digits:` after a blank) anchors the line; comm is what is left of `[pid/]tid`,
 * so it may hold spaces, digits and colons.
 */
function parseHeaderAt(b: Uint8Array, pos: number, end: number, o: HeaderFields): boolean {
  while (end > pos && (b[end - 1] === CR || isBlank(b[end - 1]!))) end--;
  for (let c = pos; c < end; c++) {
    if (b[c] !== COLON || (c + 1 < end && !isBlank(b[c + 1]!))) continue;
    let i = c - 1;
    while (i > pos && isDigit(b[i]!)) i--;
    const fracDigits = c - 1 - i;
    if (fracDigits === 0 || b[i] !== 46 /* . */) continue;
    const dot = i;
    i--;
    while (i >= pos && isDigit(b[i]!)) i--;
    if (dot - 1 - i === 0 || i < pos || !isBlank(b[i]!)) continue;
    if (!parseLeftAt(b, pos, i, o)) continue;
    let sec = 0;
    for (let k = i + 1; k < dot; k++) sec = sec * 10 + (b[k]! - 48);
    let frac = 0;
    const fd = Math.min(fracDigits, 9);
    for (let k = dot + 1; k < dot + 1 + fd; k++) frac = frac * 10 + (b[k]! - 48);
    for (let k = fd; k < 9; k++) frac *= 10;
    o.sec = sec;
    o.fracNs = frac;
    // after the time: [period] [event:] [rest]
    let p = c + 1;
    while (p < end && isBlank(b[p]!)) p++;
    o.period = -1;
    let q = p;
    while (q < end && isDigit(b[q]!)) q++;
    if (q > p && (q === end || isBlank(b[q]!))) {
      let period = 0;
      for (let k = p; k < q; k++) period = period * 10 + (b[k]! - 48);
      o.period = period;
      p = q;
      while (p < end && isBlank(b[p]!)) p++;
    }
    o.eventStart = o.eventEnd = p;
    q = p;
    while (q < end && !isBlank(b[q]!)) q++;
    if (q > p && b[q - 1] === COLON) {
      o.eventEnd = q - 1;
      p = q;
      while (p < end && isBlank(b[p]!)) p++;
    }
    o.restStart = p < end ? p : -1;
    return true;
  }
  return false;
}

/** Left of the time token (which starts after the blank at `blank`): `comm [pid/]tid [cpu]`. */
function parseLeftAt(b: Uint8Array, pos: number, blank: number, o: HeaderFields): boolean {
  let i = blank;
  while (i >= pos && isBlank(b[i]!)) i--;
  o.cpu = -1;
  if (i >= pos && b[i] === 93 /* ] */) {
    const close = i;
    let cpu = 0;
    let scale = 1;
    i--;
    while (i >= pos && isDigit(b[i]!)) {
      cpu += (b[i]! - 48) * scale;
      scale *= 10;
      i--;
    }
    if (i < pos || b[i] !== 91 /* [ */ || close - i < 2) return false;
    o.cpu = cpu;
    i--;
    while (i >= pos && isBlank(b[i]!)) i--;
  }
  if (i < pos) return false;
  o.keyEnd = i + 1;
  i = readIntLeft(b, pos, i);
  if (i === -2) return false;
  o.tid = intValue;
  o.pid = -1;
  if (i >= pos && b[i] === 47 /* / */) {
    i = readIntLeft(b, pos, i - 1);
    if (i === -2) return false;
    o.pid = intValue;
  }
  if (i >= pos && !isBlank(b[i]!)) return false;
  let cs = pos;
  let ce = i + 1;
  while (cs < ce && isBlank(b[cs]!)) cs++;
  while (ce > cs && isBlank(b[ce - 1]!)) ce--;
  o.commStart = cs;
  o.commEnd = ce;
  return true;
}

let intValue = 0;
/** Read an optionally negative integer ending at `last` into intValue; returns the index before it, or -2. */
function readIntLeft(b: Uint8Array, pos: number, last: number): number {
  let i = last;
  let v = 0;
  let scale = 1;
  while (i >= pos && isDigit(b[i]!)) {
    v += (b[i]! - 48) * scale;
    scale *= 10;
    i--;
  }
  if (i === last) return -2;
  if (i >= pos && b[i] === 45 /* - */) {
    v = -v;
    i--;
  }
  intValue = v;
  return i;
}

/** A parsed sample header, for callers outside the hot path (detection, tests). */
export interface SampleHeader {
  comm: string;
  pid: number;
  tid: number;
  cpu: number;
  /** Seconds (as printed, e.g. 560.449343) with the fraction exact to the nanosecond in fracNs. */
  sec: number;
  fracNs: number;
  period: number;
  /** e.g. `cpu-clock:ppp`, `sched:sched_switch`; '' when absent. */
  event: string;
  /** Text after the event ('' when none). */
  rest: string;
}

/** Parse one sample header line; null when the line is not one. */
export function parseSampleHeader(line: string): SampleHeader | null {
  const b = Buffer.from(line, 'utf8');
  const o = newHeaderFields();
  if (!parseHeaderAt(b, 0, b.length, o)) return null;
  return {
    comm: b.toString('utf8', o.commStart, o.commEnd),
    pid: o.pid,
    tid: o.tid,
    cpu: o.cpu,
    sec: o.sec,
    fracNs: o.fracNs,
    period: o.period,
    event: b.toString('utf8', o.eventStart, o.eventEnd),
    rest: o.restStart >= 0 ? b.toString('utf8', o.restStart).trimEnd() : '',
  };
}

/** Perf event modifiers (`:ppp`, `:P`, `:u`, `:k`, …). */
const MODIFIERS = /^[ukhIGHpPSDWeb]+$/;

/** `cpu-clock:ppp` → `cpu-clock`; `sched:sched_switch` stays. */
export function eventBaseName(event: string): string {
  const k = event.lastIndexOf(':');
  return k > 0 && MODIFIERS.test(event.slice(k + 1)) ? event.slice(0, k) : event;
}

const OFF_CPU_EVENTS = new Set(['sched:sched_switch', 'sched:sched_stat_sleep', 'sched:sched_stat_blocked', 'sched:sched_stat_iowait']);
const CLOCK_EVENTS = new Set(['cpu-clock', 'task-clock']);

interface EventInfo {
  raw: string;
  base: string;
  tracepoint: boolean;
  state: SampleState;
}

/** A frame line's text (after the address) split into symbol and dso: the dso is the last balanced `( … )`. */
export function splitSymbolDso(rest: string): { sym: string; dso: string | null } {
  const end = rest.length;
  if (end > 0 && rest.charCodeAt(end - 1) === 41 /* ) */) {
    let depth = 0;
    for (let i = end - 1; i >= 0; i--) {
      const ch = rest.charCodeAt(i);
      if (ch === 41) depth++;
      else if (ch === 40 /* ( */ && --depth === 0) {
        if (i === 0) return { sym: '', dso: rest.slice(1, end - 1) };
        if (isBlank(rest.charCodeAt(i - 1))) return { sym: rest.slice(0, i).trimEnd(), dso: rest.slice(i + 1, end - 1) };
        break;
      }
    }
    // unbalanced: fall back to the last " ("
    const k = rest.lastIndexOf(' (');
    if (k > 0 && depth !== 0) return { sym: rest.slice(0, k).trimEnd(), dso: rest.slice(k + 2, end - 1) };
  }
  return { sym: rest, dso: null };
}

/** `sym+0x1f` → `sym`. */
function stripOffset(sym: string): string {
  const k = sym.lastIndexOf('+0x');
  if (k <= 0 || k + 3 === sym.length) return sym;
  for (let i = k + 3; i < sym.length; i++) if (!isHex(sym.charCodeAt(i))) return sym;
  return sym.slice(0, k);
}

const baseName = (path: string) => path.slice(path.lastIndexOf('/') + 1);

/** latin1 → UTF-8 re-decode when the string has high bytes. */
function utf8(latin1: string): string {
  for (let i = 0; i < latin1.length; i++) if (latin1.charCodeAt(i) > 0x7f) return Buffer.from(latin1, 'latin1').toString('utf8');
  return latin1;
}

/** Buffer#latin1Slice skips toString's argument handling (Node has it; fall back elsewhere). */
const hasLatin1Slice = typeof (Buffer.prototype as unknown as { latin1Slice?: unknown }).latin1Slice === 'function';
const latin1 = (b: Buffer, s: number, e: number): string =>
  hasLatin1Slice ? (b as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(s, e) : b.toString('latin1', s, e);

const PERF_MAP = /(?:^|\/)perf-(\d+)\.map$/;
const JITTED = /(?:^|\/)jitted-(\d+)-\d+\.so$/;

/** Open-addressing cache: byte range of the input → stack index, verified with memcmp. */
class BlockCache {
  private slots = new Int32Array(1 << 12);
  private mask = (1 << 12) - 1;
  private eHash = new Int32Array(1024);
  private eStart = new Float64Array(1024);
  private eLen = new Int32Array(1024);
  private eStack = new Int32Array(1024);
  size = 0;
  private readonly buf: Buffer;

  constructor(buf: Buffer) {
    this.buf = buf;
  }

  /** The stack for the bytes [start, end) with hash h, or -2. */
  get(h: number, start: number, end: number): number {
    const len = end - start;
    const buf = this.buf;
    for (let i = h & this.mask; ; i = (i + 1) & this.mask) {
      const e = this.slots[i]! - 1;
      if (e < 0) return -2;
      if (this.eHash[e] === h && this.eLen[e] === len) {
        const s = this.eStart[e]!;
        if (s === start || buf.compare(buf, s, s + len, start, end) === 0) {
          // point at the latest copy: the next compare reads memory that is more likely cached
          this.eStart[e] = start;
          return this.eStack[e]!;
        }
      }
    }
  }

  set(h: number, start: number, end: number, stack: number): void {
    if (this.size === this.eHash.length) {
      const cap = this.size * 2;
      const g32 = (a: Int32Array) => { const b = new Int32Array(cap); b.set(a); return b; };
      this.eHash = g32(this.eHash);
      this.eLen = g32(this.eLen);
      this.eStack = g32(this.eStack);
      const st = new Float64Array(cap);
      st.set(this.eStart);
      this.eStart = st;
    }
    const e = this.size++;
    this.eHash[e] = h;
    this.eStart[e] = start;
    this.eLen[e] = end - start;
    this.eStack[e] = stack;
    if (this.size * 2 > this.mask) {
      const cap = (this.mask + 1) * 2;
      this.slots = new Int32Array(cap);
      this.mask = cap - 1;
      for (let k = 0; k < this.size; k++) this.place(this.eHash[k]!, k);
    } else this.place(h, e);
  }

  private place(h: number, e: number): void {
    let i = h & this.mask;
    while (this.slots[i] !== 0) i = (i + 1) & this.mask;
    this.slots[i] = e + 1;
  }
}

/** Growable per-sample columns, kept until the end (thread pids are known only then). */
class SampleColumns {
  cap = 4096;
  n = 0;
  stack = new Int32Array(this.cap);
  thread = new Int32Array(this.cap);
  event = new Int32Array(this.cap);
  time = new Float64Array(this.cap);
  period = new Float64Array(this.cap);

  push(stack: number, thread: number, event: number, time: number, period: number): void {
    if (this.n === this.cap) this.grow();
    const i = this.n++;
    this.stack[i] = stack;
    this.thread[i] = thread;
    this.event[i] = event;
    this.time[i] = time;
    this.period[i] = period;
  }

  private grow(): void {
    const cap = this.cap * 2;
    const g32 = (a: Int32Array) => { const b = new Int32Array(cap); b.set(a); return b; };
    const g64 = (a: Float64Array) => { const b = new Float64Array(cap); b.set(a); return b; };
    this.stack = g32(this.stack);
    this.thread = g32(this.thread);
    this.event = g32(this.event);
    this.time = g64(this.time);
    this.period = g64(this.period);
    this.cap = cap;
  }
}

interface LocalThread {
  pid: number;
  tid: number;
  comm: string;
  firstSample: number;
  lastSample: number;
}

/** An inlined frame line, waiting for the lib of the frame it is inlined into. */
interface InlinedSym {
  name: string;
  kernel: boolean;
  /** Last resolution, the common case: same lib → same frame. */
  lastLib: string | undefined;
  lastFrame: number;
}

/** A missed block is looked up again without its first 1..MAX_LEAF_CUTS lines (and without all but its last 8·m). */
const MAX_LEAF_CUTS = 4;
/** Blocks of more lines are read by the line loop, uncached (perf stops callchains at 127 frames by default). */
const MAX_BLOCK_LINES = 1 << 12;
/** Bytes at a block's start over which hash states are kept for tail hashes. */
const SNAP_MAX = 1 << 16;

class Reader {
  private readonly b: Buffer;
  private readonly len: number;
  private readonly dv: DataView;
  private readonly label: string;
  /** Made at the first sample, when its event and period fix the value types. */
  builder: ProfileBuilder | undefined;
  readonly samples = new SampleColumns();
  readonly comments = new Map<string, string>();
  readonly eventLines: string[] = [];
  readonly events: EventInfo[] = [];
  private readonly eventIndex = new Map<string, number>();
  readonly threads: LocalThread[] = [];
  /** Thread lookup: tid → local threads with that tid, told apart by the bytes from the line start to the end of `[pid/]tid`. */
  private readonly threadIndex = new Map<number, number[]>();
  private readonly threadKeyStart: number[] = [];
  private threadKeys = new Uint8Array(1024);
  private threadKeysUsed = 0;
  private readonly threadKeyLen: number[] = [];
  private readonly blocks: BlockCache;
  /** Frame-line text → frame index (>= 0) or inlined marker -(k+1); user and kernel addresses apart. */
  private readonly userLines = new Map<string, number>();
  private readonly kernelLines = new Map<string, number>();
  private readonly inlinedSyms: InlinedSym[] = [];
  private readonly inlinedFrames = new Map<string, number>();
  /** The same without the symbol offset: other instructions of a known function. */
  private readonly userText = new Map<string, number>();
  private readonly kernelText = new Map<string, number>();
  /** Per model frame: its lib (inlined frames take it), kernel-ness, and the pid a perf map / jitted name reveals. */
  private readonly frameLib: (string | undefined)[] = [];
  private readonly frameKernel: boolean[] = [];
  readonly framePid: number[] = [];
  skippedLines = 0;
  sawPerfHeader = false;
  private baseSec = NaN;
  private readonly h = newHeaderFields();
  private lastEventStart = -1;
  private lastEventLen = 0;
  private lastEvent = 0;

  // the sample being read line by line (blocks the cache cannot answer whole)
  private inSample = false;
  private curThread = 0;
  private curEvent = 0;
  private curTime = 0;
  private curPeriod = NaN;
  private frames = new Int32Array(256);
  private nFrames = 0;
  private pending: number[] = [];
  // a missed block: where each line starts, frames read before it, the hash of the tail from it
  private readonly lineStarts = new Float64Array(MAX_BLOCK_LINES);
  private readonly lineCount = new Int32Array(MAX_BLOCK_LINES);
  private readonly cutHash = new Int32Array(MAX_BLOCK_LINES);
  // lane states kept by hashRange(…, true) for tailHash
  private readonly snapX = new Int32Array(SNAP_MAX / 8 + 1);
  private readonly snapY = new Int32Array(SNAP_MAX / 8 + 1);
  private snapLow = 0;
  private snapHigh = -1;
  private snapEnd = -1;

  constructor(bytes: Uint8Array, label: string) {
    let b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3);
    // CRLF text (copied through Windows): judged on the first line ending, not a scan of the whole input
    const firstNl = b.indexOf(NL);
    if (firstNl > 0 && b[firstNl - 1] === CR) b = stripCR(b);
    this.b = b;
    this.len = b.length;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.label = label;
    this.blocks = new BlockCache(b);
  }

  /** Value types: cpu time (the period, in ns) next to samples when the first sample is a clock event with a period. */
  makeBuilder(clock: boolean): ProfileBuilder {
    const valueTypes: ValueType[] = [{ name: 'samples', unit: 'samples' }];
    if (clock) valueTypes.push({ name: 'cpu', unit: 'nanoseconds' });
    this.builder = new ProfileBuilder({ meta: { lens: 'perf', backend: 'perf', mode: 'cpu' }, valueTypes });
    return this.builder;
  }

  private lineAt(pos: number): number {
    let n = 1;
    for (let p = this.b.indexOf(NL, 0); p >= 0 && p < pos; p = this.b.indexOf(NL, p + 1)) n++;
    return n;
  }

  private fail(pos: number, msg: string): never {
    throw new ParseError(FORMAT, this.label, { line: this.lineAt(pos) }, msg);
  }

  /**
   * Hash of b[start, end): two multiplicative lanes over 32-bit words on an 8-byte grid
   * anchored at `end`, walked backwards (read through a DataView, so alignment does not
   * matter); the 0–7 bytes left at the start bytewise; the length folded in last. Only a
   * distribution hash: hits are verified with memcmp. With `snap`, the lane states at the
   * grid points of the first SNAP_MAX bytes are kept, so that the hash of any tail
   * b[ts, end) starting there costs a few bytes, not another pass (tailHash).
   */
  private hashRange(start: number, end: number, snap: boolean): number {
    const dv = this.dv;
    let x = 0x811c9dc5 | 0;
    let y = 0x2545f491 | 0;
    let i = end;
    const gridLow = start + ((end - start) & 7);
    if (snap) {
      for (const win = gridLow + SNAP_MAX; i > win; i -= 8) {
        x = Math.imul(x + dv.getInt32(i - 4, true), 0x9e3779b1);
        y = Math.imul(y + dv.getInt32(i - 8, true), 0x85ebca6b);
      }
      this.snapLow = gridLow;
      this.snapHigh = i;
      this.snapEnd = end;
      const sx = this.snapX;
      const sy = this.snapY;
      for (;;) {
        const q = (i - gridLow) >>> 3;
        sx[q] = x;
        sy[q] = y;
        if (i <= gridLow) break;
        x = Math.imul(x + dv.getInt32(i - 4, true), 0x9e3779b1);
        y = Math.imul(y + dv.getInt32(i - 8, true), 0x85ebca6b);
        i -= 8;
      }
    } else {
      for (; i > gridLow; i -= 8) {
        x = Math.imul(x + dv.getInt32(i - 4, true), 0x9e3779b1);
        y = Math.imul(y + dv.getInt32(i - 8, true), 0x85ebca6b);
      }
    }
    return this.finishHash(x, y, start, gridLow, end);
  }

  private finishHash(x: number, y: number, start: number, gridLow: number, end: number): number {
    const b = this.b;
    let t = x ^ Math.imul(y ^ (y >>> 15), 0x27d4eb2f);
    for (let j = gridLow - 1; j >= start; j--) t = Math.imul(t ^ b[j]!, 0x01000193);
    t = Math.imul(t ^ (end - start) ^ (t >>> 16), 0x85ebca6b);
    t ^= t >>> 13;
    t = Math.imul(t, 0xc2b2ae35);
    t ^= t >>> 16;
    return t;
  }

  /** hashRange(ts, end) for a tail of the block hashed last with `snap`, from the kept lane states when it can. */
  private tailHash(ts: number, end: number): number {
    const gridLow = ts + ((end - ts) & 7);
    if (end === this.snapEnd && gridLow >= this.snapLow && gridLow <= this.snapHigh) {
      const q = (gridLow - this.snapLow) >>> 3;
      return this.finishHash(this.snapX[q]!, this.snapY[q]!, ts, gridLow, end);
    }
    return this.hashRange(ts, end, false);
  }

  /** Returns NOT_MINE when the first content line is not perf script; throws ParseError for damage after that. */
  run(): NotMine | undefined {
    const b = this.b;
    const len = this.len;
    const h = this.h;
    let pos = 0;
    let seenSample = false;
    while (pos < len) {
      let nl = b.indexOf(NL, pos);
      if (nl < 0) nl = len;
      const c0 = b[pos]!;
      if (nl === pos || (c0 === CR && nl === pos + 1)) {
        if (this.inSample) this.finish();
        pos = nl + 1;
        continue;
      }
      if (c0 === TAB || (c0 === SPACE && this.inSample)) {
        // space-led: a left-padded header (no-callchain output) or a frame line
        if (c0 === SPACE && nl - pos < 4096 && parseHeaderAt(b, pos, nl, h)) {
          this.finish();
          pos = this.header(pos, nl);
          continue;
        }
        if (!this.inSample) {
          if (!seenSample && !looksLikeFrameLine(b, pos, nl)) return NOT_MINE;
          this.fail(pos, seenSample ? 'stack line outside a sample (expected a sample header after the blank line)' : 'stack line before any sample header');
        }
        this.frameLine(pos, nl);
        pos = nl + 1;
        continue;
      }
      if (c0 === HASH) {
        if (!seenSample) this.comment(pos, nl);
        pos = nl + 1;
        continue;
      }
      if (this.inSample) this.finish();
      if (nl - pos >= 4096 || !parseHeaderAt(b, pos, nl, h)) {
        if (isSkippableLine(b, pos, nl)) {
          this.skippedLines++;
          pos = nl + 1;
          continue;
        }
        if (!seenSample) {
          if (c0 === SPACE && looksLikeFrameLine(b, pos, nl)) this.fail(pos, 'stack line before any sample header');
          return NOT_MINE;
        }
        this.fail(pos, `cannot read a sample header (expected "comm [pid/]tid [cpu] time: [period] event:"): ${JSON.stringify(b.toString('utf8', pos, Math.min(nl, pos + 120)))}`);
      }
      seenSample = true;
      pos = this.header(pos, nl);
    }
    if (this.inSample) this.finish();
    if (!seenSample && !this.sawPerfHeader) return NOT_MINE;
    return undefined;
  }

  /** Start a sample from the header just parsed into this.h; returns where to continue. */
  private header(pos: number, nl: number): number {
    const b = this.b;
    const h = this.h;
    if (h.restStart >= 0 && startsWith(b, h.restStart, nl, 'PERF_RECORD_')) {
      // --show-*-events side-band records: not samples
      this.skippedLines++;
      return nl + 1;
    }
    const t = this.thread(pos, h.keyEnd);
    this.threads[t]!.lastSample = this.samples.n;
    const ev = this.event(h.eventStart, h.eventEnd);
    if (Number.isNaN(this.baseSec)) {
      this.baseSec = h.sec;
      this.makeBuilder(CLOCK_EVENTS.has(this.events[ev]!.base) && h.period >= 0);
    }
    this.curThread = t;
    this.curEvent = ev;
    this.curTime = (h.sec - this.baseSec) * 1e9 + h.fracNs;
    this.curPeriod = h.period >= 0 ? h.period : NaN;
    this.nFrames = 0;
    this.pending.length = 0;
    this.inSample = true;
    // no-callchain output: `… event:  ip sym (dso)` on the header line
    if (h.restStart >= 0 && !this.events[ev]!.tracepoint && looksLikeFrameLine(b, h.restStart, nl)) this.frameLine(h.restStart, nl);
    const next = nl + 1;
    if (next < this.len && b[next] === TAB && this.nFrames === 0) return this.block(next);
    return next;
  }

  /** The thread of a header, keyed by its raw bytes up to the end of `[pid/]tid` (comm included). */
  private thread(pos: number, keyEnd: number): number {
    const b = this.b;
    const n = keyEnd - pos;
    const h = this.h;
    let bucket = this.threadIndex.get(h.tid);
    if (bucket !== undefined) {
      // keys are compared against a private copy: the first occurrence in the input is far away in memory
      const keys = this.threadKeys;
      for (const t of bucket) {
        if (this.threadKeyLen[t] !== n) continue;
        const s = this.threadKeyStart[t]!;
        let i = 0;
        while (i < n && keys[s + i] === b[pos + i]) i++;
        if (i === n) return t;
      }
    } else this.threadIndex.set(h.tid, (bucket = []));
    const t = this.threads.length;
    this.threads.push({ pid: h.pid, tid: h.tid, comm: b.toString('utf8', h.commStart, h.commEnd), firstSample: this.samples.n, lastSample: 0 });
    if (this.threadKeysUsed + n > this.threadKeys.length) {
      const g = new Uint8Array(Math.max(this.threadKeys.length * 2, this.threadKeysUsed + n));
      g.set(this.threadKeys);
      this.threadKeys = g;
    }
    this.threadKeys.set(b.subarray(pos, keyEnd), this.threadKeysUsed);
    this.threadKeyStart.push(this.threadKeysUsed);
    this.threadKeyLen.push(n);
    this.threadKeysUsed += n;
    bucket.push(t);
    return t;
  }

  private event(start: number, end: number): number {
    const b = this.b;
    const n = end - start;
    if (n === this.lastEventLen && this.lastEventStart >= 0) {
      const s = this.lastEventStart;
      let same = true;
      for (let i = 0; i < n; i++) if (b[s + i] !== b[start + i]) { same = false; break; }
      if (same) return this.lastEvent;
    }
    const raw = b.toString('utf8', start, end);
    let ev = this.eventIndex.get(raw);
    if (ev === undefined) {
      ev = this.events.length;
      const base = eventBaseName(raw);
      const state: SampleState = OFF_CPU_EVENTS.has(base) ? 'off-cpu' : 'on-cpu';
      this.events.push({ raw, base, tracepoint: base.includes(':'), state });
      this.eventIndex.set(raw, ev);
    }
    this.lastEventStart = start;
    this.lastEventLen = n;
    this.lastEvent = ev;
    return ev;
  }

  /**
   * A callchain block starting at `start`: the whole block from the cache; else the block
   * less some lines, so that only the new lines are parsed. Two kinds of cut are tried:
   * the first 1–4 lines (a new leaf under a known caller chain: another instruction, a new
   * callee) and, longest first, the last 8·m lines (a new call path under known callers).
   * Every block read inserts its cuts, so the tails the next blocks try are there.
   */
  private block(start: number): number {
    const b = this.b;
    let end = b.indexOf(BLANK_LINE, start);
    if (end < 0) end = b[this.len - 1] === NL ? this.len - 1 : this.len;
    const after = Math.min(end + 2, this.len);
    const blockHash = this.hashRange(start, end, false);
    const whole = this.blocks.get(blockHash, start, end);
    if (whole !== -2) {
      this.samples.push(whole, this.curThread, this.curEvent, this.curTime, this.curPeriod);
      this.inSample = false;
      return after;
    }
    this.hashRange(start, end, true);
    // leaf cuts first: they need only the first lines found
    const ls = this.lineStarts;
    let n = 1;
    ls[0] = start;
    let base = -1;
    let stopLine = -1;
    for (let c = 1; c <= MAX_LEAF_CUTS; c++) {
      const e = b.indexOf(NL, ls[c - 1]!);
      if (e < 0 || e >= end) break;
      ls[n++] = e + 1;
      const h = this.tailHash(e + 1, end);
      this.cutHash[c] = h;
      const st = this.blocks.get(h, e + 1, end);
      if (st !== -2) {
        base = st;
        stopLine = c;
        break;
      }
    }
    if (stopLine < 0) {
      // the other line starts (the line loop reads a block too long for this), then root cuts, longest first
      for (let p = ls[n - 1]!; n < MAX_BLOCK_LINES; ) {
        const e = b.indexOf(NL, p);
        if (e < 0 || e >= end) break;
        p = e + 1;
        ls[n++] = p;
      }
      if (n === MAX_BLOCK_LINES) return start;
      stopLine = n;
      for (let c = n - 8 * Math.floor((n - 1) / 8); c < n; c += 8) {
        if (c <= MAX_LEAF_CUTS) continue;
        const h = this.tailHash(ls[c]!, end);
        this.cutHash[c] = h;
        const st = this.blocks.get(h, ls[c]!, end);
        if (st !== -2) {
          base = st;
          stopLine = c;
          break;
        }
      }
    }
    const count = this.lineCount;
    // parse the lines above the known tail; leave to the line loop if something other than a frame line shows up
    for (let i = 0; i < stopLine; i++) {
      const p = ls[i]!;
      if (b[p] !== TAB) return p;
      count[i] = this.nFrames + this.pending.length;
      this.frameLine(p, i + 1 < n ? ls[i + 1]! - 1 : end);
    }
    // inlined frames at the end of the new lines belong to the tail's first frame
    if (this.pending.length) {
      const f = base >= 0 ? this.builder!.stacks.frame[base]! : -1;
      this.flushInlined(f >= 0 ? this.frameLib[f] : undefined, f >= 0 && this.frameKernel[f]!);
    }
    // build root first; each cut above the known tail is inserted as its suffix's stack appears
    const bl = this.builder!;
    const nf = this.nFrames;
    const frames = this.frames;
    const cutHash = this.cutHash;
    let s = base;
    let c = stopLine - 1;
    for (; c >= 1 && count[c]! >= nf; c--) if (c <= MAX_LEAF_CUTS || (n - c) % 8 === 0) this.blocks.set(cutHash[c]!, ls[c]!, end, s);
    for (let i = nf - 1; i >= 0; i--) {
      s = bl.stack(s, frames[i]!);
      for (; c >= 1 && count[c] === i; c--) if (c <= MAX_LEAF_CUTS || (n - c) % 8 === 0) this.blocks.set(cutHash[c]!, ls[c]!, end, s);
    }
    this.blocks.set(blockHash, start, end, s);
    this.samples.push(s, this.curThread, this.curEvent, this.curTime, this.curPeriod);
    this.inSample = false;
    return after;
  }

  /** One frame line `[ws]<hex addr> <sym>[+0xoff] [(<dso>)]` in [pos, nl). */
  private frameLine(pos: number, nl: number): void {
    const b = this.b;
    let p = pos;
    while (p < nl && isBlank(b[p]!)) p++;
    const a = p;
    while (p < nl && isHex(b[p]!)) p++;
    if (p === a || (p < nl && !isBlank(b[p]!))) {
      // srcline / annotation lines under a frame, or damage: not a frame
      this.skippedLines++;
      return;
    }
    const addrEnd = p;
    // kernel half of the x86-64 / arm64 address space: >= 0xffff800000000000
    // (all ones, ffffffffffffffff, is perf's mark for an unwind that failed: not a kernel frame)
    const kernel = addrEnd - a === 16 && b[a] === 102 && b[a + 1] === 102 && b[a + 2] === 102 && b[a + 3] === 102 && b[a + 4]! >= 56 && !allOnes(b, a);
    while (p < nl && isBlank(b[p]!)) p++;
    let e = nl;
    while (e > p && (b[e - 1] === CR || isBlank(b[e - 1]!))) e--;
    // `-F ip` only: the address is all there is
    const key = p < e ? latin1(b, p, e) : `0x${latin1(b, a, addrEnd)}`;
    const lines = kernel ? this.kernelLines : this.userLines;
    let f = lines.get(key);
    if (f === undefined) {
      // another instruction in a known function: the line without its `+0x…` offset is known
      const off = p < e ? offsetStart(b, p, e) : -1;
      const stripped = off < 0 ? key : latin1(b, p, off) + latin1(b, offsetEnd(b, off, e), e);
      const byText = kernel ? this.kernelText : this.userText;
      f = byText.get(stripped);
      if (f === undefined) {
        f = this.newFrameLine(stripped, kernel);
        byText.set(stripped, f);
      }
      lines.set(key, f);
    }
    if (f < 0) {
      this.pending.push(-f - 1);
      return;
    }
    if (this.pending.length) this.flushInlined(this.frameLib[f], this.frameKernel[f]!);
    this.pushFrame(f);
  }

  private pushFrame(f: number): void {
    if (this.nFrames === this.frames.length) {
      const g = new Int32Array(this.frames.length * 2);
      g.set(this.frames);
      this.frames = g;
    }
    this.frames[this.nFrames++] = f;
  }

  /** Inlined frames take the lib (and kernel-ness) of the frame they are inlined into. */
  private flushInlined(lib: string | undefined, kernel: boolean): void {
    for (const k of this.pending) {
      const sym = this.inlinedSyms[k]!;
      let f: number;
      if (sym.lastFrame >= 0 && sym.lastLib === lib) f = sym.lastFrame;
      else {
        const key = `${k}\u0000${lib ?? ''}`;
        let g = this.inlinedFrames.get(key);
        if (g === undefined) {
          g = this.addFrame(sym.name, kernel || sym.kernel ? 'kernel' : 'native', lib, -1);
          this.inlinedFrames.set(key, g);
        }
        f = g;
        sym.lastLib = lib;
        sym.lastFrame = f;
      }
      this.pushFrame(f);
    }
    this.pending.length = 0;
  }

  private addFrame(name: string, kind: FrameKind, lib: string | undefined, pid: number, qualname?: string, file?: string): number {
    const f = this.builder!.frame({ name, qualname: qualname ?? name, kind, ...(file !== undefined ? { file } : {}), ...(lib !== undefined ? { lib } : {}) });
    if (f === this.frameLib.length) {
      this.frameLib.push(lib);
      this.frameKernel.push(kind === 'kernel');
      this.framePid.push(pid);
    }
    return f;
  }

  /** A new frame line's text, without address and offset. Inlined lines return -(k+1). */
  private newFrameLine(text: string, kernelAddr: boolean): number {
    const { sym, dso } = splitSymbolDso(text);
    return this.newSymDso(utf8(stripOffset(sym)) || '[unknown]', dso, kernelAddr);
  }

  /** Classify a frame: python (`py::func:file`), kernel, native; or an inlined line waiting for its lib. */
  private newSymDso(sym: string, rawDso: string | null, kernelAddr: boolean): number {
    if (rawDso === 'inlined') {
      this.inlinedSyms.push({ name: sym, kernel: kernelAddr, lastLib: undefined, lastFrame: -1 });
      return -this.inlinedSyms.length;
    }
    const dso = rawDso === null ? null : utf8(rawDso);
    let pid = -1;
    if (dso !== null) {
      const m = PERF_MAP.exec(dso) ?? JITTED.exec(dso);
      if (m) pid = Number(m[1]);
    }
    if (sym.startsWith('py::')) {
      // CPython perf trampolines (3.12+ -X perf: /tmp/perf-PID.map) and jitdump frames (-X perf_jit + perf inject --jit)
      const body = sym.slice(4);
      const colon = body.indexOf(':');
      const qual = colon > 0 ? body.slice(0, colon) : body;
      const file = colon > 0 && colon < body.length - 1 ? body.slice(colon + 1) : undefined;
      const dotAt = qual.lastIndexOf('.');
      const name = dotAt >= 0 && dotAt < qual.length - 1 ? qual.slice(dotAt + 1) : qual;
      return this.addFrame(name, 'python', undefined, pid, qual, file);
    }
    const kernel = kernelAddr || (dso !== null && dso.startsWith('[kernel'));
    const lib = dso === null || dso === '' || dso === '[unknown]' ? undefined : baseName(dso);
    return this.addFrame(sym, kernel ? 'kernel' : 'native', lib, pid);
  }

  /** End the sample read line by line. */
  private finish(): void {
    if (!this.inSample) return;
    this.inSample = false;
    if (this.pending.length) this.flushInlined(undefined, false);
    const bl = this.builder!;
    let s = -1;
    for (let i = this.nFrames - 1; i >= 0; i--) s = bl.stack(s, this.frames[i]!);
    this.samples.push(s, this.curThread, this.curEvent, this.curTime, this.curPeriod);
  }

  /** `# key : value` header lines from `perf script --header`. */
  private comment(pos: number, nl: number): void {
    const line = this.b.toString('utf8', pos + 1, Math.min(nl, pos + 8192)).trim();
    if (line.startsWith('========') || line.startsWith('captured on')) this.sawPerfHeader = true;
    const k = line.indexOf(' : ');
    if (k <= 0) return;
    const key = line.slice(0, k).trim();
    const value = line.slice(k + 3).trim();
    if (key === 'event') this.eventLines.push(value);
    else if (!this.comments.has(key)) this.comments.set(key, value);
  }
}

/** Sixteen 'f's at b[a]: the address -1. */
function allOnes(b: Uint8Array, a: number): boolean {
  for (let k = a; k < a + 16; k++) if (b[k] !== 102) return false;
  return true;
}

/**
 * Where `+0x<hex>` ends the symbol of the frame text b[p, e) (just before ` (dso)`, or at the
 * end), or -1.
 */
function offsetStart(b: Buffer, p: number, e: number): number {
  let symEnd = e;
  if (b[e - 1] === 41 /* ) */) {
    let depth = 0;
    let i = e - 1;
    for (; i >= p; i--) {
      const c = b[i]!;
      if (c === 41) depth++;
      else if (c === 40 && --depth === 0) break;
    }
    if (i <= p || !isBlank(b[i - 1]!)) return -1;
    symEnd = i - 1;
    while (symEnd > p && isBlank(b[symEnd - 1]!)) symEnd--;
  }
  let h = symEnd;
  while (h > p && isHex(b[h - 1]!)) h--;
  if (h === symEnd || h - 3 <= p || b[h - 1] !== 120 /* x */ || b[h - 2] !== 48 /* 0 */ || b[h - 3] !== 43 /* + */) return -1;
  return h - 3;
}

/** The end of the `+0x<hex>` starting at `off`. */
function offsetEnd(b: Buffer, off: number, e: number): number {
  let i = off + 3;
  while (i < e && isHex(b[i]!)) i++;
  return i;
}

function startsWith(b: Buffer, pos: number, end: number, prefix: string): boolean {
  if (end - pos < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[pos + i] !== prefix.charCodeAt(i)) return false;
  return true;
}

/** `[ws]<hex> <something>`: the shape of a callchain line. */
function looksLikeFrameLine(b: Buffer, pos: number, end: number): boolean {
  let p = pos;
  while (p < end && isBlank(b[p]!)) p++;
  const a = p;
  while (p < end && isHex(b[p]!)) p++;
  return p > a && (p === end || (isBlank(b[p]!) && p + 1 < end));
}

/** Lines perf (or a `2>&1`) can interleave that are not samples. */
function isSkippableLine(b: Buffer, pos: number, end: number): boolean {
  return startsWith(b, pos, end, 'Warning:') || startsWith(b, pos, end, 'Failed to ');
}

function stripCR(b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(b.length);
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === CR && b[i + 1] === NL) continue;
    out[n++] = c;
  }
  return out.subarray(0, n);
}

/** Parse perf's `# cmdline` into the profiled command (after `--`, or after perf's own options). */
export function commandFromPerfCmdline(cmdline: string): { command?: string[]; pid?: number } {
  const argv = cmdline.split(/\s+/).filter(Boolean);
  const dd = argv.indexOf('--');
  if (dd >= 0) return dd + 1 < argv.length ? { command: argv.slice(dd + 1) } : {};
  const rec = argv.findIndex((a) => a === 'record' || a === 'trace' || a === 'sched');
  if (rec < 0) return {};
  const withArg = new Set(['-e', '--event', '-F', '--freq', '-c', '--count', '-o', '--output', '-p', '--pid', '-t', '--tid', '-C', '--cpu', '-m', '--mmap-pages', '--call-graph', '-G', '--cgroup', '-u', '--uid', '-k', '--clockid', '-D', '--delay', '-r', '--realtime', '--filter', '-b', '-j', '--branch-filter', '--switch-output', '--affinity', '--max-size', '--aio', '--mmap-flush', '-z', '--compression-level', '--user-regs', '--intr-regs', '--control']);
  let pid: number | undefined;
  for (let i = rec + 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('-')) {
      if ((a === '-p' || a === '--pid') && i + 1 < argv.length) pid = Number(argv[i + 1]!.split(',')[0]);
      if (withArg.has(a)) i++;
      continue;
    }
    return { command: argv.slice(i) };
  }
  return pid !== undefined && Number.isFinite(pid) ? { pid } : {};
}

function median(xs: Float64Array | number[]): number {
  const a = Float64Array.from(xs).sort();
  if (a.length === 0) return NaN;
  const m = a.length >> 1;
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

function buildProfile(r: Reader): Profile {
  const bl = r.builder ?? r.makeBuilder(false);
  const sm = r.samples;
  const n = sm.n;
  // pids: printed, else revealed by /tmp/perf-PID.map or jitted-PID-N.so frames, else the tid
  const st = bl.stacks;
  const stackPid = new Int32Array(st.length);
  for (let s = 0; s < st.length; s++) {
    const fp = r.framePid[st.frame[s]!]!;
    stackPid[s] = fp >= 0 ? fp : st.parent[s]! >= 0 ? stackPid[st.parent[s]!]! : -1;
  }
  const threadPid = r.threads.map((t) => t.pid);
  let pidSource = 'perf';
  for (let i = 0; i < n; i++) {
    const t = sm.thread[i]!;
    const s = sm.stack[i]!;
    if (threadPid[t]! === -1 && s >= 0 && stackPid[s]! >= 0) {
      threadPid[t] = stackPid[s]!;
      pidSource = 'perf-map';
    }
  }
  for (let t = 0; t < threadPid.length; t++) {
    if (threadPid[t] === -1) {
      threadPid[t] = r.threads[t]!.tid;
      pidSource = 'tid';
    }
  }
  // threads: one row per (pid, tid); the name is the comm of its latest sample (threads rename themselves)
  const order = r.threads.map((_, i) => i).sort((a, b) => r.threads[b]!.lastSample - r.threads[a]!.lastSample || a - b);
  const byFirstSample = r.threads.map((_, i) => i).sort((a, b) => r.threads[a]!.firstSample - r.threads[b]!.firstSample || a - b);
  const nameOf = new Map<string, string>();
  for (const t of order) {
    const key = `${threadPid[t]}/${r.threads[t]!.tid}`;
    if (!nameOf.has(key)) nameOf.set(key, r.threads[t]!.comm);
  }
  const threadMap = new Int32Array(r.threads.length);
  for (const t of byFirstSample) {
    const name = nameOf.get(`${threadPid[t]}/${r.threads[t]!.tid}`)!;
    threadMap[t] = bl.thread(threadPid[t]!, r.threads[t]!.tid, name === '' ? undefined : name);
  }
  // times: ns since the first sample
  let t0 = Infinity;
  let t1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const t = sm.time[i]!;
    if (t < t0) t0 = t;
    if (t > t1) t1 = t;
  }
  if (n === 0) t0 = t1 = 0;
  const nv = bl.valueTypes.length;
  const vals = new Array<number>(nv).fill(1);
  const clock = r.events.map((e) => CLOCK_EVENTS.has(e.base));
  const states = r.events.map((e) => e.state);
  for (let i = 0; i < n; i++) {
    const lt = sm.thread[i]!;
    const ev = sm.event[i]!;
    if (nv > 1) vals[1] = clock[ev] && !Number.isNaN(sm.period[i]!) ? sm.period[i]! : 0;
    const state = r.threads[lt]!.tid === 0 ? 'idle' : states[ev]!;
    bl.sample(sm.stack[i]!, vals, threadMap[lt]!, state, sm.time[i]! - t0);
  }
  // meta
  const m = bl.meta;
  const bases = r.events.map((e) => e.base);
  m.mode = (bases.length > 0 && bases.every((e) => OFF_CPU_EVENTS.has(e)) ? 'off-cpu' : 'cpu') satisfies ProfileMode;
  m.sampleCount = n;
  if (n > 0) m.durationNs = t1 - t0;
  // tracepoints fire on events, not at a rate
  const rate = r.events.every((e) => e.tracepoint) ? undefined : rateHz(r, nv > 1, t0);
  if (rate !== undefined) m.rateHz = rate;
  const c = r.comments;
  const env: Environment = {};
  if (c.has('hostname')) env.hostname = c.get('hostname')!;
  if (c.has('os release')) env.kernel = `Linux ${c.get('os release')!}`;
  if (c.has('cpudesc')) env.cpuModel = c.get('cpudesc')!;
  const cores = Number(c.get('nrcpus online') ?? c.get('nrcpus avail'));
  if (Number.isInteger(cores) && cores > 0) env.cpuCores = cores;
  const extra: Record<string, string | number> = {};
  if (r.events.length) extra.event = r.events.map((e) => e.raw).join(',');
  const cmdline = c.get('cmdline');
  if (cmdline !== undefined) {
    extra.perfCmdline = cmdline;
    const cmd = commandFromPerfCmdline(cmdline);
    if (cmd.command) {
      m.command = cmd.command;
      const exe = cmd.command[0]!;
      if (/^python[\d.]*$/.test(baseName(exe))) env.python = { executable: exe };
    }
    if (cmd.pid !== undefined) m.pid = cmd.pid;
  }
  const pids = new Set(threadPid.filter((p) => p > 0));
  if (m.pid === undefined && pids.size === 1 && pidSource !== 'tid') m.pid = [...pids][0]!;
  if (c.has('perf version')) extra.perfVersion = c.get('perf version')!;
  if (c.has('arch')) extra.arch = c.get('arch')!;
  if (c.has('captured on')) extra.capturedOn = c.get('captured on')!;
  if (pidSource === 'perf-map') extra.pids = 'from /tmp/perf-PID.map and jitted-PID-N.so names';
  else if (pidSource === 'tid') extra.pids = 'not printed: pid = tid where no perf map names the process';
  if (r.skippedLines) extra.skippedLines = r.skippedLines;
  m.environment = env;
  if (Object.keys(extra).length) m.extra = extra;
  return bl.build();
}

/** The sampling rate: perf's header (`-F`), else the clock period, else the median interval per thread. */
function rateHz(r: Reader, clock: boolean, t0: number): number | undefined {
  for (const line of r.eventLines) {
    const freq = /\{ sample_period, sample_freq \} = (\d+)/.exec(line);
    if (freq && /(?:^|, )freq = 1(?:,|$)/.test(line)) return Number(freq[1]);
  }
  const sm = r.samples;
  if (sm.n < 2) return undefined;
  if (clock) {
    const p = median(sm.period.subarray(0, sm.n));
    if (p > 0) return Math.round(1e9 / p);
  }
  const last = new Float64Array(r.threads.length).fill(NaN);
  const gaps: number[] = [];
  for (let i = 0; i < sm.n; i++) {
    const t = sm.thread[i]!;
    const time = sm.time[i]! - t0;
    if (!Number.isNaN(last[t]!) && time > last[t]!) gaps.push(time - last[t]!);
    last[t] = time;
  }
  const g = median(gaps);
  return g > 0 ? Math.round(1e9 / g) : undefined;
}

function detect(input: InputFile): boolean {
  const head = input.head(4096);
  let sawHeader = false;
  for (const raw of head.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') continue;
    if (line.startsWith('#')) {
      if (/^# (?:=+|captured on|perf version)/.test(line)) sawHeader = true;
      continue;
    }
    return parseSampleHeader(line) !== null;
  }
  return sawHeader;
}

function parse(input: InputFile): Profile | NotMine {
  const r = new Reader(input.bytes, input.label);
  if (r.run() === NOT_MINE) return NOT_MINE;
  return buildProfile(r);
}

export const perfScriptImporter: Importer = {
  id: FORMAT,
  extensions: ['.perf', '.perf-script', '.perf.txt', '.perfscript'],
  detect,
  parse,
};
