/**
 * `pylens diff BASE NEW`: what changed between two sides, each one profile or several runs
 * pooled, by function and by call path, with sampling noise taken into account.
 *
 * Shares. Each side is normalised to its own total of the chosen value (samples, or time
 * for time-valued profiles): a function's share is the part of the total whose stack holds
 * it (inclusive; recursion counted once), its self share the part where it is the leaf. A
 * call path's share is the same for one path from the root. Sides of different sizes or
 * durations compare directly. For time-valued profiles each side also gets its value per
 * wall second (`perSecond`) when its durations are known.
 *
 * Noise. Samples of one recording are not independent: a program stays in a phase for a
 * while, so neighbouring samples repeat each other and a binomial test on the sample count
 * would flag noise. The variance of each share is estimated from the data instead:
 * - one recording per side (or fewer than 3): the side's samples are cut into blocks of
 *   equal time (`blocks`, default 20, spread over the side's runs) and the share's variance
 *   is the ratio estimator's over blocks, B/(B−1) · Σ_b ((v_fb − p·v_b) / V)² (batch means:
 *   correlation inside a block is accounted for), never below the binomial variance of the
 *   pooled share for that many samples; profiles without sample times (aggregated formats)
 *   have the binomial variance only;
 * - three or more recordings per side: each run's share is one observation (run-to-run
 *   variation is the noise a CI comparison meets) and the variance is the variance of the
 *   mean of those, again never below the binomial one.
 * A feature's own few blocks or runs estimate its variance poorly (with 3 runs a side one
 * odd run either hides a plain change or, when the estimate falls under the binomial floor,
 * invents one), so the test is a moderated t (Smyth 2004): the dispersion — how much noisier
 * than binomial the shares are — is pooled over every function, and each feature's variance
 * is its own estimate (Welch–Satterthwaite degrees of freedom: blocks or runs minus one per
 * side) averaged with the pooled dispersion times its binomial variance, weighed as 4
 * degrees of freedom; never below the binomial variance. Profiles without blocks have the
 * binomial test.
 * p-values of every function (and, separately, of every call path) are adjusted for
 * multiple comparisons by Benjamini–Hochberg; a change is significant when its q-value is
 * at most `alpha` (default 0.05). Under no change at all this keeps the chance that a diff
 * flags anything near `alpha`.
 * Profiles whose value is not sampled (call counts, allocated bytes) have no sampling noise:
 * their shares compare exactly, every non-zero change is significant (`method: 'exact'`).
 */
import { frameInfo, type IndexIntoFrames, type Profile } from '../model/profile.ts';
import { benjaminiHochberg, studentTwoSided } from './stats.ts';

/** degrees of freedom the pooled dispersion counts for beside a feature's own estimate */
const PRIOR_DF = 4;

export interface DiffOptions {
  by?: 'function' | 'line';
  /** false-discovery rate at which a change is significant (default 0.05) */
  alpha?: number;
  /** time blocks per side for the variance (default 20) */
  blocks?: number;
  /** value type name to compare (default: each profile's default value) */
  value?: string;
  /** also diff call paths (the differential flamegraph's nodes; default true) */
  paths?: boolean;
}

export type DiffStatus = 'grew' | 'shrank' | 'same' | 'appeared' | 'vanished';

export interface DiffFunction {
  name: string;
  file: string | null;
  /** 0 unless by line */
  line: number;
  kind: string;
  /** inclusive share of its side's total, 0–1 */
  baseShare: number;
  newShare: number;
  /** newShare − baseShare in percentage points */
  delta: number;
  baseSelfShare: number;
  newSelfShare: number;
  /** self share change in points */
  selfDelta: number;
  /** two-sided p-value of the inclusive change, and its Benjamini–Hochberg q-value */
  pValue: number;
  qValue: number;
  significant: boolean;
  status: DiffStatus;
}

/** One call path (root first) with its inclusive shares; the nodes of the differential flamegraph. */
export interface DiffPath {
  /** function key indices into `DiffResult.keys`, root first */
  path: number[];
  parent: number;
  baseShare: number;
  newShare: number;
  delta: number;
  pValue: number;
  qValue: number;
  significant: boolean;
  status: DiffStatus;
}

