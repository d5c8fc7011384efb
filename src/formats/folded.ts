/**
 * Brendan Gregg's folded ("collapsed") stacks, as read by FlameGraph's `flamegraph.pl`
 * (brendangregg/FlameGraph; read at commit 996ef3c9d3b6ed8cc3d5580e262b376050816191, which
 * skips lines it cannot parse with "Ignored N lines with invalid format") and speedscope's
 * `importFromBGFlameGraph`.
 *
 * Grammar, one stack per line, root first:
 *
 *     frame;frame;…;frame <count>            count: 12, 12.5, 7. (decimal allowed)
 *     frame;frame;…;frame <before> <after>    differential (difffolded.pl output)
 *
 * The count is the last whitespace-separated token (frames may contain spaces); the
 * whitespace before it may be spaces or tabs; trailing whitespace and a CR are ignored.
 * Blank lines and lines starting with `#` are skipped. A line with no count is an error.
 * Whether a file is differential is decided by its first stack line (a stack whose last
 * frame ends in " <number>" is ambiguous by nature; flamegraph.pl decides per line).
 *
 * Frames (names are kept verbatim otherwise):
 *   `name_[k]` kernel, `name_[i]` inlined, `name_[j]` JIT, `name_[w]` waker: the suffix
 *       sets the kind (kernel for `_[k]`) and is stripped from the name; the model has no
 *       inlined/JIT flag, so `_[i]`/`_[j]`/`_[w]` are not written back on export.
 *   `py::qualname:file` (perf maps of CPython 3.12+ `-X perf`) → python frame with file.
 *   `name (file:line)` (py-spy / pylens labels) → python frame with file and line;
 *   `name (file.py)` (no line) → python frame with file, for Python-looking files only.
 *   anything else → a native frame named verbatim (folded carries no kind).
 *
 * Import aggregates identical lines: one sample row per distinct stack (the format is
 * untimed and unordered). It works on the bytes (see `parseFolded` for how it is fast).
 * The text helpers it shares with the other collapsed-stack dialects (py-spy raw, Austin,
 * CPython tachyon) are in `collapsed.ts`.
 *
 * Export: `stack count` with a single space and integer counts (speedscope accepts only
 * `^(.*) (\d+)$`). Labels come from `frameLabel` (lineno / fullFilenames options).
 * Counts that are not all integers (seconds, or decimal counts read from another folded
 * file) are scaled: every value is multiplied by the smallest power of ten, 10^0…10^6,
 * that makes all of them integers (to 1e-6), then rounded. The scale is not written into
 * the file (FlameGraph has no place for it); it only changes the unit of the counts, not
 * the proportions. Thread and process roots are not added (use `withThreadRoots` first).
 */
import { ProfileBuilder } from '../model/builder.ts';
import type { FrameKind, FrameSpec, Profile } from '../model/profile.ts';
import { foldedStacks } from '../model/query.ts';
import { endsWithCount, headLines, looksBinary, mostLinesMatch, NUMBER_RE, parsePyLabel, shortName } from './collapsed.ts';
import { NOT_MINE, ParseError, type ExportOptions, type Exporter, type Importer, type InputFile, type NotMine } from './types.ts';

// ---------------------------------------------------------------------------------------
// Folded import
// ---------------------------------------------------------------------------------------

const SPACE = 32;
const TAB = 9;
const CR = 13;
const LF = 10;
const HASH = 35;

const SUFFIX_RE = /_\[([kijw])\]$/;

/** One folded frame string → frame spec (see the header comment). */
export function foldedFrameSpec(raw: string): FrameSpec {
  let name = raw;
  let kind: FrameKind | undefined;
  if (name.length > 4 && name.charCodeAt(name.length - 1) === 93 /* ] */) {
    const m = SUFFIX_RE.exec(name);
    if (m) {
      name = name.slice(0, -4);
      if (m[1] === 'k') kind = 'kernel';
    }
  }
  if (kind === 'kernel') return { name, kind };
  if (name.startsWith('py::')) {
    const c = name.indexOf(':', 4);
    if (c > 4 && c < name.length - 1) {
      const qual = name.slice(4, c);
      return { name: shortName(qual), qualname: qual, file: name.slice(c + 1), kind: 'python' };
    }
  }
  const py = parsePyLabel(name, true);
  if (py) return py;
  return { name, kind: 'native' };
}

