/**
 * The page's view engine: builds the merged (left-heavy) and time-order layouts from the
 * decoded columns, with thread / process / state filters, and answers searches.
 * Pure (no DOM), so Node tests check it against the model's callTree().
 *
 * Nodes. A node is a distinct call path of labels: (parent node, label). Frames whose
 * labels are equal merge, as in FlameGraph. Node 0 is the root ("all"); with thread
 * grouping, a thread's pseudo-root sits under it. A parent's index is always smaller than
 * its children's, so totals accumulate in one backward pass.
 *
 * Filters. A RowFilter keeps rows by thread, process, asyncio task and state, picks the
 * value type and may hold a time range; `values(f)` is the value column with the range
 * applied, and everything (layouts, search, stackSums) counts it, so a row outside the
 * range weighs 0 and a merged run cut by it weighs the share of its samples inside.
 *
 * Layouts. Both views are boxes (start, end in value units; node; idle and off-CPU shares) grouped by
 * depth and sorted by start, so the renderer walks each visible depth with binary search
 * and skips sub-pixel boxes in O(pixels), not O(boxes).
 */
import type { Columns } from './decode.ts';

export const ROOT_KEY = -1;
/** SampleStateCode.idle */
export const STATE_IDLE = 3;
/** SampleStateCode.gil */
export const STATE_GIL = 4;
export const STATE_NAMES: readonly string[] = ['unknown', 'on-cpu', 'off-cpu', 'idle', 'gil'];
/** By state code: 1 for the states of time spent off the CPU waiting (off-cpu, gil: a blocked thread, a GIL wait) */
export const OFF_CPU_STATE: Readonly<Uint8Array> = Uint8Array.from(STATE_NAMES, (s) => (s === 'off-cpu' || s === 'gil' ? 1 : 0));

/** Open-addressing hash map from int pairs to non-negative ints. */
export class PairMap {
  private ka: Int32Array;
  private kb: Int32Array;
  private vals: Int32Array;
  private mask: number;
  private count = 0;

  constructor(capacityPow2 = 1 << 12) {
    this.ka = new Int32Array(capacityPow2);
    this.kb = new Int32Array(capacityPow2);
    this.vals = new Int32Array(capacityPow2).fill(-1);
    this.mask = capacityPow2 - 1;
  }

  private static hash(a: number, b: number): number {
    let h = Math.imul(a + 0x632be5ab, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    return h >>> 0;
  }

  get(a: number, b: number): number {
    let i = PairMap.hash(a, b) & this.mask;
    for (;;) {
      const v = this.vals[i]!;
      if (v < 0) return -1;
      if (this.ka[i] === a && this.kb[i] === b) return v;
      i = (i + 1) & this.mask;
    }
  }

  /** Stores (a, b) → v; the key must not be present. */
  add(a: number, b: number, v: number): void {
    let i = PairMap.hash(a, b) & this.mask;
    while (this.vals[i]! >= 0) i = (i + 1) & this.mask;
    this.ka[i] = a;
    this.kb[i] = b;
    this.vals[i] = v;
    if (++this.count * 2 > this.mask) this.grow();
  }

  private grow(): void {
    const { ka, kb, vals } = this;
    const cap = (this.mask + 1) * 2;
    this.ka = new Int32Array(cap);
    this.kb = new Int32Array(cap);
    this.vals = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
    this.count = 0;
    for (let j = 0; j < vals.length; j++) if (vals[j]! >= 0) this.add(ka[j]!, kb[j]!, vals[j]!);
  }
}

function growInt(a: Int32Array, n: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(Math.max(n, a.length * 2));
  b.set(a);
  return b;
}

/** Interned call-path nodes. */
export class Nodes {
  parent = new Int32Array(1024);
  /** Label string index (>= 0), ROOT_KEY, or -(thread + 2) for a thread pseudo-root. */
  key = new Int32Array(1024);
  depth = new Int32Array(1024);
  /** A frame that made this node (for kind, file and line), -1 for pseudo nodes. */
  frame = new Int32Array(1024);
  count = 0;
  maxDepth = 0;
  private map = new PairMap();

