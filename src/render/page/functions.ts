/**
 * The function table for the page's filters (page/table.ts shows it): self and total value
 * per function over the rows that pass a RowFilter, its time range included, with the keys
 * and labels of the embedded table (html.ts `tableData`: analysis/report.ts `functionTable`
 * over the whole profile; data.ts `PageTable.fns`); recursion counts once towards total. A
 * function's sandwich (callers and callees by the value through each edge, a stack counted
 * once per edge) is computed when it is asked for. Pure (no DOM): Node tests check it
 * against functionTable.
 *
 * Cost: one pass over the rows (FlameModel.stackSums), then one over the stacks and their
 * ancestors; a sandwich is one more pass over the stacks.
 */
import type { PageTable } from './data.ts';
import { STATE_NAMES, type FlameModel, type RowFilter } from './tree.ts';

export interface FnRow {
  /** index into PageTable.fns */
  fn: number;
  label: string;
  /** qualified name */
  name: string;
  self: number;
  total: number;
  /** value by state name (with `states`) */
  states?: Partial<Record<string, number>>;
}

export interface FnTable {
  /** the heaviest functions by total (then self, then label), at most `limit` */
  rows: FnRow[];
  /** value of every row that passes the filter, empty stacks included */
  grandTotal: number;
  /** value per stack of the rows that pass, for fnSandwich */
  perStack: Float64Array;
}

/** Qualified name of each function (PageTable.fns): that of its first frame. */
export function fnNames(model: FlameModel, frameFn: Int32Array, nFns: number): string[] {
  const out: string[] = new Array<string>(nFns).fill('');
  const done = new Uint8Array(nFns);
  const { frameName, strings } = model.cols;
  for (let f = 0; f < frameFn.length; f++) {
    const k = frameFn[f]!;
    if (done[k]) continue;
    done[k] = 1;
    out[k] = strings[frameName[f]!] ?? '';
  }
  return out;
}

/** The table of the rows passing `f`. `frameFn` is PageTable.fns.frame as an Int32Array, `names` fnNames'. */
export function functionRows(model: FlameModel, fns: PageTable['fns'], frameFn: Int32Array, names: readonly string[], f: RowFilter, o: { states: boolean; limit: number }): FnTable {
  const { stackFrame, stackParent, nStacks } = model.cols;
  const NS = STATE_NAMES.length;
  const { sums, total: grandTotal } = model.stackSums(f, o.states);
  const K = fns.label.length;
  const self = new Float64Array(K);
  const total = new Float64Array(K);
  const byState = o.states ? new Float64Array(K * NS) : null;
  const seen = new Int32Array(K).fill(-1);
  const perStack = o.states ? new Float64Array(nStacks) : sums;
  for (let s = 0; s < nStacks; s++) {
    let v = 0;
    if (o.states) {
      for (let c = 0; c < NS; c++) v += sums[s * NS + c]!;
      perStack[s] = v;
    } else v = sums[s]!;
    if (v === 0) continue;
    self[frameFn[stackFrame[s]!]!] += v;
    for (let a = s; a >= 0; a = stackParent[a]!) {
      const k = frameFn[stackFrame[a]!]!;
      if (seen[k] === s) continue;
      seen[k] = s;
      total[k] += v;
      if (byState !== null) for (let c = 0; c < NS; c++) byState[k * NS + c] += sums[s * NS + c]!;
    }
  }
  const order: number[] = [];
  for (let k = 0; k < K; k++) if (total[k]! > 0) order.push(k);
  order.sort((a, b) => total[b]! - total[a]! || self[b]! - self[a]! || (fns.label[a]! < fns.label[b]! ? -1 : fns.label[a]! > fns.label[b]! ? 1 : a - b));
  const rows = order.slice(0, o.limit).map((k): FnRow => {
    const row: FnRow = { fn: k, label: fns.label[k]!, name: names[k]!, self: self[k]!, total: total[k]! };
    if (byState !== null) {
      const states: Partial<Record<string, number>> = {};
      for (let c = 0; c < NS; c++) if (byState[k * NS + c] !== 0) states[STATE_NAMES[c]!] = byState[k * NS + c]!;
      row.states = states;
    }
    return row;
  });
  return { rows, grandTotal, perStack };
}

/** Callers and callees of function `fn`: [function, value through the edge], heaviest first, at most `limit` each. */
export function fnSandwich(model: FlameModel, frameFn: Int32Array, nFns: number, perStack: Float64Array, fn: number, limit: number): { callers: Array<[number, number]>; callees: Array<[number, number]> } {
  const { stackFrame, stackParent, nStacks } = model.cols;
  const callerV = new Float64Array(nFns);
  const calleeV = new Float64Array(nFns);
  const callerSeen = new Int32Array(nFns).fill(-1);
  const calleeSeen = new Int32Array(nFns).fill(-1);
  for (let s = 0; s < nStacks; s++) {
    const v = perStack[s]!;
    if (v === 0) continue;
    for (let b = s; b >= 0; b = stackParent[b]!) {
      const a = stackParent[b]!;
      if (a < 0) break;
      const ka = frameFn[stackFrame[a]!]!;
      const kb = frameFn[stackFrame[b]!]!;
      if (kb === fn && callerSeen[ka] !== s) {
        callerSeen[ka] = s;
        callerV[ka] += v;
      }
      if (ka === fn && calleeSeen[kb] !== s) {
        calleeSeen[kb] = s;
        calleeV[kb] += v;
      }
    }
  }
  const top = (vals: Float64Array): Array<[number, number]> => {
    const out: Array<[number, number]> = [];
    for (let k = 0; k < nFns; k++) if (vals[k] !== 0) out.push([k, vals[k]!]);
    out.sort((x, y) => y[1] - x[1] || x[0] - y[0]);
    return out.slice(0, limit);
  };
  return { callers: top(callerV), callees: top(calleeV) };
}
