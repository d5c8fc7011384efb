/**
 * pprof (google/pprof `proto/profile.proto`, pinned to commit
 * 963a80db3d677353229bc3e7655d11709e9bcaaf): import and export.
 *
 * Wire schema used here (field numbers):
 *   Profile   1 sample_type ValueType*, 2 sample Sample*, 3 mapping Mapping*, 4 location Location*,
 *             5 function Function*, 6 string_table string*, 7 drop_frames, 8 keep_frames,
 *             9 time_nanos, 10 duration_nanos, 11 period_type ValueType, 12 period,
 *             13 comment int64*, 14 default_sample_type
 *   ValueType 1 type, 2 unit (string indexes)
 *   Sample    1 location_id uint64* (leaf first), 2 value int64*, 3 label Label*
 *   Label     1 key, 2 str, 3 num, 4 num_unit
 *   Mapping   1 id, 2 memory_start, 3 memory_limit, 4 file_offset, 5 filename, 6 build_id,
 *             7 has_functions, 8 has_filenames, 9 has_line_numbers, 10 has_inline_frames
 *   Location  1 id, 2 mapping_id, 3 address, 4 line Line*, 5 is_folded
 *   Line      1 function_id, 2 line, 3 column
 *   Function  1 id, 2 name, 3 system_name, 4 filename, 5 start_line
 * Other fields are skipped. Repeated scalars are accepted packed and unpacked.
 *
 * Import: a Location's lines are inlined frames, innermost first (the last line is the
 * caller); samples list locations leaf first, the model wants root first. A frame's line
 * is the Line's line (falling back to the Function's start_line when 0). Frame kind:
 * python when the file looks like Python source, kernel when the mapping is the kernel,
 * else native (with the mapping file as `lib`). Values are scaled to the model's units
 * (time → nanoseconds, memory → bytes, counts → samples).
 *
 * Export: one Location per distinct frame (address 0; native and kernel frames get a
 * Mapping for their lib). Functions are shared by frames of the same function:
 * Function = (qualname, system_name = name, file, start_line = the smallest line seen,
 * since the model holds no first line). Samples are aggregated per (stack, thread), values
 * rounded to integers; threads become `pid` / `thread_id` / `thread_name` labels. Lost on
 * export: sample times and states, marker kinds (they come back as native frames), meta
 * beyond start time, duration and rate. Output is gzip-compressed and opens in
 * `go tool pprof`.
 */
import { gunzipSync, gzipSync, constants as zc } from 'node:zlib';
import { ProfileBuilder } from '../model/builder.ts';
import type { FrameKind, Profile, ProfileMode, ValueType, ValueUnit } from '../model/profile.ts';
import { NOT_MINE, ParseError, type Exporter, type Importer, type InputFile, type NotMine } from './types.ts';
import { carriedMeta, PPROF_META_PREFIX, restoreMeta } from './carried-meta.ts';
import { ProtoReader, ProtoWriter, WIRE_LEN, WIRE_VARINT, type Fail } from './protobuf.ts';

// ---------------------------------------------------------------------------------------
// Detection

function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** Wire types allowed per field: top-level Profile fields and the messages they embed. */
type Schema = Record<number, { wires: number[]; sub?: Schema }>;
const V = [WIRE_VARINT];
const VL = [WIRE_VARINT, WIRE_LEN];
const L = [WIRE_LEN];
const VALUE_TYPE_SCHEMA: Schema = { 1: { wires: V }, 2: { wires: V } };
const PROFILE_SCHEMA: Schema = {
  1: { wires: L, sub: VALUE_TYPE_SCHEMA },
  2: { wires: L, sub: { 1: { wires: VL }, 2: { wires: VL }, 3: { wires: L }, 4: { wires: L } } },
  3: { wires: L, sub: { 1: { wires: V }, 2: { wires: V }, 3: { wires: V }, 4: { wires: V }, 5: { wires: V }, 6: { wires: V }, 7: { wires: V }, 8: { wires: V }, 9: { wires: V }, 10: { wires: V } } },
  4: { wires: L, sub: { 1: { wires: V }, 2: { wires: V }, 3: { wires: V }, 4: { wires: L }, 5: { wires: V } } },
  5: { wires: L, sub: { 1: { wires: V }, 2: { wires: V }, 3: { wires: V }, 4: { wires: V }, 5: { wires: V } } },
  6: { wires: L }, 7: { wires: V }, 8: { wires: V }, 9: { wires: V }, 10: { wires: V },
  11: { wires: L, sub: VALUE_TYPE_SCHEMA }, 12: { wires: V }, 13: { wires: VL }, 14: { wires: V }, 15: { wires: V },
};