export interface DiffSide {
  runs: number;
  samples: number;
  /** total of the compared value */
  total: number;
  /** wall seconds recorded, when every run knows its duration */
  seconds?: number;
  /** `total / seconds` (time-valued: seconds of it per wall second) */
  perSecond?: number;
  /** blocks (or runs) the variance came from; 0 = binomial only */
  blocks: number;
}

export interface DiffResult {
  by: 'function' | 'line';
  value: { name: string; unit: string };
  method: 'blocks' | 'runs' | 'binomial' | 'exact';
  /** the method in words, for output */
  methodText: string;
  alpha: number;
  base: DiffSide;
  new: DiffSide;
  /** significant first, then by |delta| */
  functions: DiffFunction[];
  /** function identities the paths refer to: label parts */
  keys: { name: string; file: string | null; line: number; kind: string }[];
  /** call paths (index 0.. in creation order; parents before children); empty with paths: false */
  paths: DiffPath[];
}


/** Per side: value per (feature, block) and per block, sample counts. */
interface Acc {
  B: number;
  /** total value per block */
  blockTotal: Float64Array;
  samples: number;
  total: number;
  seconds: number | undefined;
}

class KeyTable {
  readonly keys: DiffResult['keys'] = [];
  private ids = new Map<string, number>();
  private byLine: boolean;
  constructor(byLine: boolean) {
    this.byLine = byLine;
  }
  /** per frame of `p`: its key id */
  map(p: Profile): Int32Array {
    const out = new Int32Array(p.frames.length);
    for (let f = 0; f < p.frames.length; f++) out[f] = this.id(p, f);
    return out;
  }
  private id(p: Profile, f: IndexIntoFrames): number {
    const fi = frameInfo(p, f);
    const line = this.byLine ? fi.line : 0;
    const k = `${fi.kind}\u0000${fi.qualname}\u0000${fi.file ?? ''}\u0000${line}\u0000${fi.lib ?? ''}`;
    let id = this.ids.get(k);
    if (id === undefined) {
      id = this.keys.length;
      this.ids.set(k, id);
      this.keys.push({ name: fi.qualname, file: fi.file ?? (fi.lib ?? null), line, kind: fi.kind });
    }
    return id;
  }
}

/** Grows-on-demand matrix: rows × B doubles. */
class Matrix {
  data: Float64Array;
  rows = 0;
  readonly B: number;
  constructor(B: number) {
    this.B = B;
    this.data = new Float64Array(1024 * B);
  }
  ensure(rows: number): void {
    if (rows <= this.rows) return;
    if (rows * this.B > this.data.length) {
      const d = new Float64Array(Math.max(rows * this.B, this.data.length * 2));
      d.set(this.data);
      this.data = d;
    }
    this.rows = rows;
  }
  row(r: number): number {
    return r * this.B;
  }
}

function valueIndexOf(p: Profile, name: string | undefined, file: number): number {
  if (name === undefined) return p.defaultValue;
  const i = p.valueTypes.findIndex((v) => v.name === name);
  if (i < 0) throw new RangeError(`profile ${file + 1} has no value '${name}' (it has ${p.valueTypes.map((v) => v.name).join(', ')})`);
  return i;
}

/**
 * The block of each sample: runs get consecutive block ranges (blocksPer each); inside a run,
 * equal slices of its time span. Without sample times every sample is block of its run.
 */
function sampleBlocks(p: Profile, first: number, per: number): Int32Array {
  const n = p.samples.length;
  const out = new Int32Array(n);
  const t = p.samples.time;
  if (!t || n === 0 || per <= 1) return out.fill(first);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = t[i]!;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const span = hi - lo;
  for (let i = 0; i < n; i++) out[i] = first + (span > 0 ? Math.min(per - 1, Math.floor(((t[i]! - lo) / span) * per)) : 0);
  return out;
}

interface SideData {
  acc: Acc;
  fnTotal: Matrix;
  fnSelf: Float64Array;
  path: Matrix;
}

