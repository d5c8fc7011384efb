/**
 * Page side of the data contract (data.ts): base64 → (inflate) → typed columns.
 * Uses only web platform APIs (atob or Uint8Array.fromBase64, DecompressionStream),
 * which Node also has, so tests run it in Node too.
 */
import type { ColumnSpec, PageBundle, PageData } from './data.ts';

/** The decoded profile the views are built from. Integer columns widened to Int32Array. */
export interface Columns {
  data: PageData;
  strings: string[];
  frameLabel: Int32Array;
  frameName: Int32Array;
  frameFile: Int32Array;
  frameLine: Int32Array;
  frameKind: Int32Array;
  frameLib: Int32Array;
  stackFrame: Int32Array;
  stackParent: Int32Array;
  rowStack: Int32Array;
  rowThread: Int32Array;
  rowState: Int32Array;
  rowTime: Float64Array | null;
  /** Per row: ns from its first to its last sample (data.ts `rowSpan`); null when no row spans time. */
  rowSpan: Float64Array | null;
  rowValues: Float64Array[];
  nFrames: number;
  nStacks: number;
  nRows: number;
  nThreads: number;
}

interface Base64Decoder {
  fromBase64?: (s: string) => Uint8Array;
}

export function base64ToBytes(b64: string): Uint8Array {
  const native = (Uint8Array as unknown as Base64Decoder).fromBase64;
  if (native) return native(b64);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function inflateRaw(bytes: Uint8Array): Promise<ArrayBuffer> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Response(stream).arrayBuffer();
}

/** The blob: a buffer and where in it the blob starts (a multiple of 8). */
export interface BlobRef {
  buf: ArrayBuffer;
  base: number;
}

function raw(b: BlobRef, spec: Extract<ColumnSpec, { offset: number }>, n: number): Uint8Array | Uint16Array | Int32Array | Float64Array {
  const at = b.base + spec.offset;
  switch (spec.enc) {
    case 'u8':
      return new Uint8Array(b.buf, at, n);
    case 'u16':
      return new Uint16Array(b.buf, at, n);
    case 'i32':
      return new Int32Array(b.buf, at, n);
    case 'f64':
      return new Float64Array(b.buf, at, n);
  }
}

/**
 * Expand a stored column (constant, runs, plain or delta-coded) into `out`; a plain column
 * stored at `out`'s own type is returned as a view of the buffer instead (no copy).
 */
function expandColumn<T extends Int32Array | Float64Array>(out: T, buf: BlobRef, spec: ColumnSpec, n: number): T {
  if (spec.enc === 'const') {
    out.fill(spec.value);
    return out;
  }
  if (spec.enc === 'runs') {
    const values = expandColumn(new Float64Array(spec.count), buf, spec.values, spec.count);
    const lengths = expandColumn(new Int32Array(spec.count), buf, spec.lengths, spec.count);
    let i = 0;
    for (let k = 0; k < spec.count; k++) {
      const end = i + lengths[k]!;
      if (end > n) throw new Error(`a run-length column holds more than its ${n} elements`);
      out.fill(values[k]!, i, end);
      i = end;
    }
    if (i !== n) throw new Error(`a run-length column holds ${i} of its ${n} elements`);
    return out;
  }
  // widened natively, then summed in place (one loop per output type, not per stored width)
  const src = raw(buf, spec, n);
  if (!spec.delta && src.constructor === out.constructor) return src as T;
  out.set(src);
  if (spec.delta) {
    const scale = spec.scale ?? 1;
    const at = spec.restarts?.at ?? [];
    const base = spec.restarts?.base ?? [];
    let acc = 0;
    for (let k = -1, i = 0; k < at.length; k++) {
      // segment k: from its restart row (or 0) to the next restart
      const end = k + 1 < at.length ? at[k + 1]! : n;
      if (k >= 0) acc = base[k]!;
      if (scale === 1) for (; i < end; i++) out[i] = acc += out[i]!;
      else for (; i < end; i++) out[i] = acc += out[i]! * scale;
    }
  }
  return out;
}