function foldedError(file: string, line: number, message: string): ParseError {
  return new ParseError('folded', file, { line }, message);
}

/** Keeps the prefetch loads in parseFolded observable (so they are not optimised away). */
export let prefetchSink = 0;

function isWsByte(c: number): boolean {
  return c === SPACE || c === TAB || c === CR || c === 11 || c === 12;
}

/** `parseCount` over bytes (ASCII digits); the rare non-integer goes through a string. */
function parseCountBytes(buf: Buffer, start: number, end: number): number {
  let i = start;
  let neg = false;
  if (buf[i] === 45 /* - */) {
    neg = true;
    i++;
  }
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i]! - 48;
    if (c < 0 || c > 9) break;
    v = v * 10 + c;
    digits++;
  }
  if (i === end && digits > 0 && digits <= 15) return neg ? -v : v;
  if (end - start > 64) return NaN;
  const s = buf.toString('latin1', start, end);
  return NUMBER_RE.test(s) ? Number(s) : NaN;
}

/**
 * Parse Gregg folded bytes. NOT_MINE when the first stack line has no count.
 *
 * Speed: the text is never decoded as a whole. Lines are found with the native
 * `Buffer.indexOf`. Each distinct stack's bytes are copied once into an arena entry that
 * also holds its counts; a line is matched to an entry by exact byte comparison (8 bytes at
 * a time), found either through a cheap fingerprint of a few words (the common case: a
 * stack seen before) or through a full hash of its bytes in an open-addressing table. Lines
 * that need the table go through in batches so that their cache misses overlap. A new stack
 * is split into frames that are looked up the same way; only frames never seen before are
 * decoded (UTF-8) and parsed.
 */