class Stop extends Error {}
const stop: Fail = () => {
  throw new Stop();
};

/** Walk a message against a schema (one level of embedded messages is checked too). */
function fitsSchema(r: ProtoReader, schema: Schema): boolean {
  while (!r.done()) {
    const f = r.tag();
    const spec = schema[f];
    if (!spec || !spec.wires.includes(r.wire)) return false;
    if (spec.sub && r.wire === WIRE_LEN) {
      if (!fitsSchema(r.message(), spec.sub)) return false;
    } else r.skip();
  }
  return true;
}

/**
 * Cheap structural check of the first bytes of a (decompressed) body. Fields are walked
 * while they are known Profile fields with their wire types (embedded messages holding
 * only their own known fields); the walk may stop early (truncation, corruption) — that
 * is the parser's business. It looks like a profile when the walk saw two or more good
 * fields (or all of a complete body) and at least one piece of evidence that plain text
 * cannot give: a ValueType message, a non-empty sample/mapping/location/function message,
 * or a string table that starts with "" as it must.
 */
function looksLikeProfile(prefix: Uint8Array, complete: boolean): boolean {
  let fields = 0;
  let evidence = 0;
  let firstString = true;
  let walkedAll = false;
  const r = new ProtoReader(prefix, stop);
  try {
    for (;;) {
      if (r.done()) {
        walkedAll = true;
        break;
      }
      const f = r.tag();
      const spec = PROFILE_SCHEMA[f];
      if (!spec || !spec.wires.includes(r.wire)) break;
      if (f === 6) {
        const str = r.bytes();
        if (firstString && str.length !== 0) return false; // string_table[0] must be ""
        firstString = false;
        evidence++;
      } else if (spec.sub && r.wire === WIRE_LEN) {
        const sub = r.message();
        const empty = sub.done();
        if (!fitsSchema(sub, spec.sub)) break;
        if (!empty || f === 1 || f === 11) evidence++;
      } else r.skip();
      fields++;
    }
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
  }
  return evidence > 0 && (fields >= 2 || (complete && walkedAll));
}

/** Decompress as much of a gzip prefix as possible (for sniffing). */
function gunzipPrefix(b: Uint8Array): Uint8Array | null {
  try {
    return gunzipSync(b, { finishFlush: zc.Z_SYNC_FLUSH });
  } catch {
    return null;
  }
}

const SNIFF = 4096;

/**
 * Binary magic on the first bytes. gzip: the deflate header of a small head often yields
 * no output yet, so a gzip stream passes unless what does come out is clearly not a
 * profile (parse makes the real decision and answers NOT_MINE for other gzip content).
 */
function magic(head: Uint8Array): boolean {
  if (isGzip(head)) {
    if (head.length < 3 || head[2] !== 8) return false;
    const body = gunzipPrefix(head);
    return body === null || body.length === 0 || looksLikeProfile(body.subarray(0, SNIFF), false);
  }
  return looksLikeProfile(head, head.length < 64);
}

function detect(input: InputFile): boolean {
  const b = input.bytes;
  if (isGzip(b)) {
    const body = gunzipPrefix(b.subarray(0, SNIFF));
    return body !== null && looksLikeProfile(body.subarray(0, SNIFF), b.length <= SNIFF && body.length <= SNIFF);
  }
  return looksLikeProfile(b.subarray(0, SNIFF), b.length <= SNIFF);
}

// ---------------------------------------------------------------------------------------
// Decoding to a raw mirror of the proto

