/**
 * What `report` (and `diagnose`, and the page) say about one profile beyond the top table:
 *
 * - State split (`stateSplits`): for each function (or line), how its inclusive value divides
 *   over the sample states — on-CPU, idle, waiting for the GIL, off-CPU — and, for off-CPU
 *   time attributed by the eBPF lens, over wait classes (the `[wait: CLASS]` marker frames
 *   under the Python frames: lock, network, disk, sleep, …).
 * - Wide bottoms (`wideBottoms`): the frames where the time fans out. Walking the call tree
 *   (merged by function) from the root, a node whose heaviest child holds less than
 *   `fanOut` (default 75 %) of it, with at least `minCallees` (3) distinct callees and at
 *   least `minShare` (10 %) of the total, is where a whole family of hotspots hangs: the
 *   seed's "fix wide bottoms first". Chains that pass the time on to one child (`<module>` →
 *   `main` → `run`) are walked through, not listed. Ordered by share.
 */
import { SAMPLE_STATES, frameInfo, type Profile, type SampleState } from '../model/profile.ts';
import { aggregate, aggregateKey, type AggregateBy } from '../model/query.ts';

export interface StateSplit {
  total: number;
  /** inclusive value per state */
  states: Partial<Record<SampleState, number>>;
  /** off-CPU value per wait class, when the profile has `[wait: CLASS]` markers */
  waits: Record<string, number>;
}

/** The states a profile's samples are in (with a non-zero value). */
export function statesPresent(p: Profile, valueIndex = p.defaultValue): SampleState[] {
  const col = p.samples.values[valueIndex]!;
  const seen = new Set<number>();
  for (let i = 0; i < p.samples.length; i++) if (col[i]! !== 0) seen.add(p.samples.state[i]!);
  return [...seen].sort((a, b) => a - b).map((c) => SAMPLE_STATES[c]!);
}

const WAIT_RE = /^\[wait: (.+)\]$/;

/** Per aggregate key (model/query.ts `aggregateKey`): the function's value by state and wait class. */
export function stateSplits(p: Profile, o: { by?: AggregateBy; valueIndex?: number } = {}): Map<string, StateSplit> {
  const vi = o.valueIndex ?? p.defaultValue;
  const col = p.samples.values[vi]!;
  const keyOf: string[] = [];
  const waitOf: (string | null)[] = [];
  for (let f = 0; f < p.frames.length; f++) {
    const fi = frameInfo(p, f);
    keyOf.push(aggregateKey(fi, o.by ?? 'function'));
    const m = fi.kind === 'marker' ? WAIT_RE.exec(fi.name) : null;
    waitOf.push(m ? m[1]! : null);
  }
  // value per (stack, state)
  const NS = SAMPLE_STATES.length;
  const per = new Float64Array(p.stacks.length * NS);
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    if (s >= 0) per[s * NS + p.samples.state[i]!] += col[i]!;
  }
  // the wait class of each stack: the nearest marker on it
  const waitOfStack: (string | null)[] = new Array(p.stacks.length);
  for (let s = 0; s < p.stacks.length; s++) {
    const parent = p.stacks.parent[s]!;
    waitOfStack[s] = waitOf[p.stacks.frame[s]!] ?? (parent >= 0 ? waitOfStack[parent]! : null);
  }
  // keys as small integers, sums in one array (key × state); wait classes only where there are some
  const kid = new Map<string, number>();
  const keyName: string[] = [];
  const keyIdOf = new Int32Array(p.frames.length);
  for (let f = 0; f < p.frames.length; f++) {
    let id = kid.get(keyOf[f]!);
    if (id === undefined) kid.set(keyOf[f]!, (id = keyName.push(keyOf[f]!) - 1));
    keyIdOf[f] = id;
  }
  const K = keyName.length;
  const acc = new Float64Array(K * NS);
  const present = new Uint8Array(K);
  const waitAcc = new Map<number, Record<string, number>>();
  const seen = new Int32Array(K).fill(-1);
  for (let s = 0; s < p.stacks.length; s++) {
    let any = false;
    for (let c = 0; c < NS; c++) if (per[s * NS + c] !== 0) any = true;
    if (!any) continue;
    const wait = waitOfStack[s];
    for (let a = s; a >= 0; a = p.stacks.parent[a]!) {
      const k = keyIdOf[p.stacks.frame[a]!]!;
      if (seen[k] === s) continue;
      seen[k] = s;
      present[k] = 1;
      for (let c = 0; c < NS; c++) {
        const v = per[s * NS + c]!;
        if (v === 0) continue;
        acc[k * NS + c] += v;
        if (!wait) continue;
        const st = SAMPLE_STATES[c]!;
        const cls = st === 'off-cpu' ? wait : wait === 'GIL' && st === 'gil' ? 'GIL' : null;
        if (cls === null) continue;
        let w = waitAcc.get(k);
        if (!w) waitAcc.set(k, (w = {}));
        w[cls] = (w[cls] ?? 0) + v;
      }
    }
  }
  const out = new Map<string, StateSplit>();
  for (let k = 0; k < K; k++) {
    if (!present[k]) continue;
    const e: StateSplit = { total: 0, states: {}, waits: waitAcc.get(k) ?? {} };
    for (let c = 0; c < NS; c++) {
      const v = acc[k * NS + c]!;
      if (v === 0) continue;
      e.states[SAMPLE_STATES[c]!] = v;
      e.total += v;
    }
    out.set(keyName[k]!, e);
  }
  return out;
}