  constructor() {
    this.push(-1, ROOT_KEY, -1);
  }

  private push(parent: number, key: number, frame: number): number {
    const n = this.count++;
    if (n === this.parent.length) {
      this.parent = growInt(this.parent, n + 1);
      this.key = growInt(this.key, n + 1);
      this.depth = growInt(this.depth, n + 1);
      this.frame = growInt(this.frame, n + 1);
    }
    this.parent[n] = parent;
    this.key[n] = key;
    this.frame[n] = frame;
    const d = parent < 0 ? 0 : this.depth[parent]! + 1;
    this.depth[n] = d;
    if (d > this.maxDepth) this.maxDepth = d;
    return n;
  }

  intern(parent: number, key: number, frame: number): number {
    const n = this.map.get(parent, key);
    if (n >= 0) return n;
    const m = this.push(parent, key, frame);
    this.map.add(parent, key, m);
    return m;
  }
}

export interface RowFilter {
  /** threads[t] = 1 keeps thread t; null keeps all. */
  threads: Uint8Array | null;
  /** states[code] = 1 keeps the state; null keeps all. */
  states: Uint8Array | null;
  /**
   * asyncio tasks (record --async): tasks[1 + i] = 1 keeps task i's rows (FlameModel.tasks),
   * tasks[0] = 1 the rows of no task (the threads); null keeps all.
   */
  tasks?: Uint8Array | null;
  valueIndex: number;
  /** Merged view: a pseudo-root per thread. Time order groups by thread whenever more than one thread passes. */
  byThread: boolean;
  /**
   * Time range [start, end) in ns since the profile start (the rowTime column); null or
   * absent: all of it. Ignored when the rows have no times. A row counts by its share inside
   * (rangeShare): a single sample by its time, a merged run by the share of its samples inside.
   */
  range?: TimeRange | null;
}

export interface TimeRange {
  start: number;
  end: number;
}

/**
 * The share of a row inside [a, b). A single sample (span 0) is in or out by its time. A run
 * of samples merged over [t, t + span] has its samples about `interval` apart (the exporter
 * never merges across a larger gap: data.ts), so it is taken as evenly spaced points and the
 * share is the part of them inside; without an interval, the part of the span inside.
 */
export function rangeShare(t: number, span: number, interval: number, a: number, b: number): number {
  if (span <= 0) return t >= a && t < b ? 1 : 0;
  if (t >= a && t + span < b) return 1;
  if (t + span < a || t >= b) return 0;
  if (interval > 0) {
    const k = Math.max(2, Math.round(span / interval) + 1);
    const d = span / (k - 1);
    // point i (at t + i·d) is inside when ceil((a - t) / d) <= i < ceil((b - t) / d)
    const lo = Math.min(k, Math.max(0, Math.ceil((a - t) / d - 1e-6)));
    const hi = Math.min(k, Math.max(0, Math.ceil((b - t) / d - 1e-6)));
    return hi > lo ? (hi - lo) / k : 0;
  }
  const lo = Math.max(t, a);
  const hi = Math.min(t + span, b);
  return hi > lo ? (hi - lo) / span : 0;
}

export interface Layout {
  view: 'merged' | 'time';
  /** Sum of the value over the rows that pass the filter. */
  total: number;
  /** Deepest depth with a box (root = 0). */
  maxDepth: number;
  /** Boxes of depth d are indexes [depthStart[d], depthStart[d + 1]), sorted by start. */
  depthStart: Int32Array;
  start: Float64Array;
  end: Float64Array;
  node: Int32Array;
  /** Share of the box's value in the idle state, 0..255. */
  idle: Uint8Array;
  /** Share of the box's value off the CPU (states off-cpu and gil: OFF_CPU_STATE), 0..255. */
  offCpu: Uint8Array;
  /** Share of the box's value waiting for the GIL (a part of `offCpu`), 0..255. */
  gil: Uint8Array;
  /** Merged view: per node self and total value. Null in time order. */
  nodeSelf: Float64Array | null;
  nodeTotal: Float64Array | null;
  /** Per row: leaf node, or -1 when the row does not pass the filter. */
  rowLeaf: Int32Array;
  /** Per row: the value the layout counts (FlameModel.values: the time range applied). */
  values: Float64Array;
  valueIndex: number;
  /** Whether thread pseudo-roots are in this layout. */
  byThread: boolean;
}

/** FRAME_KINDS' index of 'marker' (model/profile.ts) */
const MARKER_KIND = 3;

/** the RowFilter.tasks slot of a row's stack: 0 for no task, 1 + its task */
function taskRow(ofStack: Int32Array, stack: number): number {
  return stack < 0 ? 0 : ofStack[stack]! + 1;
}

function idleByte(idle: number, total: number): number {
  return total > 0 ? Math.max(0, Math.min(255, Math.round((255 * idle) / total))) : 0;
}

export class FlameModel {
  readonly cols: Columns;
  readonly nodes = new Nodes();
  /** Node of each stack without thread grouping. */
  readonly stackNode: Int32Array;
  private readonly grouped = new PairMap();
  private readonly threadRoot: Int32Array;
  private chain = new Int32Array(64);