interface RawValueType { type: number; unit: number; at: number }
interface RawLabel { key: number; str: number; num: number; numUnit: number }
interface RawSample { locations: number[]; values: number[]; labels: RawLabel[]; at: number }
interface RawMapping { id: number; filename: number; at: number }
interface RawLine { functionId: number; line: number }
interface RawLocation { id: number; mappingId: number; address: number; lines: RawLine[]; at: number }
interface RawFunction { id: number; name: number; systemName: number; filename: number; startLine: number; at: number }
interface RawProfile {
  sampleTypes: RawValueType[];
  samples: RawSample[];
  mappings: RawMapping[];
  locations: RawLocation[];
  functions: RawFunction[];
  strings: string[];
  timeNanos: number;
  durationNanos: number;
  periodType: RawValueType | null;
  period: number;
  comments: number[];
  defaultSampleType: number;
  /** Offsets of the scalar string-index fields, for error messages. */
  defaultSampleTypeAt: number;
  commentsAt: number;
  stringsAt: number;
}

function readValueType(r: ProtoReader): RawValueType {
  const v: RawValueType = { type: 0, unit: 0, at: r.pos };
  while (!r.done()) {
    const f = r.tag();
    if (f === 1) v.type = r.int(f);
    else if (f === 2) v.unit = r.int(f);
    else r.skip();
  }
  return v;
}

function readLabel(r: ProtoReader): RawLabel {
  const l: RawLabel = { key: 0, str: 0, num: 0, numUnit: 0 };
  while (!r.done()) {
    const f = r.tag();
    if (f === 1) l.key = r.int(f);
    else if (f === 2) l.str = r.int(f);
    else if (f === 3) l.num = r.int(f);
    else if (f === 4) l.numUnit = r.int(f);
    else r.skip();
  }
  return l;
}

function readSample(r: ProtoReader): RawSample {
  const s: RawSample = { locations: [], values: [], labels: [], at: r.pos };
  while (!r.done()) {
    const f = r.tag();
    if (f === 1) r.repeated(f, s.locations, false);
    else if (f === 2) r.repeated(f, s.values, true);
    else if (f === 3) s.labels.push(readLabel(r.sub(f)));
    else r.skip();
  }
  return s;
}

function readMapping(r: ProtoReader): RawMapping {
  const m: RawMapping = { id: 0, filename: 0, at: r.pos };
  while (!r.done()) {
    const f = r.tag();
    if (f === 1) m.id = r.uint(f);
    else if (f === 5) m.filename = r.int(f);
    else r.skip();
  }
  return m;
}

function readLine(r: ProtoReader): RawLine {
  const l: RawLine = { functionId: 0, line: 0 };
  while (!r.done()) {
    const f = r.tag();
    if (f === 1) l.functionId = r.uint(f);
    else if (f === 2) l.line = r.int(f);
    else r.skip();
  }
  return l;
}

function readLocation(r: ProtoReader): RawLocation {
  const l: RawLocation = { id: 0, mappingId: 0, address: 0, lines: [], at: r.pos };
  while (!r.done()) {
    const f = r.tag();
    if (f === 1) l.id = r.uint(f);
    else if (f === 2) l.mappingId = r.uint(f);
    else if (f === 3) l.address = r.uint(f);
    else if (f === 4) l.lines.push(readLine(r.sub(f)));
    else r.skip();
  }
  return l;
}

function readFunction(r: ProtoReader): RawFunction {
  const fn: RawFunction = { id: 0, name: 0, systemName: 0, filename: 0, startLine: 0, at: r.pos };
  while (!r.done()) {
    const f = r.tag();
    if (f === 1) fn.id = r.uint(f);
    else if (f === 2) fn.name = r.int(f);
    else if (f === 3) fn.systemName = r.int(f);
    else if (f === 4) fn.filename = r.int(f);
    else if (f === 5) fn.startLine = r.int(f);
    else r.skip();
  }
  return fn;
}

