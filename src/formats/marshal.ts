/**
 * A decoder for Python's `marshal` format (CPython `Python/marshal.c`, versions 2–5 as
 * written by CPython 3.4+), enough to read pstats dumps and anything built from plain
 * values. Input is untrusted: every read is bounds-checked and every problem is reported
 * through the caller's `fail(offset, message)` with the byte offset; nesting is capped
 * (at 1000, CPython's MAX_MARSHAL_STACK_DEPTH is 2000), so no RangeError and no hang.
 *
 * Encoding (all little-endian): one type byte per object; bit 0x80 (FLAG_REF) says "append
 * this object to the refs list" — containers and code objects take their index *before*
 * their children are read, scalars after; `r` + u32 refers back to refs[n].
 *
 * Python values map to JS as:
 *   None → null, True/False → boolean, int → number (bigint beyond ±2^53), float → number,
 *   str → string (UTF-8 with surrogatepass; `a/A/z/Z` are Latin-1), bytes → Uint8Array,
 *   tuple/list/set/frozenset/dict/complex/code/slice/StopIteration/Ellipsis → tagged objects.
 * Code objects (`c`) are read for the 3.8–3.10 and 3.11+ layouts (and 3.7's); only
 * name, qualname, filename and first line are kept.
 */

export type MarshalValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | MarshalTuple
  | MarshalList
  | MarshalDict
  | MarshalSet
  | MarshalComplex
  | MarshalCode
  | MarshalSlice
  | MarshalSingleton;

export interface MarshalTuple { type: 'tuple'; items: MarshalValue[] }
export interface MarshalList { type: 'list'; items: MarshalValue[] }
/** Entries in file order; keys may be any hashable value, compare with `marshalKey`. */
export interface MarshalDict { type: 'dict'; entries: Array<[MarshalValue, MarshalValue]> }
export interface MarshalSet { type: 'set' | 'frozenset'; items: MarshalValue[] }
export interface MarshalComplex { type: 'complex'; real: number; imag: number }
export interface MarshalCode { type: 'code'; name: string; qualname: string; filename: string; firstlineno: number }
export interface MarshalSlice { type: 'slice'; start: MarshalValue; stop: MarshalValue; step: MarshalValue }
export interface MarshalSingleton { type: 'StopIteration' | 'Ellipsis' }

export type MarshalObject = Exclude<MarshalValue, null | boolean | number | bigint | string | Uint8Array>;

/** Throws; `offset` is the byte offset of the problem. */
export type MarshalFail = (offset: number, message: string) => never;

export function isTuple(v: MarshalValue): v is MarshalTuple {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && v.type === 'tuple';
}
export function isDict(v: MarshalValue): v is MarshalDict {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && v.type === 'dict';
}
export function isCode(v: MarshalValue): v is MarshalCode {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && v.type === 'code';
}

/** A canonical string for a hashable value, for dict lookups (`1` and `1.0` and `True` collide as in Python). */
export function marshalKey(v: MarshalValue, seen: Set<object> = new Set()): string {
  if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
    if (seen.has(v)) return '…'; // a container that holds itself (possible in marshal data)
    seen = new Set(seen).add(v);
  }
  const key = (x: MarshalValue) => marshalKey(x, seen);
  if (v === null) return 'N';
  if (typeof v === 'boolean') return `n${v ? 1 : 0}`;
  if (typeof v === 'number') return `n${v}`;
  if (typeof v === 'bigint') return `n${v}`;
  if (typeof v === 'string') return `s${JSON.stringify(v)}`;
  if (v instanceof Uint8Array) return `b${Array.from(v).join(',')}`;
  switch (v.type) {
    case 'tuple':
      return `(${v.items.map(key).join(',')})`;
    case 'frozenset':
      return `{${v.items.map(key).sort().join(',')}}`;
    case 'complex':
      return `c${v.real},${v.imag}`;
    case 'code':
      return `<code ${JSON.stringify(v.qualname)} ${JSON.stringify(v.filename)} ${v.firstlineno}>`;
    default:
      return `<${v.type}>`;
  }
}

/** CPython allows 2000 (MAX_MARSHAL_STACK_DEPTH); half leaves room on the JS stack. Real data nests < 20. */
const MAX_DEPTH = 1000;
const FLAG_REF = 0x80;
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Placeholder for a reserved ref slot whose object is still being read. */
const PENDING = Symbol('pending');