  constructor(cols: Columns) {
    this.cols = cols;
    this.threadRoot = new Int32Array(cols.nThreads).fill(-1);
    const sn = new Int32Array(cols.nStacks);
    for (let s = 0; s < cols.nStacks; s++) {
      const p = cols.stackParent[s]!;
      const f = cols.stackFrame[s]!;
      sn[s] = this.nodes.intern(p < 0 ? 0 : sn[p]!, cols.frameLabel[f]!, f);
    }
    this.stackNode = sn;
    // Alphabetical rank of every frame label, for deterministic ties between equal siblings.
    const labels = Array.from(new Set(cols.frameLabel)).sort((a, b) => {
      const x = cols.strings[a]!;
      const y = cols.strings[b]!;
      return x < y ? -1 : x > y ? 1 : 0;
    });
    this.labelRank = new Int32Array(cols.strings.length);
    labels.forEach((k, i) => (this.labelRank[k] = i));
    this.nLabels = labels.length;
  }

  private readonly labelRank: Int32Array;

  private taskInfo: { names: string[]; ofStack: Int32Array } | undefined;
  /**
   * asyncio tasks (record --async profiles): the names under the `task NAME` root markers, and
   * per stack its task's index, -1 for none. Parents come before their children in the stack
   * table, so one pass suffices.
   */
  tasks(): { names: string[]; ofStack: Int32Array } {
    if (this.taskInfo) return this.taskInfo;
    const { nStacks, stackParent, stackFrame, frameKind, frameName, strings } = this.cols;
    const names: string[] = [];
    const byFrame = new Map<number, number>();
    const ofStack = new Int32Array(nStacks).fill(-1);
    for (let s = 0; s < nStacks; s++) {
      const p = stackParent[s]!;
      if (p >= 0 && p < s && ofStack[p]! >= 0) {
        ofStack[s] = ofStack[p]!;
        continue;
      }
      const f = stackFrame[s]!;
      if (frameKind[f] !== MARKER_KIND) continue;
      let id = byFrame.get(f);
      if (id === undefined) {
        const name = strings[frameName[f]!] ?? '';
        if (!name.startsWith('task ')) continue;
        byFrame.set(f, (id = names.length));
        names.push(name.slice(5));
      }
      ofStack[s] = id;
    }
    return (this.taskInfo = { names, ofStack });
  }
  private readonly nLabels: number;

  /** Sort rank of a node's label: labels alphabetically, then thread roots by thread. */
  private rank(n: number): number {
    const k = this.nodes.key[n]!;
    return k >= 0 ? this.labelRank[k]! : this.nLabels + (-k - 2);
  }