export function parseFolded(bytes: Uint8Array, file: string): Profile | NotMine {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = buf.length;
  let pos = n >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0; // UTF-8 BOM
  let line = 0;
  let differential: boolean | undefined;
  let b: ProfileBuilder | undefined;

  // Arena of distinct stacks. An entry starts at a multiple of 8:
  //   int32 length, int32 row | float64 count (last column) | float64 first column | bytes…
  // padded to 8 bytes. Offsets never move (growth copies), so they can be remembered.
  const HEAD = 24;
  let arena = new Uint8Array(1 << 16);
  let arena32 = new Int32Array(arena.buffer);
  let arena64 = new Float64Array(arena.buffer);
  let arenaLen = 0;
  const rowAt: number[] = []; // arena offset of each row
  const rowStacks: number[] = []; // model stack of each row
  // Full-hash table: (hash, arena offset) pairs, -1 = empty.
  let tableMask = (1 << 12) - 1;
  let table = new Int32Array((tableMask + 1) * 2).fill(-1);
  // Fingerprint → arena offset of the last stack seen with that fingerprint (-1: none).
  const GUESS_BITS = 18;
  const guess = new Int32Array(1 << GUESS_BITS).fill(-1);

  const addToArena = (s: number, len: number, row: number): number => {
    const need = HEAD + ((len + 7) & ~7);
    if (arenaLen + need > arena.length) {
      const g = new Uint8Array(Math.max(arena.length * 2, arenaLen + need));
      g.set(arena.subarray(0, arenaLen));
      arena = g;
      arena32 = new Int32Array(arena.buffer);
      arena64 = new Float64Array(arena.buffer);
    }
    const at = arenaLen;
    arena32[at >> 2] = len;
    arena32[(at >> 2) + 1] = row;
    arena64[(at >> 3) + 1] = 0;
    arena64[(at >> 3) + 2] = 0;
    const w0 = (at + HEAD) >> 2;
    const words = len >> 2;
    for (let w = 0; w < words; w++) arena32[w0 + w] = dv.getInt32(s + 4 * w, true);
    for (let k = words * 4; k < len; k++) arena[at + HEAD + k] = buf[s + k]!;
    arenaLen += need;
    return at;
  };
  /**
   * Whether the arena entry at `at` holds exactly buf[s, s+len). Compared 8 bytes at a time
   * as float64: equal floats have equal bits except +0/-0, and NaN is never equal, so those
   * two cases get an exact int32 check.
   */
  const sameBytes = (at: number, s: number, len: number): boolean => {
    if (arena32[at >> 2] !== len) return false;
    const a64 = arena64;
    const d0 = (at + HEAD) >> 3;
    const dwords = len >> 3;
    // Stacks with a common fingerprint often share their root: look at the leaf end first.
    if (dwords > 0) {
      const x = a64[d0 + dwords - 1]!;
      if (x !== dv.getFloat64(s + 8 * (dwords - 1), true) && x === x) return false;
    }
    for (let w = 0; w < dwords; w++) {
      const x = a64[d0 + w]!;
      if (x !== dv.getFloat64(s + 8 * w, true) || x === 0) {
        const i0 = 2 * (d0 + w);
        if (arena32[i0] !== dv.getInt32(s + 8 * w, true) || arena32[i0 + 1] !== dv.getInt32(s + 8 * w + 4, true)) return false;
      }
    }
    const a8 = arena;
    for (let k = dwords * 8, a = at + HEAD; k < len; k++) if (a8[a + k] !== buf[s + k]) return false;
    return true;
  };
  const growTable = () => {
    const old = table;
    tableMask = tableMask * 2 + 1;
    table = new Int32Array((tableMask + 1) * 2).fill(-1);
    for (let j = 0; j < old.length; j += 2) {
      if (old[j + 1] === -1) continue;
      let slot = old[j]! & tableMask;
      while (table[slot * 2 + 1] !== -1) slot = (slot + 1) & tableMask;
      table[slot * 2] = old[j]!;
      table[slot * 2 + 1] = old[j + 1]!;
    }
  };

  // Frames of new stacks are looked up by their bytes too (hash + compare against a copy),
  // so a stack is never decoded as a whole: only a frame seen for the first time is.
  const frameCache = new Map<string, number>();
  let fMask = (1 << 10) - 1;
  let fTable = new Int32Array((fMask + 1) * 4).fill(-1); // (hash, frame, arena offset, length)
  let fCount = 0;
  let fArena = new Uint8Array(1 << 14);
  let fArenaLen = 0;
  /** Frame of the bytes buf[fs, fe), whose FNV-1a hash is `h0`. */
  const frameAt = (fs: number, fe: number, h0: number): number => {
    const h = h0 ^ (h0 >>> 15);
    const len = fe - fs;
    let slot = h & fMask;
    for (;;) {
      const base = slot * 4;
      const f = fTable[base + 1]!;
      if (f === -1) break;
      if (fTable[base] === h && fTable[base + 3] === len) {
        const at = fTable[base + 2]!;
        let q = 0;
        while (q < len && fArena[at + q] === buf[fs + q]) q++;
        if (q === len) return f;
      }
      slot = (slot + 1) & fMask;
    }
    // New frame bytes: decode, intern (two spellings may give one model frame), remember.
    const text = buf.toString('utf8', fs, fe);
    let f = frameCache.get(text);
    if (f === undefined) {
      f = b!.frame(foldedFrameSpec(text));
      frameCache.set(text, f);
    }
    if (fArenaLen + len > fArena.length) {
      const g = new Uint8Array(Math.max(fArena.length * 2, fArenaLen + len));
      g.set(fArena.subarray(0, fArenaLen));
      fArena = g;
    }
    fArena.set(buf.subarray(fs, fe), fArenaLen);
    const base = slot * 4;
    fTable[base] = h;
    fTable[base + 1] = f;
    fTable[base + 2] = fArenaLen;
    fTable[base + 3] = len;
    fArenaLen += len;
    if (++fCount * 2 > fMask) {
      const old = fTable;
      fMask = fMask * 2 + 1;
      fTable = new Int32Array((fMask + 1) * 4).fill(-1);
      for (let j = 0; j < old.length; j += 4) {
        if (old[j + 1] === -1) continue;
        let sl = old[j]! & fMask;
        while (fTable[sl * 4 + 1] !== -1) sl = (sl + 1) & fMask;
        fTable.set(old.subarray(j, j + 4), sl * 4);
      }
    }
    return f;
  };
  // A small direct-mapped cache of (parent, frame) → stack in front of the builder: the
  // shared upper part of new stacks is found here (it fits the CPU cache) instead of in the
  // builder's large interning table.
  const NODE_BITS = 16;
  const nodeCache = new Int32Array(3 << NODE_BITS).fill(-2);
  const node = (parent: number, frame: number): number => {
    const slot = ((Math.imul(parent + 1, 0x9e3779b1) ^ Math.imul(frame, 0x85ebca6b)) >>> (32 - NODE_BITS)) * 3;
    if (nodeCache[slot] === parent && nodeCache[slot + 1] === frame) return nodeCache[slot + 2]!;
    const st = b!.stack(parent, frame);
    nodeCache[slot] = parent;
    nodeCache[slot + 1] = frame;
    nodeCache[slot + 2] = st;
    return st;
  };
  /** Model stack of the frames in buf[s, se) (split at ";", each frame hashed on the way). */
  const stackAt = (s: number, se: number): number => {
    if (se === s) return -1;
    let st = -1;
    let fs = s;
    let h = 0x811c9dc5;
    for (let q = s; q < se; q++) {
      const c = buf[q]!;
      if (c === 59 /* ; */) {
        st = node(st, frameAt(fs, q, h));
        fs = q + 1;
        h = 0x811c9dc5;
      } else h = Math.imul(h ^ c, 0x01000193);
    }
    return node(st, frameAt(fs, se, h));
  };

  /** Find or add the stack buf[s, se) with full hash h; returns its arena offset. */
  const resolve = (s: number, se: number, h: number): number => {
    const len = se - s;
    let slot = h & tableMask;
    for (;;) {
      const at = table[slot * 2 + 1]!;
      if (at === -1) break;
      if (table[slot * 2] === h && sameBytes(at, s, len)) return at;
      slot = (slot + 1) & tableMask;
    }
    // A new stack: copy it, build it.
    const row = rowAt.length;
    const at = addToArena(s, len, row);
    rowAt.push(at);
    rowStacks.push(stackAt(s, se));
    table[slot * 2] = h;
    table[slot * 2 + 1] = at;
    if (rowAt.length * 2 > tableMask) growTable();
    return at;
  };
  // Lines go through in batches of BATCH: first each line's fingerprint is computed, then
  // the fingerprint slots, the arena entries they name, and later the hash-table slots and
  // entries of the lines that still need them, are touched in tight loops whose loads do
  // not depend on each other, so the CPU overlaps the cache misses instead of paying them
  // one after the other; then the lines are matched in order.
  const BATCH = 256;
  const bS = new Int32Array(BATCH);
  const bSE = new Int32Array(BATCH);
  const bH = new Int32Array(BATCH);
  const bG = new Int32Array(BATCH);
  const bLast = new Float64Array(BATCH);
  const bFirst = new Float64Array(BATCH);
  const pending = new Int32Array(BATCH);
  let bn = 0;
  const flush = (): void => {
    let sink = 0;
    for (let q = 0; q < bn; q++) if (bG[q]! >= 0) sink += guess[bG[q]!]!;
    for (let q = 0; q < bn; q++) {
      if (bG[q]! < 0) continue;
      const at = guess[bG[q]!]!;
      if (at < 0) continue;
      const end = at + HEAD + bSE[q]! - bS[q]!;
      for (let x = at; x < end; x += 64) sink += arena[x]!;
    }
    // Fingerprint hits; the others get a full hash.
    let np = 0;
    for (let q = 0; q < bn; q++) {
      const s = bS[q]!;
      const se = bSE[q]!;
      const len = se - s;
      const at = bG[q]! >= 0 ? guess[bG[q]!]! : -1;
      if (at >= 0 && sameBytes(at, s, len)) {
        arena64[(at >> 3) + 1] += bLast[q]!;
        arena64[(at >> 3) + 2] += bFirst[q]!;
        continue;
      }
      // Two independent lanes of 4 bytes: a shorter multiply dependency chain.
      let h = Math.imul(len, 0x9e3779b1);
      let h2 = 0x27d4eb2f;
      let k = s;
      for (const end8 = se - 7; k < end8; k += 8) {
        h = Math.imul(h ^ dv.getInt32(k, true), 0x5bd1e995);
        h2 = Math.imul(h2 ^ dv.getInt32(k + 4, true), 0x5bd1e995);
        h ^= h >>> 15;
        h2 ^= h2 >>> 13;
      }
      for (; k < se; k++) h = Math.imul(h ^ buf[k]!, 0x5bd1e995);
      h = Math.imul(h ^ (h2 + (h2 << 7)), 0x85ebca6b);
      bH[q] = h ^ (h >>> 16);
      pending[np++] = q;
    }
    for (let j = 0; j < np; j++) sink += table[(bH[pending[j]!]! & tableMask) * 2 + 1]!;
    for (let j = 0; j < np; j++) {
      const q = pending[j]!;
      const slot = bH[q]! & tableMask;
      const at = table[slot * 2 + 1]!;
      if (at < 0 || table[slot * 2] !== bH[q]) continue;
      const end = at + HEAD + bSE[q]! - bS[q]!;
      for (let x = at; x < end; x += 64) sink += arena[x]!;
    }
    prefetchSink = sink;
    for (let j = 0; j < np; j++) {
      const q = pending[j]!;
      const at = resolve(bS[q]!, bSE[q]!, bH[q]!);
      arena64[(at >> 3) + 1] += bLast[q]!;
      arena64[(at >> 3) + 2] += bFirst[q]!;
      if (bG[q]! >= 0) guess[bG[q]!] = at;
    }
    bn = 0;
  };

  while (pos < n) {
    let nl = buf.indexOf(LF, pos);
    if (nl < 0) nl = n;
    line++;
    const s = pos;
    let e = nl;
    pos = nl + 1;
    while (e > s && isWsByte(buf[e - 1]!)) e--;
    if (e === s || buf[s] === HASH) continue;
    // The count: the last whitespace-separated token.
    let i = e - 1;
    while (i >= s && !isWsByte(buf[i]!)) i--;
    const last = i >= s ? parseCountBytes(buf, i + 1, e) : NaN;
    if (Number.isNaN(last)) {
      if (differential === undefined) return NOT_MINE;
      throw foldedError(file, line, `expected "stack count" but the line has no count`);
    }
    let se = i;
    while (se > s && isWsByte(buf[se - 1]!)) se--;
    let first = 0;
    if (differential !== false) {
      // A second number before the count means "stack before after" (decided on the first line).
      let j = se - 1;
      while (j >= s && !isWsByte(buf[j]!)) j--;
      const second = j >= s ? parseCountBytes(buf, j + 1, se) : NaN;
      if (differential === undefined) {
        differential = !Number.isNaN(second);
        b = new ProfileBuilder({
          meta: { backend: 'unknown', mode: 'unknown' },
          valueTypes: differential ? [{ name: 'before', unit: 'samples' }, { name: 'after', unit: 'samples' }] : [{ name: 'samples', unit: 'samples' }],
          defaultValue: differential ? 1 : 0,
          timed: false,
        });
      } else if (Number.isNaN(second)) {
        throw foldedError(file, line, `expected "stack before after" (a differential file) but the line has only one count`);
      }
      if (differential) {
        first = second;
        se = j;
        while (se > s && isWsByte(buf[se - 1]!)) se--;
      }
    }
    // Fingerprint of a few words: names a candidate arena entry (the last stack seen with
    // it), so a stack seen before is matched without a full hash or the table.
    const len = se - s;
    let g = -1;
    if (len >= 16) {
      const q = len >> 2;
      g = Math.imul(len ^ dv.getInt32(s, true), 0x9e3779b1);
      g = Math.imul(g ^ dv.getInt32(se - 4, true), 0x5bd1e995);
      g = Math.imul(g ^ dv.getInt32(s + q, true), 0x85ebca6b);
      g = Math.imul(g ^ dv.getInt32(s + 2 * q, true), 0x5bd1e995);
      g = Math.imul(g ^ dv.getInt32(s + 3 * q, true), 0x9e3779b1);
      g = g >>> (32 - GUESS_BITS);
    }
    bS[bn] = s;
    bSE[bn] = se;
    bG[bn] = g;
    bLast[bn] = last;
    bFirst[bn] = first;
    if (++bn === BATCH) flush();
  }
  flush();
  if (!b) return NOT_MINE;
  const t = b.thread(0, 0);
  let total = 0;
  const vals = [0, 0];
  for (let r = 0; r < rowAt.length; r++) {
    const d = rowAt[r]! >> 3;
    const count = arena64[d + 1]!;
    total += count;
    if (differential) {
      vals[0] = arena64[d + 2]!;
      vals[1] = count;
      b.sample(rowStacks[r]!, vals, t);
    } else b.sample(rowStacks[r]!, count, t);
  }
  b.meta.sampleCount = Math.round(total);
  return b.build();
}

