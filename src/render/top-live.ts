/**
 * The pure parts of `pylens top` (the live view): no I/O here, so all of it is unit-tested.
 * src/cli/top.ts does the sampling, the terminal and the timers.
 *
 * - `TopStats`: aggregates sampler ticks into rows, two ways at once — by function+line
 *   and by function — so toggling line numbers is instant and exact. Own = samples where
 *   the function is the leaf; total = samples where it is anywhere on the stack, counted
 *   once per sample however deep the recursion. Idle threads are left out of the table
 *   unless `idle`, but always count in the header's active %.
 * - Percentages are of ticks (py-spy's convention): 100 % = one thread's whole time, so
 *   with several busy threads the %Own column sums to more than 100 %.
 * - `sortRows`, `renderTopFrame` (a screen of text for a width and height, as styled lines),
 *   `frameToAnsi` / `frameToText`, `fitLabel` (truncates from the left).
 * - Keys: `parseKeys` splits raw terminal input into key names, `applyKey` is the state
 *   machine (sort column, reverse, lines, pause) returning an effect (redraw / reset / quit).
 * - `TopController` ties them together: stats, view state, and the snapshot frozen while
 *   paused (sampling goes on underneath).
 */

export interface LiveFrame {
  name: string;
  qualname: string;
  file: string;
  line: number | null;
  firstLine: number;
}

export interface LiveThread {
  /** leaf first */
  frames: readonly LiveFrame[];
  state: string;
  holdsGil: boolean;
}

export interface LiveTick {
  threads: readonly LiveThread[];
  /** threads not read this tick: asleep at the picture (CPU mode), samples off a CPU all the same */
  asleep?: number;
  errors: number;
  /** top --async: the waiting asyncio tasks read this tick, each its await chain (innermost first) and weight (read every Nth tick: N) */
  tasks?: readonly { frames: readonly LiveFrame[]; weight: number }[];
  /** the tasks in the registry (read or not this tick) */
  taskCount?: number;
}

export interface TopRow {
  qualname: string;
  file: string;
  /** null when aggregated by function, or when the frame had no line */
  line: number | null;
  own: number;
  total: number;
}

interface Entry extends TopRow {
  /** the last sample id that counted this entry's total */
  seen: number;
}

export interface TopSnapshot {
  /** ticks since the last reset */
  ticks: number;
  /** thread samples in the table (idle ones only with `idle`) */
  samples: number;
  /** thread samples of every thread, idle or not */
  threadSamples: number;
  /** thread samples on a CPU */
  onCpu: number;
  /** ticks where some thread held the GIL */
  gilTicks: number;
  errors: number;
  /** threads seen in the last tick */
  threads: number;
  /** asyncio tasks in the last tick's read (top --async), else undefined */
  tasks?: number;
  /** seconds since sampling started */
  elapsedS: number;
  /** seconds since the last reset (the window the counts cover) */
  windowS: number;
  byLine: TopRow[];
  byFunction: TopRow[];
}

export interface TopStatsOptions {
  /** keep idle threads in the table */
  idle?: boolean;
  /** the file name as shown (e.g. shortened); called once per distinct file */
  fileName?: (file: string) => string;
  /** clock time (ns) when sampling started */
  startNs?: number;
}

export class TopStats {
  readonly idle: boolean;
  private fileName: (file: string) => string;
  private names = new Map<string, string>();
  private byLine = new Map<string, Entry>();
  private byFunction = new Map<string, Entry>();
  private sampleId = 0;
  private startNs: number;
  private windowStartNs: number;
  private lastNs: number;
  ticks = 0;
  samples = 0;
  threadSamples = 0;
  onCpu = 0;
  gilTicks = 0;
  errors = 0;
  threads = 0;
  tasks: number | undefined;

  constructor(opts: TopStatsOptions = {}) {
    this.idle = opts.idle ?? false;
    this.fileName = opts.fileName ?? ((f) => f);
    this.startNs = this.windowStartNs = this.lastNs = opts.startNs ?? 0;
  }

  private shown(file: string): string {
    let s = this.names.get(file);
    if (s === undefined) this.names.set(file, (s = this.fileName(file)));
    return s;
  }

  private count(map: Map<string, Entry>, key: string, qualname: string, file: string, line: number | null, leaf: boolean, weight = 1): void {
    let e = map.get(key);
    if (e === undefined) map.set(key, (e = { qualname, file, line, own: 0, total: 0, seen: 0 }));
    if (leaf) e.own += weight;
    if (e.seen !== this.sampleId) {
      e.seen = this.sampleId;
      e.total += weight;
    }
  }

