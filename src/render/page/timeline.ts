/**
 * The timeline strip between the toolbar and the flamegraph, for profiles whose rows carry
 * times: one lane per thread with rows passing the page's filters (labelled at the left, as
 * a Firefox Profiler track), x = time over the profile's span. Each pixel column of a lane
 * is a bar stacked by the states of the lane's value in it (on-CPU, GIL wait, off-CPU,
 * idle, unknown), as tall as its density relative to the densest column shown: in wall
 * mode every sampled moment is a full bar, in CPU mode the height is how busy the thread was.
 *
 * Dragging selects a time range (shaded, its start–end as text; flame.ts filters every view
 * by it); a click without a drag, the "Clear range" button or Esc clears it. Hover shows the
 * time and the lane's state mix under the pointer.
 *
 * Cost. Binning is one pass over the rows, redone only when the value type or the task
 * filter changes: each row's value goes into fixed time bins per (thread, state) — a
 * merged run of samples spread over its span plus one sample interval — then prefix sums.
 * A redraw reads two prefix sums per state for each pixel column of each visible lane:
 * O(pixels), whatever the profile holds. Thread and state filters apply at drawing.
 */
import { STATE_NAMES, type FlameModel, type RowFilter, type TimeRange } from './tree.ts';
import { formatPercent } from './units.ts';

/** Axis height, lane height, label column and right padding (CSS px); lanes shown without scrolling. */
const TL_AXIS = 18;
const TL_LANE = 18;
const TL_LABEL_W = 170;
const TL_PAD = 8;
const TL_MAX_LANES = 8;
/** Time bins per (thread, state): at most this many, fewer when there are many threads. */
const TL_MAX_BINS = 4096;
const TL_MAX_CELLS = 1_000_000;

/**
 * Colours by state code (unknown, on-CPU, off-CPU, idle, GIL wait): those of `pylens sched`'s
 * timeline — running green, blocked purple, sleeping blue, runnable (waiting for the GIL) orange.
 */
export const STATE_RGB: ReadonlyArray<readonly [number, number, number]> = [
  [154, 161, 172],
  [46, 157, 79],
  [155, 89, 182],
  [160, 190, 224],
  [240, 160, 32],
];
export const STATE_LABELS: readonly string[] = ['unknown', 'on-CPU', 'off-CPU', 'idle', 'GIL wait'];
/** Bars stack bottom to top in this order of state codes. */
const TL_STACK = [1, 4, 2, 3, 0];

const tlRgb = (c: readonly [number, number, number]) => `rgb(${c[0]},${c[1]},${c[2]})`;

function tlElement<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`page element #${id} is missing`);
  return e as T;
}