export function diffProfiles(base: readonly Profile[], neu: readonly Profile[], o: DiffOptions = {}): DiffResult {
  if (base.length === 0 || neu.length === 0) throw new RangeError('diff needs at least one profile on each side');
  const by = o.by ?? 'function';
  const alpha = o.alpha ?? 0.05;
  const wantPaths = o.paths ?? true;
  const all = [...base, ...neu];
  const vi0 = valueIndexOf(all[0]!, o.value, 0);
  const vt = all[0]!.valueTypes[vi0]!;
  all.forEach((p, i) => {
    const v = p.valueTypes[valueIndexOf(p, o.value, i)]!;
    // samples and sampled time are both shares of a sampled total; bytes and calls compare only with their own kind
    const sampled = (u: string) => u === 'samples' || u === 'nanoseconds';
    if (v.unit !== vt.unit && !(sampled(v.unit) && sampled(vt.unit))) {
      throw new RangeError(`profile ${i + 1} compares ${v.name} (${v.unit}) with profile 1's ${vt.name} (${vt.unit}); pick one value for both with --value`);
    }
  });
  const exact = all.some((p) => {
    const v = p.valueTypes[valueIndexOf(p, o.value, 0)]!;
    return v.unit === 'bytes' || v.unit === 'calls';
  });
  const useRuns = !exact && base.length >= 3 && neu.length >= 3;
  const timed = all.every((p) => p.samples.time !== null && p.samples.length > 0);
  const blocksWanted = Math.max(2, Math.floor(o.blocks ?? 20));

  const keys = new KeyTable(by === 'line');
  // call paths shared by both sides: node = (parent node, key)
  const pathIds = new Map<string, number>();
  const pathKey: number[] = [];
  const pathParent: number[] = [];
  const nodeOf = (parent: number, key: number): number => {
    const k = `${parent},${key}`;
    let id = pathIds.get(k);
    if (id === undefined) {
      id = pathKey.length;
      pathIds.set(k, id);
      pathKey.push(key);
      pathParent.push(parent);
    }
    return id;
  };

  const side = (profiles: readonly Profile[]): SideData => {
    const per = useRuns ? 1 : timed ? Math.max(2, Math.ceil(blocksWanted / profiles.length)) : 1;
    const B = profiles.length * per;
    const acc: Acc = { B, blockTotal: new Float64Array(B), samples: 0, total: 0, seconds: 0 };
    const fnTotal = new Matrix(B);
    const path = new Matrix(B);
    let fnSelf = new Float64Array(1024);
    profiles.forEach((p, run) => {
      const vi = valueIndexOf(p, o.value, run);
      const col = p.samples.values[vi]!;
      const blockOf = sampleBlocks(p, run * per, per);
      if (acc.seconds !== undefined) acc.seconds = p.meta.durationNs ? acc.seconds + p.meta.durationNs / 1e9 : undefined;
      // value per (stack, block)
      const S = p.stacks.length;
      const perStack = new Float64Array(S * B);
      const used = new Uint8Array(S);
      for (let i = 0; i < p.samples.length; i++) {
        const v = col[i]!;
        const b = blockOf[i]!;
        acc.blockTotal[b] += v;
        acc.total += v;
        acc.samples++;
        const s = p.samples.stack[i]!;
        if (s < 0) continue;
        perStack[s * B + b] += v;
        used[s] = 1;
      }
      const keyOf = keys.map(p);
      const node = new Int32Array(S);
      const seen = new Int32Array(keys.keys.length + p.frames.length).fill(-1);
      for (let s = 0; s < S; s++) {
        const parent = p.stacks.parent[s]!;
        if (wantPaths) node[s] = nodeOf(parent < 0 ? -1 : node[parent]!, keyOf[p.stacks.frame[s]!]!);
      }
      fnTotal.ensure(keys.keys.length);
      if (keys.keys.length > fnSelf.length) {
        const g = new Float64Array(Math.max(keys.keys.length, fnSelf.length * 2));
        g.set(fnSelf);
        fnSelf = g;
      }
      if (wantPaths) path.ensure(pathKey.length);
      const ft = fnTotal.data;
      const pt = path.data;
      for (let s = 0; s < S; s++) {
        if (!used[s]) continue;
        const row = s * B;
        let sum = 0;
        for (let b = 0; b < B; b++) sum += perStack[row + b]!;
        fnSelf[keyOf[p.stacks.frame[s]!]!] += sum;
        for (let a = s; a >= 0; a = p.stacks.parent[a]!) {
          const k = keyOf[p.stacks.frame[a]!]!;
          if (seen[k] !== s) {
            seen[k] = s;
            const r = k * B;
            for (let b = 0; b < B; b++) ft[r + b] += perStack[row + b]!;
          }
          if (wantPaths) {
            const r = node[a]! * B;
            for (let b = 0; b < B; b++) pt[r + b] += perStack[row + b]!;
          }
        }
      }
    });
    return { acc, fnTotal, fnSelf, path };
  };

  const sb = side(base);
  const sn = side(neu);
  const K = keys.keys.length;
  sb.fnTotal.ensure(K);
  sn.fnTotal.ensure(K);
  if (wantPaths) {
    sb.path.ensure(pathKey.length);
    sn.path.ensure(pathKey.length);
  }

  const method: DiffResult['method'] = exact ? 'exact' : useRuns ? 'runs' : timed ? 'blocks' : 'binomial';

  /** share, its variance and the variance's degrees of freedom for one feature row of a side */
  const stat = (m: Matrix, r: number, s: SideData): { p: number; v: number; df: number } => {
    const { B, blockTotal, total } = s.acc;
    const d = m.data;
    const off = m.row(r);
    let x = 0;
    for (let b = 0; b < B; b++) x += d[off + b]!;
    const p = total > 0 ? x / total : 0;
    if (method === 'binomial' || method === 'exact' || B < 2 || total <= 0) return { p, v: 0, df: Infinity };
    let ss = 0;
    if (method === 'runs') {
      // runs: the mean of per-run shares; variance of that mean
      let mean = 0;
      const shares: number[] = [];
      for (let b = 0; b < B; b++) {
        const sh = blockTotal[b]! > 0 ? d[off + b]! / blockTotal[b]! : 0;
        shares.push(sh);
        mean += sh / B;
      }
      for (const sh of shares) ss += (sh - mean) ** 2;
      return { p, v: ss / (B - 1) / B, df: B - 1 };
    }
    for (let b = 0; b < B; b++) {
      const e = (d[off + b]! - p * blockTotal[b]!) / total;
      ss += e * e;
    }
    return { p, v: (B / (B - 1)) * ss, df: B - 1 };
  };

  interface RowStat {
    p1: number;
    p2: number;
    /** the binomial variance of the difference, for the pooled share and these sample counts */
    binom: number;
    /** the blocks' or runs' own estimate of it, and its Welch–Satterthwaite degrees of freedom */
    est: number;
    df: number;
  }
  const rowStat = (m1: Matrix, m2: Matrix, r: number): RowStat => {
    const a = stat(m1, r, sb);
    const b = stat(m2, r, sn);
    const n1 = sb.acc.samples;
    const n2 = sn.acc.samples;
    const pooled = (a.p * n1 + b.p * n2) / (n1 + n2);
    const binom = pooled * (1 - pooled) * (1 / n1 + 1 / n2);
    const est = a.v + b.v;
    const df = est > 0 ? Math.max(1, (est * est) / ((a.v * a.v) / a.df + (b.v * b.v) / b.df || Infinity)) : Infinity;
    return { p1: a.p, p2: b.p, binom, est, df };
  };
  /**
   * How much noisier than binomial the shares are, pooled over every feature (degrees of
   * freedom as weights): one feature's own few blocks or runs say little about its variance,
   * all of them together say a lot. Never below 1.
   */
  const dispersion = (rows: readonly RowStat[]): number => {
    let num = 0;
    let den = 0;
    for (const r of rows) {
      if (!(r.binom > 0) || !Number.isFinite(r.df)) continue;
      num += r.df * (r.est / r.binom);
      den += r.df;
    }
    return den > 0 ? Math.max(1, num / den) : 1;
  };
  const test = (r: RowStat, phi: number): { p1: number; p2: number; pValue: number } => {
    const diff = r.p2 - r.p1;
    if (method === 'exact') return { p1: r.p1, p2: r.p2, pValue: diff === 0 ? 1 : 0 };
    let pValue: number;
    if (diff === 0) pValue = 1;
    else if (method === 'binomial' || !Number.isFinite(r.df)) pValue = r.binom > 0 ? studentTwoSided(diff / Math.sqrt(r.binom), Infinity) : 0;
    else {
      // moderated t (Smyth 2004): the feature's own estimate, weighed by its degrees of
      // freedom, beside the pooled dispersion times its binomial variance, weighed as PRIOR_DF
      const v = Math.max(r.binom, (r.df * r.est + PRIOR_DF * phi * r.binom) / (r.df + PRIOR_DF));
      pValue = v > 0 ? studentTwoSided(diff / Math.sqrt(v), r.df + PRIOR_DF) : 0;
    }
    return { p1: r.p1, p2: r.p2, pValue };
  };

  const status = (p1: number, p2: number, significant: boolean): DiffStatus => (p1 === 0 && p2 > 0 ? 'appeared' : p2 === 0 && p1 > 0 ? 'vanished' : !significant ? 'same' : p2 > p1 ? 'grew' : 'shrank');

  // functions
  const fnRaw: { k: number; p1: number; p2: number; pValue: number }[] = [];
  const fnStats: { k: number; r: RowStat }[] = [];
  for (let k = 0; k < K; k++) {
    const r = rowStat(sb.fnTotal, sn.fnTotal, k);
    if (r.p1 === 0 && r.p2 === 0) continue;
    fnStats.push({ k, r });
  }
  const phi = dispersion(fnStats.map((f) => f.r));
  for (const { k, r } of fnStats) fnRaw.push({ k, ...test(r, phi) });
  const fq = benjaminiHochberg(fnRaw.map((f) => f.pValue));
  const functions: DiffFunction[] = fnRaw.map((f, i) => {
    const key = keys.keys[f.k]!;
    const significant = fq[i]! <= alpha;
    const bs = sb.acc.total > 0 ? (sb.fnSelf[f.k] ?? 0) / sb.acc.total : 0;
    const ns = sn.acc.total > 0 ? (sn.fnSelf[f.k] ?? 0) / sn.acc.total : 0;
    return {
      name: key.name,
      file: key.file,
      line: key.line,
      kind: key.kind,
      baseShare: f.p1,
      newShare: f.p2,
      delta: 100 * (f.p2 - f.p1),
      baseSelfShare: bs,
      newSelfShare: ns,
      selfDelta: 100 * (ns - bs),
      pValue: f.pValue,
      qValue: fq[i]!,
      significant,
      status: status(f.p1, f.p2, significant),
    };
  });
  functions.sort((a, b) => Number(b.significant) - Number(a.significant) || Math.abs(b.delta) - Math.abs(a.delta) || Math.abs(b.selfDelta) - Math.abs(a.selfDelta) || b.newShare - a.newShare);

  // call paths
  const paths: DiffPath[] = [];
  if (wantPaths) {
    const raw = pathKey.map((_, n) => test(rowStat(sb.path, sn.path, n), phi));
    const pq = benjaminiHochberg(raw.map((r) => (r.p1 === 0 && r.p2 === 0 ? NaN : r.pValue)));
    const pathOf = (n: number): number[] => {
      const out: number[] = [];
      for (let x = n; x >= 0; x = pathParent[x]!) out.push(pathKey[x]!);
      return out.reverse();
    };
    for (let n = 0; n < pathKey.length; n++) {
      const r = raw[n]!;
      const significant = pq[n]! <= alpha;
      paths.push({ path: pathOf(n), parent: pathParent[n]!, baseShare: r.p1, newShare: r.p2, delta: 100 * (r.p2 - r.p1), pValue: r.pValue, qValue: pq[n]!, significant, status: status(r.p1, r.p2, significant) });
    }
  }

  const sideOf = (s: SideData, runs: number): DiffSide => ({
    runs,
    samples: s.acc.samples,
    total: s.acc.total,
    ...(s.acc.seconds ? { seconds: s.acc.seconds, perSecond: s.acc.total / s.acc.seconds } : {}),
    blocks: method === 'blocks' || method === 'runs' ? s.acc.B : 0,
  });
  const methodText =
    method === 'exact'
      ? `exact: ${vt.name} is counted, not sampled; every change is real`
      : method === 'runs'
        ? `per-run shares (${base.length} vs ${neu.length} runs), moderated t-test, Benjamini–Hochberg q ≤ ${alpha}`
        : method === 'blocks'
          ? `variance from ${sb.acc.B} + ${sn.acc.B} time blocks (batch means, never below binomial), moderated t-test, Benjamini–Hochberg q ≤ ${alpha}`
          : `binomial two-proportion test (no sample times: correlation between samples not accounted for), Benjamini–Hochberg q ≤ ${alpha}`;
  return { by, value: { name: vt.name, unit: vt.unit }, method, methodText, alpha, base: sideOf(sb, base.length), new: sideOf(sn, neu.length), functions, keys: keys.keys, paths };
}