  threadLabel(t: number): string {
    const th = this.cols.data.threads;
    const nm = th.name[t]!;
    const base = `${th.pid[t]}/${th.tid[t]}`;
    return nm >= 0 ? `${this.cols.strings[nm]} (${base})` : `thread ${th.tid[t]} (${base})`;
  }

  nodeLabel(n: number): string {
    const k = this.nodes.key[n]!;
    if (k >= 0) return this.cols.strings[k]!;
    if (k === ROOT_KEY) return 'all';
    return this.threadLabel(-k - 2);
  }

  /** FrameKindCode of a node; pseudo nodes are markers (3). */
  nodeKind(n: number): number {
    const f = this.nodes.frame[n]!;
    return f >= 0 ? this.cols.frameKind[f]! : 3;
  }

  private threadRootNode(t: number): number {
    let r = this.threadRoot[t]!;
    if (r < 0) {
      r = this.nodes.intern(0, -t - 2, -1);
      this.threadRoot[t] = r;
    }
    return r;
  }

  /** Node of stack s under thread t's pseudo-root. */
  private groupedNode(t: number, s: number): number {
    if (s < 0) return this.threadRootNode(t);
    let n = this.grouped.get(t, s);
    if (n >= 0) return n;
    const { stackParent, stackFrame, frameLabel } = this.cols;
    let len = 0;
    let a = s;
    while (a >= 0 && (n = this.grouped.get(t, a)) < 0) {
      if (len === this.chain.length) this.chain = growInt(this.chain, len + 1);
      this.chain[len++] = a;
      a = stackParent[a]!;
    }
    let node = a < 0 ? this.threadRootNode(t) : n;
    for (let i = len - 1; i >= 0; i--) {
      const st = this.chain[i]!;
      const f = stackFrame[st]!;
      node = this.nodes.intern(node, frameLabel[f]!, f);
      this.grouped.add(t, st, node);
    }
    return node;
  }

  /** Leaf node of each row that passes the filter, -1 for the others. */
  private leaves(f: RowFilter, byThread: boolean): Int32Array {
    const { rowStack, rowThread, rowState, nRows } = this.cols;
    const col = this.values(f);
    const out = new Int32Array(nRows);
    const th = f.threads;
    const st = f.states;
    const tk = f.tasks ?? null;
    const ofStack = tk !== null ? this.tasks().ofStack : null;
    const sn = this.stackNode;
    for (let r = 0; r < nRows; r++) {
      const t = rowThread[r]!;
      if ((th !== null && th[t] === 0) || (st !== null && st[rowState[r]!] === 0) || col[r] === 0 || (tk !== null && tk[taskRow(ofStack!, rowStack[r]!)] === 0)) {
        out[r] = -1;
        continue;
      }
      const s = rowStack[r]!;
      out[r] = byThread ? this.groupedNode(t, s) : s < 0 ? 0 : sn[s]!;
    }
    return out;
  }

  /** How many threads with rows pass the filter. */
  threadsPassing(f: RowFilter): number {
    const seen = new Uint8Array(this.cols.nThreads);
    const { rowThread, rowState, rowStack, nRows } = this.cols;
    const tk = f.tasks ?? null;
    const ofStack = tk !== null ? this.tasks().ofStack : null;
    // with a time range, rows outside it (value 0 there) do not count
    const ranged = this.isRanged(f) ? this.values(f) : null;
    let n = 0;
    for (let r = 0; r < nRows; r++) {
      const t = rowThread[r]!;
      if (seen[t] || (f.threads !== null && f.threads[t] === 0) || (f.states !== null && f.states[rowState[r]!] === 0) || (tk !== null && tk[taskRow(ofStack!, rowStack[r]!)] === 0) || (ranged !== null && ranged[r] === 0)) continue;
      seen[t] = 1;
      n++;
    }
    return n;
  }