export interface MarshalResult {
  value: MarshalValue;
  /** Offset one past the object (trailing bytes are allowed, as marshal.load allows them). */
  end: number;
  /** Start offset of every container/object value, for error messages about its shape. */
  offsets: WeakMap<object, number>;
}

class Reader {
  readonly buf: Uint8Array;
  readonly view: DataView;
  pos = 0;
  depth = 0;
  readonly refs: Array<MarshalValue | typeof PENDING> = [];
  readonly offsets = new WeakMap<object, number>();
  readonly fail: MarshalFail;

  constructor(buf: Uint8Array, fail: MarshalFail) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.fail = fail;
  }

  need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) this.fail(this.pos, `file ends inside ${what} (needs ${n} bytes, ${this.buf.length - this.pos} left)`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  i32(what: string): number {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f64(what: string): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A non-negative i32 size no larger than what is left (each item needs ≥ minItem bytes). */
  size(what: string, minItem: number): number {
    const at = this.pos;
    const n = this.i32(`the size of ${what}`);
    if (n < 0) this.fail(at, `negative size ${n} for ${what}`);
    if (n * minItem > this.buf.length - this.pos) this.fail(at, `${what} of size ${n} runs past the end of the file`);
    return n;
  }

  take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  utf8(b: Uint8Array, at: number): string {
    try {
      return utf8Strict.decode(b);
    } catch {
      return decodeSurrogatePass(b, at, this.fail);
    }
  }

  textFloat(what: string): number {
    const n = this.u8(what);
    const at = this.pos;
    const s = latin1.decode(this.take(n, what));
    const t = s.trim().toLowerCase();
    const v = t === 'inf' || t === '+inf' ? Infinity : t === '-inf' ? -Infinity : t === 'nan' || t === '+nan' || t === '-nan' ? NaN : /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(t) ? Number(t) : undefined;
    if (v === undefined) this.fail(at, `bad float text ${JSON.stringify(s)}`);
    return v;
  }

  /** Reserve a ref slot now (for containers) if the type byte had FLAG_REF. */
  reserve(flag: boolean): number {
    if (!flag) return -1;
    this.refs.push(PENDING);
    return this.refs.length - 1;
  }

  fill<T extends MarshalValue>(idx: number, v: T): T {
    if (idx >= 0) this.refs[idx] = v;
    return v;
  }

  object(allowNull = false): MarshalValue | typeof PENDING {
    const at = this.pos;
    if (++this.depth > MAX_DEPTH) this.fail(at, `objects nested deeper than ${MAX_DEPTH}`);
    try {
      const code = this.u8('a type byte');
      const flag = (code & FLAG_REF) !== 0;
      const t = String.fromCharCode(code & ~FLAG_REF);
      const scalar = <T extends MarshalValue>(v: T): T => {
        if (flag) this.refs.push(v);
        return v;
      };
      switch (t) {
        case '0':
          if (!allowNull) this.fail(at, 'NULL object outside a dict');
          return PENDING; // dict terminator, handled by the caller
        case 'N': return scalar(null);
        case 'F': return scalar(false);
        case 'T': return scalar(true);
        case 'S': return scalar({ type: 'StopIteration' });
        case '.': return scalar({ type: 'Ellipsis' });
        case 'i': return scalar(this.i32('an int'));
        case 'I': {
          this.need(8, 'an int64');
          const v = this.view.getBigInt64(this.pos, true);
          this.pos += 8;
          return scalar(Number.isSafeInteger(Number(v)) ? Number(v) : v);
        }
        case 'l': return scalar(this.long(at));
        case 'g': return scalar(this.f64('a float'));
        case 'f': return scalar(this.textFloat('a float'));
        case 'y': {
          const real = this.f64('a complex');
          return scalar({ type: 'complex', real, imag: this.f64('a complex') });
        }
        case 'x': {
          const real = this.textFloat('a complex');
          return scalar({ type: 'complex', real, imag: this.textFloat('a complex') });
        }
        case 's': {
          const n = this.size('bytes', 1);
          return scalar(this.buf.slice(this.pos, (this.pos += n)));
        }
        case 'u':
        case 't': {
          const n = this.size('a string', 1);
          const s0 = this.pos;
          return scalar(this.utf8(this.take(n, 'a string'), s0));
        }
        case 'a':
        case 'A': {
          const n = this.size('a string', 1);
          return scalar(latin1.decode(this.take(n, 'a string')));
        }
        case 'z':
        case 'Z': {
          const n = this.u8('a string length');
          return scalar(latin1.decode(this.take(n, 'a string')));
        }
        case ')':
        case '(': {
          const n = t === ')' ? this.u8('a tuple size') : this.size('a tuple', 1);
          const v: MarshalTuple = { type: 'tuple', items: [] };
          this.offsets.set(v, at);
          const idx = this.reserve(flag);
          this.fill(idx, v);
          for (let i = 0; i < n; i++) v.items.push(this.child(`tuple item ${i}`));
          return v;
        }
        case '[': {
          const n = this.size('a list', 1);
          const v: MarshalList = { type: 'list', items: [] };
          this.offsets.set(v, at);
          this.fill(this.reserve(flag), v);
          for (let i = 0; i < n; i++) v.items.push(this.child(`list item ${i}`));
          return v;
        }
        case '<':
        case '>': {
          const n = this.size('a set', 1);
          const v: MarshalSet = { type: t === '<' ? 'set' : 'frozenset', items: [] };
          this.offsets.set(v, at);
          const idx = this.reserve(flag);
          if (t === '<') this.fill(idx, v); // a frozenset is inserted once complete
          for (let i = 0; i < n; i++) v.items.push(this.child(`set item ${i}`));
          return this.fill(idx, v);
        }
        case '{': {
          const v: MarshalDict = { type: 'dict', entries: [] };
          this.offsets.set(v, at);
          this.fill(this.reserve(flag), v);
          for (;;) {
            const k = this.object(true);
            if (k === PENDING) break;
            const val = this.object(true);
            if (val === PENDING) break; // CPython stops quietly here too
            v.entries.push([k, val]);
          }
          return v;
        }
        case ':': {
          const idx = this.reserve(flag);
          const start = this.child('slice start');
          const stop = this.child('slice stop');
          const step = this.child('slice step');
          const v: MarshalSlice = { type: 'slice', start, stop, step };
          this.offsets.set(v, at);
          return this.fill(idx, v);
        }
        case 'c': {
          const idx = this.reserve(flag);
          const v = this.code(at);
          this.offsets.set(v, at);
          return this.fill(idx, v);
        }
        case 'r': {
          const n = this.i32('a reference');
          if (n < 0 || n >= this.refs.length) this.fail(at, `reference ${n} to an object not yet read (${this.refs.length} so far)`);
          const v = this.refs[n]!;
          if (v === PENDING) this.fail(at, `reference ${n} to an object still being read`);
          return v;
        }
        default:
          this.fail(at, `unknown marshal type byte 0x${code.toString(16).padStart(2, '0')}${code >= 0x20 && code < 0x7f ? ` ('${t}')` : ''}`);
      }
    } finally {
      this.depth--;
    }
  }

  child(what: string): MarshalValue {
    const at = this.pos;
    const v = this.object();
    if (v === PENDING) this.fail(at, `NULL object as ${what}`);
    return v;
  }

  long(at: number): number | bigint {
    const n = this.i32('a long');
    if (n < -0x7fffffff || Math.abs(n) > this.buf.length) this.fail(at, `long with ${n} digits runs past the end of the file`);
    const count = Math.abs(n);
    this.need(2 * count, 'a long');
    let v = 0n;
    for (let i = count - 1; i >= 0; i--) {
      const d = this.view.getUint16(this.pos + 2 * i, true);
      if (d > 0x7fff) this.fail(this.pos + 2 * i, `long digit ${d} out of range`);
      if (i === count - 1 && d === 0) this.fail(this.pos + 2 * i, 'unnormalized long (leading zero digit)');
      v = (v << 15n) | BigInt(d);
    }
    this.pos += 2 * count;
    if (n < 0) v = -v;
    const num = Number(v);
    return Number.isSafeInteger(num) ? num : v;
  }

  /**
   * A code object. Layouts (marshal.c w_object, TYPE_CODE):
   *   3.11+:    5×i32 (argcount, posonly, kwonly, stacksize, flags), code, consts, names,
   *             localsplusnames, localspluskinds, filename, name, qualname, i32 firstlineno,
   *             linetable, exceptiontable
   *   3.8–3.10: 6×i32 (argcount, posonly, kwonly, nlocals, stacksize, flags), code, consts,
   *             names, varnames, freevars, cellvars, filename, name, i32 firstlineno, lnotab
   *   3.7:      5×i32 (no posonly), then as 3.8
   * The file does not say which; try each and keep the one whose fields have the right types.
   */
  code(at: number): MarshalCode {
    const start = this.pos;
    const refs = this.refs.length;
    let firstError: unknown;
    for (const layout of ['3.11', '3.8', '3.7'] as const) {
      try {
        const c = this.codeLayout(layout);
        if (c) return c;
      } catch (e) {
        firstError ??= e;
      }
      this.pos = start;
      this.refs.length = refs;
    }
    if (firstError) throw firstError;
    this.fail(at, 'code object in no known CPython layout (3.7–3.13)');
  }

  private codeLayout(layout: '3.11' | '3.8' | '3.7'): MarshalCode | null {
    const ints = layout === '3.8' ? 6 : 5;
    for (let i = 0; i < ints; i++) this.i32('a code object header');
    const isBytes = (v: MarshalValue) => v instanceof Uint8Array;
    const isStr = (v: MarshalValue): v is string => typeof v === 'string';
    if (!isBytes(this.child('co_code'))) return null;
    if (!isTuple(this.child('co_consts'))) return null;
    if (!isTuple(this.child('co_names'))) return null;
    let qualname: MarshalValue;
    let filename: MarshalValue;
    let name: MarshalValue;
    if (layout === '3.11') {
      if (!isTuple(this.child('co_localsplusnames'))) return null;
      if (!isBytes(this.child('co_localspluskinds'))) return null;
      filename = this.child('co_filename');
      name = this.child('co_name');
      qualname = this.child('co_qualname');
    } else {
      for (const f of ['co_varnames', 'co_freevars', 'co_cellvars']) if (!isTuple(this.child(f))) return null;
      filename = this.child('co_filename');
      name = this.child('co_name');
      qualname = name;
    }
    if (!isStr(filename) || !isStr(name) || !isStr(qualname)) return null;
    const firstlineno = this.i32('co_firstlineno');
    if (!isBytes(this.child('co_linetable'))) return null;
    if (layout === '3.11' && !isBytes(this.child('co_exceptiontable'))) return null;
    return { type: 'code', name, qualname, filename, firstlineno };
  }
}

/** UTF-8 that may hold lone surrogates (CPython writes str with "surrogatepass"). */
function decodeSurrogatePass(b: Uint8Array, at: number, fail: MarshalFail): string {
  let out = '';
  let i = 0;
  const bad = () => fail(at + i, 'invalid UTF-8 in a string');
  const cont = (k: number) => {
    if (i + k >= b.length || (b[i + k]! & 0xc0) !== 0x80) bad();
    return b[i + k]! & 0x3f;
  };
  while (i < b.length) {
    const c = b[i]!;
    let cp: number;
    let len: number;
    if (c < 0x80) (cp = c), (len = 1);
    else if (c >= 0xc2 && c < 0xe0) (cp = ((c & 0x1f) << 6) | cont(1)), (len = 2);
    else if (c >= 0xe0 && c < 0xf0) {
      cp = ((c & 0x0f) << 12) | (cont(1) << 6) | cont(2);
      len = 3;
      if (cp < 0x800) bad();
    } else if (c >= 0xf0 && c < 0xf5) {
      cp = ((c & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
      len = 4;
      if (cp < 0x10000 || cp > 0x10ffff) bad();
    } else bad();
    out += String.fromCodePoint(cp!);
    i += len!;
  }
  return out;
}

/** Decode one marshalled object from the start of `buf`. */
export function decodeMarshal(buf: Uint8Array, fail: MarshalFail): MarshalResult {
  const r = new Reader(buf, fail);
  let value: ReturnType<Reader['object']>;
  try {
    value = r.object();
  } catch (e) {
    // Backstop for a caller that is itself deep in the stack: report, do not crash.
    if (e instanceof RangeError && /call stack/i.test(e.message)) fail(r.pos, 'objects nested too deeply');
    throw e;
  }
  if (value === PENDING) fail(0, 'NULL object at top level');
  return { value, end: r.pos, offsets: r.offsets };
}

// ---------------------------------------------------------------------------------------
// Writer

/** A float to write as one even when its value is integral (a JS number otherwise writes as int if it is one). */
export interface MarshalFloat { type: 'float'; value: number }

/** What encodeMarshal writes: the decoder's values (code objects, slices and complex excepted) plus explicit floats. */
export type MarshalWritable =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | MarshalFloat
  | { type: 'tuple' | 'list' | 'set' | 'frozenset'; items: MarshalWritable[] }
  | { type: 'dict'; entries: Array<[MarshalWritable, MarshalWritable]> };

/**
 * Encode one object in marshal version 4 without references (what `marshal.loads` reads on
 * every CPython 3.4+): ints in range as `i`, larger as `l`, floats as `g`, str as `u` (UTF-8,
 * lone surrogates as surrogatepass), tuples `(`, lists `[`, dicts `{…0`, sets `<`/`>`.
 */
export function encodeMarshal(v: MarshalWritable): Uint8Array {
  const chunks: Uint8Array[] = [];
  let buf = new Uint8Array(1 << 16);
  let view = new DataView(buf.buffer);
  let pos = 0;
  const need = (n: number) => {
    if (pos + n <= buf.length) return;
    chunks.push(buf.subarray(0, pos));
    buf = new Uint8Array(Math.max(1 << 16, n));
    view = new DataView(buf.buffer);
    pos = 0;
  };
  const u8 = (b: number) => {
    need(1);
    buf[pos++] = b;
  };
  const i32 = (n: number) => {
    need(4);
    view.setInt32(pos, n, true);
    pos += 4;
  };
  const bytes = (b: Uint8Array) => {
    need(b.length);
    buf.set(b, pos);
    pos += b.length;
  };
  const long = (x: bigint) => {
    const neg = x < 0n;
    let a = neg ? -x : x;
    const digits: number[] = [];
    while (a > 0n) {
      digits.push(Number(a & 0x7fffn));
      a >>= 15n;
    }
    u8(0x6c); // 'l'
    i32(neg ? -digits.length : digits.length);
    need(2 * digits.length);
    for (const d of digits) {
      view.setUint16(pos, d, true);
      pos += 2;
    }
  };
  const float = (x: number) => {
    u8(0x67); // 'g'
    need(8);
    view.setFloat64(pos, x, true);
    pos += 8;
  };
  const write = (x: MarshalWritable, depth: number): void => {
    if (depth > 1000) throw new RangeError('marshal: objects nested too deeply');
    if (x === null) return u8(0x4e); // 'N'
    if (x === true) return u8(0x54); // 'T'
    if (x === false) return u8(0x46); // 'F'
    if (typeof x === 'number') {
      if (Number.isInteger(x) && x >= -0x80000000 && x <= 0x7fffffff) {
        u8(0x69); // 'i'
        return i32(x);
      }
      if (Number.isSafeInteger(x)) return long(BigInt(x));
      return float(x);
    }
    if (typeof x === 'bigint') {
      if (x >= -0x80000000n && x <= 0x7fffffffn) {
        u8(0x69);
        return i32(Number(x));
      }
      return long(x);
    }
    if (typeof x === 'string') {
      const b = encodeSurrogatePass(x);
      u8(0x75); // 'u'
      i32(b.length);
      return bytes(b);
    }
    if (x instanceof Uint8Array) {
      u8(0x73); // 's'
      i32(x.length);
      return bytes(x);
    }
    switch (x.type) {
      case 'float':
        return float(x.value);
      case 'tuple':
      case 'list':
      case 'set':
      case 'frozenset':
        u8(x.type === 'tuple' ? 0x28 : x.type === 'list' ? 0x5b : x.type === 'set' ? 0x3c : 0x3e);
        i32(x.items.length);
        for (const it of x.items) write(it, depth + 1);
        return;
      case 'dict':
        u8(0x7b); // '{'
        for (const [k, val] of x.entries) {
          write(k, depth + 1);
          write(val, depth + 1);
        }
        return u8(0x30); // '0' (NULL): end of dict
    }
  };
  write(v, 0);
  chunks.push(buf.subarray(0, pos));
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** UTF-8 that keeps lone surrogates (CPython's "surrogatepass"). */
function encodeSurrogatePass(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < s.length) {
      const lo = s.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo < 0xe000) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return Uint8Array.from(out);
}