export interface WideBottom {
  name: string;
  file: string | null;
  kind: string;
  /** inclusive share of the total, 0–1 */
  share: number;
  selfShare: number;
  /** distinct functions it calls */
  callees: number;
  /** the heaviest callee's part of it, 0–1 */
  largestCallee: number;
  /** functions from the root down to it */
  depth: number;
  /** the call path from the root, function names */
  path: string[];
}

export function wideBottoms(p: Profile, o: { valueIndex?: number; minShare?: number; fanOut?: number; minCallees?: number; limit?: number } = {}): WideBottom[] {
  const vi = o.valueIndex ?? p.defaultValue;
  const minShare = o.minShare ?? 0.1;
  const fanOut = o.fanOut ?? 0.75;
  const minCallees = o.minCallees ?? 3;
  const col = p.samples.values[vi]!;
  // function-merged call tree: node = (parent, function key)
  const keyOf: number[] = [];
  const keys = new Map<string, number>();
  const keyFrame: number[] = [];
  for (let f = 0; f < p.frames.length; f++) {
    const k = aggregateKey(frameInfo(p, f), false);
    let id = keys.get(k);
    if (id === undefined) {
      keys.set(k, (id = keyFrame.length));
      keyFrame.push(f);
    }
    keyOf.push(id);
  }
  const nodeIds = new Map<string, number>();
  const nodeKey: number[] = [];
  const nodeParent: number[] = [];
  const nodeOfStack = new Int32Array(p.stacks.length);
  for (let s = 0; s < p.stacks.length; s++) {
    const parent = p.stacks.parent[s]!;
    const pn = parent < 0 ? -1 : nodeOfStack[parent]!;
    const k = keyOf[p.stacks.frame[s]!]!;
    const id = `${pn},${k}`;
    let n = nodeIds.get(id);
    if (n === undefined) {
      nodeIds.set(id, (n = nodeKey.length));
      nodeKey.push(k);
      nodeParent.push(pn);
    }
    nodeOfStack[s] = n;
  }
  const N = nodeKey.length;
  const total = new Float64Array(N);
  const self = new Float64Array(N);
  let grand = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const v = col[i]!;
    grand += v;
    const s = p.samples.stack[i]!;
    if (s < 0) continue;
    total[nodeOfStack[s]!] += v;
    self[nodeOfStack[s]!] += v;
  }
  // nodes are created parents first: a reverse pass sums children into parents
  const children: number[][] = Array.from({ length: N }, () => []);
  for (let n = N - 1; n >= 0; n--) {
    const pn = nodeParent[n]!;
    if (pn >= 0) {
      total[pn] += total[n]!;
      children[pn]!.push(n);
    }
  }
  if (!(grand > 0)) return [];
  const out: WideBottom[] = [];
  const names = (n: number): string[] => {
    const path: string[] = [];
    for (let x = n; x >= 0; x = nodeParent[x]!) path.push(frameInfo(p, keyFrame[nodeKey[x]!]!).qualname);
    return path.reverse();
  };
  const depthOf = (n: number) => {
    let d = 0;
    for (let x = n; x >= 0; x = nodeParent[x]!) d++;
    return d;
  };
  // walk from the roots through nodes heavy enough to matter
  const stack: number[] = [];
  for (let n = 0; n < N; n++) if (nodeParent[n] === -1 && total[n]! >= minShare * grand) stack.push(n);
  while (stack.length) {
    const n = stack.pop()!;
    const kids = children[n]!.filter((c) => total[c]! > 0);
    const distinct = new Set(kids.map((c) => nodeKey[c]!)).size;
    const largest = kids.reduce((m, c) => Math.max(m, total[c]!), 0);
    if (distinct >= minCallees && largest < fanOut * total[n]!) {
      const fi = frameInfo(p, keyFrame[nodeKey[n]!]!);
      out.push({ name: fi.qualname, file: fi.file ?? fi.lib, kind: fi.kind, share: total[n]! / grand, selfShare: self[n]! / grand, callees: distinct, largestCallee: largest / total[n]!, depth: depthOf(n), path: names(n) });
    }
    for (const c of kids) if (total[c]! >= minShare * grand) stack.push(c);
  }
  out.sort((a, b) => b.share - a.share || a.depth - b.depth);
  return out.slice(0, o.limit ?? 5);
}

