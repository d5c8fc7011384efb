/**
 * pylens's own file format (`.pylens`): lossless, compressed, integer-versioned.
 *
 * Layout (all little-endian):
 *   bytes 0..7   magic  "PYLENS" 0x0D 0x0A
 *   bytes 8..11  u32 format version (see src/model/versioning.ts for the changelog)
 *   bytes 12..   gzip of:  u32 headerLength | header JSON (UTF-8) | binary columns
 * Binary columns follow the header in the order listed in header.columns, each
 * `byteLength` long.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { MODEL_VERSION, type FrameKind, type Profile } from '../model/profile.ts';
import { FORMAT_VERSION, FormatVersionError, upgradeDocument, type StoredDocument } from '../model/versioning.ts';
import { validateProfile } from '../model/query.ts';
import { NOT_MINE, ParseError, type Exporter, type Importer, type InputFile, type NotMine } from './types.ts';

const MAGIC = new Uint8Array([0x50, 0x59, 0x4c, 0x45, 0x4e, 0x53, 0x0d, 0x0a]); // "PYLENS\r\n"

type ColumnKind = 'int32' | 'uint8' | 'float64';
interface ColumnDesc {
  name: string;
  type: ColumnKind;
  byteLength: number;
}

function hasMagic(bytes: Uint8Array): boolean {
  if (bytes.length < MAGIC.length) return false;
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return false;
  return true;
}

export function encodePylens(p: Profile): Uint8Array {
  const cols: Array<{ desc: ColumnDesc; data: ArrayBufferView }> = [];
  const add = (name: string, data: Int32Array | Uint8Array | Float64Array) => {
    const type: ColumnKind = data instanceof Int32Array ? 'int32' : data instanceof Uint8Array ? 'uint8' : 'float64';
    cols.push({ desc: { name, type, byteLength: data.byteLength }, data });
  };
  add('stacks.frame', Int32Array.from(p.stacks.frame));
  add('stacks.parent', Int32Array.from(p.stacks.parent));
  add('samples.stack', p.samples.stack);
  add('samples.thread', p.samples.thread);
  add('samples.state', p.samples.state);
  if (p.samples.time) add('samples.time', p.samples.time);
  p.samples.values.forEach((v, i) => add(`samples.values.${i}`, v));
  const header = {
    formatVersion: FORMAT_VERSION,
    modelVersion: MODEL_VERSION,
    meta: p.meta,
    valueTypes: p.valueTypes,
    defaultValue: p.defaultValue,
    strings: p.strings,
    frames: { name: p.frames.name, qualname: p.frames.qualname, file: p.frames.file, line: p.frames.line, kind: p.frames.kind, lib: p.frames.lib },
    threads: { tid: p.threads.tid, pid: p.threads.pid, name: p.threads.name },
    counts: { stacks: p.stacks.length, samples: p.samples.length },
    columns: cols.map((c) => c.desc),
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const lenBuf = Buffer.alloc(4);
  lenBuf.writeUInt32LE(json.length);
  // Typed arrays are little-endian on every platform Node supports in practice (x86-64, arm64).
  const parts: Buffer[] = [lenBuf, json, ...cols.map((c) => Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength))];
  // One gzip member per part, concatenated (a valid gzip stream, RFC 1952 §2.2): no copy of
  // every column into one buffer first, which was the memory peak of writing a long recording.
  const body = Buffer.concat(parts.map((part) => gzipSync(part, { level: 6 })));
  const out = Buffer.alloc(12 + body.length);
  out.set(MAGIC, 0);
  out.writeUInt32LE(FORMAT_VERSION, 8);
  out.set(body, 12);
  return out;
}

export function decodePylens(bytes: Uint8Array, file = '<input>'): Profile {
  const err = (offset: number, m: string) => new ParseError('pylens', file, { offset }, m);
  if (!hasMagic(bytes)) throw err(0, 'missing the PYLENS magic bytes');
  if (bytes.length < 12) throw err(bytes.length, 'file ends inside the header');
  const outerVersion = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32LE(8);
  if (outerVersion > FORMAT_VERSION) {
    throw new FormatVersionError(`${file}: written by a newer pylens (format version ${outerVersion}; this pylens reads up to ${FORMAT_VERSION}): upgrade pylens to read it`);
  }
  let body: Buffer;
  try {
    body = gunzipSync(bytes.subarray(12));
  } catch (e) {
    throw err(12, `compressed body is corrupt or truncated (${(e as Error).message})`);
  }
  const total = 12 + body.length;
  if (body.length < 4) throw err(total, 'body ends before the header length');
  const hlen = body.readUInt32LE(0);
  if (4 + hlen > body.length) throw err(12, `header claims ${hlen} bytes but the body holds ${body.length - 4}`);
  let header: StoredDocument;
  try {
    header = JSON.parse(body.subarray(4, 4 + hlen).toString('utf8')) as StoredDocument;
  } catch (e) {
    throw err(12, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || typeof header.formatVersion !== 'number') throw err(12, 'header has no formatVersion');
  if (header.formatVersion !== outerVersion) throw err(8, `outer version ${outerVersion} disagrees with header version ${header.formatVersion}`);
  const doc = upgradeDocument(header) as unknown as {
    meta: Profile['meta'];
    valueTypes: Profile['valueTypes'];
    defaultValue: number;
    strings: string[];
    frames: { name: number[]; qualname: number[]; file: number[]; line: number[]; kind: FrameKind[]; lib: number[] };
    threads: { tid: number[]; pid: number[]; name: number[] };
    counts: { stacks: number; samples: number };
    columns: ColumnDesc[];
  };
  const columns = new Map<string, Int32Array | Uint8Array | Float64Array>();
  let off = 4 + hlen;
  for (const c of doc.columns ?? []) {
    if (off + c.byteLength > body.length) throw err(12, `column ${c.name} runs past the end of the data (file truncated?)`);
    const slice = body.subarray(off, off + c.byteLength);
    const copy = new Uint8Array(c.byteLength);
    copy.set(slice);
    const arr = c.type === 'int32' ? new Int32Array(copy.buffer) : c.type === 'uint8' ? copy : new Float64Array(copy.buffer);
    columns.set(c.name, arr);
    off += c.byteLength;
  }
  const col = <T>(name: string): T => {
    const c = columns.get(name);
    if (!c) throw err(12, `column ${name} is missing`);
    return c as T;
  };
  const nStacks = doc.counts.stacks;
  const nSamples = doc.counts.samples;
  const fr = doc.frames;
  const p: Profile = {
    version: MODEL_VERSION,
    meta: doc.meta,
    valueTypes: doc.valueTypes,
    defaultValue: doc.defaultValue,
    strings: doc.strings,
    frames: { ...fr, length: fr.name.length },
    stacks: { frame: Array.from(col<Int32Array>('stacks.frame')), parent: Array.from(col<Int32Array>('stacks.parent')), length: nStacks },
    samples: {
      stack: col<Int32Array>('samples.stack'),
      thread: col<Int32Array>('samples.thread'),
      state: col<Uint8Array>('samples.state'),
      time: columns.has('samples.time') ? col<Float64Array>('samples.time') : null,
      values: doc.valueTypes.map((_, i) => col<Float64Array>(`samples.values.${i}`)),
      length: nSamples,
    },
    threads: { ...doc.threads, length: doc.threads.tid.length },
  };
  try {
    validateProfile(p);
  } catch (e) {
    throw err(12, (e as Error).message);
  }
  return p;
}

export const pylensImporter: Importer = {
  id: 'pylens',
  extensions: ['.pylens'],
  magic: hasMagic,
  detect: (input) => hasMagic(input.bytes),
  parse(input: InputFile): Profile | NotMine {
    if (!hasMagic(input.bytes)) return NOT_MINE;
    return decodePylens(input.bytes, input.label);
  },
};

export const pylensExporter: Exporter = {
  id: 'pylens',
  extension: '.pylens',
  lossless: true,
  write: (p) => encodePylens(p),
};