  private isRanged(f: RowFilter): boolean {
    return f.range !== undefined && f.range !== null && this.cols.rowTime !== null;
  }

  private rangeCache: { valueIndex: number; start: number; end: number; out: Float64Array } | null = null;

  /**
   * Per row, the value the views count: the value column itself, or with a time range the
   * part of each row's value inside it (rangeShare; 0 outside). Cached for the last range.
   */
  values(f: RowFilter): Float64Array {
    const col = this.cols.rowValues[f.valueIndex]!;
    const time = this.cols.rowTime;
    const rg = f.range ?? null;
    if (rg === null || time === null) return col;
    const c = this.rangeCache;
    if (c !== null && c.valueIndex === f.valueIndex && c.start === rg.start && c.end === rg.end) return c.out;
    const { nRows, rowSpan } = this.cols;
    const interval = this.cols.data.sampleIntervalNs ?? 0;
    const a = rg.start;
    const b = rg.end;
    const out = new Float64Array(nRows);
    for (let r = 0; r < nRows; r++) {
      const t = time[r]!;
      const sp = rowSpan === null ? 0 : rowSpan[r]!;
      if (sp === 0) {
        if (t >= a && t < b) out[r] = col[r]!;
      } else out[r] = col[r]! * rangeShare(t, sp, interval, a, b);
    }
    this.rangeCache = { valueIndex: f.valueIndex, start: a, end: b, out };
    return out;
  }

  /**
   * Value per stack of the rows that pass the filter (per stack × state code with `byState`:
   * index s * STATE_NAMES.length + state), and the total of those rows, empty stacks included.
   */
  stackSums(f: RowFilter, byState: boolean): { sums: Float64Array; total: number } {
    const { rowStack, rowThread, rowState, nRows, nStacks } = this.cols;
    const col = this.values(f);
    const NS = byState ? STATE_NAMES.length : 1;
    const sums = new Float64Array(nStacks * NS);
    const th = f.threads;
    const st = f.states;
    const tk = f.tasks ?? null;
    const ofStack = tk !== null ? this.tasks().ofStack : null;
    let total = 0;
    for (let r = 0; r < nRows; r++) {
      const v = col[r]!;
      if (v === 0 || (th !== null && th[rowThread[r]!] === 0) || (st !== null && st[rowState[r]!] === 0) || (tk !== null && tk[taskRow(ofStack!, rowStack[r]!)] === 0)) continue;
      total += v;
      const s = rowStack[r]!;
      if (s >= 0) sums[byState ? s * NS + rowState[r]! : s] += v;
    }
    return { sums, total };
  }

