/**
 * The HTML flamegraph page: reads the embedded data, builds views with tree.ts and draws
 * them on a canvas. Entry module of the page bundle (see src/render/bundle.ts).
 *
 * Drawing walks each visible depth of the layout with binary search and skips boxes
 * narrower than half a pixel, so a redraw costs O(visible pixels), not O(samples).
 * Views are rebuilt only when a filter, the value type, the time range or the view changes.
 * The timeline (timeline.ts) and the function table (table.ts) follow the same filters.
 */
import type { PageData, PageTable } from './data.ts';
import { decodeColumns, readBundle, type BlobRef, type DecodeTimings } from './decode.ts';
import { KIND_NAMES, KIND_SWATCHES, SEARCH_COLOR, frameColor, paleColor } from './palette.ts';
import { FlameModel, STATE_NAMES, advance, boxAt, boxDepth, boxSelf, nodeBox, searchPattern, type Layout, type RowFilter, type TimeRange } from './tree.ts';
import { samplerQuality } from './quality.ts';
import { formatDuration, formatPercent, formatValue, groupDigits } from './units.ts';
import { Timeline, type TimelineInfo } from './timeline.ts';
import { tableInit, tableReserve, tableShowFilter } from './table.ts';

const ROW = 18;
const PADX = 8;
const FONT = '12px ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace';
/** Boxes narrower than this (CSS px) are not drawn. */
const MIN_PX = 0.5;

const SCRIPT_START = performance.now();

interface Stats {
  /** When the page script started (ms since navigation start): HTML parsing before that. */
  scriptStartMs: number;
  jsonMs: number;
  decode: DecodeTimings;
  modelMs: number;
  /** performance.now() when the first frame was drawn (ms since navigation start). */
  firstFrameMs: number;
  /** The function table, built after the first frame (ms); -1 before. */
  tableMs: number;
  /** Inside the workbench: from asking for the data to its message, and reading its bytes (ms); -1 otherwise. */
  dataWaitMs: number;
  dataReadMs: number;
  lastRedrawMs: number;
  nodesDrawn: number;
  decodeMs: number;
  lastBuildMs: number;
  boxes: number;
  /** The timeline's first binning and drawing (right after the first frame); -1 without one. */
  timelineMs: number;
}

interface BoxRect {
  x: number;
  y: number;
  width: number;
  height: number;
  label: string;
}

interface PylensHook {
  /** Resolved once the page is complete: the flamegraph drawn, the function table built. */
  ready: Promise<void>;
  isReady: boolean;
  /** The flamegraph's first frame is drawn (the table follows; `isReady` then). */
  drawn: boolean;
  error: string | null;
  stats: Stats;
  zoomTo(label: string): boolean;
  search(query: string): string;
  reset(): void;
  setView(view: 'merged' | 'time'): void;
  setOrientation(o: 'flame' | 'icicle'): void;
  findBox(label: string): BoxRect | null;
  redraw(): number;
  state(): Record<string, unknown>;
  /** Filter every view by the time range [startNs, endNs) (ns since the profile start, as row times). */
  setRange(startNs: number, endNs: number): void;
  clearRange(): void;
  /** The timeline's lanes and geometry; null when the profile has no sample times. */
  timeline(): TimelineInfo | null;
  /** The view as data (a URL keeps it), and putting the page in one. */
  view(): PageView;
  applyView(v: PageView): void;
}

declare global {
  interface Window {
    __pylens: PylensHook;
  }
}

function $<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`page element #${id} is missing`);
  return e as T;
}

