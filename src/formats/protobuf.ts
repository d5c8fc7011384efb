/**
 * A minimal protocol-buffers wire codec (https://protobuf.dev/programming-guides/encoding/),
 * enough for pprof: varints (int64/uint64 as JS numbers, exact up to 2^53), length-delimited
 * fields, packed and unpacked repeated scalars, and skipping of unknown fields.
 *
 * The reader treats its input as untrusted: every read is bounds-checked and a problem
 * is reported through the caller's `fail(offset, message)` (which throws, typically a
 * ParseError) with the absolute byte offset in the buffer. It never throws RangeError and
 * never loops without consuming input.
 */

/** Wire types. Groups (3, 4) are deprecated and rejected. */
export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Throws; `offset` is an absolute offset into the buffer being read. */
export type Fail = (offset: number, message: string) => never;

const TWO_32 = 4294967296;
const utf8 = new TextDecoder('utf-8');

export class ProtoReader {
  readonly buf: Uint8Array;
  /** Absolute offset of the next byte to read. */
  pos: number;
  /** Absolute offset one past the last byte of this message. */
  readonly end: number;
  /** Wire type of the tag read last. */
  wire = 0;
  /** Offset at which the tag read last starts. */
  tagStart = 0;
  private readonly fail: Fail;

  constructor(buf: Uint8Array, fail: Fail, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.fail = fail;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** Read a field tag; returns the field number and sets `wire`. */
  tag(): number {
    this.tagStart = this.pos;
    const t = this.uint64();
    const field = Math.floor(t / 8);
    this.wire = t % 8;
    if (field < 1 || field > 536870911) this.fail(this.tagStart, `invalid protobuf field number ${field}`);
    if (this.wire === 3 || this.wire === 4) this.fail(this.tagStart, `protobuf groups (wire type ${this.wire}) are not supported`);
    if (this.wire > 5) this.fail(this.tagStart, `invalid protobuf wire type ${this.wire}`);
    return field;
  }

  /** Raw varint as (lo, hi) 32-bit halves; at most 10 bytes. */
  private varint64(): [number, number] {
    const start = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; ; i++) {
      if (this.pos >= this.end) this.fail(start, 'truncated varint');
      if (i >= 10) this.fail(start, 'varint longer than 10 bytes');
      const b = this.buf[this.pos++]!;
      const v = b & 0x7f;
      if (i < 4) lo |= v << (7 * i);
      else if (i === 4) {
        lo |= (v & 0x0f) << 28;
        hi |= v >>> 4;
      } else hi |= v << (7 * i - 32);
      if ((b & 0x80) === 0) break;
    }
    return [lo >>> 0, hi];
  }

  /** uint64 as a number (exact below 2^53). */
  uint64(): number {
    const [lo, hi] = this.varint64();
    return (hi >>> 0) * TWO_32 + lo;
  }

  /** int64 (two's complement) as a number (exact within ±2^53). */
  int64(): number {
    const [lo, hi] = this.varint64();
    return (hi | 0) * TWO_32 + lo;
  }

  bool(): boolean {
    return this.uint64() !== 0;
  }

  /** Length of a length-delimited field, checked against the message end. */
  private length(): number {
    const at = this.pos;
    const n = this.uint64();
    if (n > this.end - this.pos) this.fail(at, `length ${n} runs past the end of the enclosing message (${this.end - this.pos} bytes left)`);
    return n;
  }

  bytes(): Uint8Array {
    const n = this.length();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    return utf8.decode(this.bytes());
  }

  /** A reader over the embedded message of the current length-delimited field. */
  message(): ProtoReader {
    const n = this.length();
    const sub = new ProtoReader(this.buf, this.fail, this.pos, this.pos + n);
    this.pos += n;
    return sub;
  }

  /** Check that the current field has the wire type a schema expects. */
  expect(field: number, ...wires: number[]): void {
    if (!wires.includes(this.wire)) this.fail(this.tagStart, `field ${field} has wire type ${this.wire}, expected ${wires.join(' or ')}`);
  }

  /** The current field as an int64 varint (checks the wire type). */
  int(field: number): number {
    this.expect(field, WIRE_VARINT);
    return this.int64();
  }

  /** The current field as a uint64 varint (checks the wire type). */
  uint(field: number): number {
    this.expect(field, WIRE_VARINT);
    return this.uint64();
  }

  /** The current field as an embedded message (checks the wire type). */
  sub(field: number): ProtoReader {
    this.expect(field, WIRE_LEN);
    return this.message();
  }

  /** Read a repeated scalar field, packed (LEN) or unpacked (VARINT), appending to `into`. */
  repeated(field: number, into: number[], signed: boolean): void {
    this.expect(field, WIRE_VARINT, WIRE_LEN);
    if (this.wire === WIRE_VARINT) {
      into.push(signed ? this.int64() : this.uint64());
      return;
    }
    const n = this.length();
    const sub = new ProtoReader(this.buf, this.fail, this.pos, this.pos + n);
    this.pos += n;
    while (!sub.done()) into.push(signed ? sub.int64() : sub.uint64());
  }

  /** Skip the value of the field whose tag was read last. */
  skip(): void {
    switch (this.wire) {
      case WIRE_VARINT:
        this.varint64();
        return;
      case WIRE_I64:
        if (this.end - this.pos < 8) this.fail(this.pos, 'truncated 64-bit field');
        this.pos += 8;
        return;
      case WIRE_I32:
        if (this.end - this.pos < 4) this.fail(this.pos, 'truncated 32-bit field');
        this.pos += 4;
        return;
      case WIRE_LEN: {
        const n = this.length(); // advances pos past the length prefix first
        this.pos += n;
        return;
      }
      default:
        this.fail(this.tagStart, `invalid protobuf wire type ${this.wire}`);
    }
  }
}

const utf8enc = new TextEncoder();

/** Growable buffer writer. Fields with default values are the caller's choice to omit. */
export class ProtoWriter {
  private buf = new Uint8Array(256);
  private n = 0;

  get length(): number {
    return this.n;
  }

  private ensure(extra: number): void {
    if (this.n + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.n + extra) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
  }

  /** Varint of an integer: non-negative or negative (int64 two's complement, 10 bytes), number or bigint. */
  varint(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && v < 0x80000000 && Number.isInteger(v)) {
      this.ensure(5);
      while (v >= 0x80) {
        this.buf[this.n++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      this.buf[this.n++] = v;
      return;
    }
    if (typeof v === 'number' && !Number.isFinite(v)) throw new RangeError(`cannot encode ${v} as a varint`);
    let b = BigInt.asUintN(64, typeof v === 'bigint' ? v : BigInt(Math.round(v)));
    this.ensure(10);
    while (b >= 0x80n) {
      this.buf[this.n++] = Number(b & 0x7fn) | 0x80;
      b >>= 7n;
    }
    this.buf[this.n++] = Number(b);
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** A varint field; omitted when zero unless `always`. */
  uint(field: number, v: number | bigint, always = false): void {
    if (!always && (v === 0 || v === 0n)) return;
    this.tag(field, WIRE_VARINT);
    this.varint(v);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.n);
    this.n += data.length;
  }

  string(field: number, s: string): void {
    this.bytes(field, utf8enc.encode(s));
  }

  message(field: number, m: ProtoWriter): void {
    this.bytes(field, m.finish());
  }

  /** A packed repeated varint field; omitted when empty. */
  packed(field: number, values: ArrayLike<number>): void {
    if (values.length === 0) return;
    const inner = new ProtoWriter();
    for (let i = 0; i < values.length; i++) inner.varint(values[i]!);
    this.message(field, inner);
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.n);
  }
}