export const foldedImporter: Importer = {
  id: 'folded',
  extensions: ['.folded', '.collapsed', '.stacks'],
  detect(input: InputFile): boolean {
    const head = input.head();
    if (looksBinary(head)) return false;
    const t = head.trimStart();
    if (t.startsWith('{') || t.startsWith('[')) return false;
    return mostLinesMatch(headLines(head, 8, input.bytes.length <= 4096), endsWithCount);
  },
  parse(input: InputFile): Profile | NotMine {
    const head = input.head(512);
    if (looksBinary(head)) return NOT_MINE;
    return parseFolded(input.bytes, input.label);
  },
};

// ---------------------------------------------------------------------------------------
// Folded export
// ---------------------------------------------------------------------------------------

/** Smallest 10^k (k ≤ 6) that makes every value an integer to 1e-6; 1 when they already are. */
export function integerScale(values: readonly number[]): number {
  for (let k = 0, scale = 1; k <= 6; k++, scale *= 10) {
    let ok = true;
    for (const v of values) {
      const x = v * scale;
      const err = Math.abs(x - Math.round(x));
      if (err > 1e-6 && err > 1e-9 * Math.abs(x)) {
        ok = false;
        break;
      }
    }
    if (ok) return scale;
  }
  return 1e6;
}

export function writeFolded(p: Profile, opts: ExportOptions = {}): string {
  const lines = foldedStacks(p, { valueIndex: opts.valueIndex ?? p.defaultValue, lineno: opts.lineno ?? true, fullFilenames: opts.fullFilenames ?? false });
  const scale = integerScale(lines.map(([, v]) => v));
  const out: string[] = [];
  for (const [stack, v] of lines) out.push(`${stack} ${Math.round(v * scale)}`);
  return out.length ? out.join('\n') + '\n' : '';
}

export const foldedExporter: Exporter = {
  id: 'folded',
  extension: '.folded',
  extensions: ['.collapsed'],
  lossless: false,
  write: (p: Profile, opts?: ExportOptions) => writeFolded(p, opts),
};