  /** Merged, left-heavy layout: children sorted by total value, heaviest first. */
  buildMerged(f: RowFilter): Layout {
    const byThread = f.byThread && this.threadsPassing(f) > 1;
    const leaf = this.leaves(f, byThread);
    const N = this.nodes.count;
    const parent = this.nodes.parent;
    const col = this.values(f);
    const state = this.cols.rowState;
    const self = new Float64Array(N);
    const idle = new Float64Array(N);
    const off = new Float64Array(N);
    const gil = new Float64Array(N);
    for (let r = 0; r < leaf.length; r++) {
      const n = leaf[r]!;
      if (n < 0) continue;
      const v = col[r]!;
      self[n] += v;
      if (state[r] === STATE_IDLE) idle[n] += v;
      else if (OFF_CPU_STATE[state[r]!] === 1) {
        off[n] += v;
        if (state[r] === STATE_GIL) gil[n] += v;
      }
    }
    const total = self.slice();
    for (let n = N - 1; n > 0; n--) {
      const p = parent[n]!;
      total[p] += total[n]!;
      idle[p] += idle[n]!;
      off[p] += off[n]!;
      gil[p] += gil[n]!;
    }
    // Children lists (CSR) in node order, then each multi-child segment sorted heaviest
    // first; ties by label rank, then node (deterministic). Keys are typed arrays so the
    // comparator makes no calls.
    const childStart = new Int32Array(N + 1);
    for (let n = 1; n < N; n++) if (total[n]! > 0) childStart[parent[n]! + 1]++;
    for (let n = 0; n < N; n++) childStart[n + 1] += childStart[n]!;
    const children = new Int32Array(childStart[N]!);
    const fill = childStart.slice(0, N);
    for (let n = 1; n < N; n++) if (total[n]! > 0) children[fill[parent[n]!]!++] = n;
    const tie = new Float64Array(N);
    for (let n = 1; n < N; n++) tie[n] = this.rank(n) * N + n;
    const cmp = (a: number, b: number): number => total[b]! - total[a]! || tie[a]! - tie[b]!;
    for (let n = 0; n < N; n++) {
      const a = childStart[n]!;
      const b = childStart[n + 1]!;
      if (b - a === 2) {
        const x = children[a]!;
        const y = children[a + 1]!;
        if (cmp(x, y) > 0) {
          children[a] = y;
          children[a + 1] = x;
        }
      } else if (b - a > 2) children.subarray(a, b).sort(cmp);
    }
    // Pre-order walk: left to right within every depth.
    const x = new Float64Array(N);
    const order = new Int32Array(N);
    const depthCount = new Int32Array(this.nodes.maxDepth + 2);
    const depth = this.nodes.depth;
    let count = 0;
    if (total[0]! > 0) {
      const stack = new Int32Array(N);
      let sp = 0;
      stack[sp++] = 0;
      while (sp > 0) {
        const n = stack[--sp]!;
        order[count++] = n;
        depthCount[depth[n]!]++;
        let acc = x[n]!;
        const a = childStart[n]!;
        const b = childStart[n + 1]!;
        for (let i = a; i < b; i++) {
          const c = children[i]!;
          x[c] = acc;
          acc += total[c]!;
        }
        for (let i = b - 1; i >= a; i--) stack[sp++] = children[i]!;
      }
    }
    let maxDepth = 0;
    for (let d = 0; d < depthCount.length; d++) if (depthCount[d]! > 0) maxDepth = d;
    const depthStart = new Int32Array(maxDepth + 2);
    for (let d = 0; d <= maxDepth; d++) depthStart[d + 1] = depthStart[d]! + depthCount[d]!;
    const cursor = depthStart.slice(0, maxDepth + 1);
    const bs = new Float64Array(count);
    const be = new Float64Array(count);
    const bn = new Int32Array(count);
    const bi = new Uint8Array(count);
    const bo = new Uint8Array(count);
    const bg = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const n = order[i]!;
      const j = cursor[depth[n]!]!++;
      bs[j] = x[n]!;
      be[j] = x[n]! + total[n]!;
      bn[j] = n;
      bi[j] = idleByte(idle[n]!, total[n]!);
      bo[j] = idleByte(off[n]!, total[n]!);
      bg[j] = idleByte(gil[n]!, total[n]!);
    }
    return { view: 'merged', total: total[0]!, maxDepth, depthStart, start: bs, end: be, node: bn, idle: bi, offCpu: bo, gil: bg, nodeSelf: self, nodeTotal: total, rowLeaf: leaf, values: col, valueIndex: f.valueIndex, byThread };
  }