/** Decode the Profile message. Throws through `fail` with the byte offset on malformed input. */
export function decodeProfileMessage(buf: Uint8Array, fail: Fail): RawProfile {
  const p: RawProfile = {
    sampleTypes: [], samples: [], mappings: [], locations: [], functions: [], strings: [],
    timeNanos: 0, durationNanos: 0, periodType: null, period: 0, comments: [], defaultSampleType: 0,
    defaultSampleTypeAt: 0, commentsAt: 0, stringsAt: 0,
  };
  const r = new ProtoReader(buf, fail);
  while (!r.done()) {
    const f = r.tag();
    switch (f) {
      case 1: p.sampleTypes.push(readValueType(r.sub(f))); break;
      case 2: p.samples.push(readSample(r.sub(f))); break;
      case 3: p.mappings.push(readMapping(r.sub(f))); break;
      case 4: p.locations.push(readLocation(r.sub(f))); break;
      case 5: p.functions.push(readFunction(r.sub(f))); break;
      case 6:
        r.expect(f, WIRE_LEN);
        if (p.strings.length === 0) p.stringsAt = r.tagStart;
        p.strings.push(r.string());
        break;
      case 9: p.timeNanos = r.int(f); break;
      case 10: p.durationNanos = r.int(f); break;
      case 11: p.periodType = readValueType(r.sub(f)); break;
      case 12: p.period = r.int(f); break;
      case 13: p.commentsAt = r.tagStart; r.repeated(f, p.comments, true); break;
      case 14: p.defaultSampleTypeAt = r.tagStart; p.defaultSampleType = r.int(f); break;
      default: r.skip();
    }
  }
  return p;
}

// ---------------------------------------------------------------------------------------
// Raw → model

const UNIT_SCALE: Record<string, [ValueUnit, number]> = {
  nanoseconds: ['nanoseconds', 1], ns: ['nanoseconds', 1],
  microseconds: ['nanoseconds', 1e3], us: ['nanoseconds', 1e3],
  milliseconds: ['nanoseconds', 1e6], ms: ['nanoseconds', 1e6],
  seconds: ['nanoseconds', 1e9], s: ['nanoseconds', 1e9],
  bytes: ['bytes', 1], kilobytes: ['bytes', 1024], megabytes: ['bytes', 1024 * 1024], gigabytes: ['bytes', 1024 ** 3],
  count: ['samples', 1], samples: ['samples', 1],
};

function modelUnit(type: string, unit: string): [ValueUnit, number] {
  const u = UNIT_SCALE[unit.toLowerCase()];
  if (type === 'calls' && (!u || u[0] === 'samples')) return ['calls', 1];
  return u ?? ['samples', 1];
}

const PY_FILE = /\.(py|pyw|pyx|pyi)$|^<frozen [^>]+>$|^<(string|stdin)>$/;
const KERNEL_MAPPING = /^\[(kernel\.kallsyms|kernel|vmlinux)[^\]]*\]|^vmlinux(-|$)/;

function basename(path: string): string {
  const i = path.lastIndexOf('/');
  return i >= 0 ? path.slice(i + 1) : path;
}

function parseIntLabel(s: string): number | null {
  const t = s.trim();
  if (/^\d+$/.test(t)) return Number(t);
  if (/^0x[0-9a-f]+$/i.test(t)) return Number.parseInt(t.slice(2), 16);
  return null;
}