function h(tag: string, cls?: string, text?: string): HTMLElement {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const stats: Stats = { scriptStartMs: SCRIPT_START, jsonMs: -1, decode: { base64Ms: -1, inflateMs: -1, columnsMs: -1 }, modelMs: -1, firstFrameMs: -1, tableMs: -1, dataWaitMs: -1, dataReadMs: -1, lastRedrawMs: -1, nodesDrawn: 0, decodeMs: -1, lastBuildMs: -1, boxes: 0, timelineMs: -1 };

class App {
  readonly model: FlameModel;
  readonly data: PageData;
  layout!: Layout;
  view: 'merged' | 'time' = 'merged';
  orientation: 'flame' | 'icicle' = 'flame';
  valueIndex: number;
  threadSel = 'all';
  stateSel = 'all';
  byThread = false;
  query = '';
  nodeMatch: Uint8Array | null = null;
  matched = 0;
  /** The selected time range (timeline), null for all of the profile. */
  range: TimeRange | null = null;
  readonly timeline: Timeline | null = null;
  /** What the function table was last shown for ('' = the embedded rows). */
  private tableKey = '';
  /** Visible range in value units, and the depth of the zoomed frame (ancestors are faded). */
  x0 = 0;
  x1 = 1;
  zoomDepth = 0;
  zoomed = false;
  hover = -1;

  readonly canvas = $<HTMLCanvasElement>('fg');
  readonly ctx: CanvasRenderingContext2D;
  readonly scroller = $<HTMLDivElement>('scroller');
  readonly spacer = $<HTMLDivElement>('spacer');
  readonly tip = $<HTMLDivElement>('tip');
  cssW = 0;
  cssH = 0;
  dpr = 1;
  charW = 7.2;
  private colors: string[] = [];
  private pales: string[] = [];
  private hatch: CanvasPattern | null = null;
  private frameRequested = false;
  /** Scratch interval lists for draw(): [start0, end0, start1, end1, …] in value units. */
  private ivA = new Float64Array(256);
  private ivB = new Float64Array(256);

  constructor(model: FlameModel) {
    this.model = model;
    this.data = model.cols.data;
    this.valueIndex = this.data.defaultValue;
    const ctx = this.canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('this browser has no 2D canvas');
    this.ctx = ctx;
    this.ctx.font = FONT;
    this.charW = this.ctx.measureText('MMMMMMMMMM').width / 10 || 7.2;
    this.hatch = this.makeHatch();
    this.header();
    this.controls();
    this.legend();
    if (this.data.timed && model.cols.rowTime !== null && model.cols.nRows > 0) {
      // its room kept before the flamegraph measures its own; binned and drawn after the first frame (startTimeline)
      this.timeline = new Timeline(model, (r) => this.setRange(r));
      const seen = new Uint8Array(model.cols.nThreads);
      const rowThread = model.cols.rowThread;
      for (let r = 0; r < rowThread.length; r++) seen[rowThread[r]!] = 1;
      this.timeline.reserve(seen.reduce((a, b) => a + b, 0));
    }
    this.resize();
    this.rebuild();
  }

  /** After the first frame: the timeline's binning and drawing. */
  startTimeline(): void {
    if (!this.timeline) return;
    const t = performance.now();
    this.timeline.start(this.filter());
    stats.timelineMs = performance.now() - t;
  }

  // ---------------------------------------------------------------- data and views

  filter(): RowFilter {
    const th = this.data.threads;
    let threads: Uint8Array | null = null;
    if (this.threadSel.startsWith('t:')) {
      threads = new Uint8Array(th.pid.length);
      threads[Number(this.threadSel.slice(2))] = 1;
    } else if (this.threadSel.startsWith('p:')) {
      const pid = Number(this.threadSel.slice(2));
      threads = new Uint8Array(th.pid.length);
      for (let t = 0; t < th.pid.length; t++) if (th.pid[t] === pid) threads[t] = 1;
    }
    // asyncio tasks (record --async): 'k:all' every task, 'k:none' the threads alone, 'k:N' task N
    let tasks: Uint8Array | null = null;
    if (this.threadSel.startsWith('k:')) {
      const n = this.model.tasks().names.length;
      tasks = new Uint8Array(n + 1);
      const k = this.threadSel.slice(2);
      if (k === 'all') tasks.fill(1, 1);
      else if (k === 'none') tasks[0] = 1;
      else tasks[1 + Number(k)] = 1;
    }
    let states: Uint8Array | null = null;
    if (this.stateSel !== 'all') {
      states = new Uint8Array(STATE_NAMES.length);
      states[Number(this.stateSel)] = 1;
    }
    return { threads, states, tasks, valueIndex: this.valueIndex, byThread: this.byThread, range: this.range };
  }

  /** Select a time range (null: all of the profile); every view follows. */
  setRange(r: TimeRange | null): void {
    const tl = this.timeline;
    if (r !== null && tl !== null) {
      const start = Math.max(tl.t0, Math.min(r.start, r.end));
      const end = Math.min(tl.t1, Math.max(r.start, r.end));
      r = end > start ? { start, end } : null;
    } else if (r !== null && !(r.end > r.start)) r = null;
    if (tl === null) r = null;
    const same = r === null ? this.range === null : this.range !== null && this.range.start === r.start && this.range.end === r.end;
    tl?.setRange(r);
    if (same) return;
    this.range = r;
    this.hideTip();
    this.rebuild();
  }

  /** The function table follows the filters: the embedded rows when there is none, else rows recomputed in the page. */
  private updateTable(f: RowFilter): void {
    const unfiltered = this.threadSel === 'all' && this.stateSel === 'all' && this.valueIndex === this.data.defaultValue && this.range === null;
    const key = unfiltered ? '' : `${this.threadSel}|${this.stateSel}|${this.valueIndex}|${this.range?.start}|${this.range?.end}`;
    if (key === this.tableKey) return;
    this.tableKey = key;
    if (unfiltered) return tableShowFilter(null);
    const parts: string[] = [];
    if (this.range && this.timeline) parts.push(this.timeline.formatRange(this.range));
    const sel = $<HTMLSelectElement>('thread');
    if (this.threadSel !== 'all') parts.push((sel.selectedOptions[0]?.textContent ?? this.threadSel).replace(/ — [^—]*$/, ''));
    if (this.stateSel !== 'all') parts.push(`state ${STATE_NAMES[Number(this.stateSel)]}`);
    const vt = this.data.valueTypes[this.valueIndex]!;
    if (this.valueIndex !== this.data.defaultValue) parts.push(vt.name);
    tableShowFilter({ model: this.model, filter: f, unit: vt.unit, caption: parts.join(' · ') });
  }

  /** Rebuild the layout after a filter / view / value change, keeping the zoomed frame when it still exists. */
  rebuild(): void {
    const t = performance.now();
    const keepNode = this.zoomed && this.view === 'merged' && this.layout?.view === 'merged' ? this.zoomNode() : -1;
    const f = this.filter();
    this.layout = this.view === 'time' ? this.model.buildTimeOrder(f) : this.model.buildMerged(f);
    stats.lastBuildMs = performance.now() - t;
    stats.boxes = this.layout.node.length;
    this.resetZoom(false);
    if (keepNode >= 0) {
      const b = nodeBox(this.layout, keepNode, this.model.nodes.depth[keepNode]!);
      if (b >= 0) this.zoomToBox(b, false);
    }
    this.applySearch(false);
    this.updateSpacer();
    if (this.orientation === 'flame') this.scroller.scrollTop = this.scroller.scrollHeight;
    this.crumbs();
    this.draw();
    this.timeline?.update(f);
    this.updateTable(f);
  }

  zoomNode(): number {
    const b = boxAt(this.layout, this.zoomDepth, (this.x0 + this.x1) / 2);
    return b >= 0 ? this.layout.node[b]! : -1;
  }

  // ---------------------------------------------------------------- zoom

  resetZoom(redraw = true): void {
    this.x0 = 0;
    this.x1 = this.layout.total > 0 ? this.layout.total : 1;
    this.zoomDepth = 0;
    this.zoomed = false;
    $<HTMLButtonElement>('reset').disabled = true;
    if (redraw) {
      this.crumbs();
      this.draw();
    }
  }

  zoomToBox(b: number, redraw = true): void {
    const l = this.layout;
    const d = boxDepth(l, b);
    if (d === 0) return this.resetZoom(redraw);
    this.x0 = l.start[b]!;
    this.x1 = l.end[b]!;
    this.zoomDepth = d;
    this.zoomed = true;
    $<HTMLButtonElement>('reset').disabled = false;
    if (redraw) {
      this.crumbs();
      this.draw();
    }
  }

  /** Zoom by `factor` (< 1 zooms in) around value position `at`. */
  zoomBy(factor: number, at = (this.x0 + this.x1) / 2): void {
    const total = this.layout.total || 1;
    const w0 = this.x1 - this.x0;
    const w = Math.min(total, Math.max(total * 1e-9, w0 * factor));
    const r = (at - this.x0) / w0;
    let x0 = at - r * w;
    x0 = Math.max(0, Math.min(total - w, x0));
    this.x0 = x0;
    this.x1 = x0 + w;
    this.afterFreeZoom();
  }

  pan(fraction: number): void {
    const total = this.layout.total || 1;
    const w = this.x1 - this.x0;
    const x0 = Math.max(0, Math.min(total - w, this.x0 + fraction * w));
    this.x0 = x0;
    this.x1 = x0 + w;
    this.afterFreeZoom();
  }

  /** After a keyboard or wheel zoom: the zoom path is the frames that still span the whole view. */
  private afterFreeZoom(): void {
    const l = this.layout;
    let d = 0;
    while (d < this.zoomDepth) {
      const b = boxAt(l, d + 1, this.x0);
      if (b < 0 || l.end[b]! < this.x1) break;
      d++;
    }
    this.zoomDepth = d;
    this.zoomed = this.x0 > 0 || this.x1 < (l.total || 1);
    $<HTMLButtonElement>('reset').disabled = !this.zoomed;
    this.crumbs();
    this.draw();
  }

  // ---------------------------------------------------------------- search

  applySearch(redraw = true): void {
    const input = $<HTMLInputElement>('search');
    const re = searchPattern(this.query);
    input.classList.toggle('bad', false);
    if (!re) {
      this.nodeMatch = null;
      this.matched = 0;
      $('matched').textContent = '';
    } else {
      const r = this.model.search(this.layout, re);
      this.nodeMatch = r.nodeMatch;
      this.matched = r.matched;
      const total = this.layout.total;
      $('matched').textContent = `Matched: ${formatPercent(total > 0 ? r.matched / total : 0)}`;
    }
    if (redraw) this.draw();
  }

  // ---------------------------------------------------------------- geometry

  contentHeight(): number {
    return Math.max(this.cssH, (this.layout.maxDepth + 1) * ROW + 6);
  }

  /** Content y (top edge) of a depth. */
  depthY(d: number): number {
    return this.orientation === 'flame' ? this.contentHeight() - (d + 1) * ROW - 3 : d * ROW + 3;
  }

  depthAtY(cy: number): number {
    const d = this.orientation === 'flame' ? Math.floor((this.contentHeight() - 3 - cy) / ROW) : Math.floor((cy - 3) / ROW);
    return d;
  }

  scale(): number {
    return (this.cssW - 2 * PADX) / (this.x1 - this.x0 || 1);
  }

  /** Box under a canvas point (CSS px), only if drawn. */
  boxAtPoint(px: number, py: number): number {
    const d = this.depthAtY(py + this.scroller.scrollTop);
    if (d < 0 || d > this.layout.maxDepth) return -1;
    const x = this.x0 + (px - PADX) / this.scale();
    const b = boxAt(this.layout, d, x);
    if (b < 0) return -1;
    return (this.layout.end[b]! - this.layout.start[b]!) * this.scale() >= MIN_PX ? b : -1;
  }

  resize(): void {
    this.dpr = window.devicePixelRatio || 1;
    this.cssW = this.scroller.clientWidth;
    this.cssH = this.scroller.clientHeight;
    this.canvas.style.width = `${this.cssW}px`;
    this.canvas.style.height = `${this.cssH}px`;
    this.canvas.width = Math.max(1, Math.round(this.cssW * this.dpr));
    this.canvas.height = Math.max(1, Math.round(this.cssH * this.dpr));
    if (this.layout) this.updateSpacer();
  }

  updateSpacer(): void {
    this.spacer.style.height = `${Math.max(0, this.contentHeight() - this.cssH)}px`;
  }

  // ---------------------------------------------------------------- drawing

  private makeHatch(): CanvasPattern | null {
    const c = document.createElement('canvas');
    c.width = 6;
    c.height = 6;
    const g = c.getContext('2d');
    if (!g) return null;
    g.strokeStyle = 'rgba(70,70,90,0.35)';
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(0, 6);
    g.lineTo(6, 0);
    g.moveTo(-1, 1);
    g.lineTo(1, -1);
    g.moveTo(5, 7);
    g.lineTo(7, 5);
    g.stroke();
    return this.ctx.createPattern(c, 'repeat');
  }

  private color(n: number, pale: boolean): string {
    const cache = pale ? this.pales : this.colors;
    let c = cache[n];
    if (c === undefined) {
      const kind = this.model.nodeKind(n);
      const name = this.model.nodeLabel(n);
      c = n === 0 ? (pale ? 'rgb(222,222,228)' : 'rgb(200,200,208)') : pale ? paleColor(kind, name) : frameColor(kind, name);
      cache[n] = c;
    }
    return c;
  }

  private drawBox(i: number, bx: number, bw: number, y: number, right: number, match: Uint8Array | null): void {
    const { ctx, layout: l } = this;
    if (bx < PADX) {
      bw -= PADX - bx;
      bx = PADX;
    }
    if (bx + bw > right) bw = right - bx;
    const n = l.node[i]!;
    const idle = l.idle[i]! >= 128;
    // waiting: idle (pale and hatched), or off the CPU — blocked, GIL wait — (hatched, in the frame's own colour)
    const waiting = l.idle[i]! + l.offCpu[i]! >= 128;
    const isMatch = match !== null && match[n] === 1;
    ctx.fillStyle = isMatch ? SEARCH_COLOR : this.color(n, idle);
    const gap = bw >= 3 ? 1 : 0;
    ctx.fillRect(bx, y, bw - gap, ROW - 1);
    if (waiting && this.hatch && bw >= 2) {
      ctx.fillStyle = this.hatch;
      ctx.fillRect(bx, y, bw - gap, ROW - 1);
    }
    if (i === this.hover) {
      ctx.strokeStyle = '#1d2330';
      ctx.lineWidth = 1.5;
      ctx.strokeRect(bx + 0.75, y + 0.75, Math.max(0, bw - gap - 1.5), ROW - 2.5);
    }
    if (bw > this.charW * 3 + 6) {
      const label = this.model.nodeLabel(n);
      const fit = Math.floor((bw - 6) / this.charW);
      ctx.fillStyle = isMatch ? '#ffffff' : '#1b1e24';
      ctx.fillText(label.length <= fit ? label : `${label.slice(0, fit - 1)}…`, bx + 3, y + ROW / 2);
    }
  }

  requestDraw(): void {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.draw();
    });
  }

  /** The view as data (what a URL keeps): view, orientation, filters, search, range. */
  viewState(): PageView {
    return {
      ...(this.view !== 'merged' ? { view: this.view } : {}),
      ...(this.orientation !== 'flame' ? { orientation: this.orientation } : {}),
      ...(this.threadSel !== 'all' ? { thread: this.threadSel } : {}),
      ...(this.stateSel !== 'all' ? { state: this.stateSel } : {}),
      ...(this.valueIndex !== this.data.defaultValue ? { value: this.valueIndex } : {}),
      ...(this.byThread ? { byThread: true } : {}),
      ...(this.query ? { search: this.query } : {}),
      ...(this.range ? { range: [this.range.start, this.range.end] as [number, number] } : {}),
    };
  }

  /** Put the page in a view another page wrote (unknown or stale parts are ignored). */
  applyView(v: PageView): void {
    const pick = (id: string, value: string | undefined) => {
      const sel = $<HTMLSelectElement>(id);
      if (value === undefined || !Array.from(sel.options).some((o) => o.value === value)) return;
      sel.value = value;
      sel.dispatchEvent(new Event('change'));
    };
    pick('thread', v.thread);
    pick('state', v.state);
    if (v.value !== undefined) pick('value', String(v.value));
    if (v.byThread) {
      const g = $<HTMLInputElement>('group');
      g.checked = true;
      g.dispatchEvent(new Event('change'));
    }
    if (v.view === 'time') this.setView('time');
    if (v.orientation === 'icicle') this.setOrientation('icicle');
    if (v.range && Number.isFinite(v.range[0]) && Number.isFinite(v.range[1]) && v.range[1] > v.range[0]) this.setRange({ start: v.range[0], end: v.range[1] });
    if (v.search) {
      const input = $<HTMLInputElement>('search');
      input.value = v.search;
      this.query = v.search;
      this.applySearch();
    }
  }

  /** Draw synchronously; returns the time it took. */
  draw(): number {
    const t = performance.now();
    reportView(this);
    const { ctx, layout: l } = this;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, this.cssW, this.cssH);
    ctx.font = FONT;
    ctx.textBaseline = 'middle';
    const scale = this.scale();
    const halfPx = MIN_PX / scale;
    const x0 = this.x0;
    const x1 = this.x1;
    const right = this.cssW - PADX;
    const scroll = this.scroller.scrollTop;
    const match = this.nodeMatch;
    let drawn = 0;
    // A box can be wider than MIN_PX only if its parent is, so each depth is scanned only
    // inside the x-ranges drawn one depth below (merged into intervals): the work is bounded
    // by what is drawn, not by how many boxes the layout holds.
    let cur = this.ivA;
    let next = this.ivB;
    cur[0] = x0;
    cur[1] = x1;
    let nCur = 1;
    for (let d = 0; d <= l.maxDepth && nCur > 0; d++) {
      const y = this.depthY(d) - scroll;
      const visible = y + ROW >= 0 && y <= this.cssH;
      ctx.globalAlpha = d < this.zoomDepth ? 0.55 : 1;
      const hi = l.depthStart[d + 1]!;
      let nNext = 0;
      let i = l.depthStart[d]!;
      for (let k = 0; k < nCur; k++) {
        const a = cur[2 * k]!;
        const b = cur[2 * k + 1]!;
        i = advance(l, i, hi, a);
        while (i < hi) {
          const s = l.start[i]!;
          if (s >= b) break;
          const e = l.end[i]!;
          const w = (e - s) * scale;
          if (w < MIN_PX) {
            i = advance(l, i + 1, hi, s + halfPx);
            continue;
          }
          // Remember the drawn range for the next depth.
          const ra = s > x0 ? s : x0;
          const rb = e < x1 ? e : x1;
          if (nNext > 0 && next[2 * nNext - 1]! >= ra) next[2 * nNext - 1] = rb;
          else {
            if (2 * nNext + 2 > next.length) {
              const g = new Float64Array(next.length * 2);
              g.set(next);
              next = g;
            }
            next[2 * nNext] = ra;
            next[2 * nNext + 1] = rb;
            nNext++;
          }
          if (visible) {
            this.drawBox(i, PADX + (s - x0) * scale, w, y, right, match);
            drawn++;
          }
          i++;
        }
      }
      const t = cur;
      cur = next;
      next = t.length >= cur.length ? t : new Float64Array(cur.length);
      nCur = nNext;
    }
    this.ivA = cur;
    this.ivB = next;
    ctx.globalAlpha = 1;
    if (l.total <= 0) {
      ctx.fillStyle = '#5d6675';
      ctx.font = '14px system-ui, sans-serif';
      ctx.fillText('No samples match the current filters.', PADX + 4, 24);
    }
    stats.nodesDrawn = drawn;
    stats.lastRedrawMs = performance.now() - t;
    return stats.lastRedrawMs;
  }

  // ---------------------------------------------------------------- tooltip

  showTip(b: number, cx: number, cy: number): void {
    const l = this.layout;
    const m = this.model;
    const n = l.node[b]!;
    const vt = this.data.valueTypes[this.valueIndex]!;
    const total = l.end[b]! - l.start[b]!;
    const self = boxSelf(l, b);
    const all = l.total || 1;
    const tip = this.tip;
    tip.replaceChildren();
    tip.append(h('div', 'name', m.nodeLabel(n)));
    const f = m.nodes.frame[n]!;
    const cols = m.cols;
    const loc: string[] = [];
    if (f >= 0) {
      const file = cols.frameFile[f]!;
      const line = cols.frameLine[f]!;
      const lib = cols.frameLib[f]!;
      if (file >= 0) loc.push(line > 0 ? `${cols.strings[file]}:${line}` : cols.strings[file]!);
      if (lib >= 0) loc.push(cols.strings[lib]!);
      loc.push(KIND_NAMES[cols.frameKind[f]!] ?? 'frame');
    } else loc.push(n === 0 ? 'all samples' : 'thread');
    tip.append(h('div', 'loc', loc.join(' · ')));
    const table = h('table');
    const row = (k: string, v: string) => {
      const tr = h('tr');
      tr.append(h('td', undefined, k), h('td', undefined, v));
      table.append(tr);
    };
    const inView = Math.max(0, Math.min(l.end[b]!, this.x1) - Math.max(l.start[b]!, this.x0));
    const pct = (v: number, visible: number) => {
      let s = formatPercent(v / all);
      if (this.zoomed) s += `, ${formatPercent(visible / (this.x1 - this.x0))} of view`;
      return s;
    };
    row('Total', `${formatValue(total, vt.unit)} (${pct(total, inView)})`);
    row('Self', `${formatValue(self, vt.unit)} (${pct(self, Math.min(self, inView))})`);
    // the state split of this frame's value (the bytes are shares of it, 0..255)
    const idle = l.idle[b]!;
    const gil = l.gil[b]!;
    const blocked = Math.max(0, l.offCpu[b]! - gil);
    if (idle + l.offCpu[b]! > 0) {
      const share = (x: number) => `${Math.round((100 * x) / 255)}% of this frame's ${vt.name}`;
      const onCpu = Math.max(0, 255 - idle - l.offCpu[b]!);
      if (this.data.meta.mode !== 'cpu') row('On-CPU', share(onCpu));
      if (idle > 0) row('Idle', share(idle));
      if (blocked > 0) row('Off-CPU', `${share(blocked)} (blocked)`);
      if (gil > 0) row('GIL wait', share(gil));
    }
    if (l.view === 'time') row('View', 'time order: one run of consecutive samples');
    tip.append(table);
    tip.hidden = false;
    const r = tip.getBoundingClientRect();
    let x = cx + 14;
    let y = cy + 16;
    if (x + r.width > window.innerWidth - 4) x = Math.max(4, cx - r.width - 10);
    if (y + r.height > window.innerHeight - 4) y = Math.max(4, cy - r.height - 10);
    tip.style.left = `${x}px`;
    tip.style.top = `${y}px`;
  }

  hideTip(): void {
    this.tip.hidden = true;
  }

  // ---------------------------------------------------------------- chrome: header, controls, crumbs, legend

  header(): void {
    const d = this.data;
    const meta = d.meta;
    $('title').textContent = d.title;
    document.title = `${d.title} — pylens`;
    const sub: string[] = [];
    if (meta.source) sub.push(`imported from ${meta.source.format}${meta.source.file ? ` (${meta.source.file})` : ''}`);
    $('subtitle').textContent = sub.join(' · ');
    const facts = $('facts');
    const add = (into: HTMLElement, k: string, v: string | undefined | null) => {
      if (v === undefined || v === null || v === '') return;
      const div = h('div');
      div.append(h('dt', undefined, k), h('dd', undefined, v));
      into.append(div);
    };
    add(facts, 'lens', `${meta.lens} (${meta.backend})`);
    add(facts, 'mode', meta.mode);
    if (meta.rateHz) add(facts, 'rate', `${groupDigits(meta.rateHz)} Hz`);
    if (meta.durationNs !== undefined) add(facts, 'duration', formatDuration(meta.durationNs));
    add(facts, 'samples', groupDigits(meta.sampleCount));
    add(facts, 'errors', groupDigits(meta.errorCount));
    if (meta.overhead) {
      const o = meta.overhead;
      add(facts, 'overhead', `${o.fraction !== undefined ? formatPercent(o.fraction) : '?'} (${o.method})`);
    }
    add(facts, 'quality', samplerQuality(meta));
    if (meta.command && meta.command.length) add(facts, 'command', meta.command.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' '));
    if (meta.pid !== undefined) add(facts, 'PID', String(meta.pid));
    if (meta.startTime) add(facts, 'start', meta.startTime.replace('T', ' ').replace(/\.\d+/, ''));
    add(facts, 'threads', String(d.threads.pid.length));
    if (meta.extra) for (const [k, v] of Object.entries(meta.extra)) add(facts, k, String(v));
    const env = $('env');
    const e = meta.environment ?? {};
    if (e.cpuModel || e.cpuCores) add(env, 'CPU', `${e.cpuModel ?? 'unknown'}${e.cpuCores ? ` (${e.cpuCores} cores)` : ''}`);
    add(env, 'kernel', e.kernel);
    add(env, 'OS', e.os);
    add(env, 'host', e.hostname);
    if (e.python) {
      const py = e.python;
      const parts = [py.implementation, py.version].filter(Boolean).join(' ');
      add(env, 'Python', `${parts || 'unknown'}${py.buildFlags ? ` [${py.buildFlags}]` : ''}`);
      add(env, 'executable', py.executable);
    }
    add(env, 'pylens', e.pylensVersion);
    if (!env.childElementCount) add(env, 'environment', 'not recorded');
  }

  controls(): void {
    const d = this.data;
    // View and orientation
    $('viewsel')
      .querySelectorAll('button')
      .forEach((b) => b.addEventListener('click', () => this.setView(b.dataset['v'] === 'time' ? 'time' : 'merged')));
    $('orient')
      .querySelectorAll('button')
      .forEach((b) => b.addEventListener('click', () => this.setOrientation(b.dataset['v'] === 'icicle' ? 'icicle' : 'flame')));
    const timeBtn = $('viewsel').querySelector<HTMLButtonElement>('button[data-v="time"]')!;
    if (!d.timed) {
      timeBtn.disabled = true;
      timeBtn.title = 'This profile has no sample times, so there is no time order';
      const note = $('note');
      note.textContent = `Time order is unavailable: this profile (${d.meta.source?.format ?? d.meta.backend}) has no sample times.`;
      note.hidden = false;
    }
    // Thread / process filter
    const sel = $<HTMLSelectElement>('thread');
    const th = d.threads;
    const perThread = new Float64Array(th.pid.length);
    const col = this.model.cols.rowValues[this.valueIndex]!;
    const rt = this.model.cols.rowThread;
    let grand = 0;
    for (let r = 0; r < rt.length; r++) {
      perThread[rt[r]!] += col[r]!;
      grand += col[r]!;
    }
    const share = (v: number) => (grand > 0 ? ` — ${formatPercent(v / grand)}` : '');
    const opt = (value: string, text: string) => {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = text;
      sel.append(o);
    };
    opt('all', `all threads (${th.pid.length})`);
    const pids = [...new Set(th.pid)].sort((a, b) => a - b);
    if (pids.length > 1) {
      for (const pid of pids) {
        let v = 0;
        let n = 0;
        for (let t = 0; t < th.pid.length; t++) if (th.pid[t] === pid) (v += perThread[t]!), n++;
        opt(`p:${pid}`, `process ${pid} (${n} threads)${share(v)}`);
      }
    }
    const order = th.pid.map((_, i) => i).sort((a, b) => th.pid[a]! - th.pid[b]! || th.tid[a]! - th.tid[b]!);
    for (const t of order) opt(`t:${t}`, `${this.model.threadLabel(t)}${share(perThread[t]!)}`);
    // asyncio tasks (record --async): selectable like threads, heaviest first
    const tk = this.model.tasks();
    if (tk.names.length > 0) {
      const perTask = new Float64Array(tk.names.length + 1);
      const rs = this.model.cols.rowStack;
      for (let r = 0; r < rs.length; r++) perTask[rs[r]! < 0 ? 0 : tk.ofStack[rs[r]!]! + 1] += col[r]!;
      let all = 0;
      for (let i = 1; i < perTask.length; i++) all += perTask[i]!;
      opt('k:all', `asyncio tasks (${tk.names.length})${share(all)}`);
      opt('k:none', `threads only, no task samples${share(perTask[0]!)}`);
      const byWeight = tk.names.map((_, i) => i).sort((a, b) => perTask[b + 1]! - perTask[a + 1]!);
      for (const i of byWeight) opt(`k:${i}`, `task ${tk.names[i]}${share(perTask[i + 1]!)}`);
    }
    sel.addEventListener('change', () => {
      this.threadSel = sel.value;
      this.rebuild();
    });
    // State filter, when the capture knows states
    const st = $<HTMLSelectElement>('state');
    const stateSum = new Float64Array(STATE_NAMES.length);
    const rs = this.model.cols.rowState;
    for (let r = 0; r < rs.length; r++) stateSum[rs[r]!] += col[r]!;
    const present = STATE_NAMES.map((_, i) => i).filter((i) => stateSum[i]! > 0);
    if (present.length === 0 || (present.length === 1 && present[0] === 0)) $('statewrap').hidden = true;
    else {
      const all = document.createElement('option');
      all.value = 'all';
      all.textContent = 'all states';
      st.append(all);
      for (const i of present) {
        const o = document.createElement('option');
        o.value = String(i);
        o.textContent = `${STATE_NAMES[i]}${share(stateSum[i]!)}`;
        st.append(o);
      }
      st.addEventListener('change', () => {
        this.stateSel = st.value;
        this.rebuild();
      });
    }
    // Value type
    const vs = $<HTMLSelectElement>('value');
    if (d.valueTypes.length < 2) $('valuewrap').hidden = true;
    d.valueTypes.forEach((v, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = `${v.name} (${v.unit})`;
      if (i === this.valueIndex) o.selected = true;
      vs.append(o);
    });
    vs.addEventListener('change', () => {
      this.valueIndex = Number(vs.value);
      this.rebuild();
    });
    // Per-thread roots in the merged view
    const grp = $<HTMLInputElement>('group');
    if (th.pid.length < 2) $('groupwrap').hidden = true;
    grp.addEventListener('change', () => {
      this.byThread = grp.checked;
      this.rebuild();
    });
    // Search
    const search = $<HTMLInputElement>('search');
    search.addEventListener('input', () => {
      this.query = search.value;
      this.applySearch();
    });
    // Reset, help
    $('reset').addEventListener('click', () => this.resetZoom());
    $('helpbtn').addEventListener('click', () => {
      $('help').hidden = !$('help').hidden;
    });
    // Canvas
    this.canvas.addEventListener('mousemove', (ev) => {
      const b = this.boxAtPoint(ev.offsetX, ev.offsetY);
      if (b !== this.hover) {
        this.hover = b;
        this.requestDraw();
      }
      if (b >= 0) this.showTip(b, ev.clientX, ev.clientY);
      else this.hideTip();
    });
    this.canvas.addEventListener('mouseleave', () => {
      this.hover = -1;
      this.hideTip();
      this.requestDraw();
    });
    this.canvas.addEventListener('click', (ev) => {
      const b = this.boxAtPoint(ev.offsetX, ev.offsetY);
      if (b >= 0) {
        this.zoomToBox(b);
        this.hover = this.boxAtPoint(ev.offsetX, ev.offsetY);
        if (this.hover >= 0) this.showTip(this.hover, ev.clientX, ev.clientY);
      }
    });
    this.canvas.addEventListener(
      'wheel',
      (ev) => {
        if (ev.ctrlKey || ev.metaKey) {
          ev.preventDefault();
          const at = this.x0 + (ev.offsetX - PADX) / this.scale();
          this.zoomBy(Math.exp(ev.deltaY * 0.01), at);
        } else if (this.zoomed && (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY))) {
          ev.preventDefault();
          this.pan(((ev.shiftKey ? ev.deltaY : ev.deltaX) / (this.cssW || 1)) * 1.5);
        }
      },
      { passive: false },
    );
    this.scroller.addEventListener('scroll', () => {
      this.hideTip();
      this.requestDraw();
    });
    new ResizeObserver(() => {
      const w = this.scroller.clientWidth;
      const hgt = this.scroller.clientHeight;
      if (w === this.cssW && hgt === this.cssH && window.devicePixelRatio === this.dpr) return;
      const atBottom = this.scroller.scrollTop + hgt >= this.scroller.scrollHeight - 2;
      this.resize();
      if (this.orientation === 'flame' && atBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
      this.draw();
    }).observe(this.scroller);
    window.addEventListener('keydown', (ev) => this.key(ev));
  }

  key(ev: KeyboardEvent): void {
    const target = ev.target as HTMLElement | null;
    const typing = target !== null && (target.tagName === 'INPUT' || target.tagName === 'SELECT' || target.tagName === 'TEXTAREA');
    const search = $<HTMLInputElement>('search');
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'f') {
      ev.preventDefault();
      search.focus();
      search.select();
      return;
    }
    if (ev.key === 'Escape') {
      if (typing) target.blur();
      $('help').hidden = true;
      // one layer at a time: the zoom first, then the time range
      if (this.range !== null && !this.zoomed) this.setRange(null);
      else this.resetZoom();
      return;
    }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    this.hideTip();
    switch (ev.key) {
      case '/':
        ev.preventDefault();
        search.focus();
        search.select();
        break;
      case '1':
        this.setView('merged');
        break;
      case '2':
        this.setView('time');
        break;
      case '+':
      case '=':
      case 'w':
        this.zoomBy(0.5);
        break;
      case '-':
      case '_':
      case 's':
        this.zoomBy(2);
        break;
      case '0':
        this.resetZoom();
        break;
      case 'a':
        this.pan(-0.2);
        break;
      case 'd':
        this.pan(0.2);
        break;
      case 'i':
        this.setOrientation(this.orientation === 'flame' ? 'icicle' : 'flame');
        break;
      case '?':
        $('help').hidden = !$('help').hidden;
        break;
      default:
        return;
    }
  }

  setView(v: 'merged' | 'time'): void {
    if (v === 'time' && !this.data.timed) return;
    if (v === this.view) return;
    this.view = v;
    $('viewsel')
      .querySelectorAll('button')
      .forEach((b) => b.classList.toggle('on', b.dataset['v'] === v));
    $('groupwrap').classList.toggle('dim', v === 'time');
    this.rebuild();
  }

  setOrientation(o: 'flame' | 'icicle'): void {
    if (o === this.orientation) return;
    this.orientation = o;
    $('orient')
      .querySelectorAll('button')
      .forEach((b) => b.classList.toggle('on', b.dataset['v'] === o));
    this.scroller.scrollTop = o === 'flame' ? this.scroller.scrollHeight : 0;
    this.hideTip();
    this.draw();
  }

  crumbs(): void {
    const nav = $('crumbs');
    nav.replaceChildren();
    const l = this.layout;
    const mid = (this.x0 + this.x1) / 2;
    const total = l.total || 1;
    if (!this.zoomed) {
      const vt = this.data.valueTypes[this.valueIndex]!;
      const range = this.range && this.timeline ? ` in ${this.timeline.formatRange(this.range)}` : '';
      nav.append(h('span', 'hint', `${formatValue(l.total, vt.unit)} in view${range} · click a frame to zoom, Esc to reset`));
      return;
    }
    for (let d = 0; d <= this.zoomDepth; d++) {
      const b = boxAt(l, d, mid);
      if (b < 0) break;
      if (d > 0) nav.append(h('span', 'sep', '›'));
      const btn = h('button', d === this.zoomDepth ? 'cur' : undefined, this.model.nodeLabel(l.node[b]!)) as HTMLButtonElement;
      btn.type = 'button';
      btn.title = `${this.model.nodeLabel(l.node[b]!)} — ${formatPercent((l.end[b]! - l.start[b]!) / total)}`;
      if (d < this.zoomDepth) btn.addEventListener('click', () => this.zoomToBox(b));
      nav.append(btn);
    }
    const span = this.x1 - this.x0;
    nav.append(h('span', 'hint', ` · view ${formatPercent(span / total)} of total`));
  }

  legend(): void {
    const lg = $('legend');
    KIND_NAMES.forEach((k, i) => {
      const s = h('span');
      const sw = h('i');
      sw.style.background = KIND_SWATCHES[i]!;
      s.append(sw, k === 'marker' ? 'marker (idle, GIL, thread roots)' : k);
      lg.append(s);
    });
    const idle = h('span');
    const sw = h('i');
    sw.style.background = 'repeating-linear-gradient(135deg, #f0e6c8 0 2px, #b8b2a8 2px 3px)';
    idle.append(sw, 'mostly idle samples');
    const off = h('span');
    const so = h('i');
    so.style.background = `repeating-linear-gradient(135deg, ${KIND_SWATCHES[2]} 0 2px, #8a5a4a 2px 3px)`;
    off.append(so, 'off-CPU, GIL wait');
    const m = h('span');
    const sm = h('i');
    sm.style.background = SEARCH_COLOR;
    m.append(sm, 'search match');
    lg.append(idle, off, m);
    const vt = this.data.valueTypes;
    lg.append(h('span', 'keys', `${groupDigits(this.data.sampleRows)} sample rows · ${groupDigits(this.data.stackCount)} stacks · ${vt.map((v) => v.name).join(', ')} · press ? for keys`));
  }

  // ---------------------------------------------------------------- test hooks

  findBox(label: string): BoxRect | null {
    const l = this.layout;
    const scale = this.scale();
    const r = this.canvas.getBoundingClientRect();
    const scroll = this.scroller.scrollTop;
    for (let d = 0; d <= l.maxDepth; d++) {
      for (let i = l.depthStart[d]!; i < l.depthStart[d + 1]!; i++) {
        if (this.model.nodeLabel(l.node[i]!) !== label) continue;
        const s = Math.max(l.start[i]!, this.x0);
        const e = Math.min(l.end[i]!, this.x1);
        if ((e - s) * scale < MIN_PX) continue;
        return { x: r.left + PADX + (s - this.x0) * scale, y: r.top + this.depthY(d) - scroll, width: (e - s) * scale, height: ROW - 1, label };
      }
    }
    return null;
  }
}