  private countStack(frames: readonly LiveFrame[], weight: number): void {
    this.samples += weight;
    this.sampleId++;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const file = this.shown(f.file);
      this.count(this.byLine, `${f.qualname}\0${file}\0${f.line ?? ''}`, f.qualname, file, f.line, i === 0, weight);
      this.count(this.byFunction, `${f.qualname}\0${file}`, f.qualname, file, null, i === 0, weight);
    }
  }

  /** one sampler tick, taken at clock time `nowNs` */
  add(tick: LiveTick, nowNs = this.lastNs): void {
    this.lastNs = Math.max(this.lastNs, nowNs);
    this.ticks++;
    this.errors += tick.errors;
    this.threads = tick.threads.length + (tick.asleep ?? 0);
    this.threadSamples += tick.asleep ?? 0;
    let gil = false;
    for (const t of tick.threads) {
      this.threadSamples++;
      if (t.state === 'on-cpu') this.onCpu++;
      if (t.holdsGil) gil = true;
      if (t.state === 'idle' && !this.idle) continue;
      if (t.frames.length === 0) continue;
      this.countStack(t.frames, 1);
    }
    if (gil) this.gilTicks++;
    // waiting asyncio tasks: their await chains, as samples of their own
    if (tick.taskCount !== undefined) this.tasks = tick.taskCount;
    for (const t of tick.tasks ?? []) if (t.frames.length > 0) this.countStack(t.frames, t.weight);
  }

  /** forget every count (the elapsed time since start is kept) */
  reset(nowNs = this.lastNs): void {
    this.byLine.clear();
    this.byFunction.clear();
    this.ticks = this.samples = this.threadSamples = this.onCpu = this.gilTicks = this.errors = 0;
    this.lastNs = Math.max(this.lastNs, nowNs);
    this.windowStartNs = this.lastNs;
  }

  snapshot(nowNs = this.lastNs): TopSnapshot {
    const now = Math.max(this.lastNs, nowNs);
    const rows = (m: Map<string, Entry>): TopRow[] => [...m.values()].map((e) => ({ qualname: e.qualname, file: e.file, line: e.line, own: e.own, total: e.total }));
    return {
      ticks: this.ticks,
      samples: this.samples,
      threadSamples: this.threadSamples,
      onCpu: this.onCpu,
      gilTicks: this.gilTicks,
      errors: this.errors,
      threads: this.threads,
      ...(this.tasks !== undefined ? { tasks: this.tasks } : {}),
      elapsedS: (now - this.startNs) / 1e9,
      windowS: (now - this.windowStartNs) / 1e9,
      byLine: rows(this.byLine),
      byFunction: rows(this.byFunction),
    };
  }
}

// ---------------------------------------------------------------------------------------
// view state and keys

export const COLUMNS = ['%Own', '%Total', 'OwnTime', 'TotalTime', 'Function'] as const;

export interface ViewState {
  /** index into COLUMNS */
  sort: number;
  /** reverse the sort order */
  reverse: boolean;
  /** aggregate and show by function+line (else by function) */
  lines: boolean;
  /** the display is frozen (sampling continues) */
  paused: boolean;
}

export const INITIAL_VIEW: ViewState = { sort: 0, reverse: false, lines: true, paused: false };

export type KeyEffect = 'none' | 'redraw' | 'reset' | 'quit';

/**
 * Raw terminal input → key names: printable characters as themselves, 'left' / 'right' /
 * 'up' / 'down' for arrows (CSI and SS3 forms), 'ctrl-c', 'ctrl-d', 'escape', 'enter';
 * other escape sequences become 'unknown'.
 */