/** A round tick step for `span` over `px` pixels (about one label per 90 px). */
function tlStep(span: number, px: number): number {
  const raw = span / Math.max(1, px / 90);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Geometry for tests: the plot area in client coordinates and the time it spans. */
export interface TimelineInfo {
  lanes: string[];
  startNs: number;
  endNs: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  laneHeight: number;
  range: TimeRange | null;
  lastDrawMs: number;
  buildMs: number;
}

export class Timeline {
  readonly model: FlameModel;
  readonly root = tlElement<HTMLElement>('timeline');
  readonly scroll = tlElement<HTMLDivElement>('tlscroll');
  readonly spacer = tlElement<HTMLDivElement>('tlspacer');
  readonly canvas = tlElement<HTMLCanvasElement>('tl');
  readonly text = tlElement<HTMLSpanElement>('rangetext');
  readonly clear = tlElement<HTMLButtonElement>('clearrange');
  readonly tip = tlElement<HTMLDivElement>('tip');
  readonly ctx: CanvasRenderingContext2D;
  /** Axis: [t0, t1) in ns since the profile start. */
  readonly t0: number;
  readonly t1: number;
  /** Time scale of the labels: 1e9 (s), 1e6 (ms), 1e3 (µs) or 1 (ns). */
  private readonly unitNs: number;
  private readonly unitName: string;
  private readonly nb: number;
  private readonly binW: number;
  private readonly interval: number;
  /** Prefix sums: cum[((thread * STATES) + state) * (nb + 1) + i] = value in bins [0, i). */
  private cum: Float64Array = new Float64Array(0);
  private binKey = '';
  /** The filter the lanes were last laid out for. */
  private laneKey = '';
  private states: Uint8Array | null = null;
  /** Threads shown, top to bottom. */
  lanes: number[] = [];
  range: TimeRange | null = null;
  private drag: { x: number; a: number; b: number } | null = null;
  private hover: { x: number; y: number } | null = null;
  private cssW = 0;
  private cssH = 0;
  private dpr = 1;
  private img: ImageData | null = null;
  /** The painted bars (device px) and what they were painted for. */
  private bars: HTMLCanvasElement | null = null;
  private paintKey = '';
  private scratch = new Float64Array(0);
  private frameRequested = false;
  private charW = 6.6;
  lastDrawMs = -1;
  buildMs = -1;
  private readonly onRange: (r: TimeRange | null) => void;

  constructor(model: FlameModel, onRange: (r: TimeRange | null) => void) {
    this.model = model;
    this.onRange = onRange;
    const cols = model.cols;
    this.interval = cols.data.sampleIntervalNs ?? 0;
    let lo = cols.data.sampleTimes?.first ?? Infinity;
    let hi = cols.data.sampleTimes?.last ?? -Infinity;
    if (!cols.data.sampleTimes) {
      const time = cols.rowTime!;
      const span = cols.rowSpan;
      for (let r = 0; r < cols.nRows; r++) {
        const t = time[r]!;
        if (t < lo) lo = t;
        const e = span === null ? t : t + span[r]!;
        if (e > hi) hi = e;
      }
    }
    if (!(lo <= hi)) lo = hi = 0;
    // each sample stands for the interval after it; without an interval, pad by a thousandth
    const end = hi + (this.interval > 0 ? this.interval : Math.max(1, (hi - lo) / 1000));
    this.t0 = lo;
    this.t1 = end;
    const nStates = STATE_NAMES.length;
    this.nb = Math.max(64, Math.min(TL_MAX_BINS, Math.floor(TL_MAX_CELLS / Math.max(1, cols.nThreads * nStates))));
    this.binW = (this.t1 - this.t0) / this.nb;
    const spanNs = this.t1 - this.t0;
    [this.unitNs, this.unitName] = spanNs >= 1e9 ? [1e9, 's'] : spanNs >= 1e6 ? [1e6, 'ms'] : spanNs >= 1e3 ? [1e3, 'µs'] : [1, 'ns'];
    const ctx = this.canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('this browser has no 2D canvas');
    this.ctx = ctx;
    ctx.font = '11px system-ui, sans-serif';
    this.charW = ctx.measureText('abcdefghijklmnopqrstuvwxyz').width / 26 || 6.6;
    this.root.hidden = false;
    this.events();
  }

  // ---------------------------------------------------------------- data

  /** Re-bin the rows for the value type and the task filter (O(rows)). */
  private bin(f: RowFilter): void {
    const t = performance.now();
    const cols = this.model.cols;
    const { rowThread, rowState, rowStack, nRows, nThreads } = cols;
    const time = cols.rowTime!;
    const span = cols.rowSpan;
    const col = cols.rowValues[f.valueIndex]!;
    const tk = f.tasks ?? null;
    const ofStack = tk !== null ? this.model.tasks().ofStack : null;
    const NS = STATE_NAMES.length;
    const nb = this.nb;
    const stride = nb + 1;
    const size = nThreads * NS * stride;
    const cum = this.cum.length === size ? this.cum.fill(0) : new Float64Array(size);
    const t0 = this.t0;
    const perNs = 1 / this.binW;
    const iv = this.interval * perNs;
    for (let r = 0; r < nRows; r++) {
      const v = col[r]!;
      if (v === 0) continue;
      if (tk !== null) {
        const s = rowStack[r]!;
        if (tk[s < 0 ? 0 : ofStack![s]! + 1] === 0) continue;
      }
      const base = (rowThread[r]! * NS + rowState[r]!) * stride + 1;
      const a = (time[r]! - t0) * perNs;
      const e = a + (span === null ? 0 : span[r]! * perNs) + iv;
      const i0 = Math.min(nb - 1, Math.max(0, Math.floor(a)));
      const i1 = Math.min(nb - 1, Math.max(0, Math.ceil(e) - 1));
      if (i1 <= i0 || e <= a) {
        cum[base + i0] += v;
        continue;
      }
      // spread evenly over [a, e): partial first and last bins
      const per = v / (e - a);
      cum[base + i0] += per * (i0 + 1 - a);
      for (let i = i0 + 1; i < i1; i++) cum[base + i] += per;
      cum[base + i1] += per * (e - i1);
    }
    for (let o = 0; o < size; o += stride) for (let i = 1; i < stride; i++) cum[o + i] += cum[o + i - 1]!;
    this.cum = cum;
    this.buildMs = performance.now() - t;
  }

  /** Value of (thread, state) in bin positions [p, q) (fractional: linear within a bin). */
  private sumIn(o: number, p: number, q: number): number {
    return this.cumAt(o, q) - this.cumAt(o, p);
  }

  private cumAt(o: number, p: number): number {
    if (p <= 0) return 0;
    const nb = this.nb;
    if (p >= nb) return this.cum[o + nb]!;
    const i = Math.floor(p);
    const c = this.cum[o + i]!;
    return c + (p - i) * (this.cum[o + i + 1]! - c);
  }

  /** Binning and drawing wait for `start` (the page's first frame comes first). */
  private deferred = false;

  /** Before the page's first frame: keep the room of `lanes` lanes; nothing is binned or drawn until `start`. */
  reserve(lanes: number): void {
    this.deferred = true;
    this.scroll.style.height = `${TL_AXIS + Math.max(1, Math.min(TL_MAX_LANES, lanes)) * TL_LANE + 2}px`;
  }

  /** After the page's first frame: bin, lay out and draw for the page's filters. */
  start(f: RowFilter): void {
    this.deferred = false;
    this.update(f);
  }

  /** Follow the page's filters: re-bin when the value type or the tasks changed, then lay out and draw. */
  update(f: RowFilter): void {
    if (this.deferred) return;
    const key = `${f.valueIndex}|${f.tasks ? f.tasks.join('') : ''}`;
    const laneKey = `${key}|${f.threads ? f.threads.join('') : ''}|${f.states ? f.states.join('') : ''}`;
    if (laneKey === this.laneKey) return;
    this.laneKey = laneKey;
    if (key !== this.binKey) {
      this.binKey = key;
      this.bin(f);
    }
    this.states = f.states;
    const th = this.model.cols.data.threads;
    const NS = STATE_NAMES.length;
    const stride = this.nb + 1;
    const lanes: number[] = [];
    for (let t = 0; t < th.pid.length; t++) {
      if (f.threads !== null && f.threads[t] === 0) continue;
      let v = 0;
      for (let s = 0; s < NS; s++) if (f.states === null || f.states[s] === 1) v += this.cum[(t * NS + s) * stride + this.nb]!;
      if (v > 0) lanes.push(t);
    }
    lanes.sort((a, b) => th.pid[a]! - th.pid[b]! || th.tid[a]! - th.tid[b]! || a - b);
    this.lanes = lanes;
    const h = TL_AXIS + Math.max(1, Math.min(TL_MAX_LANES, lanes.length)) * TL_LANE + 2;
    this.scroll.style.height = `${h}px`;
    this.spacer.style.height = `${Math.max(0, TL_AXIS + lanes.length * TL_LANE + 2 - h)}px`;
    this.legend();
    this.resize();
    this.draw();
  }

  /** Show a range chosen elsewhere (the page's state), without telling the page back. */
  setRange(r: TimeRange | null): void {
    this.range = r;
    this.drag = null;
    this.showText();
    this.draw();
  }

  // ---------------------------------------------------------------- geometry and text

  formatTime(ns: number): string {
    const v = ns / this.unitNs;
    return `${v.toFixed(Math.abs(v) >= 100 ? 1 : 2)} ${this.unitName}`;
  }

  /** "1.20 s – 2.45 s (1.25 s)" */
  formatRange(r: TimeRange): string {
    return `${this.formatTime(r.start)} – ${this.formatTime(r.end)} (${this.formatTime(r.end - r.start)})`;
  }

  private plotW(): number {
    return Math.max(1, this.cssW - TL_LABEL_W - TL_PAD);
  }

  /** Time at a canvas x (CSS px), clamped to the axis. */
  timeAt(x: number): number {
    const f = (x - TL_LABEL_W) / this.plotW();
    return this.t0 + Math.max(0, Math.min(1, f)) * (this.t1 - this.t0);
  }

  xOf(t: number): number {
    return TL_LABEL_W + ((t - this.t0) / (this.t1 - this.t0)) * this.plotW();
  }

  private showText(): void {
    const r = this.drag ? { start: Math.min(this.drag.a, this.drag.b), end: Math.max(this.drag.a, this.drag.b) } : this.range;
    this.text.textContent = r ? this.formatRange(r) : `${this.formatTime(this.t0)} – ${this.formatTime(this.t1)} · drag to select a time range`;
    this.text.classList.toggle('on', r !== null);
    this.clear.hidden = this.range === null;
  }

  private legend(): void {
    const lg = tlElement<HTMLSpanElement>('tllegend');
    lg.replaceChildren();
    const NS = STATE_NAMES.length;
    const stride = this.nb + 1;
    for (const s of TL_STACK) {
      let v = 0;
      for (const t of this.lanes) v += this.cum[(t * NS + s) * stride + this.nb]!;
      if (v === 0 || (this.states !== null && this.states[s] === 0)) continue;
      const item = document.createElement('span');
      const sw = document.createElement('i');
      sw.style.background = tlRgb(STATE_RGB[s]!);
      item.append(sw, STATE_LABELS[s]!);
      lg.append(item);
    }
  }

  resize(): void {
    this.dpr = window.devicePixelRatio || 1;
    this.cssW = this.scroll.clientWidth;
    this.cssH = this.scroll.clientHeight;
    this.canvas.style.width = `${this.cssW}px`;
    this.canvas.style.height = `${this.cssH}px`;
    this.canvas.width = Math.max(1, Math.round(this.cssW * this.dpr));
    this.canvas.height = Math.max(1, Math.round(this.cssH * this.dpr));
    this.img = null;
  }

  // ---------------------------------------------------------------- drawing

  requestDraw(): void {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.draw();
    });
  }

  /**
   * Draw synchronously; returns the time it took. The lanes' bars are painted into an
   * offscreen canvas (O(visible lanes × pixel columns)) only when the lanes, the filters, the
   * size or the scroll changed; hover and selection redraw only copy it and draw on top.
   */
  draw(): number {
    if (this.deferred) return 0;
    const t = performance.now();
    const { ctx, dpr } = this;
    const W = this.canvas.width;
    const H = this.canvas.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, W, H);
    const scrollTop = this.scroll.scrollTop;
    const first = Math.max(0, Math.floor(scrollTop / TL_LANE));
    const vis: number[] = [];
    for (let i = first; i < this.lanes.length && TL_AXIS + i * TL_LANE - scrollTop < this.cssH; i++) vis.push(i);
    const x0 = Math.round(TL_LABEL_W * dpr);
    const axisD = Math.round(TL_AXIS * dpr);
    const paintKey = `${W}x${H}|${scrollTop}|${this.laneKey}`;
    if (paintKey !== this.paintKey || !this.bars) {
      this.paintKey = paintKey;
      this.paintBars(vis, scrollTop);
    }
    if (this.bars) ctx.drawImage(this.bars, x0, axisD);
    this.overlays(vis, scrollTop);
    this.lastDrawMs = performance.now() - t;
    return this.lastDrawMs;
  }

  /** The lanes' backgrounds and stacked bars, in device pixels, into the offscreen canvas. */
  private paintBars(vis: number[], scrollTop: number): void {
    const dpr = this.dpr;
    const H = this.canvas.height;
    const NS = STATE_NAMES.length;
    const stride = this.nb + 1;
    const x0 = Math.round(TL_LABEL_W * dpr);
    const x1 = Math.round((this.cssW - TL_PAD) * dpr);
    const pw = Math.max(1, x1 - x0);
    const axisD = Math.round(TL_AXIS * dpr);
    const areaH = Math.max(1, H - axisD);
    // pass 1: per visible lane, per device pixel column, the value of each state
    // (scratch[(lane * pw + x) * NS + state]), and the densest column
    const need = vis.length * pw * NS;
    if (this.scratch.length < need) this.scratch = new Float64Array(need);
    const sc = this.scratch;
    const step = this.nb / pw;
    let max = 0;
    for (let k = 0; k < vis.length; k++) {
      const th = this.lanes[vis[k]!]!;
      for (let s = 0; s < NS; s++) {
        if (this.states !== null && this.states[s] === 0) {
          for (let x = 0; x < pw; x++) sc[(k * pw + x) * NS + s] = 0;
          continue;
        }
        const o = (th * NS + s) * stride;
        let prev = 0;
        for (let x = 0; x < pw; x++) {
          const c = this.cumAt(o, (x + 1) * step);
          sc[(k * pw + x) * NS + s] = c - prev;
          prev = c;
        }
      }
      for (let x = 0; x < pw; x++) {
        let v = 0;
        for (let s = 0; s < NS; s++) v += sc[(k * pw + x) * NS + s]!;
        if (v > max) max = v;
      }
    }
    // pass 2: lane backgrounds and stacked bars, straight into pixels
    const bars = this.bars ?? document.createElement('canvas');
    this.bars = bars;
    if (bars.width !== pw || bars.height !== areaH) {
      bars.width = pw;
      bars.height = areaH;
    }
    const g = bars.getContext('2d');
    if (!g) return;
    if (!this.img || this.img.width !== pw || this.img.height !== areaH) this.img = g.createImageData(pw, areaH);
    const px = new Uint32Array(this.img.data.buffer);
    px.fill(0xffffffff);
    const rgba = STATE_RGB.map((c) => (0xff000000 | (c[2] << 16) | (c[1] << 8) | c[0]) >>> 0);
    const bgA = 0xfffaf8f7; // #f7f8fa
    for (let k = 0; k < vis.length; k++) {
      const i = vis[k]!;
      const top = Math.round((i * TL_LANE - scrollTop) * dpr);
      const bottom = Math.round(((i + 1) * TL_LANE - scrollTop) * dpr) - 1; // a 1 px gap between lanes
      if (i % 2 === 0) for (let y = Math.max(0, top); y < Math.min(areaH, bottom); y++) px.fill(bgA, y * pw, (y + 1) * pw);
      const inner = bottom - top - Math.round(2 * dpr);
      if (max <= 0 || inner <= 0) continue;
      for (let x = 0; x < pw; x++) {
        const at = (k * pw + x) * NS;
        let v = 0;
        for (let s = 0; s < NS; s++) v += sc[at + s]!;
        if (v <= 0) continue;
        const barH = Math.max(1, Math.round((inner * v) / max));
        let y = bottom;
        let acc = 0;
        for (const s of TL_STACK) {
          const sv = sc[at + s]!;
          if (sv <= 0) continue;
          acc += sv;
          const yTop = bottom - Math.round((barH * acc) / v);
          const c = rgba[s]!;
          for (let yy = Math.max(0, yTop); yy < Math.min(areaH, y); yy++) px[yy * pw + x] = c;
          y = Math.min(y, yTop);
        }
      }
    }
    g.putImageData(this.img, 0, 0);
  }

  /** Selection, lane labels, axis, hover line (CSS px). */
  private overlays(vis: number[], scrollTop: number): void {
    const { ctx, dpr } = this;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const plotL = TL_LABEL_W;
    const plotR = this.cssW - TL_PAD;
    const sel = this.drag ? { start: Math.min(this.drag.a, this.drag.b), end: Math.max(this.drag.a, this.drag.b) } : this.range;
    if (sel) {
      const a = this.xOf(sel.start);
      const b = this.xOf(sel.end);
      ctx.fillStyle = 'rgba(255,255,255,0.6)';
      ctx.fillRect(plotL, TL_AXIS, Math.max(0, a - plotL), this.cssH - TL_AXIS);
      ctx.fillRect(b, TL_AXIS, Math.max(0, plotR - b), this.cssH - TL_AXIS);
      ctx.fillStyle = 'rgba(47,111,222,0.14)';
      ctx.fillRect(a, 0, Math.max(1, b - a), this.cssH);
      ctx.fillStyle = '#2f6fde';
      ctx.fillRect(a - 0.5, 0, 1, this.cssH);
      ctx.fillRect(b - 0.5, 0, 1, this.cssH);
    }
    // lane labels
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    for (const i of vis) {
      const y = TL_AXIS + i * TL_LANE - scrollTop;
      ctx.fillStyle = i % 2 === 0 ? '#f5f6f8' : '#ffffff';
      ctx.fillRect(0, y, plotL - 4, TL_LANE - 1);
      ctx.fillStyle = '#1d2330';
      const label = this.laneLabel(this.lanes[i]!);
      const fit = Math.floor((plotL - 16) / this.charW);
      ctx.fillText(label.length <= fit ? label : `${label.slice(0, Math.max(1, fit - 1))}…`, 8, y + TL_LANE / 2);
    }
    // axis
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, this.cssW, TL_AXIS);
    ctx.strokeStyle = '#d9dde3';
    ctx.fillStyle = '#5d6675';
    ctx.lineWidth = 1;
    ctx.textBaseline = 'top';
    const span = this.t1 - this.t0;
    const stepT = tlStep(span, plotR - plotL);
    for (let tt = Math.ceil(this.t0 / stepT) * stepT; tt <= this.t1; tt += stepT) {
      const x = Math.round(this.xOf(tt)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, TL_AXIS - 5);
      ctx.lineTo(x, TL_AXIS);
      ctx.stroke();
      if (x + 40 < plotR + TL_PAD) ctx.fillText(this.formatTime(tt), x + 3, 3);
    }
    ctx.beginPath();
    ctx.moveTo(plotL, TL_AXIS - 0.5);
    ctx.lineTo(plotR, TL_AXIS - 0.5);
    ctx.stroke();
    if (sel) {
      ctx.fillStyle = 'rgba(47,111,222,0.14)';
      ctx.fillRect(this.xOf(sel.start), 0, Math.max(1, this.xOf(sel.end) - this.xOf(sel.start)), TL_AXIS);
    }
    if (this.lanes.length === 0) {
      ctx.fillStyle = '#5d6675';
      ctx.textBaseline = 'middle';
      ctx.fillText('No samples pass the current filters.', plotL + 4, TL_AXIS + TL_LANE / 2);
    }
    if (this.hover && !this.drag) {
      ctx.fillStyle = 'rgba(29,35,48,0.7)';
      ctx.fillRect(Math.round(this.hover.x) - 0.5, TL_AXIS, 1, this.cssH - TL_AXIS);
    }
  }

  laneLabel(t: number): string {
    const th = this.model.cols.data.threads;
    const nm = th.name[t]!;
    const name = nm >= 0 ? this.model.cols.strings[nm]! : 'thread';
    return `${name} ${th.tid[t]}`;
  }

  // ---------------------------------------------------------------- pointer

  private laneAt(y: number): number {
    const i = Math.floor((y - TL_AXIS + this.scroll.scrollTop) / TL_LANE);
    return y >= TL_AXIS && i >= 0 && i < this.lanes.length ? i : -1;
  }

  private showTip(x: number, y: number, cx: number, cy: number): void {
    const i = this.laneAt(y);
    if (i < 0 || x < TL_LABEL_W || x > this.cssW - TL_PAD) return this.hideTip();
    const th = this.lanes[i]!;
    const NS = STATE_NAMES.length;
    const stride = this.nb + 1;
    // the mix over a few pixels around the pointer
    const p = ((x - 3 - TL_LABEL_W) / this.plotW()) * this.nb;
    const q = ((x + 3 - TL_LABEL_W) / this.plotW()) * this.nb;
    const vals: number[] = [];
    let total = 0;
    for (let s = 0; s < NS; s++) {
      const v = this.states !== null && this.states[s] === 0 ? 0 : this.sumIn((th * NS + s) * stride, p, q);
      vals.push(v);
      total += v;
    }
    const tip = this.tip;
    tip.replaceChildren();
    const name = document.createElement('div');
    name.className = 'name';
    name.textContent = this.model.threadLabel(th);
    const loc = document.createElement('div');
    loc.className = 'loc';
    loc.textContent = `at ${this.formatTime(this.timeAt(x))}`;
    const table = document.createElement('table');
    const row = (k: string, v: string, color?: string) => {
      const tr = document.createElement('tr');
      const a = document.createElement('td');
      if (color) {
        const sw = document.createElement('i');
        sw.className = 'sw';
        sw.style.background = color;
        a.append(sw);
      }
      a.append(k);
      const b = document.createElement('td');
      b.textContent = v;
      tr.append(a, b);
      table.append(tr);
    };
    if (total <= 0) row('State', 'no samples here');
    else for (const s of TL_STACK) if (vals[s]! > 0) row(STATE_LABELS[s]!, formatPercent(vals[s]! / total), tlRgb(STATE_RGB[s]!));
    tip.append(name, loc, table);
    tip.hidden = false;
    const r = tip.getBoundingClientRect();
    let tx = cx + 14;
    let ty = cy + 16;
    if (tx + r.width > window.innerWidth - 4) tx = Math.max(4, cx - r.width - 10);
    if (ty + r.height > window.innerHeight - 4) ty = Math.max(4, cy - r.height - 10);
    tip.style.left = `${tx}px`;
    tip.style.top = `${ty}px`;
  }

  private hideTip(): void {
    this.tip.hidden = true;
  }

  private events(): void {
    const c = this.canvas;
    const local = (ev: MouseEvent) => {
      const r = c.getBoundingClientRect();
      return { x: ev.clientX - r.left, y: ev.clientY - r.top };
    };
    const move = (ev: MouseEvent) => {
      if (!this.drag) return;
      this.drag.b = this.timeAt(local(ev).x);
      this.showText();
      this.requestDraw();
    };
    const up = (ev: MouseEvent) => {
      window.removeEventListener('mousemove', move);
      window.removeEventListener('mouseup', up);
      const d = this.drag;
      if (!d) return;
      const x = local(ev).x;
      d.b = this.timeAt(x);
      this.drag = null;
      if (Math.abs(ev.clientX - d.x) < 3 || d.a === d.b) {
        // a click: clear the range
        this.showText();
        this.draw();
        this.onRange(null);
      } else this.onRange({ start: Math.min(d.a, d.b), end: Math.max(d.a, d.b) });
    };
    c.addEventListener('mousedown', (ev) => {
      if (ev.button !== 0) return;
      ev.preventDefault();
      const p = local(ev);
      const t = this.timeAt(p.x);
      this.drag = { x: ev.clientX, a: t, b: t };
      this.hideTip();
      window.addEventListener('mousemove', move);
      window.addEventListener('mouseup', up);
    });
    c.addEventListener('mousemove', (ev) => {
      if (this.drag) return;
      const p = local(ev);
      this.hover = p.x >= TL_LABEL_W && p.x <= this.cssW - TL_PAD ? p : null;
      this.showTip(p.x, p.y, ev.clientX, ev.clientY);
      this.requestDraw();
    });
    c.addEventListener('mouseleave', () => {
      this.hover = null;
      this.hideTip();
      this.requestDraw();
    });
    this.clear.addEventListener('click', () => this.onRange(null));
    this.scroll.addEventListener('scroll', () => {
      this.hideTip();
      this.requestDraw();
    });
    new ResizeObserver(() => {
      if (this.scroll.clientWidth === this.cssW && this.scroll.clientHeight === this.cssH && window.devicePixelRatio === this.dpr) return;
      this.resize();
      this.draw();
    }).observe(this.scroll);
    this.showText();
  }

  /** For tests: lanes, the time axis and the plot area in client coordinates. */
  info(): TimelineInfo {
    const r = this.canvas.getBoundingClientRect();
    return {
      lanes: this.lanes.map((t) => this.laneLabel(t)),
      startNs: this.t0,
      endNs: this.t1,
      left: r.left + TL_LABEL_W,
      right: r.left + TL_LABEL_W + this.plotW(),
      top: r.top + TL_AXIS,
      bottom: r.top + Math.min(this.cssH, TL_AXIS + this.lanes.length * TL_LANE),
      laneHeight: TL_LANE,
      range: this.range,
      lastDrawMs: this.lastDrawMs,
      buildMs: this.buildMs,
    };
  }
}