function toModel(raw: RawProfile, fail: Fail): Profile {
  const S = raw.strings;
  if (S.length > 0 && S[0] !== '') fail(raw.stringsAt, `string_table[0] must be "" but is ${JSON.stringify(S[0]!.slice(0, 40))}`);
  const str = (i: number, at: number, what: string): string => {
    if (!(i >= 0 && i < S.length)) fail(at, `${what}: string index ${i} is outside the string table (${S.length} entries)`);
    return S[i]!;
  };

  // Value types.
  const valueTypes: ValueType[] = [];
  const scales: number[] = [];
  for (const st of raw.sampleTypes) {
    const type = str(st.type, st.at, 'sample_type.type');
    const unit = str(st.unit, st.at, 'sample_type.unit');
    const [u, scale] = modelUnit(type, unit);
    valueTypes.push({ name: type || 'samples', unit: u });
    scales.push(scale);
  }
  if (valueTypes.length === 0) {
    if (raw.samples.some((s) => s.values.length > 0)) fail(0, 'samples carry values but the profile has no sample_type');
    valueTypes.push({ name: 'samples', unit: 'samples' });
    scales.push(1);
  }
  let defaultValue = valueTypes.length - 1;
  if (raw.defaultSampleType !== 0) {
    const name = str(raw.defaultSampleType, raw.defaultSampleTypeAt, 'default_sample_type');
    const i = valueTypes.findIndex((v) => v.name === name);
    if (i >= 0) defaultValue = i;
  }

  // Mode and rate.
  const typeNames = valueTypes.map((v) => v.name.toLowerCase());
  const periodType = raw.periodType ? str(raw.periodType.type, raw.periodType.at, 'period_type.type').toLowerCase() : '';
  const periodUnit = raw.periodType ? str(raw.periodType.unit, raw.periodType.at, 'period_type.unit') : '';
  let mode: ProfileMode = 'unknown';
  if (periodType === 'cpu' || typeNames.includes('cpu')) mode = 'cpu';
  else if (periodType === 'wall' || typeNames.includes('wall')) mode = 'wall';
  else if (typeNames.some((t) => /^(alloc_|inuse_|space$|objects$|allocations?$)/.test(t))) mode = 'allocations';
  const meta: Partial<Profile['meta']> = { lens: 'import', backend: 'pprof', mode };
  const periodScale = UNIT_SCALE[periodUnit.toLowerCase()];
  if (raw.period > 0 && periodScale && periodScale[0] === 'nanoseconds') meta.rateHz = 1e9 / (raw.period * periodScale[1]);
  if (raw.timeNanos > 0) {
    const d = new Date(raw.timeNanos / 1e6);
    if (!Number.isNaN(d.getTime())) meta.startTime = d.toISOString();
  }
  if (raw.durationNanos > 0) meta.durationNs = raw.durationNanos;
  const extra: Record<string, string | number> = {};
  let carried: unknown;
  const comments: string[] = [];
  for (const c of raw.comments) {
    const text = str(c, raw.commentsAt, 'comment');
    if (text.startsWith(PPROF_META_PREFIX)) {
      try {
        carried = JSON.parse(text.slice(PPROF_META_PREFIX.length));
      } catch {
        comments.push(text); // not ours after all: kept as a comment
      }
    } else comments.push(text);
  }
  if (comments.length) extra.comments = comments.join('\n');
  if (raw.period > 0) extra.period = `${raw.period} ${periodType}/${periodUnit}`;
  if (Object.keys(extra).length) meta.extra = extra;

  const b = new ProfileBuilder({ meta, valueTypes, defaultValue, timed: false });

  // Tables by id.
  const mappings = new Map<number, RawMapping>();
  for (const m of raw.mappings) mappings.set(m.id, m);
  const functions = new Map<number, RawFunction>();
  for (const f of raw.functions) {
    if (f.id === 0) fail(f.at, 'function id 0 (ids must be nonzero)');
    functions.set(f.id, f);
  }
  const locations = new Map<number, RawLocation>();
  for (const l of raw.locations) {
    if (l.id === 0) fail(l.at, 'location id 0 (ids must be nonzero)');
    locations.set(l.id, l);
  }

  // Location → root-first model frames (inlined frames expanded), cached.
  const locFrames = new Map<number, number[]>();
  const framesOf = (id: number, at: number): number[] => {
    let fr = locFrames.get(id);
    if (fr) return fr;
    const loc = locations.get(id);
    if (!loc) fail(at, `sample refers to location ${id}, which the profile does not define`);
    let lib: string | undefined;
    if (loc.mappingId !== 0) {
      const m = mappings.get(loc.mappingId);
      if (!m) fail(loc.at, `location ${id} refers to mapping ${loc.mappingId}, which the profile does not define`);
      const fn = str(m.filename, m.at, 'mapping.filename');
      if (fn) lib = fn;
    }
    const kernelMapping = lib !== undefined && KERNEL_MAPPING.test(basename(lib));
    fr = [];
    if (loc.lines.length === 0) {
      const name = `0x${loc.address.toString(16)}`;
      fr.push(b.frame({ name, kind: kernelMapping ? 'kernel' : 'native', ...(lib !== undefined ? { lib } : {}) }));
    }
    for (let i = loc.lines.length - 1; i >= 0; i--) {
      const ln = loc.lines[i]!;
      const fn = functions.get(ln.functionId);
      if (!fn) fail(loc.at, `location ${id} refers to function ${ln.functionId}, which the profile does not define`);
      const fname = str(fn.name, fn.at, 'function.name');
      const sys = str(fn.systemName, fn.at, 'function.system_name');
      const file = str(fn.filename, fn.at, 'function.filename');
      let qual = fname || sys || `0x${loc.address.toString(16)}`;
      let kind: FrameKind;
      if (kernelMapping || qual.endsWith('_[k]')) kind = 'kernel';
      else if ((file && PY_FILE.test(file)) || qual.startsWith('py::')) kind = 'python';
      else kind = 'native';
      if (qual.endsWith('_[k]')) qual = qual.slice(0, -4);
      const name = sys && sys !== fname ? sys : qual;
      const line = ln.line > 0 ? ln.line : fn.startLine > 0 ? fn.startLine : 0;
      fr.push(
        b.frame({
          name,
          qualname: qual,
          ...(file ? { file } : {}),
          line: Number.isSafeInteger(line) ? line : 0,
          kind,
          ...(lib !== undefined && kind !== 'python' ? { lib } : {}),
        }),
      );
    }
    locFrames.set(id, fr);
    return fr;
  };

  // Thread labels.
  const threadOf = (s: RawSample): number => {
    let pid: number | null = null;
    let tid: number | null = null;
    let name: string | undefined;
    for (const l of s.labels) {
      const key = str(l.key, s.at, 'label.key').toLowerCase();
      const sv = l.str !== 0 ? str(l.str, s.at, 'label.str') : null;
      const num = sv !== null ? parseIntLabel(sv) : l.num;
      if (key === 'pid' || key === 'process_id') pid = num;
      else if (key === 'thread_id' || key === 'tid' || key === 'thread') {
        if (num !== null) tid = num;
        else if (sv !== null && key === 'thread') name = sv;
      } else if (key === 'thread_name' || key === 'threadname' || key === 'thread name') {
        if (sv !== null) name = sv;
      }
    }
    if (pid === null && tid === null && name === undefined) return b.thread(0, 0);
    return b.thread(pid ?? 0, tid ?? pid ?? 0, name);
  };

  const nv = valueTypes.length;
  const vals = new Array<number>(nv).fill(0);
  for (const s of raw.samples) {
    if (s.values.length !== raw.sampleTypes.length) fail(s.at, `sample has ${s.values.length} values for ${raw.sampleTypes.length} sample types`);
    const frames: number[] = [];
    for (let i = s.locations.length - 1; i >= 0; i--) for (const f of framesOf(s.locations[i]!, s.at)) frames.push(f);
    for (let v = 0; v < nv; v++) vals[v] = (s.values[v] ?? 0) * scales[v]!;
    b.sample(b.stackOf(frames), vals, threadOf(s));
  }
  const built = b.build();
  built.meta = restoreMeta(built.meta, carried);
  return built;
}