export function parseKeys(data: string): string[] {
  const out: string[] = [];
  const arrows: Record<string, string> = { A: 'up', B: 'down', C: 'right', D: 'left' };
  for (let i = 0; i < data.length; ) {
    const c = data[i]!;
    if (c === '\x1b') {
      const next = data[i + 1];
      if (next === '[' || next === 'O') {
        // CSI / SS3: parameters and intermediates, then one final byte in @..~
        let j = i + 2;
        while (j < data.length && /[0-9;?<=>!"#$%&'()*+,\-./ ]/.test(data[j]!)) j++;
        const fin = data[j];
        if (fin === undefined) {
          out.push('escape');
          i = data.length;
          continue;
        }
        const params = data.slice(i + 2, j);
        out.push(arrows[fin] !== undefined && (params === '' || /^1(;\d+)?$/.test(params)) ? arrows[fin]! : 'unknown');
        i = j + 1;
        continue;
      }
      out.push('escape');
      i++;
      continue;
    }
    if (c === '\x03') out.push('ctrl-c');
    else if (c === '\x04') out.push('ctrl-d');
    else if (c === '\r' || c === '\n') out.push('enter');
    else {
      const cp = data.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      out.push(ch);
      i += ch.length;
      continue;
    }
    i++;
  }
  return out;
}

/** The key state machine: the next view state and what the caller must do. */
export function applyKey(s: ViewState, key: string): { state: ViewState; effect: KeyEffect } {
  switch (key) {
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
      return { state: { ...s, sort: Number(key) - 1 }, effect: 'redraw' };
    case 'left':
      return { state: { ...s, sort: Math.max(0, s.sort - 1) }, effect: 'redraw' };
    case 'right':
      return { state: { ...s, sort: Math.min(COLUMNS.length - 1, s.sort + 1) }, effect: 'redraw' };
    case 'r':
    case 'R':
      return { state: { ...s, reverse: !s.reverse }, effect: 'redraw' };
    case 'l':
    case 'L':
      return { state: { ...s, lines: !s.lines }, effect: 'redraw' };
    case 'p':
    case 'P':
    case ' ':
      return { state: { ...s, paused: !s.paused }, effect: 'redraw' };
    case 'x':
    case 'X':
      return { state: s, effect: 'reset' };
    case 'q':
    case 'Q':
    case 'ctrl-c':
    case 'ctrl-d':
      return { state: s, effect: 'quit' };
    default:
      return { state: s, effect: 'none' };
  }
}

// ---------------------------------------------------------------------------------------
// sorting and formatting

export function rowLabel(r: TopRow): { name: string; location: string } {
  return { name: r.qualname, location: r.line !== null ? `${r.file}:${r.line}` : r.file };
}

function labelText(r: TopRow): string {
  const { name, location } = rowLabel(r);
  return `${name} (${location})`;
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Rows in display order for sort column `sort` (COLUMNS index): counts descending, the
 * function column ascending by label; ties by own, total, label, line. `reverse` flips it all.
 */
export function sortRows(rows: readonly TopRow[], sort: number, reverse = false): TopRow[] {
  const tie = (a: TopRow, b: TopRow) => b.own - a.own || b.total - a.total || cmpStr(labelText(a), labelText(b)) || (a.line ?? 0) - (b.line ?? 0);
  let cmp: (a: TopRow, b: TopRow) => number;
  if (sort === 0 || sort === 2) cmp = (a, b) => b.own - a.own || tie(a, b);
  else if (sort === 1 || sort === 3) cmp = (a, b) => b.total - a.total || tie(a, b);
  else cmp = (a, b) => cmpStr(labelText(a), labelText(b)) || tie(a, b);
  const out = [...rows].sort(cmp);
  if (reverse) out.reverse();
  return out;
}

/** control characters (a file name could hold an escape sequence) shown as '?' */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
}

function cps(s: string): string[] {
  return Array.from(s);
}

/** `s` cut to `w` code points, dropping the start and marking it with '..' */
export function truncateLeft(s: string, w: number): string {
  const c = cps(s);
  if (c.length <= w) return s;
  if (w <= 0) return '';
  if (w <= 2) return c.slice(c.length - w).join('');
  return '..' + c.slice(c.length - (w - 2)).join('');
}

/** `s` cut to `w` code points at the end */
export function truncateRight(s: string, w: number): string {
  const c = cps(s);
  return c.length <= w ? s : c.slice(0, Math.max(0, w)).join('');
}

/**
 * "name (file:line)" in at most `w` columns. Too long: the file path loses its leading
 * directories first (down to "..base.py:line"), then the function name is cut from the
 * left (the innermost part of a qualname is kept), then the whole label.
 */
export function fitLabel(name: string, location: string, w: number): string {
  name = printable(name);
  location = printable(location);
  const full = `${name} (${location})`;
  const len = (s: string) => cps(s).length;
  if (len(full) <= w) return full;
  const slash = location.lastIndexOf('/');
  const base = slash >= 0 ? '..' + location.slice(slash + 1) : location;
  const locRoom = w - len(name) - 3;
  if (locRoom >= len(base)) return `${name} (${truncateLeft(location, locRoom)})`;
  const nameRoom = w - len(base) - 3;
  if (nameRoom >= 6) return `${truncateLeft(name, nameRoom)} (${base})`;
  return truncateLeft(`${name} (${base})`, w);
}

export function formatSeconds(s: number): string {
  if (s < 100) return `${s.toFixed(2)}s`;
  if (s < 10_000) return `${s.toFixed(1)}s`;
  return `${Math.round(s)}s`;
}

function pct(n: number, of: number): string {
  return `${(of > 0 ? (100 * n) / of : 0).toFixed(2)}%`;
}

export interface TopInfo {
  pid: number;
  /** the target's command line, for the header */
  command?: string;
  /** Python version text, e.g. "3.12.3" */
  version?: string;
  /** the sampling rate asked for (samples per second) — times are samples / rate */
  rateHz: number;
  /** idle threads are in the table */
  idle?: boolean;
}

export type LineStyle = 'plain' | 'bold' | 'reverse';

export interface StyledLine {
  text: string;
  style: LineStyle;
}

export interface FrameOptions {
  width: number;
  /** screen rows; undefined = no limit on the frame's height (then `maxRows` rows of table) */
  height?: number;
  /** rows of table when there is no height (default 50) */
  maxRows?: number;
  /** the keys footer (interactive terminals only) */
  footer?: boolean;
}

const COL_WIDTHS = [7, 7, 8, 9] as const;
const SEP = '  ';
/** width of the numeric columns with their separators, before the function column */
const PREFIX = 1 + COL_WIDTHS.reduce((a, w) => a + w + SEP.length, 0);

export const FOOTER_TEXT = 'Keys: 1-5/arrows sort  r reverse  l lines  p/space pause  x reset  q quit';

/** The header lines (target, then live counters, then the view's state). */
export function headerLines(info: TopInfo, snap: TopSnapshot, view: ViewState): string[] {
  const cmd = info.command ? `: ${printable(info.command)}` : '';
  const ver = info.version ? ` (Python ${info.version})` : '';
  const rate = snap.windowS > 0 ? snap.ticks / snap.windowS : 0;
  const gil = pct(snap.gilTicks, snap.ticks);
  const active = pct(snap.onCpu, snap.threadSamples);
  const order = view.sort === 4 ? (view.reverse ? 'descending' : 'ascending') : view.reverse ? 'ascending' : 'descending';
  return [
    `pylens top - pid ${info.pid}${cmd}${ver}`,
    `Elapsed ${snap.elapsedS.toFixed(1)}s  Samples/s ${rate.toFixed(1)}  GIL ${gil}  Active ${active}  Threads ${snap.threads}${snap.tasks !== undefined ? `  Tasks ${snap.tasks}` : ''}  Errors ${snap.errors}`,
    `Sort ${COLUMNS[view.sort]} ${order}  Lines ${view.lines ? 'on' : 'off'}  Idle ${info.idle ? 'shown' : 'hidden'}  Samples ${snap.samples}${view.paused ? '  [PAUSED]' : ''}`,
  ];
}

export function columnHeader(lines: boolean): string {
  const [a, b, c, d] = COL_WIDTHS;
  return ' ' + ['%Own'.padStart(a), '%Total'.padStart(b), 'OwnTime'.padStart(c), 'TotalTime'.padStart(d)].join(SEP) + SEP + (lines ? 'Function (file:line)' : 'Function (file)');
}

export function formatRow(r: TopRow, snap: TopSnapshot, rateHz: number, labelWidth: number): string {
  const [a, b, c, d] = COL_WIDTHS;
  const { name, location } = rowLabel(r);
  return (
    ' ' +
    [pct(r.own, snap.ticks).padStart(a), pct(r.total, snap.ticks).padStart(b), formatSeconds(r.own / rateHz).padStart(c), formatSeconds(r.total / rateHz).padStart(d)].join(SEP) +
    SEP +
    fitLabel(name, location, labelWidth)
  );
}

/**
 * One screen: header, blank line, column header (reverse), rows, and with `footer` the keys
 * line at the bottom. Every line fits in `width` columns; with `height` the frame has
 * exactly `height` lines (rows cut to fit, blank lines pad) unless the screen is too small
 * even for the header.
 */
export function renderTopFrame(info: TopInfo, snap: TopSnapshot, view: ViewState, opts: FrameOptions): StyledLine[] {
  const width = Math.max(1, Math.floor(opts.width));
  const out: StyledLine[] = headerLines(info, snap, view).map((text, i) => ({ text, style: i === 0 ? 'bold' : 'plain' }));
  out.push({ text: '', style: 'plain' });
  out.push({ text: columnHeader(view.lines), style: 'reverse' });
  const rows = sortRows(view.lines ? snap.byLine : snap.byFunction, view.sort, view.reverse);
  const footer = opts.footer ? 1 : 0;
  let room: number;
  if (opts.height !== undefined) room = Math.max(0, Math.floor(opts.height) - out.length - footer);
  else room = opts.maxRows ?? 50;
  const labelWidth = Math.max(8, width - PREFIX);
  if (rows.length === 0 && room > 0) {
    out.push({ text: snap.ticks === 0 ? ' (no samples yet)' : info.idle ? ' (no samples)' : ' (no running threads sampled; --idle shows idle ones)', style: 'plain' });
  } else {
    const shown = rows.slice(0, room);
    const more = rows.length > room && opts.height === undefined;
    for (const r of shown) out.push({ text: formatRow(r, snap, info.rateHz, labelWidth), style: 'plain' });
    if (more) out.push({ text: ` ... ${rows.length - shown.length} more rows`, style: 'plain' });
  }
  if (opts.height !== undefined) {
    const h = Math.floor(opts.height);
    while (out.length < h - footer) out.push({ text: '', style: 'plain' });
    if (footer && h > 0) {
      if (out.length > h - 1) out.length = Math.max(0, h - 1);
      out.push({ text: FOOTER_TEXT, style: 'reverse' });
    }
    if (out.length > h) out.length = Math.max(0, h);
  } else if (footer) out.push({ text: FOOTER_TEXT, style: 'reverse' });
  return out.map((l) => ({ text: truncateRight(l.text, width), style: l.style }));
}

/** A frame as plain text (non-terminal output): lines joined, trailing spaces dropped, newline at the end. */
export function frameToText(lines: readonly StyledLine[]): string {
  return lines.map((l) => l.text.trimEnd()).join('\n') + '\n';
}

/**
 * A frame as one full-screen redraw: cursor home, each line (bold / reverse as SGR) with
 * the rest of the line cleared, then the rest of the screen cleared. No newline after the
 * last line, so the screen never scrolls. Reverse lines are padded to the full width.
 */
export function frameToAnsi(lines: readonly StyledLine[], width: number): string {
  let s = '\x1b[H';
  lines.forEach((l, i) => {
    const n = cps(l.text).length;
    if (l.style === 'reverse') s += `\x1b[7m${l.text}${' '.repeat(Math.max(0, width - n))}\x1b[0m`;
    else if (l.style === 'bold') s += `\x1b[1m${l.text}\x1b[0m`;
    else s += l.text;
    // a line that fills the width leaves the cursor on its last column: clearing there would erase it
    if (n < width && l.style !== 'reverse') s += '\x1b[K';
    if (i < lines.length - 1) s += '\r\n';
  });
  return s + '\x1b[J';
}

// ---------------------------------------------------------------------------------------
// controller

/** Stats + view state + the frozen snapshot while paused. The I/O layer feeds ticks, keys and the clock. */
export class TopController {
  readonly stats: TopStats;
  readonly info: TopInfo;
  view: ViewState;
  private frozen: TopSnapshot | undefined;

  constructor(info: TopInfo, stats: TopStats, view: ViewState = INITIAL_VIEW) {
    this.info = info;
    this.stats = stats;
    this.view = { ...view };
  }

  add(tick: LiveTick, nowNs: number): void {
    this.stats.add(tick, nowNs);
  }

  /** one key (a name from parseKeys); returns 'quit' when the caller should end, else whether to redraw */
  key(k: string, nowNs: number): KeyEffect {
    const { state, effect } = applyKey(this.view, k);
    const wasPaused = this.view.paused;
    this.view = state;
    if (effect === 'reset') {
      this.stats.reset(nowNs);
      if (this.frozen) this.frozen = this.stats.snapshot(nowNs);
      return 'redraw';
    }
    if (state.paused && !wasPaused) this.frozen = this.stats.snapshot(nowNs);
    if (!state.paused) this.frozen = undefined;
    return effect;
  }

  /** what the screen shows now: the frozen snapshot while paused, else a fresh one */
  snapshot(nowNs: number): TopSnapshot {
    return this.frozen ?? this.stats.snapshot(nowNs);
  }

  frame(nowNs: number, opts: FrameOptions): StyledLine[] {
    return renderTopFrame(this.info, this.snapshot(nowNs), this.view, opts);
  }
}