  /**
   * Time-order layout: rows in (thread, time) order, each a column as wide as its value;
   * consecutive identical call paths merge into one box (speedscope's Time Order).
   * With more than one thread, each thread gets its own pseudo-root.
   *
   * Two passes over the rows: the first counts boxes per depth, the second writes them
   * straight into their final place, so memory is one copy of the boxes.
   */
  buildTimeOrder(f: RowFilter): Layout {
    const byThread = this.threadsPassing(f) > 1;
    const leaf = this.leaves(f, byThread);
    const col = this.values(f);
    const state = this.cols.rowState;
    const parent = this.nodes.parent;
    const depth = this.nodes.depth;
    const maxD = this.nodes.maxDepth + 1;
    const openNode = new Int32Array(maxD + 1);
    const openStart = new Float64Array(maxD + 1);
    const openIdle = new Float64Array(maxD + 1);
    const openOff = new Float64Array(maxD + 1);
    const openGil = new Float64Array(maxD + 1);
    const count = new Int32Array(maxD + 1);
    let cursor = count;
    let bs = new Float64Array(0);
    let be = new Float64Array(0);
    let bn = new Int32Array(0);
    let bi = new Uint8Array(0);
    let bo = new Uint8Array(0);
    let bg = new Uint8Array(0);
    let cum = 0;
    for (let pass = 0; pass < 2; pass++) {
      const fill = pass === 1;
      let open = 0;
      let cumIdle = 0;
      let cumOff = 0;
      let cumGil = 0;
      let prev = -2;
      cum = 0;
      for (let r = 0; r <= leaf.length; r++) {
        const last = r === leaf.length;
        const n = last ? -1 : leaf[r]!;
        if (!last && n < 0) continue;
        const v = last ? 0 : col[r]!;
        if (!last && v <= 0) continue;
        if (n === prev) {
          cum += v;
          if (state[r] === STATE_IDLE) cumIdle += v;
          else if (OFF_CPU_STATE[state[r]!] === 1) {
            cumOff += v;
            if (state[r] === STATE_GIL) cumGil += v;
          }
          continue;
        }
        // The open boxes that stay: walk up from the new leaf until the path meets them.
        let k = 0;
        let D = -1;
        if (!last) {
          D = depth[n]!;
          let a = n;
          let d = D;
          while (d >= 0 && (d >= open || openNode[d] !== a)) {
            a = parent[a]!;
            d--;
          }
          k = d + 1;
        }
        // Close what no longer continues.
        while (open > k) {
          open--;
          if (fill) {
            const j = cursor[open]!++;
            bs[j] = openStart[open]!;
            be[j] = cum;
            bn[j] = openNode[open]!;
            bi[j] = idleByte(cumIdle - openIdle[open]!, cum - openStart[open]!);
            bo[j] = idleByte(cumOff - openOff[open]!, cum - openStart[open]!);
            bg[j] = idleByte(cumGil - openGil[open]!, cum - openStart[open]!);
          } else count[open]++;
        }
        if (last) break;
        // Open the new part of the path.
        for (let a = n, d = D; d >= k; a = parent[a]!, d--) {
          openNode[d] = a;
          openStart[d] = cum;
          openIdle[d] = cumIdle;
          openOff[d] = cumOff;
          openGil[d] = cumGil;
        }
        open = D + 1;
        prev = n;
        cum += v;
        if (state[r] === STATE_IDLE) cumIdle += v;
        else if (OFF_CPU_STATE[state[r]!] === 1) {
          cumOff += v;
          if (state[r] === STATE_GIL) cumGil += v;
        }
      }
      if (!fill) {
        let boxes = 0;
        for (let d = 0; d <= maxD; d++) boxes += count[d]!;
        bs = new Float64Array(boxes);
        be = new Float64Array(boxes);
        bn = new Int32Array(boxes);
        bi = new Uint8Array(boxes);
        bo = new Uint8Array(boxes);
        bg = new Uint8Array(boxes);
      }
      cursor = new Int32Array(maxD + 1);
      for (let d = 1; d <= maxD; d++) cursor[d] = cursor[d - 1]! + count[d - 1]!;
    }
    let maxDepth = 0;
    for (let d = 0; d <= maxD; d++) if (count[d]! > 0) maxDepth = d;
    const depthStart = new Int32Array(maxDepth + 2);
    for (let d = 0; d <= maxDepth; d++) depthStart[d + 1] = depthStart[d]! + count[d]!;
    return { view: 'time', total: cum, maxDepth, depthStart, start: bs, end: be, node: bn, idle: bi, offCpu: bo, gil: bg, nodeSelf: null, nodeTotal: null, rowLeaf: leaf, values: col, valueIndex: f.valueIndex, byThread };
  }