function showError(e: unknown): void {
  const msg = e instanceof Error ? `${e.message}` : String(e);
  const box = document.getElementById('error');
  if (box) {
    box.textContent = `pylens could not show this profile:\n${msg}`;
    box.hidden = false;
  }
  console.error(e);
}

interface PageView {
  view?: 'merged' | 'time';
  orientation?: 'flame' | 'icicle';
  thread?: string;
  state?: string;
  value?: number;
  byThread?: boolean;
  search?: string;
  range?: [number, number];
}

let app: App | null = null;
let markReady: () => void = () => {};
/** inside the workbench: tell it the view when it changes, so its URL keeps it */
let embedded = false;
let lastView = '';
function reportView(a: App): void {
  if (!embedded) return;
  const v = JSON.stringify(a.viewState());
  if (v === lastView) return;
  lastView = v;
  parent.postMessage({ type: 'pylens-view', view: JSON.parse(v) as PageView }, '*');
}
const hook: PylensHook = {
  ready: new Promise<void>((res) => (markReady = res)),
  isReady: false,
  drawn: false,
  error: null,
  stats,
  zoomTo(label) {
    if (!app) return false;
    const l = app.layout;
    for (let i = 0; i < l.node.length; i++) {
      if (app.model.nodeLabel(l.node[i]!) === label) {
        app.zoomToBox(i);
        return true;
      }
    }
    return false;
  },
  search(q) {
    if (!app) return '';
    const input = $<HTMLInputElement>('search');
    input.value = q;
    app.query = q;
    app.applySearch();
    return $('matched').textContent ?? '';
  },
  reset: () => app?.resetZoom(),
  setView: (v) => app?.setView(v),
  setOrientation: (o) => app?.setOrientation(o),
  findBox: (label) => app?.findBox(label) ?? null,
  redraw: () => app?.draw() ?? -1,
  setRange: (a, b) => app?.setRange({ start: a, end: b }),
  clearRange: () => app?.setRange(null),
  timeline: () => app?.timeline?.info() ?? null,
  view: () => app?.viewState() ?? {},
  applyView: (v) => app?.applyView(v),
  state: () =>
    app
      ? {
          view: app.view,
          orientation: app.orientation,
          total: app.layout.total,
          x0: app.x0,
          x1: app.x1,
          zoomDepth: app.zoomDepth,
          zoomed: app.zoomed,
          matched: app.matched,
          maxDepth: app.layout.maxDepth,
          boxes: app.layout.node.length,
          range: app.range ? { start: app.range.start, end: app.range.end } : null,
        }
      : {},
};
window.__pylens = hook;