// ---------------------------------------------------------------------------------------
// Importer

function parse(input: InputFile): Profile | NotMine {
  const bytes = input.bytes;
  const file = input.label;
  let body: Uint8Array;
  let where = '';
  if (isGzip(bytes)) {
    try {
      body = gunzipSync(bytes);
    } catch (e) {
      // Not ours unless what does decompress looks like a profile.
      const prefix = gunzipPrefix(bytes);
      if (!prefix || !looksLikeProfile(prefix.subarray(0, SNIFF), false)) return NOT_MINE;
      const msg = (e as Error).message;
      const offset = /unexpected end/i.test(msg) ? bytes.length : /check|crc|length/i.test(msg) ? Math.max(10, bytes.length - 8) : 10;
      throw new ParseError('pprof', file, { offset }, `gzip stream is corrupt or truncated (${msg})`);
    }
    if (!looksLikeProfile(body.subarray(0, SNIFF), body.length <= SNIFF)) return NOT_MINE;
    where = ' of the decompressed body';
  } else {
    if (!looksLikeProfile(bytes.subarray(0, SNIFF), bytes.length <= SNIFF)) return NOT_MINE;
    body = bytes;
  }
  const fail: Fail = (offset, message) => {
    throw new ParseError('pprof', file, { offset }, `${message}${where ? ` (offset is${where})` : ''}`);
  };
  return toModel(decodeProfileMessage(body, fail), fail);
}

export const pprofImporter: Importer = {
  id: 'pprof',
  extensions: ['.pb.gz', '.pprof', '.pb', '.pprof.gz'],
  magic,
  detect,
  parse,
};

// ---------------------------------------------------------------------------------------
// Exporter

const EXPORT_UNIT: Record<ValueUnit, string> = { samples: 'count', nanoseconds: 'nanoseconds', bytes: 'bytes', calls: 'count' };