  /**
   * Search: which nodes' labels match, and the share of the value whose call path
   * contains a match (each sample counted once, like FlameGraph's "Matched").
   */
  search(layout: Layout, re: RegExp): { nodeMatch: Uint8Array; matched: number } {
    const N = this.nodes.count;
    const direct = new Uint8Array(N);
    const onPath = new Uint8Array(N);
    const keyCache = new Int8Array(this.cols.strings.length);
    const parent = this.nodes.parent;
    const key = this.nodes.key;
    for (let n = 0; n < N; n++) {
      const k = key[n]!;
      let m: boolean;
      if (k >= 0) {
        if (keyCache[k] === 0) keyCache[k] = re.test(this.cols.strings[k]!) ? 1 : -1;
        m = keyCache[k] === 1;
      } else m = re.test(this.nodeLabel(n));
      direct[n] = m ? 1 : 0;
      onPath[n] = m || (n > 0 && onPath[parent[n]!] === 1) ? 1 : 0;
    }
    const col = layout.values;
    let matched = 0;
    for (let r = 0; r < layout.rowLeaf.length; r++) {
      const n = layout.rowLeaf[r]!;
      if (n >= 0 && onPath[n] === 1) matched += col[r]!;
    }
    return { nodeMatch: direct, matched };
  }
}

/** First box of depth d whose end is greater than x (depthStart[d + 1] when none). */
export function firstEndingAfter(l: Layout, d: number, x: number): number {
  let lo = l.depthStart[d]!;
  let hi = l.depthStart[d + 1]!;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (l.end[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * First box index j in [i, hi) with end > x, searching outwards from i (galloping), so
 * short hops over sub-pixel boxes touch nearby memory only. hi when none.
 */
export function advance(l: Layout, i: number, hi: number, x: number): number {
  const end = l.end;
  if (i >= hi || end[i]! > x) return i;
  let step = 1;
  let lo = i;
  let j = i + 1;
  while (j < hi && end[j]! <= x) {
    lo = j;
    step *= 2;
    j = lo + step;
  }
  let top = Math.min(j, hi);
  lo++;
  while (lo < top) {
    const mid = (lo + top) >>> 1;
    if (end[mid]! > x) top = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The box of depth d that contains x, or -1. */
export function boxAt(l: Layout, d: number, x: number): number {
  if (d < 0 || d > l.maxDepth) return -1;
  const i = firstEndingAfter(l, d, x);
  return i < l.depthStart[d + 1]! && l.start[i]! <= x ? i : -1;
}

/** Depth of a box. */
export function boxDepth(l: Layout, b: number): number {
  let lo = 0;
  let hi = l.maxDepth;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (l.depthStart[mid]! <= b) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Self value of a box: its width minus its children's. */
export function boxSelf(l: Layout, b: number): number {
  if (l.nodeSelf) return l.nodeSelf[l.node[b]!]!;
  const d = boxDepth(l, b);
  let self = l.end[b]! - l.start[b]!;
  if (d >= l.maxDepth) return self;
  const hi = l.depthStart[d + 2]!;
  for (let i = firstEndingAfter(l, d + 1, l.start[b]!); i < hi && l.start[i]! < l.end[b]!; i++) self -= l.end[i]! - l.start[i]!;
  return self;
}

/** The box of a node in a merged layout (each node has at most one box), or -1. */
export function nodeBox(l: Layout, node: number, depth: number): number {
  if (depth > l.maxDepth) return -1;
  for (let i = l.depthStart[depth]!; i < l.depthStart[depth + 1]!; i++) if (l.node[i] === node) return i;
  return -1;
}

/** Parse a search box entry: a regular expression when it is one, else a substring; smart case. */
export function searchPattern(q: string): RegExp | null {
  if (q === '') return null;
  const flags = q === q.toLowerCase() ? 'i' : '';
  try {
    return new RegExp(q, flags);
  } catch {
    return new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), flags);
  }
}