/** The data blob (and the view to open in) from the page's parent, the workbench, which fetched it: ask, then wait. */
let initialView: PageView | null = null;
function blobFromParent(): Promise<ArrayBuffer> {
  return new Promise((resolve, reject) => {
    addEventListener('message', function onBlob(ev: MessageEvent) {
      const d = ev.data as { type?: string; buf?: ArrayBuffer | Blob; view?: PageView } | null;
      if (ev.source !== parent || d?.type !== 'pylens-blob' || !(d.buf instanceof ArrayBuffer || d.buf instanceof Blob)) return;
      removeEventListener('message', onBlob);
      if (d.view && typeof d.view === 'object') initialView = d.view;
      embedded = true;
      const t = performance.now();
      stats.dataWaitMs = t - asked;
      const got = (buf: ArrayBuffer) => {
        stats.dataReadMs = performance.now() - t;
        resolve(buf);
      };
      if (d.buf instanceof Blob) d.buf.arrayBuffer().then(got, reject);
      else got(d.buf);
    });
    const asked = performance.now();
    parent.postMessage({ type: 'pylens-want-blob' }, '*');
  });
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const blobEl = $('pylens-blob');
  let data: PageData;
  let table: PageTable | null;
  let blob: string | BlobRef;
  if (blobEl.dataset.external === 'post') {
    // inside the workbench: everything comes in one buffer (data.ts, the page bundle)
    const buf = await blobFromParent();
    const t = performance.now();
    const b = readBundle(buf);
    stats.jsonMs = performance.now() - t;
    ({ data, table } = b.bundle);
    blob = b.blob;
  } else {
    data = JSON.parse($('pylens-data').textContent ?? 'null') as PageData;
    table = JSON.parse(document.getElementById('pylens-table')?.textContent ?? 'null') as PageTable | null;
    stats.jsonMs = performance.now() - t0;
    blob = blobEl.textContent ?? '';
  }
  const cols = await decodeColumns(data, blob, stats.decode);
  stats.decodeMs = performance.now() - t0;
  const t1 = performance.now();
  const model = new FlameModel(cols);
  stats.modelMs = performance.now() - t1;
  // the flamegraph first, in the room the table will take; the table once that frame is out
  tableReserve(table);
  app = new App(model);
  if (initialView) app.applyView(initialView);
  stats.firstFrameMs = performance.now();
  hook.drawn = true;
  // let the frame be painted (rAF, then a task), with a timer for a page that is not shown
  const painted = () =>
    new Promise<void>((res) => {
      let done = false;
      const go = () => {
        if (!done) (done = true), setTimeout(res, 0);
      };
      requestAnimationFrame(go);
      setTimeout(go, 100);
    });
  await painted();
  app.startTimeline();
  const t2 = performance.now();
  tableInit(table);
  stats.tableMs = performance.now() - t2;
  // ready once the frame with the table and timeline is out: boxes are where they are drawn
  await painted();
  hook.isReady = true;
  markReady();
  // the workbench starts the page for its next open once this one is complete
  if (embedded) parent.postMessage({ type: 'pylens-ready' }, '*');
}

main().catch((e: unknown) => {
  hook.error = e instanceof Error ? e.message : String(e);
  showError(e);
  markReady();
});
