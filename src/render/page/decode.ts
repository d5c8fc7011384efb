/**
 * Page side of the data contract (data.ts): base64 → (inflate) → typed columns.
 * Uses only web platform APIs (atob or Uint8Array.fromBase64, DecompressionStream),
 * which Node also has, so tests run it in Node too.
 */
import type { ColumnSpec, PageData } from './data.ts';

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

function raw(buf: ArrayBuffer, spec: Exclude<ColumnSpec, { enc: 'const' }>, n: number): Uint8Array | Uint16Array | Int32Array | Float64Array {
  switch (spec.enc) {
    case 'u8':
      return new Uint8Array(buf, spec.offset, n);
    case 'u16':
      return new Uint16Array(buf, spec.offset, n);
    case 'i32':
      return new Int32Array(buf, spec.offset, n);
    case 'f64':
      return new Float64Array(buf, spec.offset, n);
  }
}

/** Expand a stored column (constant, plain or delta-coded) into `out`. */
function expandColumn<T extends Int32Array | Float64Array>(out: T, buf: ArrayBuffer, spec: ColumnSpec, n: number): T {
  if (spec.enc === 'const') {
    out.fill(spec.value);
    return out;
  }
  const src = raw(buf, spec, n);
  if (spec.delta) {
    let acc = 0;
    for (let i = 0; i < n; i++) out[i] = acc += src[i]!;
  } else out.set(src);
  return out;
}

export function intColumn(buf: ArrayBuffer, spec: ColumnSpec, n: number): Int32Array {
  return expandColumn(new Int32Array(n), buf, spec, n);
}

export function floatColumn(buf: ArrayBuffer, spec: ColumnSpec, n: number): Float64Array {
  return expandColumn(new Float64Array(n), buf, spec, n);
}

/** Per row, the time its merged run spans (0 for single samples), from the sparse list of runs. */
function runSpans(buf: ArrayBuffer, runs: { count: number; rows: ColumnSpec; ns: ColumnSpec }, n: number): Float64Array {
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

export async function decodeColumns(data: PageData, b64: string | ArrayBuffer, timings?: DecodeTimings): Promise<Columns> {
  let t = performance.now();
  const bytes = typeof b64 === 'string' ? base64ToBytes(b64.trim()) : new Uint8Array(b64);
  if (timings) timings.base64Ms = performance.now() - t;
  t = performance.now();
  const buf = data.compressed === 'deflate-raw' ? await inflateRaw(bytes) : bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : (bytes.slice().buffer as ArrayBuffer);
  if (timings) timings.inflateMs = performance.now() - t;
  t = performance.now();
  if (buf.byteLength !== data.blobBytes) throw new Error(`profile data is ${buf.byteLength} bytes, expected ${data.blobBytes}`);
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
