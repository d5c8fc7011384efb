/**
 * The `pylens sched` timeline: one self-contained HTML file (inline data, style and
 * script; a Content-Security-Policy forbids any request), threads as rows and time on the
 * x axis, each moment coloured running / runnable (scheduler delay) / sleeping / blocked.
 *
 * The segments travel as columns (start and duration in µs as f64, stack id i32, kind u8),
 * deflate-compressed and base64-encoded; the page inflates them with DecompressionStream.
 * Drawing writes an ImageData: per row and pixel column the share of each kind, stacked,
 * so a zoomed-out view of 100k+ segments costs O(segments in view + pixels).
 *
 * Interaction: wheel zooms at the pointer, drag pans, shift-drag selects a range to zoom to,
 * double-click or 0 / Esc resets, + / - zoom, arrow keys pan; hovering shows the segment
 * (kind, state, start, duration, switch-out stack); clicking a wait in the list zooms to it.
 */
import { deflateRawSync } from 'node:zlib';
import type { SchedSummary, SchedTrace } from '../analysis/sched.ts';

export interface SchedHtmlInput {
  title: string;
  /** what was recorded, for the header, e.g. "pid 1234 (python3 app.py)" */
  subtitle: string;
  trace: SchedTrace;
  /** thread ids to draw, in row order */
  tids: number[];
  summary: SchedSummary;
  notes: string[];
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Page data: everything but the segment columns is plain JSON. */
interface PageData {
  title: string;
  subtitle: string;
  wallUs: number;
  rows: Array<{ pid: number; tid: number; name: string; count: number }>;
  stacks: string[][];
  summary: SchedSummary;
  notes: string[];
  /** byte offsets of the columns in the inflated blob */
  layout: { starts: number; durs: number; stacks: number; kinds: number; n: number };
  blob: string;
}

export function renderSchedHtml(input: SchedHtmlInput): string {
  const { trace } = input;
  let n = 0;
  const rows: PageData['rows'] = [];
  for (const tid of input.tids) {
    const t = trace.tasks.get(tid);
    if (!t) continue;
    rows.push({ pid: t.pid, tid, name: t.comm, count: t.kinds.length });
    n += t.kinds.length;
  }
  // columns at 8-byte aligned offsets
  const starts = new Float64Array(n);
  const durs = new Float64Array(n);
  const stackIds = new Int32Array(n);
  const kinds = new Uint8Array(n);
  // only the stacks the drawn threads use, renumbered
  const stackMap = new Map<number, number>();
  const stacks: string[][] = [];
  let i = 0;
  for (const r of rows) {
    const t = trace.tasks.get(r.tid)!;
    for (let j = 0; j < t.kinds.length; j++, i++) {
      starts[i] = (t.starts[j]! - trace.startNs) / 1e3;
      durs[i] = (t.ends[j]! - t.starts[j]!) / 1e3;
      kinds[i] = t.kinds[j]!;
      const s = t.stackIds[j]!;
      if (s < 0) stackIds[i] = -1;
      else {
        let m = stackMap.get(s);
        if (m === undefined) {
          m = stacks.length;
          stacks.push(trace.stacks[s]!);
          stackMap.set(s, m);
        }
        stackIds[i] = m;
      }
    }
  }
  const o1 = 0;
  const o2 = o1 + starts.byteLength;
  const o3 = o2 + durs.byteLength;
  const o4 = o3 + stackIds.byteLength;
  const raw = new Uint8Array(o4 + kinds.byteLength);
  raw.set(new Uint8Array(starts.buffer), o1);
  raw.set(new Uint8Array(durs.buffer), o2);
  raw.set(new Uint8Array(stackIds.buffer), o3);
  raw.set(kinds, o4);
  const blob = Buffer.from(deflateRawSync(raw, { level: 6 })).toString('base64');
  const data: PageData = {
    title: input.title,
    subtitle: input.subtitle,
    wallUs: (trace.endNs - trace.startNs) / 1e3,
    rows,
    stacks,
    summary: input.summary,
    notes: input.notes,
    layout: { starts: o1, durs: o2, stacks: o3, kinds: o4, n },
    blob,
  };
  const json = JSON.stringify(data).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="generator" content="pylens sched">',
    `<title>${escapeHtml(input.title)} — pylens sched</title>`,
    `<style>${CSS}</style>`,
    '</head><body>',
    `<header><h1>${escapeHtml(input.title)}</h1><div class="sub">${escapeHtml(input.subtitle)}</div>`,
    '<div class="legend"><span class="k k0"></span>running <span class="k k1"></span>runnable (scheduler delay) <span class="k k2"></span>sleeping <span class="k k3"></span>blocked (D: I/O, page fault…)',
    '<span class="hint">wheel: zoom · drag: pan · shift-drag: zoom to range · double-click / 0: reset</span>',
    '<button id="reset" type="button">reset zoom</button></div></header>',
    '<div id="wrap"><canvas id="tl"></canvas><div id="tip" hidden></div></div>',
    '<section><h2>Threads</h2><table id="threads"></table></section>',
    '<section><h2>Longest waits</h2><p class="note" id="notes"></p><ol id="waits"></ol></section>',
    `<script id="sched-data" type="application/json">${json}</script>`,
    `<script>${SCRIPT}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}

const CSS = `
body{font:13px system-ui,sans-serif;margin:0;color:#222;background:#fff}
header{padding:8px 12px;border-bottom:1px solid #ddd}
h1{font-size:16px;margin:0 0 2px}h2{font-size:14px;margin:14px 0 6px}
.sub{color:#555;margin-bottom:6px}
.legend{display:flex;gap:6px;align-items:center;flex-wrap:wrap}
.k{display:inline-block;width:14px;height:10px;border:1px solid #0003;margin-left:8px}
.k0{background:#2e9d4f}.k1{background:#f0a020}.k2{background:#c9dbee}.k3{background:#9b59b6}
.hint{color:#777;margin-left:16px}
button{margin-left:12px;font:inherit}
#wrap{position:relative;margin:0 12px}
canvas{display:block;width:100%;cursor:grab;user-select:none}
#tip{position:absolute;pointer-events:none;background:#fffff4;border:1px solid #999;padding:6px 8px;font:12px ui-monospace,monospace;white-space:pre;box-shadow:0 2px 6px #0003;max-width:640px;overflow:hidden;z-index:2}
section{margin:0 12px}
table{border-collapse:collapse;font:12px ui-monospace,monospace}
td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee}
td:nth-child(3),th:nth-child(3){text-align:left}
ol{font:12px ui-monospace,monospace;padding-left:28px}
ol li{margin-bottom:6px;cursor:pointer}
ol li pre{margin:2px 0 0 12px;color:#555}
.note{color:#666;max-width:900px}
`;

/** The page script: plain JavaScript (no types), so it is inlined as is. */
const SCRIPT = String.raw`(() => {
'use strict';
const data = JSON.parse(document.getElementById('sched-data').textContent);
const COLORS = [[46,157,79],[240,160,32],[201,219,238],[155,89,182]];
const KINDS = ['running','runnable (scheduler delay)','sleeping','blocked'];
const LABEL_W = 230, AXIS_H = 24, ROW_H = 22, GAP = 3;
const canvas = document.getElementById('tl');
const tip = document.getElementById('tip');
const g = canvas.getContext('2d');
const state = { t0: 0, t1: Math.max(data.wallUs, 1), ready: false, draws: 0, lastDrawMs: 0 };
let starts, durs, stackIds, kinds;
const rowOff = [];
{ let o = 0; for (const r of data.rows) { rowOff.push(o); o += r.count; } rowOff.push(o); }
window.__pylensSched = state;
state.rows = data.rows.length;

function fmt(us) {
  const a = Math.abs(us);
  if (a >= 1e6) return (us / 1e6).toFixed(a >= 1e7 ? 2 : 3) + ' s';
  if (a >= 1e3) return (us / 1e3).toFixed(a >= 1e5 ? 1 : 2) + ' ms';
  return us.toFixed(a >= 100 ? 0 : 1) + ' µs';
}
function fmtNs(ns) { return fmt(ns / 1e3); }
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';'); }

async function decode() {
  const bin = atob(data.blob);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const ds = new DecompressionStream('deflate-raw');
  const buf = await new Response(new Blob([bytes]).stream().pipeThrough(ds)).arrayBuffer();
  const L = data.layout;
  starts = new Float64Array(buf, L.starts, L.n);
  durs = new Float64Array(buf, L.durs, L.n);
  stackIds = new Int32Array(buf, L.stacks, L.n);
  kinds = new Uint8Array(buf, L.kinds, L.n);
}

function size() {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.parentElement.clientWidth;
  const cssH = AXIS_H + data.rows.length * ROW_H + 4;
  canvas.style.height = cssH + 'px';
  canvas.width = Math.max(1, Math.round(cssW * dpr));
  canvas.height = Math.max(1, Math.round(cssH * dpr));
  state.dpr = dpr; state.cssW = cssW; state.cssH = cssH;
}

/** first segment of row r ending after t */
function firstAfter(r, t) {
  let lo = rowOff[r], hi = rowOff[r + 1];
  while (lo < hi) { const m = (lo + hi) >> 1; if (starts[m] + durs[m] <= t) lo = m + 1; else hi = m; }
  return lo;
}

function niceStep(span, px) {
  const raw = span / Math.max(1, px / 90);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function draw() {
  if (!starts) return;
  const T = performance.now();
  const dpr = state.dpr, W = canvas.width, H = canvas.height;
  const x0 = Math.round(LABEL_W * dpr), pw = Math.max(1, W - x0);
  const img = g.createImageData(W, H);
  const px = img.data;
  for (let i = 3; i < px.length; i += 4) { px[i] = 255; px[i - 3] = 255; px[i - 2] = 255; px[i - 1] = 255; }
  const t0 = state.t0, t1 = state.t1, span = t1 - t0, perPx = span / pw;
  const bins = new Float64Array(pw * 4);
  const rh = Math.round(ROW_H * dpr), gap = Math.round(GAP * dpr), top0 = Math.round(AXIS_H * dpr);
  for (let r = 0; r < data.rows.length; r++) {
    bins.fill(0);
    const end = rowOff[r + 1];
    for (let i = firstAfter(r, t0); i < end; i++) {
      const s = starts[i];
      if (s >= t1) break;
      const e = s + durs[i], k = kinds[i];
      let a = (Math.max(s, t0) - t0) / perPx, b = (Math.min(e, t1) - t0) / perPx;
      let ia = Math.floor(a);
      const ib = Math.min(pw - 1, Math.floor(b));
      if (ia === ib) { bins[ia * 4 + k] += b - a; continue; }
      bins[ia * 4 + k] += ia + 1 - a;
      for (let x = ia + 1; x < ib; x++) bins[x * 4 + k] += 1;
      if (ib < pw && b > ib) bins[ib * 4 + k] += b - ib;
    }
    const yTop = top0 + r * rh + gap, h = rh - 2 * gap;
    for (let x = 0; x < pw; x++) {
      const o = x * 4;
      const tot = bins[o] + bins[o + 1] + bins[o + 2] + bins[o + 3];
      if (tot <= 0) continue;
      // stacked from the bottom: running, runnable, blocked, sleeping; the uncovered part stays white
      const cover = Math.min(1, tot);
      let y = yTop + h;
      const order = [0, 1, 3, 2];
      let acc = 0;
      for (const k of order) {
        const f = bins[o + k] / tot * cover;
        if (f <= 0) continue;
        acc += f;
        const yEnd = yTop + h - Math.round(acc * h);
        const c = COLORS[k];
        for (let yy = yEnd; yy < y; yy++) {
          const p = (yy * W + x0 + x) * 4;
          px[p] = c[0]; px[p + 1] = c[1]; px[p + 2] = c[2];
        }
        y = yEnd;
      }
    }
  }
  g.putImageData(img, 0, 0);
  g.save();
  g.scale(dpr, dpr);
  // labels
  g.font = '12px ui-monospace,monospace';
  g.textBaseline = 'middle';
  for (let r = 0; r < data.rows.length; r++) {
    const row = data.rows[r], y = AXIS_H + r * ROW_H + ROW_H / 2;
    g.fillStyle = r % 2 ? '#fafafa' : '#f2f2f2';
    g.fillRect(0, AXIS_H + r * ROW_H, LABEL_W - 4, ROW_H);
    g.fillStyle = '#222';
    const label = row.name + ' ' + row.tid + (row.pid > 0 && row.pid !== row.tid ? ' (pid ' + row.pid + ')' : '');
    g.fillText(label.length > 32 ? label.slice(0, 31) + '…' : label, 4, y);
  }
  // time axis
  g.fillStyle = '#444'; g.strokeStyle = '#ccc'; g.textBaseline = 'top';
  const cw = state.cssW - LABEL_W, step = niceStep(span, cw);
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const x = LABEL_W + (t - t0) / span * cw;
    g.beginPath(); g.moveTo(x + 0.5, AXIS_H - 6); g.lineTo(x + 0.5, state.cssH); g.globalAlpha = 0.35; g.stroke(); g.globalAlpha = 1;
    g.fillText(fmt(t), x + 3, 4);
  }
  if (state.sel) {
    const a = LABEL_W + (Math.min(state.sel.a, state.sel.b) - t0) / span * cw, b = LABEL_W + (Math.max(state.sel.a, state.sel.b) - t0) / span * cw;
    g.fillStyle = 'rgba(40,90,200,0.18)'; g.fillRect(a, AXIS_H, b - a, state.cssH - AXIS_H);
  }
  g.restore();
  state.draws++;
  state.lastDrawMs = performance.now() - T;
}

let queued = false;
function redraw() { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; draw(); }); } }

function timeAt(cssX) { return state.t0 + (cssX - LABEL_W) / (state.cssW - LABEL_W) * (state.t1 - state.t0); }
function setView(a, b) {
  const wall = Math.max(data.wallUs, 1), minSpan = 1;
  let span = Math.max(minSpan, Math.min(wall, b - a));
  a = Math.max(0, Math.min(a, wall - span));
  state.t0 = a; state.t1 = a + span;
  redraw();
}
function reset() { setView(0, Math.max(data.wallUs, 1)); }

function zoomAt(cssX, factor) {
  const t = cssX > LABEL_W ? timeAt(cssX) : (state.t0 + state.t1) / 2;
  setView(t - (t - state.t0) * factor, t + (state.t1 - t) * factor);
}

function segmentAt(r, t, tolUs) {
  const i = firstAfter(r, t - tolUs);
  if (i >= rowOff[r + 1] || starts[i] > t + tolUs) return -1;
  return i;
}

function showTip(ev) {
  const rect = canvas.getBoundingClientRect();
  const x = ev.clientX - rect.left, y = ev.clientY - rect.top;
  const r = Math.floor((y - AXIS_H) / ROW_H);
  if (!starts || x < LABEL_W || r < 0 || r >= data.rows.length) { tip.hidden = true; return; }
  const t = timeAt(x), perPx = (state.t1 - state.t0) / (state.cssW - LABEL_W);
  const i = segmentAt(r, t, perPx / 2);
  const row = data.rows[r];
  if (i < 0) { tip.hidden = true; return; }
  // what else shares this pixel
  const mix = [0, 0, 0, 0];
  let n = 0;
  for (let j = firstAfter(r, t - perPx / 2); j < rowOff[r + 1] && starts[j] < t + perPx / 2; j++) {
    const a = Math.max(starts[j], t - perPx / 2), b = Math.min(starts[j] + durs[j], t + perPx / 2);
    mix[kinds[j]] += Math.max(0, b - a); n++;
  }
  const lines = [row.name + '  tid ' + row.tid + (row.pid > 0 ? '  pid ' + row.pid : ''),
    KINDS[kinds[i]] + '  from ' + fmt(starts[i]) + '  for ' + fmt(durs[i])];
  if (n > 1) {
    const tot = mix[0] + mix[1] + mix[2] + mix[3] || 1;
    lines.push(n + ' segments under the pointer: ' + mix.map((v, k) => v > 0 ? KINDS[k].split(' ')[0] + ' ' + Math.round(100 * v / tot) + '%' : '').filter(Boolean).join(', '));
  }
  const sid = stackIds[i];
  if (sid >= 0) {
    lines.push(kinds[i] === 1 ? 'preempted at:' : 'switched out at:');
    const st = data.stacks[sid];
    for (const f of st.slice(0, 14)) lines.push('  ' + f);
    if (st.length > 14) lines.push('  … ' + (st.length - 14) + ' more');
  }
  tip.textContent = lines.join('\n');
  tip.hidden = false;
  const w = tip.offsetWidth, pw = canvas.parentElement.clientWidth;
  tip.style.left = Math.max(0, Math.min(x + 14, pw - w - 4)) + 'px';
  tip.style.top = (y + 16) + 'px';
  state.tip = { row: r, index: i, kind: KINDS[kinds[i]], startUs: starts[i], durUs: durs[i] };
}

let drag;
canvas.addEventListener('mousedown', (ev) => {
  const rect = canvas.getBoundingClientRect();
  drag = { x: ev.clientX - rect.left, t0: state.t0, t1: state.t1, shift: ev.shiftKey };
  if (drag.shift) state.sel = { a: timeAt(drag.x), b: timeAt(drag.x) };
  canvas.style.cursor = 'grabbing';
});
window.addEventListener('mousemove', (ev) => {
  if (drag) {
    const rect = canvas.getBoundingClientRect(), x = ev.clientX - rect.left;
    if (drag.shift) { state.sel.b = timeAt(x); redraw(); }
    else {
      const dt = (x - drag.x) / (state.cssW - LABEL_W) * (drag.t1 - drag.t0);
      setView(drag.t0 - dt, drag.t1 - dt);
    }
    tip.hidden = true;
  } else if (ev.target === canvas) showTip(ev);
  else tip.hidden = true;
});
window.addEventListener('mouseup', () => {
  if (drag && drag.shift && state.sel) {
    const a = Math.min(state.sel.a, state.sel.b), b = Math.max(state.sel.a, state.sel.b);
    state.sel = undefined;
    if (b - a > 0) setView(a, b); else redraw();
  }
  drag = undefined;
  canvas.style.cursor = 'grab';
});
canvas.addEventListener('mouseleave', () => { tip.hidden = true; });
canvas.addEventListener('wheel', (ev) => {
  ev.preventDefault();
  const rect = canvas.getBoundingClientRect();
  if (Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
    const dt = ev.deltaX / (state.cssW - LABEL_W) * (state.t1 - state.t0);
    setView(state.t0 + dt, state.t1 + dt);
  } else zoomAt(ev.clientX - rect.left, Math.pow(1.0015, ev.deltaY));
}, { passive: false });
canvas.addEventListener('dblclick', reset);
document.getElementById('reset').addEventListener('click', reset);
window.addEventListener('keydown', (ev) => {
  const span = state.t1 - state.t0;
  if (ev.key === '0' || ev.key === 'Escape') reset();
  else if (ev.key === '+' || ev.key === '=') zoomAt(-1, 0.7);
  else if (ev.key === '-') zoomAt(-1, 1 / 0.7);
  else if (ev.key === 'ArrowLeft') setView(state.t0 - span * 0.2, state.t1 - span * 0.2);
  else if (ev.key === 'ArrowRight') setView(state.t0 + span * 0.2, state.t1 + span * 0.2);
});
window.addEventListener('resize', () => { size(); redraw(); });

function tables() {
  const s = data.summary, wall = s.wallNs;
  const pct = (x) => wall > 0 ? (100 * x / wall).toFixed(1) + '%' : '';
  let h = '<tr><th>pid</th><th>tid</th><th>name</th><th>run</th><th>%</th><th>sched delay</th><th>%</th><th>sleeping/blocked</th><th>%</th><th>blocked (D)</th><th>switches</th><th>vol</th><th>invol</th></tr>';
  for (const t of s.threads) {
    h += '<tr><td>' + t.pid + '</td><td>' + t.tid + '</td><td>' + esc(t.name) + '</td><td>' + fmtNs(t.runNs) + '</td><td>' + pct(t.runNs) + '</td><td>' + fmtNs(t.delayNs) + '</td><td>' + pct(t.delayNs) +
      '</td><td>' + fmtNs(t.waitNs) + '</td><td>' + pct(t.waitNs) + '</td><td>' + fmtNs(t.blockedNs) + '</td><td>' + t.switches + '</td><td>' + t.voluntary + '</td><td>' + t.involuntary + '</td></tr>';
  }
  document.getElementById('threads').innerHTML = h;
  document.getElementById('notes').textContent = data.notes.join(' ');
  const ol = document.getElementById('waits');
  s.waits.forEach((w) => {
    const li = document.createElement('li');
    li.innerHTML = '<b>' + fmtNs(w.durNs) + '</b> ' + esc(w.state) + ' ' + esc(w.kind) + ' · ' + esc(w.name) + ' tid ' + w.tid + ' · at ' + fmtNs(w.startNs) +
      (w.delayAfterNs ? ' · then ' + fmtNs(w.delayAfterNs) + ' runnable' : '') + (w.open ? ' · still waiting at the end' : '') +
      (w.stack.length ? '<pre>' + esc(w.stack.slice(0, 16).join('\n')) + '</pre>' : '');
    li.title = 'zoom to this wait';
    li.addEventListener('click', () => {
      const a = w.startNs / 1e3, d = Math.max(w.durNs / 1e3, 1);
      setView(a - d * 0.25, a + d * 1.25);
      canvas.scrollIntoView({ block: 'nearest' });
    });
    ol.appendChild(li);
  });
}

tables();
size();
decode().then(() => { state.ready = true; draw(); }, (e) => { console.error('pylens sched: cannot decode the data: ' + e); });
})();
`;
