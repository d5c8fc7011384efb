/**
 * Line numbers from a code object's line table, as the sampler reads them out of a
 * target process: the raw bytes of `co_lnotab` (3.8/3.9) or `co_linetable` (3.10+), the
 * code object's `co_firstlineno`, and the byte offset of the current instruction.
 * Pure functions, no process access. Formats (CPython `Objects/lnotab_notes.txt`,
 * `Objects/locations.md`, docs/cpython-internals.md §4–5):
 *
 * - 3.8/3.9 `co_lnotab`: pairs (address increment u8, line increment i8). The line of
 *   offset o is firstlineno plus the line increments of every pair whose cumulative
 *   address is ≤ o (CPython's `PyCode_Addr2Line`).
 * - 3.10 `co_linetable`: pairs (byte-range length u8, line delta i8); each pair is the
 *   range [start, end) with start = previous end; a line delta of −128 means "no line"
 *   for that range and leaves the running line unchanged.
 * - 3.11+ location table: entries of a header byte (bit 7 set; code = bits 3–6, length
 *   = bits 0–2 + 1 code units of 2 bytes) followed by bytes with bit 7 clear. Codes
 *   0–9 keep the line, 10–12 add code − 10, 13 and 14 add a signed varint (14 then
 *   carries end line and columns, skipped), 15 means "no location".
 *
 * The answer is the range with start ≤ offset < end (zero-length ranges never match);
 * `null` when the range has no line or no range covers the offset (3.10+).
 */

/** Byte offset of an instruction from the start of the bytecode. */
export type BytecodeOffset = number;
/** 1-based source line number. */
export type LineNumber = number;

/** A run of bytecode [start, end) that maps to one line (`null`: no line). */
export interface LineRange {
  start: BytecodeOffset;
  end: BytecodeOffset;
  line: LineNumber | null;
}

/**
 * The line of the instruction at `offset` bytes into the bytecode of a code object of
 * CPython 3.`minor` (3.8 and later), or null when it has none. For 3.10 pass
 * 2 × `f_lasti` (f_lasti counts code units); for 3.11+ `instr_ptr − co_code_adaptive`.
 */
export function lineForOffset(minor: number, table: Uint8Array, firstLineNo: LineNumber, offset: BytecodeOffset): LineNumber | null {
  if (minor < 10) return lnotabLine(table, firstLineNo, offset);
  let found: LineNumber | null = null;
  if (offset >= 0) {
    scanRanges(minor, table, firstLineNo, (start, end, line) => {
      if (offset < start) return true;
      if (offset < end) {
        found = line;
        return true;
      }
      return false;
    });
  }
  return found;
}

/**
 * The whole table decoded into consecutive ranges, in order (zero-length ranges
 * dropped). Decode once per code object and cache; look offsets up with `lineInRanges`.
 */
export function lineRanges(minor: number, table: Uint8Array, firstLineNo: LineNumber): LineRange[] {
  if (minor < 10) return lnotabRanges(table, firstLineNo);
  const out: LineRange[] = [];
  scanRanges(minor, table, firstLineNo, (start, end, line) => {
    if (end > start) pushRange(out, start, end, line);
    return false;
  });
  return out;
}

/** Called for each range in table order; return true to stop. */
type RangeVisitor = (start: BytecodeOffset, end: BytecodeOffset, line: LineNumber | null) => boolean;

function scanRanges(minor: number, table: Uint8Array, firstLineNo: LineNumber, visit: RangeVisitor): void {
  if (minor === 10) scanLinetable310(table, firstLineNo, visit);
  else scanLocationTable(table, firstLineNo, visit);
}

/** Binary search in the output of `lineRanges`. */
export function lineInRanges(ranges: readonly LineRange[], offset: BytecodeOffset): LineNumber | null {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = ranges[mid]!;
    if (offset < r.start) hi = mid - 1;
    else if (offset >= r.end) lo = mid + 1;
    else return r.line;
  }
  return null;
}

function signedByte(b: number): number {
  return b >= 0x80 ? b - 0x100 : b;
}

function lnotabLine(table: Uint8Array, firstLineNo: LineNumber, offset: BytecodeOffset): LineNumber {
  let line = firstLineNo;
  let addr = 0;
  for (let i = 0; i + 1 < table.length; i += 2) {
    addr += table[i]!;
    if (addr > offset) break;
    line += signedByte(table[i + 1]!);
  }
  return line;
}

/** 3.8/3.9: the last range is open-ended (end = Infinity), as `PyCode_Addr2Line` is. */
function lnotabRanges(table: Uint8Array, firstLineNo: LineNumber): LineRange[] {
  const out: LineRange[] = [];
  let line = firstLineNo;
  let start = 0;
  let addr = 0;
  for (let i = 0; i + 1 < table.length; i += 2) {
    const next = addr + table[i]!;
    if (next > start) {
      pushRange(out, start, next, line);
      start = next;
    }
    addr = next;
    line += signedByte(table[i + 1]!);
  }
  pushRange(out, start, Infinity, line);
  return out;
}

function scanLinetable310(table: Uint8Array, firstLineNo: LineNumber, visit: RangeVisitor): void {
  let line = firstLineNo;
  let end = 0;
  for (let i = 0; i + 1 < table.length; i += 2) {
    const start = end;
    end += table[i]!;
    const delta = signedByte(table[i + 1]!);
    let rangeLine: LineNumber | null = null;
    if (delta !== -128) {
      line += delta;
      rangeLine = line;
    }
    if (visit(start, end, rangeLine)) return;
  }
}

function scanLocationTable(table: Uint8Array, firstLineNo: LineNumber, visit: RangeVisitor): void {
  let line = firstLineNo;
  let end = 0;
  let i = 0;
  while (i < table.length) {
    const header = table[i++]!;
    if ((header & 0x80) === 0) break; // corrupt table: stop rather than guess
    const code = (header >> 3) & 15;
    const start = end;
    end += ((header & 7) + 1) * 2;
    let rangeLine: LineNumber | null = line;
    if (code === 15) {
      rangeLine = null;
    } else if (code >= 13) {
      // 13: no columns; 14: long form (line delta, then end line and columns, skipped)
      let u = 0;
      let shift = 0;
      let b: number;
      do {
        b = table[i++] ?? 0;
        u |= (b & 63) << shift;
        shift += 6;
      } while (b & 64 && i < table.length);
      line += u & 1 ? -(u >>> 1) : u >>> 1;
      rangeLine = line;
    } else if (code >= 10) {
      line += code - 10;
      rangeLine = line;
    }
    while (i < table.length && (table[i]! & 0x80) === 0) i++;
    if (visit(start, end, rangeLine)) return;
  }
}

function pushRange(out: LineRange[], start: BytecodeOffset, end: BytecodeOffset, line: LineNumber | null): void {
  const last = out[out.length - 1];
  if (last && last.line === line && last.end === start) last.end = end;
  else out.push({ start, end, line });
}