export function encodePprof(p: Profile): Uint8Array {
  const strings: string[] = [''];
  const stringIndex = new Map<string, number>([['', 0]]);
  const s = (v: string): number => {
    let i = stringIndex.get(v);
    if (i === undefined) {
      i = strings.length;
      strings.push(v);
      stringIndex.set(v, i);
    }
    return i;
  };
  const str = (i: number): string => (i >= 0 ? p.strings[i]! : '');

  const out = new ProtoWriter();
  const valueType = (type: string, unit: string): ProtoWriter => {
    const w = new ProtoWriter();
    w.uint(1, s(type));
    w.uint(2, s(unit));
    return w;
  };
  for (const vt of p.valueTypes) out.message(1, valueType(vt.name, EXPORT_UNIT[vt.unit]));

  // Aggregate samples per (stack, thread).
  const nv = p.valueTypes.length;
  const agg = new Map<number, number>();
  const aggStack: number[] = [];
  const aggThread: number[] = [];
  const aggValues: number[][] = [];
  const nThreads = Math.max(1, p.threads.length);
  for (let i = 0; i < p.samples.length; i++) {
    const key = (p.samples.stack[i]! + 1) * nThreads + p.samples.thread[i]!;
    let a = agg.get(key);
    if (a === undefined) {
      a = aggStack.length;
      agg.set(key, a);
      aggStack.push(p.samples.stack[i]!);
      aggThread.push(p.samples.thread[i]!);
      aggValues.push(new Array<number>(nv).fill(0));
    }
    const row = aggValues[a]!;
    for (let v = 0; v < nv; v++) row[v]! += p.samples.values[v]![i]!;
  }

  // Frames used by the kept stacks.
  const used = new Uint8Array(p.frames.length);
  for (const st of aggStack) for (let x = st; x >= 0; x = p.stacks.parent[x]!) used[p.stacks.frame[x]!] = 1;

  // Mappings per lib.
  const mappingId = new Map<string, number>();
  const mappingFor = (lib: string): number => {
    let id = mappingId.get(lib);
    if (id === undefined) {
      id = mappingId.size + 1;
      mappingId.set(lib, id);
    }
    return id;
  };
  // Functions: one per (kind, qualname, name, file, lib, line known?); start_line = smallest line.
  const fnKey = new Map<string, number>();
  const fnRows: Array<{ name: string; system: string; file: string; start: number }> = [];
  const frameFn = new Int32Array(p.frames.length);
  const frameMapping = new Int32Array(p.frames.length);
  for (let f = 0; f < p.frames.length; f++) {
    if (!used[f]) continue;
    const kind = p.frames.kind[f]!;
    const qual = str(p.frames.qualname[f]!);
    const name = str(p.frames.name[f]!);
    const file = str(p.frames.file[f]!);
    const line = p.frames.line[f]!;
    let lib = str(p.frames.lib[f]!);
    if (kind === 'kernel' && !lib) lib = '[kernel.kallsyms]';
    frameMapping[f] = lib && kind !== 'python' ? mappingFor(lib) : 0;
    const k = `${kind}\u0000${qual}\u0000${name}\u0000${file}\u0000${lib}\u0000${line > 0 ? 1 : 0}`;
    let id = fnKey.get(k);
    if (id === undefined) {
      id = fnRows.length + 1;
      fnKey.set(k, id);
      // a Python function whose name is its qualname gets no system_name: go tool pprof
      // "demangles" a function whose two names agree, and takes `<module>`, `<lambda>` or
      // `<genexpr>` for a C++ name and strips its `<…>` to nothing
      fnRows.push({ name: qual, system: kind === 'python' && name === qual ? '' : name, file, start: line });
    } else if (line > 0 && line < fnRows[id - 1]!.start) fnRows[id - 1]!.start = line;
    frameFn[f] = id;
  }

  // Location ids: the used frames numbered 1..n without gaps (Parca's validator refuses gaps).
  const locId = new Int32Array(p.frames.length);
  let nextLoc = 0;
  for (let f = 0; f < p.frames.length; f++) if (used[f]) locId[f] = ++nextLoc;

  // Samples.
  const threadLabels = (t: number): ProtoWriter[] => {
    if (t >= p.threads.length) return [];
    const pid = p.threads.pid[t]!;
    const tid = p.threads.tid[t]!;
    const nm = p.threads.name[t]!;
    if (pid === 0 && tid === 0 && nm < 0) return [];
    const labels: ProtoWriter[] = [];
    const num = (key: string, v: number) => {
      const w = new ProtoWriter();
      w.uint(1, s(key));
      w.uint(3, v, true);
      labels.push(w);
    };
    num('pid', pid);
    num('thread_id', tid);
    if (nm >= 0) {
      const w = new ProtoWriter();
      w.uint(1, s('thread_name'));
      w.uint(2, s(p.strings[nm]!));
      labels.push(w);
    }
    return labels;
  };
  const labelCache = new Map<number, ProtoWriter[]>();
  for (let a = 0; a < aggStack.length; a++) {
    const w = new ProtoWriter();
    const locs: number[] = [];
    for (let x = aggStack[a]!; x >= 0; x = p.stacks.parent[x]!) locs.push(locId[p.stacks.frame[x]!]!);
    w.packed(1, locs);
    const vals = aggValues[a]!.map((v) => (Number.isFinite(v) ? Math.round(v) : 0));
    // Packed value field: written even when all zero, so readers see one value per type.
    const inner = new ProtoWriter();
    for (const v of vals) inner.varint(v);
    w.message(2, inner);
    let labels = labelCache.get(aggThread[a]!);
    if (!labels) labelCache.set(aggThread[a]!, (labels = threadLabels(aggThread[a]!)));
    for (const l of labels) w.message(3, l);
    out.message(2, w);
  }

  for (const [lib, id] of mappingId) {
    const w = new ProtoWriter();
    w.uint(1, id);
    w.uint(5, s(lib));
    w.uint(7, 1); // has_functions: names are already symbolized, do not look for binaries
    w.uint(8, 1);
    w.uint(9, 1);
    out.message(3, w);
  }
  for (let f = 0; f < p.frames.length; f++) {
    if (!used[f]) continue;
    const w = new ProtoWriter();
    w.uint(1, locId[f]!);
    w.uint(2, frameMapping[f]!);
    const line = new ProtoWriter();
    line.uint(1, frameFn[f]!);
    line.uint(2, p.frames.line[f]!);
    w.message(4, line);
    out.message(4, w);
  }
  fnRows.forEach((fn, i) => {
    const w = new ProtoWriter();
    w.uint(1, i + 1);
    w.uint(2, s(fn.name));
    w.uint(3, s(fn.system));
    w.uint(4, s(fn.file));
    w.uint(5, fn.start);
    out.message(5, w);
  });

  // Scalars (their strings must be interned before the table is written).
  const m = p.meta;
  let timeNanos: bigint = 0n;
  if (m.startTime) {
    const ms = Date.parse(m.startTime);
    if (Number.isFinite(ms) && ms > 0) timeNanos = BigInt(ms) * 1000000n;
  }
  const rate = m.rateHz && Number.isFinite(m.rateHz) && m.rateHz > 0 ? m.rateHz : 0;
  const periodType = rate ? valueType(m.mode === 'wall' ? 'wall' : 'cpu', 'nanoseconds') : null;
  const comment = s(`pylens export: backend=${m.backend} mode=${m.mode}${m.name ? ` name=${m.name}` : ''}`);
  // pylens's metadata, read back by this importer (formats/carried-meta.ts)
  const carried = s(PPROF_META_PREFIX + JSON.stringify(carriedMeta(m)));
  const defaultType = s(p.valueTypes[p.defaultValue]?.name ?? '');

  for (const v of strings) out.string(6, v);
  out.uint(9, timeNanos);
  if (m.durationNs && Number.isFinite(m.durationNs) && m.durationNs > 0) out.uint(10, Math.round(m.durationNs));
  if (periodType) {
    out.message(11, periodType);
    out.uint(12, Math.max(1, Math.round(1e9 / rate)));
  }
  out.packed(13, [comment, carried]);
  out.uint(14, defaultType);
  return out.finish();
}

export const pprofExporter: Exporter = {
  id: 'pprof',
  extension: '.pb.gz',
  extensions: ['.pprof', '.pb'],
  lossless: false,
  write: (p) => new Uint8Array(gzipSync(encodePprof(p))),
};