export interface SandwichEntry {
  /** row index into the table's rows when the function is listed there, else -1 */
  row: number;
  label: string;
  /** value through this edge */
  value: number;
}

export interface FunctionTableRow {
  label: string;
  name: string;
  file: string | null;
  self: number;
  total: number;
  /** value by state (when the profile has several) */
  states?: Partial<Record<SampleState, number>>;
  /** who calls it and what it calls, heaviest first (at most `sandwich` each) */
  callers: SandwichEntry[];
  callees: SandwichEntry[];
}

/**
 * The page's function table with its sandwich: the `limit` functions with the most total
 * value (self, total, state split) and, for each, its callers and callees by the value that
 * flows through each edge (a stack counts once per edge, however often it recurses).
 */
export function functionTable(p: Profile, o: { valueIndex?: number; limit?: number; sandwich?: number } = {}): { rows: FunctionTableRow[]; grandTotal: number } {
  const vi = o.valueIndex ?? p.defaultValue;
  const limit = o.limit ?? 200;
  const per = o.sandwich ?? 8;
  const agg = aggregate(p, { valueIndex: vi });
  const byTotal = agg.rows.map((r, i) => ({ r, key: agg.keys[i]! })).sort((a, b) => b.r.total - a.r.total || b.r.self - a.r.self);
  const top = byTotal.slice(0, limit);
  const rowOfKey = new Map(top.map((x, i) => [x.key, i]));
  const labelOfKey = new Map(byTotal.map((x) => [x.key, x.r.label]));
  const splits = statesPresent(p, vi).filter((s) => s !== 'unknown').length >= 2 ? stateSplits(p, { valueIndex: vi }) : undefined;
  // value per stack
  const col = p.samples.values[vi]!;
  const perStack = new Float64Array(p.stacks.length);
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    if (s >= 0) perStack[s] += col[i]!;
  }
  // keys as small integers: a caller → callee edge is one number (ka · K + kb), not a string
  const kid = new Map<string, number>();
  const keyName: string[] = [];
  const keyOf = new Int32Array(p.frames.length);
  for (let f = 0; f < p.frames.length; f++) {
    const k = aggregateKey(frameInfo(p, f), 'function');
    let id = kid.get(k);
    if (id === undefined) kid.set(k, (id = keyName.push(k) - 1));
    keyOf[f] = id;
  }
  const K = keyName.length;
  const rowOf = new Int32Array(K).fill(-1);
  for (const [k, row] of rowOfKey) {
    const id = kid.get(k);
    if (id !== undefined) rowOf[id] = row;
  }
  const callers = new Map<number, Map<number, number>>();
  const callees = new Map<number, Map<number, number>>();
  const add = (m: Map<number, Map<number, number>>, a: number, b: number, v: number) => {
    let inner = m.get(a);
    if (!inner) m.set(a, (inner = new Map()));
    inner.set(b, (inner.get(b) ?? 0) + v);
  };
  const seen = new Set<number>();
  for (let s = 0; s < p.stacks.length; s++) {
    const v = perStack[s]!;
    if (v === 0) continue;
    seen.clear();
    for (let b = s; b >= 0; b = p.stacks.parent[b]!) {
      const a = p.stacks.parent[b]!;
      if (a < 0) break;
      const ka = keyOf[p.stacks.frame[a]!]!;
      const kb = keyOf[p.stacks.frame[b]!]!;
      if (rowOf[kb] < 0 && rowOf[ka] < 0) continue;
      const edge = ka * K + kb;
      if (seen.has(edge)) continue;
      seen.add(edge);
      if (rowOf[kb]! >= 0) add(callers, kb, ka, v);
      if (rowOf[ka]! >= 0) add(callees, ka, kb, v);
    }
  }
  const entries = (m: Map<number, number> | undefined): SandwichEntry[] =>
    [...(m ?? new Map<number, number>()).entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, per)
      .map(([k, value]) => ({ row: rowOf[k]!, label: labelOfKey.get(keyName[k]!) ?? keyName[k]!, value }));
  const rows = top.map(({ r, key }) => {
    const sp = splits?.get(key);
    const id = kid.get(key) ?? -1;
    return { label: r.label, name: r.name, file: r.file, self: r.self, total: r.total, ...(sp ? { states: sp.states } : {}), callers: entries(callers.get(id)), callees: entries(callees.get(id)) };
  });
  return { rows, grandTotal: agg.grandTotal };
}
