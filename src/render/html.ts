/**
 * Interactive HTML flamegraph: one self-contained file (inline CSS, script and data; no
 * network requests, enforced by a Content-Security-Policy), drawn on a canvas.
 *
 * The page gets the profile's columns (data.ts), not a tree, and builds its merged and
 * time-order views, thread / state filters and the timeline whose time range filters every
 * view itself (page/tree.ts, page/timeline.ts). The page code is
 * TypeScript in page/, type-checked with the project and inlined by bundle.ts.
 *
 * Size. Numeric columns are written at the narrowest width that holds them (u8 / u16 /
 * i32 / f64, or a constant), times as deltas, consecutive identical (stack, thread, state)
 * rows merged, and the whole blob deflate-compressed (the page inflates it with
 * DecompressionStream) and base64-encoded.
 */
import { deflateRawSync, gzipSync } from 'node:zlib';
import { PYLENS_VERSION } from '../version.ts';
import { EMBEDDED_MARK, embedInHtml } from '../formats/embedded.ts';
import { functionTable } from '../analysis/report.ts';
import type { Profile } from '../model/profile.ts';
import { FrameKindCode, frameInfo } from '../model/profile.ts';
import { aggregateKey, frameLabel } from '../model/query.ts';
import { shortestUniquePaths } from '../model/labels.ts';
import type { ExportOptions, Exporter } from '../formats/types.ts';
import { pageScript } from './bundle.ts';
import { countsCalls } from './report-json.ts';
import { functionStats, type FunctionStat } from '../formats/pstats.ts';
import { escapeMarkup } from './markup.ts';
import { PAGE_DATA_VERSION, type ColumnSpec, type PageBundle, type PageData, type PageTable } from './page/data.ts';

export interface HtmlOptions extends ExportOptions {
  /** Deflate the data blob (default true). */
  compress?: boolean;
  /** zlib level for the blob, 1 (fast) … 9 (small). Default 6. */
  level?: number;
}

/**
 * The page's data in one buffer, for `pylens serve` (page/data.ts, the page bundle): the
 * PageData and the function table as JSON, then the blob, uncompressed (no base64). The
 * workbench fetches it and hands it to `pageShell()` in its sandboxed frame by postMessage.
 */