export function intColumn(buf: BlobRef, spec: ColumnSpec, n: number): Int32Array {
  return expandColumn(new Int32Array(n), buf, spec, n);
}

export function floatColumn(buf: BlobRef, spec: ColumnSpec, n: number): Float64Array {
  return expandColumn(new Float64Array(n), buf, spec, n);
}

/** Per row, the time its merged run spans (0 for single samples), from the sparse list of runs. */
function runSpans(buf: BlobRef, runs: { count: number; rows: ColumnSpec; ns: ColumnSpec }, n: number): Float64Array {
  const rows = intColumn(buf, runs.rows, runs.count);
  const ns = floatColumn(buf, runs.ns, runs.count);
  const out = new Float64Array(n);
  for (let i = 0; i < runs.count; i++) out[rows[i]!] = ns[i]!;
  return out;
}

/** Startup timings in ms, filled by decodeColumns when given. */
export interface DecodeTimings {
  base64Ms: number;
  inflateMs: number;
  columnsMs: number;
}

/**
 * A page bundle (data.ts; what the workbench hands over): its JSON part and where its blob
 * starts. The blob is not copied.
 */
export function readBundle(buf: ArrayBuffer): { bundle: PageBundle; blob: BlobRef } {
  if (buf.byteLength < 4) throw new Error(`profile data is ${buf.byteLength} bytes: not a page bundle`);
  const n = new DataView(buf).getUint32(0, true);
  if (4 + n > buf.byteLength) throw new Error(`profile data is ${buf.byteLength} bytes: its header claims ${n}`);
  const bundle = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n))) as PageBundle;
  return { bundle, blob: { buf, base: (4 + n + 7) & ~7 } };
}

/** The columns of `data` from its blob: base64 text (deflated when `data.compressed`), a buffer, or a bundle's blob. */
export async function decodeColumns(data: PageData, b64: string | ArrayBuffer | BlobRef, timings?: DecodeTimings): Promise<Columns> {
  let t = performance.now();
  let ref: BlobRef;
  if (typeof b64 === 'string' || b64 instanceof ArrayBuffer) {
    const bytes = typeof b64 === 'string' ? base64ToBytes(b64.trim()) : new Uint8Array(b64);
    if (timings) timings.base64Ms = performance.now() - t;
    t = performance.now();
    const buf = data.compressed === 'deflate-raw' ? await inflateRaw(bytes) : bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : (bytes.slice().buffer as ArrayBuffer);
    ref = { buf, base: 0 };
  } else ref = b64;
  if (timings) timings.inflateMs = performance.now() - t;
  t = performance.now();
  const size = ref.buf.byteLength - ref.base;
  if (size !== data.blobBytes) throw new Error(`profile data is ${size} bytes, expected ${data.blobBytes}`);
  const buf = ref;
  const c = data.columns;
  const nf = data.frameCount;
  const ns = data.stackCount;
  const nr = data.rowCount;
  const cols: Columns = {
    data,
    strings: data.strings,
    frameLabel: intColumn(buf, c.frameLabel, nf),
    frameName: intColumn(buf, c.frameName, nf),
    frameFile: intColumn(buf, c.frameFile, nf),
    frameLine: intColumn(buf, c.frameLine, nf),
    frameKind: intColumn(buf, c.frameKind, nf),
    frameLib: intColumn(buf, c.frameLib, nf),
    stackFrame: intColumn(buf, c.stackFrame, ns),
    stackParent: intColumn(buf, c.stackParent, ns),
    rowStack: intColumn(buf, c.rowStack, nr),
    rowThread: intColumn(buf, c.rowThread, nr),
    rowState: intColumn(buf, c.rowState, nr),
    rowTime: c.rowTime ? floatColumn(buf, c.rowTime, nr) : null,
    rowSpan: c.rowTime && c.rowRuns ? runSpans(buf, c.rowRuns, nr) : null,
    rowValues: c.rowValues.map((s) => floatColumn(buf, s, nr)),
    nFrames: nf,
    nStacks: ns,
    nRows: nr,
    nThreads: data.threads.pid.length,
  };
  if (timings) timings.columnsMs = performance.now() - t;
  return cols;
}