export function encodePageBundle(p: Profile, o: HtmlOptions = {}): Uint8Array {
  const { data, blob } = encodePageData(p, o);
  const bundle: PageBundle = { data: { ...data, compressed: null }, table: tableData(p, data.defaultValue) };
  const json = Buffer.from(JSON.stringify(bundle), 'utf8');
  const base = (4 + json.length + 7) & ~7;
  const out = new Uint8Array(base + blob.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  out.set(blob, base);
  return out;
}

/**
 * What the store keeps of a page bundle, and under which version: the bundle's layout and the
 * page code that reads it change together with the pylens version (or PAGE_DATA_VERSION), and
 * a store's page data of another version is made again.
 */
export const STORED_PAGE_VERSION = `page-bundle ${PAGE_DATA_VERSION} pylens ${PYLENS_VERSION}`;

/**
 * Profiles with fewer sample rows than this get their page bundle made when opened (tens of
 * ms at most), not stored: a small profile's bundle (its function table with callers and
 * callees) is several times its .pylens bytes.
 */
export const STORED_PAGE_MIN_SAMPLES = 50_000;

/**
 * The page bundle as the store keeps it (`ProfileStore.add`'s `page`): gzip, sent as is with
 * `content-encoding: gzip`; undefined below STORED_PAGE_MIN_SAMPLES.
 */
export function storedPage(p: Profile): { version: string; bytes: Uint8Array } | undefined {
  return p.samples.length >= STORED_PAGE_MIN_SAMPLES ? storedPageOf(encodePageBundle(p)) : undefined;
}

export function storedPageOf(bundle: Uint8Array): { version: string; bytes: Uint8Array } {
  return { version: STORED_PAGE_VERSION, bytes: gzipSync(bundle, { level: 1 }) };
}

let shell: string | undefined;

/**
 * The profile page without any data, the same for every profile (`pylens serve`): it asks its
 * parent with {type: 'pylens-want-blob'} and waits for {type: 'pylens-blob', buf, view?},
 * `buf` a page bundle (`encodePageBundle`) as a Blob or an ArrayBuffer; once complete it posts
 * {type: 'pylens-ready'}. Nothing large is parsed as HTML, nothing inflated, and the .pylens
 * copy of the profile is not embedded (the store has it).
 */
export function pageShell(): string {
  shell ??= pageHtml('pylens profile', null, '<script type="text/plain" id="pylens-blob" data-external="post"></script>', null, '');
  return shell;
}

/** Page modules in dependency order (see bundle.ts). */
export const PAGE_MODULES = ['units', 'quality', 'palette', 'decode', 'tree', 'functions', 'timeline', 'table', 'flame'] as const;

/** Collects typed arrays into one blob, each at a multiple of 8 bytes. */
class BlobWriter {
  private parts: Uint8Array[] = [];
  size = 0;

  add(a: Uint8Array | Uint16Array | Int32Array | Float64Array): number {
    const pad = (8 - (this.size % 8)) % 8;
    if (pad) {
      this.parts.push(new Uint8Array(pad));
      this.size += pad;
    }
    const at = this.size;
    // Typed arrays are little-endian on every platform Node runs on (checked below).
    this.parts.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    this.size += a.byteLength;
    return at;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Bytes per element of an integer column holding [min, max]. */
const widthOf = (min: number, max: number) => (min >= 0 && max < 256 ? 1 : min >= 0 && max < 65536 ? 2 : 4);

/**
 * An integer column at its narrowest width. `runs`: as runs of equal values when that takes
 * under half the bytes (rows sorted by thread: the thread column is a few runs).
 */
function intColumn(w: BlobWriter, a: ArrayLike<number>, delta = false, runs = false): ColumnSpec {
  const n = a.length;
  if (n === 0) return { enc: 'const', value: 0 };
  let min = a[0]!;
  let max = a[0]!;
  let count = 1;
  for (let i = 1; i < n; i++) {
    const v = a[i]!;
    if (v !== a[i - 1]) count++;
    if (v < min) min = v;
    else if (v > max) max = v;
  }
  if (min === max && !delta) return { enc: 'const', value: min };
  if (runs && !delta && n >= 256 && count * (widthOf(min, max) + 2) < (n * widthOf(min, max)) / 2) {
    const values = new Float64Array(count);
    const lengths = new Int32Array(count);
    let k = 0;
    let start = 0;
    for (let i = 1; i <= n; i++) {
      if (i === n || a[i] !== a[i - 1]) {
        values[k] = a[i - 1]!;
        lengths[k++] = i - start;
        start = i;
      }
    }
    return { enc: 'runs', count, values: intColumn(w, values), lengths: intColumn(w, lengths) };
  }
  const d = delta ? { delta: true } : {};
  if (min >= 0 && max < 256) return { enc: 'u8', offset: w.add(Uint8Array.from(a)), ...d };
  if (min >= 0 && max < 65536) return { enc: 'u16', offset: w.add(Uint16Array.from(a)), ...d };
  return { enc: 'i32', offset: w.add(a instanceof Int32Array ? a : Int32Array.from(a)), ...d };
}

const isInt32 = (v: number) => Number.isInteger(v) && v >= -2147483648 && v <= 2147483647;

const gcd = (a: number, b: number): number => {
  while (b) [a, b] = [b, a % b];
  return a;
};

/**
 * Row times, exactly: rows are sorted by (thread, time), so each thread's rows are stored as
 * deltas from the row before in the thread, in units of the deltas' greatest common divisor
 * (a sampling clock's tick), restarting at each thread's first row from its time. Times that
 * are not whole numbers, or deltas past 32 bits, fall back to `floatColumn`.
 */
function timeColumn(w: BlobWriter, a: Float64Array, thread: Int32Array): ColumnSpec {
  const n = a.length;
  const at: number[] = [];
  const base: number[] = [];
  let g = 0;
  for (let i = 0; i < n; i++) {
    const v = a[i]!;
    if (!Number.isSafeInteger(v)) return floatColumn(w, a, true);
    if (i === 0 || thread[i] !== thread[i - 1]) {
      at.push(i);
      base.push(v);
      continue;
    }
    const d = v - a[i - 1]!;
    if (!Number.isSafeInteger(d)) return floatColumn(w, a, true);
    g = gcd(g, Math.abs(d));
  }
  if (g === 0) g = 1;
  const deltas = new Int32Array(n);
  for (let i = 0, k = 0; i < n; i++) {
    if (k < at.length && at[k] === i) {
      k++;
      continue;
    }
    const d = (a[i]! - a[i - 1]!) / g;
    if (d < -2147483648 || d > 2147483647) return floatColumn(w, a, true);
    deltas[i] = d;
  }
  const spec = intColumn(w, deltas, true);
  return spec.enc === 'const' || spec.enc === 'runs' ? spec : { ...spec, scale: g, restarts: { at, base } };
}

/** A float column: constant, integers, integer deltas, or raw f64, whichever applies first. */
function floatColumn(w: BlobWriter, a: Float64Array, tryDelta: boolean, runs = false): ColumnSpec {
  const n = a.length;
  if (n === 0) return { enc: 'const', value: 0 };
  let same = true;
  let ints = true;
  for (let i = 0; i < n; i++) {
    const v = a[i]!;
    if (v !== a[0]) same = false;
    if (!isInt32(v)) ints = false;
  }
  if (same) return { enc: 'const', value: a[0]! };
  if (ints && !tryDelta) return intColumn(w, a, false, runs);
  if (tryDelta) {
    const deltas = new Int32Array(n);
    let ok = true;
    let prev = 0;
    for (let i = 0; i < n; i++) {
      const dv = a[i]! - prev;
      if (!isInt32(dv) || !Number.isInteger(a[i]!)) {
        ok = false;
        break;
      }
      deltas[i] = dv;
      prev = a[i]!;
    }
    if (ok) return intColumn(w, deltas, true);
    if (ints) return intColumn(w, a);
    // Integer values with large jumps (e.g. between threads): f64 deltas are exact below
    // 2^53 and compress far better than absolute times.
    let exact = true;
    const fd = new Float64Array(n);
    for (let i = 0; i < n && exact; i++) {
      if (!Number.isSafeInteger(a[i]!)) exact = false;
      fd[i] = a[i]! - (i > 0 ? a[i - 1]! : 0);
    }
    if (exact) return { enc: 'f64', offset: w.add(fd), delta: true };
  }
  return { enc: 'f64', offset: w.add(a) };
}

/** Sample order for the page: by thread, then time (stable). */
function rowOrder(p: Profile): Int32Array {
  const sm = p.samples;
  const n = sm.length;
  const nt = Math.max(p.threads.length, 1);
  const count = new Int32Array(nt + 1);
  let sortedWithin = true;
  const last = new Float64Array(nt).fill(-Infinity);
  for (let i = 0; i < n; i++) {
    const t = sm.thread[i]!;
    count[t + 1]++;
    if (sm.time) {
      const tm = sm.time[i]!;
      if (tm < last[t]!) sortedWithin = false;
      last[t] = tm;
    }
  }
  const order = new Int32Array(n);
  if (sortedWithin) {
    for (let t = 0; t < nt; t++) count[t + 1] += count[t]!;
    for (let i = 0; i < n; i++) order[count[sm.thread[i]!]!++] = i;
    return order;
  }
  const idx = Array.from({ length: n }, (_, i) => i);
  const time = sm.time!;
  idx.sort((a, b) => sm.thread[a]! - sm.thread[b]! || time[a]! - time[b]! || a - b);
  order.set(idx);
  return order;
}

/**
 * The time between two samples of a thread (ns): from the sampling rate when the profile
 * has one, else the median positive gap between consecutive samples of a thread (over at
 * most ~64 k gaps); 0 when there is none.
 */
function sampleInterval(p: Profile, order: Int32Array): number {
  const rate = p.meta.rateHz;
  if (rate !== undefined && rate > 0) return 1e9 / rate;
  const sm = p.samples;
  const time = sm.time;
  const n = order.length;
  if (!time || n < 2) return 0;
  const stride = Math.max(1, Math.floor(n / 65536));
  const gaps: number[] = [];
  for (let k = 1; k < n; k += stride) {
    const i = order[k]!;
    const j = order[k - 1]!;
    if (sm.thread[i] !== sm.thread[j]) continue;
    const g = time[i]! - time[j]!;
    if (g > 0) gaps.push(g);
  }
  if (gaps.length === 0) return 0;
  gaps.sort((a, b) => a - b);
  return gaps[gaps.length >> 1]!;
}

/** The rows that are merged runs spanning time, sparse: their indexes (delta-coded) and spans. */
function runColumns(w: BlobWriter, span: Float64Array, count: number): NonNullable<PageData['columns']['rowRuns']> {
  const rows = new Int32Array(count);
  const ns = new Float64Array(count);
  let j = 0;
  let prev = 0;
  for (let r = 0; r < span.length; r++) {
    if (span[r] === 0) continue;
    rows[j] = r - prev;
    ns[j++] = span[r]!;
    prev = r;
  }
  return { count, rows: intColumn(w, rows, true), ns: floatColumn(w, ns, false) };
}

function timeExtent(time: Float64Array, span: Float64Array): { first: number; last: number } {
  let first = Infinity;
  let last = -Infinity;
  for (let r = 0; r < time.length; r++) {
    const t = time[r]!;
    if (t < first) first = t;
    if (t + span[r]! > last) last = t + span[r]!;
  }
  return { first, last };
}

/** Build the page's data: JSON part and the raw (uncompressed) blob. */
export function encodePageData(p: Profile, o: HtmlOptions = {}): { data: Omit<PageData, 'compressed'>; blob: Uint8Array } {
  if (!LITTLE_ENDIAN) throw new Error('the HTML exporter needs a little-endian host');
  const strings = p.strings.slice();
  const index = new Map<string, number>();
  for (let i = strings.length - 1; i >= 0; i--) index.set(strings[i]!, i);
  const intern = (s: string): number => {
    let i = index.get(s);
    if (i === undefined) {
      i = strings.push(s) - 1;
      index.set(s, i);
    }
    return i;
  };
  const fr = p.frames;
  const nf = fr.length;
  const label = new Int32Array(nf);
  const kind = new Uint8Array(nf);
  for (let f = 0; f < nf; f++) {
    label[f] = intern(frameLabel(p, f, { lineno: o.lineno ?? true, fullFilenames: o.fullFilenames ?? false }));
    kind[f] = FrameKindCode[fr.kind[f]!];
  }

  // Rows: (thread, time) order, consecutive identical (stack, thread, state) merged, in
  // timed profiles only while the gap to the run's last sample is at most two sample
  // intervals (a run's samples are then evenly spread over its span: data.ts).
  const sm = p.samples;
  const order = rowOrder(p);
  const n = sm.length;
  const nv = p.valueTypes.length;
  const interval = sm.time ? sampleInterval(p, order) : 0;
  const maxGap = interval > 0 ? 2 * interval : Infinity;
  const rStack = new Int32Array(n);
  const rThread = new Int32Array(n);
  const rState = new Uint8Array(n);
  const rTime = sm.time ? new Float64Array(n) : null;
  const rSpan = sm.time ? new Float64Array(n) : null;
  const rValues = p.valueTypes.map(() => new Float64Array(n));
  let m = 0;
  let runs = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    const s = sm.stack[i]!;
    const t = sm.thread[i]!;
    const st = sm.state[i]!;
    if (m > 0 && rStack[m - 1] === s && rThread[m - 1] === t && rState[m - 1] === st && (rTime === null || sm.time![i]! - rTime[m - 1]! - rSpan![m - 1]! <= maxGap)) {
      for (let v = 0; v < nv; v++) rValues[v]![m - 1] += sm.values[v]![i]!;
      if (rTime) {
        if (rSpan![m - 1] === 0 && sm.time![i]! > rTime[m - 1]!) runs++;
        rSpan![m - 1] = sm.time![i]! - rTime[m - 1]!;
      }
      continue;
    }
    rStack[m] = s;
    rThread[m] = t;
    rState[m] = st;
    if (rTime) rTime[m] = sm.time![i]!;
    for (let v = 0; v < nv; v++) rValues[v]![m] = sm.values[v]![i]!;
    m++;
  }

  const w = new BlobWriter();
  const columns: PageData['columns'] = {
    frameLabel: intColumn(w, label),
    frameName: intColumn(w, fr.qualname),
    frameFile: intColumn(w, fr.file),
    frameLine: intColumn(w, fr.line),
    frameKind: intColumn(w, kind),
    frameLib: intColumn(w, fr.lib),
    stackFrame: intColumn(w, p.stacks.frame),
    stackParent: intColumn(w, p.stacks.parent),
    rowStack: intColumn(w, rStack.subarray(0, m)),
    rowThread: intColumn(w, rThread.subarray(0, m), false, true),
    rowState: intColumn(w, rState.subarray(0, m), false, true),
    rowTime: rTime ? timeColumn(w, rTime.subarray(0, m), rThread.subarray(0, m)) : null,
    rowRuns: rSpan && runs > 0 ? runColumns(w, rSpan.subarray(0, m), runs) : null,
    rowValues: rValues.map((a) => floatColumn(w, a.subarray(0, m), false, true)),
  };
  const blob = w.bytes();
  const data: Omit<PageData, 'compressed'> = {
    version: PAGE_DATA_VERSION,
    title: o.title ?? p.meta.name ?? 'pylens profile',
    meta: p.meta,
    valueTypes: p.valueTypes,
    defaultValue: o.valueIndex ?? p.defaultValue,
    strings,
    frameCount: nf,
    stackCount: p.stacks.length,
    rowCount: m,
    sampleRows: n,
    timed: sm.time !== null,
    sampleIntervalNs: interval,
    ...(rTime && rSpan && m > 0 ? { sampleTimes: timeExtent(rTime.subarray(0, m), rSpan.subarray(0, m)) } : {}),
    threads: { pid: p.threads.pid.slice(), tid: p.threads.tid.slice(), name: p.threads.name.slice() },
    columns,
    blobBytes: blob.length,
  };
  return { data, blob };
}

const escapeHtml = escapeMarkup;

/** JSON that is safe inside a <script> element. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

/** Rows of the page's function table. */
const TABLE_LIMIT = 300;

/**
 * The function table and sandwich of the page (page/table.ts): the heaviest functions by
 * total, and the function of every frame with its label (keys and labels as
 * `aggregate`'s), from which the page recomputes the table for its filters.
 */
export function tableData(p: Profile, valueIndex = p.defaultValue): PageTable {
  const { rows, grandTotal } = functionTable(p, { limit: TABLE_LIMIT, valueIndex });
  const files = shortestUniquePaths(p.frames.file.filter((f) => f >= 0).map((f) => p.strings[f]!));
  const fileLabel = (f: string) => files.get(f) ?? f;
  const ids = new Map<string, number>();
  const fns: PageTable['fns'] = { label: [], frame: [] };
  for (let f = 0; f < p.frames.length; f++) {
    const fi = frameInfo(p, f);
    const key = aggregateKey(fi, 'function');
    let id = ids.get(key);
    if (id === undefined) {
      ids.set(key, (id = fns.label.length));
      fns.label.push(frameLabel(p, f, { lineno: false, lib: true, fileLabel }));
    }
    fns.frame.push(id);
  }
  // profiles that count calls: pstats's columns beside each row (functions by file and qualified name)
  if (countsCalls(p)) {
    const byFn = new Map<string, FunctionStat>();
    for (const st of functionStats(p)) byFn.set(`${st.frame.file ?? ''}\0${st.frame.qualname}`, st);
    for (const r of rows) {
      const st = byFn.get(`${r.file ?? ''}\0${r.name}`);
      if (st) (r as PageTable['rows'][number]).pstats = { ncalls: st.nc, primitive: st.cc, tottime: st.tt, cumtime: st.ct };
    }
  }
  return { unit: p.valueTypes[valueIndex]?.unit ?? 'samples', grandTotal, rows, limit: TABLE_LIMIT, fns };
}

/** Render the profile as one self-contained HTML page. */
export function renderHtml(p: Profile, o: HtmlOptions = {}): string {
  const { data, blob } = encodePageData(p, o);
  const compress = o.compress ?? true;
  const body = compress ? deflateRawSync(blob, { level: o.level ?? 6 }) : blob;
  const page: PageData = { ...data, compressed: compress ? 'deflate-raw' : null };
  const b64 = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64');
  return pageHtml(page.title, page, `<script type="text/plain" id="pylens-blob">${b64}</script>`, tableData(p, page.defaultValue), embedInHtml(p));
}

function pageHtml(title: string, page: PageData | null, blobScript: string, table: PageTable | null, embedded: string): string {
  return [
    '<!DOCTYPE html>',
    `<html lang="en" ${EMBEDDED_MARK}>`,
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="generator" content="pylens">',
    `<title>${escapeHtml(title)} — pylens</title>`,
    `<style>${PAGE_CSS}</style>`,
    '</head>',
    '<body>',
    PAGE_BODY,
    page ? `<script type="application/json" id="pylens-data">${scriptJson(page)}</script>` : '',
    blobScript,
    table ? `<script type="application/json" id="pylens-table">${scriptJson(table)}</script>` : '',
    embedded,
    `<script>${pageScript(PAGE_MODULES)}</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

export const htmlExporter: Exporter = {
  id: 'html',
  extension: '.html',
  extensions: ['.htm'],
  // the page carries the .pylens encoding of the profile (formats/embedded.ts)
  lossless: true,
  write: (p, o) => renderHtml(p, o),
};

const PAGE_BODY = `<header id="hdr">
  <div class="titlebar"><span class="brand">pylens</span><h1 id="title"></h1><span id="subtitle"></span></div>
  <dl id="facts" class="facts"></dl>
  <dl id="env" class="facts env"></dl>
</header>
<div id="toolbar" role="toolbar">
  <div class="seg" id="viewsel" title="1 / 2">
    <button type="button" data-v="merged" class="on">Merged</button><button type="button" data-v="time">Time order</button>
  </div>
  <div class="seg" id="orient" title="i">
    <button type="button" data-v="flame" class="on">Flame</button><button type="button" data-v="icicle">Icicle</button>
  </div>
  <label class="ctl">Thread <select id="thread"></select></label>
  <label class="ctl" id="statewrap">State <select id="state"></select></label>
  <label class="ctl" id="valuewrap">Value <select id="value"></select></label>
  <label class="ctl" id="groupwrap" title="A root per thread in the merged view"><input type="checkbox" id="group"> per thread</label>
  <span class="grow"></span>
  <span id="matched"></span>
  <input id="search" type="search" placeholder="Search regex (Ctrl+F)" spellcheck="false" autocomplete="off">
  <button type="button" id="reset" disabled>Reset zoom</button>
  <button type="button" id="helpbtn" title="Keyboard shortcuts">?</button>
</div>
<section id="timeline" aria-label="Timeline" hidden>
  <div id="tlbar"><span class="tltitle">Timeline</span><span id="rangetext"></span><button type="button" id="clearrange" hidden>Clear range</button><span class="grow"></span><span id="tllegend"></span></div>
  <div id="tlscroll"><canvas id="tl"></canvas><div id="tlspacer"></div></div>
</section>
<nav id="crumbs" aria-label="Zoom path"></nav>
<div id="note" hidden></div>
<div id="scroller"><canvas id="fg"></canvas><div id="spacer"></div></div>
<section id="fnpanel" aria-label="Functions"></section>
<div id="tip" hidden></div>
<div id="help" hidden>
  <b>Keys</b>
  <table>
    <tr><td>click</td><td>zoom into a frame</td></tr>
    <tr><td>Esc / 0</td><td>reset zoom (Esc again: clear the time range)</td></tr>
    <tr><td>timeline drag</td><td>select a time range: every view follows; a click clears it</td></tr>
    <tr><td>+ / - &nbsp; w / s</td><td>zoom in / out</td></tr>
    <tr><td>a / d</td><td>pan left / right</td></tr>
    <tr><td>Ctrl+wheel</td><td>zoom at the pointer</td></tr>
    <tr><td>1 / 2</td><td>merged / time order</td></tr>
    <tr><td>i</td><td>flame / icicle</td></tr>
    <tr><td>Ctrl+F, /</td><td>search (regex; lower case = ignore case)</td></tr>
  </table>
</div>
<footer id="legend"></footer>
<div id="error" hidden></div>`;

const PAGE_CSS = `
:root { --fg: #1d2330; --muted: #5d6675; --line: #d9dde3; --bg: #ffffff; --panel: #f5f6f8; --accent: #2f6fde; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html, body { height: 100%; margin: 0; }
body { display: flex; flex-direction: column; font: 13px/1.35 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
#hdr { background: var(--panel); border-bottom: 1px solid var(--line); padding: 8px 12px 6px; }
.titlebar { display: flex; align-items: baseline; gap: 10px; flex-wrap: wrap; }
.brand { font-weight: 700; color: #fff; background: #e0832a; border-radius: 4px; padding: 1px 6px; font-size: 12px; letter-spacing: .02em; }
#hdr h1 { font-size: 16px; margin: 0; font-weight: 600; overflow-wrap: anywhere; }
#subtitle { color: var(--muted); }
.facts { display: flex; flex-wrap: wrap; gap: 2px 16px; margin: 5px 0 0; }
.facts div { display: flex; gap: 5px; min-width: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.facts.env dt::after, .facts dt::after { content: ":"; }
#toolbar { display: flex; align-items: center; gap: 8px 10px; padding: 6px 12px; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
.seg { display: inline-flex; border: 1px solid #b9c0cb; border-radius: 6px; overflow: hidden; }
.seg button { border: 0; background: #fff; padding: 4px 10px; font: inherit; color: var(--fg); cursor: pointer; }
.seg button + button { border-left: 1px solid #b9c0cb; }
.seg button.on { background: var(--accent); color: #fff; }
.seg button:disabled { color: #a3a9b3; cursor: not-allowed; }
.ctl { display: inline-flex; align-items: center; gap: 5px; color: var(--muted); }
select, input[type=search], #toolbar > button { font: inherit; color: var(--fg); border: 1px solid #b9c0cb; border-radius: 6px; background: #fff; padding: 3px 6px; }
select { max-width: 15em; }
#toolbar > button { cursor: pointer; padding: 3px 10px; }
#toolbar > button:disabled { color: #a3a9b3; cursor: default; }
#search { width: 14em; }
#search.bad { border-color: #d33; }
#matched { color: #a0149f; font-weight: 600; font-variant-numeric: tabular-nums; }
.grow { flex: 1; }
#crumbs { display: flex; flex-wrap: wrap; align-items: center; gap: 2px; padding: 4px 12px; min-height: 27px; border-bottom: 1px solid var(--line); font-size: 12px; }
#crumbs button { border: 0; background: none; padding: 1px 4px; border-radius: 4px; font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--accent); cursor: pointer; max-width: 40ch; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#crumbs button:hover { background: #e8eefb; }
#crumbs button.cur { color: var(--fg); font-weight: 600; cursor: default; background: none; }
#crumbs .sep { color: #9aa1ac; }
#crumbs .hint { color: var(--muted); }
#timeline { border-bottom: 1px solid var(--line); }
#tlbar { display: flex; align-items: center; gap: 4px 10px; padding: 3px 12px 2px; font-size: 12px; color: var(--muted); flex-wrap: wrap; }
#tlbar .tltitle { font-weight: 600; color: var(--fg); }
#rangetext { font-variant-numeric: tabular-nums; }
#rangetext.on { color: var(--accent); font-weight: 600; }
#clearrange { font: inherit; color: var(--fg); border: 1px solid #b9c0cb; border-radius: 6px; background: #fff; padding: 0 8px; cursor: pointer; }
#tllegend { display: inline-flex; gap: 10px; }
#tllegend i, #tip i.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
#tlscroll { position: relative; overflow-x: hidden; overflow-y: auto; }
#tl { position: sticky; top: 0; left: 0; display: block; cursor: crosshair; }
.fntable caption { caption-side: top; text-align: left; padding: 3px 8px; color: var(--accent); font-weight: 600; white-space: nowrap; }
.fntable tr.empty td { color: var(--muted); cursor: default; }
#note { padding: 4px 12px; background: #fff7e0; border-bottom: 1px solid #f0dfae; color: #6b5412; }
#scroller { flex: 1; position: relative; overflow: auto; min-height: 120px; }
#fg { position: sticky; top: 0; left: 0; display: block; cursor: pointer; }
#tip { position: fixed; z-index: 10; pointer-events: none; background: rgba(29,35,48,.96); color: #f3f5f8; border-radius: 6px; padding: 7px 10px; max-width: min(640px, 90vw); box-shadow: 0 4px 14px rgba(0,0,0,.25); font-size: 12px; }
#tip .name { font: 600 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
#tip .loc { color: #b7c0cd; overflow-wrap: anywhere; margin-top: 2px; }
#tip table { border-collapse: collapse; margin-top: 5px; font-variant-numeric: tabular-nums; }
#tip td { padding: 0 10px 0 0; }
#tip td:first-child { color: #b7c0cd; }
#help { position: fixed; right: 14px; top: 120px; z-index: 11; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; box-shadow: 0 6px 20px rgba(0,0,0,.15); }
#help td { padding: 1px 10px 1px 0; }
#help td:first-child { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); }
#legend { display: flex; flex-wrap: wrap; gap: 4px 14px; padding: 5px 12px; border-top: 1px solid var(--line); background: var(--panel); color: var(--muted); font-size: 12px; }
#legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; border: 1px solid rgba(0,0,0,.15); }
#legend .keys { margin-left: auto; }
#fnpanel { display: flex; gap: 10px; max-height: 34vh; border-top: 1px solid var(--line); background: var(--bg); }
.fnwrap { flex: 3; overflow: auto; }
.fntable { border-collapse: collapse; width: 100%; font-size: 12px; font-variant-numeric: tabular-nums; }
.fntable th { position: sticky; top: 0; background: var(--panel); text-align: left; padding: 3px 8px; cursor: pointer; border-bottom: 1px solid var(--line); white-space: nowrap; user-select: none; }
.fntable td { padding: 2px 8px; border-bottom: 1px solid #eef0f3; white-space: nowrap; }
.fntable td.fn { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; max-width: 60ch; overflow: hidden; text-overflow: ellipsis; }
.fntable .num { text-align: right; }
.fntable tr { cursor: pointer; }
.fntable tr:hover td { background: #f2f6fd; }
.fntable tr.sel td { background: #e3ecfc; }
.sandwich { flex: 2; overflow: auto; padding: 6px 10px; font-size: 12px; border-left: 1px solid var(--line); }
.sandwich .swtitle { font: 600 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
.sandwich .swsub { color: var(--muted); margin-bottom: 6px; }
.sandwich .sw { margin-top: 6px; display: flex; flex-direction: column; }
.sandwich .swe { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; color: var(--fg); }
.sandwich a.swe { color: var(--accent); text-decoration: none; }
#error { position: fixed; inset: 30% 20% auto; background: #fff0f0; border: 1px solid #e3a3a3; padding: 14px; border-radius: 8px; color: #7a1d1d; white-space: pre-wrap; }
`;
