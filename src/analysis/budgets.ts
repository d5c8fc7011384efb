/**
 * Performance budgets (`pylens check`): units, and the verdict of a measurement against a
 * budget — noise-aware, so a budget on a noisy measurement does not flap.
 *
 * - Exact measurements (call counts) pass or fail on the number.
 * - Repeated timings: the median of the runs with a distribution-free confidence interval
 *   (order statistics of the binomial(n, ½)); the budget fails only when the whole interval
 *   lies above it, passes when the whole interval lies at or below it, and is `unsure`
 *   (reported, not failed) in between — run more repeats to decide.
 * - Sampled shares: the share with a Wilson interval (the samples are the trials); the same rule.
 */

export type Verdict = 'pass' | 'fail' | 'unsure';

export interface Judged {
  verdict: Verdict;
  /** the measured value (count, seconds, bytes, share 0–1) */
  value: number;
  /** its interval, when the measurement is noisy */
  low?: number;
  high?: number;
  /** the confidence of that interval (0–1) */
  confidence?: number;
}

/** A unit-bearing budget value parsed: "1.5 s", "250 ms", "50 MB", "25%", or a bare number. */
export type Quantity = { kind: 'seconds' | 'bytes' | 'share' | 'count'; value: number };

const TIME: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, sec: 1, min: 60 };
const BYTES: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/**
 * Parse a quantity; `expect` says which kind the key takes. Returns a message saying what is
 * wrong instead of throwing (the config reader adds file, line and key).
 */
export function parseQuantity(v: unknown, expect: Quantity['kind']): Quantity | string {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) return `${v} is not a non-negative number`;
    if (expect === 'share') return v <= 1 ? { kind: 'share', value: v } : `a share is "25%" or a fraction 0–1, not ${v}`;
    if (expect === 'seconds' || expect === 'bytes') return `give a unit: e.g. ${expect === 'seconds' ? '"1.5 s" or "250 ms"' : '"50 MB" or "512 KiB"'}`;
    return Number.isInteger(v) ? { kind: 'count', value: v } : `a count is a whole number, not ${v}`;
  }
  if (typeof v !== 'string') return `expected ${expect === 'count' ? 'a number' : 'a string with a unit'}, got ${typeof v}`;
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Zµ%]*)\s*$/.exec(v);
  if (!m) return `cannot read "${v}" as a number with a unit`;
  const n = Number(m[1]);
  const unit = m[2]!;
  if (expect === 'share') {
    if (unit !== '%') return `a share is a percentage like "25%", not "${v}"`;
    return n <= 100 ? { kind: 'share', value: n / 100 } : `"${v}" is more than 100%`;
  }
  if (expect === 'seconds') {
    const f = TIME[unit];
    return f !== undefined ? { kind: 'seconds', value: n * f } : `unknown time unit "${unit}" in "${v}" (use ns, µs, ms, s or min)`;
  }
  if (expect === 'bytes') {
    const f = BYTES[unit.toLowerCase()];
    return f !== undefined ? { kind: 'bytes', value: n * f } : `unknown size unit "${unit}" in "${v}" (use B, KB, MB, GB, KiB, MiB or GiB)`;
  }
  if (unit !== '') return `a count takes no unit ("${v}")`;
  return Number.isInteger(n) ? { kind: 'count', value: n } : `a count is a whole number, not ${v}`;
}

/** An exact count against a maximum. */
export function judgeCount(count: number, max: number): Judged {
  return { verdict: count <= max ? 'pass' : 'fail', value: count };
}

/** log of n choose k */
function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log((n - k + i) / i);
  return s;
}

/**
 * The distribution-free confidence interval of a median from `n` sorted values: the order
 * statistics x[k], x[n-1-k] for the largest k whose coverage 1 − 2·P(Bin(n, ½) ≤ k) is at
 * least `level` (or k = 0: the whole range, whose coverage is 1 − 2^(1−n)).
 */
export function medianInterval(sorted: readonly number[], level = 0.9): { low: number; high: number; median: number; confidence: number } {
  const n = sorted.length;
  if (n === 0) throw new RangeError('no values');
  const median = n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  let k = 0;
  let confidence = 1 - 2 * Math.pow(0.5, n);
  let cdf = Math.pow(0.5, n); // P(X ≤ 0)
  for (let j = 1; j < n / 2; j++) {
    const next = cdf + Math.exp(logChoose(n, j) - n * Math.LN2); // P(X ≤ j)
    if (1 - 2 * next < level) break;
    k = j;
    cdf = next;
    confidence = 1 - 2 * cdf;
  }
  return { low: sorted[k]!, high: sorted[n - 1 - k]!, median, confidence };
}

/** Repeated timings (seconds) against a maximum: the median's interval decides. */
export function judgeTimings(seconds: readonly number[], max: number, level = 0.9): Judged {
  const iv = medianInterval([...seconds].sort((a, b) => a - b), level);
  const verdict: Verdict = iv.low > max ? 'fail' : iv.high <= max ? 'pass' : 'unsure';
  return { verdict, value: iv.median, low: iv.low, high: iv.high, confidence: iv.confidence };
}

/** A sampled share (hits of n samples) against a maximum share: the Wilson interval decides. */
export function judgeShare(hits: number, n: number, max: number, z = 1.96): Judged {
  if (n <= 0) return { verdict: 'unsure', value: 0, low: 0, high: 1, confidence: 0.95 };
  const p = hits / n;
  const d = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / d;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  const low = Math.max(0, centre - half);
  const high = Math.min(1, centre + half);
  return { verdict: low > max ? 'fail' : high <= max ? 'pass' : 'unsure', value: p, low, high, confidence: 0.95 };
}

/** One budget of one check, as configured and as measured. */
export interface BudgetResult {
  /** what is bounded, in words: "calls app.db:query ≤ 3", "wall time ≤ 1.5 s" */
  budget: string;
  /** 'test': a pytest check's test that failed for a reason other than its budgets */
  kind: 'calls' | 'wall-time' | 'wall-regression' | 'cpu-share' | 'peak-memory' | 'memory-growth' | 'no-regression' | 'max-overhead' | 'test';
  /** the budget's limit, in the measurement's unit (count, seconds, share 0–1, bytes; 0 for memory-growth) */
  limit: number;
  judged: Judged | null;
  /** the measurement could not be made (the scenario failed, a name never resolved) */
  error?: string;
  /** where the budget is written: config file and line */
  file: string;
  line: number;
  /** where the measured thing is (a function's source), when known: annotations point there */
  source?: { file: string; line: number };
  /** what the measurement took, seconds */
  seconds: number;
  /** a word on the result (the function that grew; "baseline written") */
  note?: string;
}

export interface CheckResult {
  name: string;
  file: string;
  line: number;
  budgets: BudgetResult[];
}

/** The outcome of a whole `check`: failed budgets and errors decide the exit code. */
export function checkOutcome(results: readonly CheckResult[]): { budgets: number; failed: number; unsure: number; errors: number } {
  let budgets = 0;
  let failed = 0;
  let unsure = 0;
  let errors = 0;
  for (const c of results)
    for (const b of c.budgets) {
      budgets++;
      if (b.error !== undefined) errors++;
      else if (b.judged?.verdict === 'fail') failed++;
      else if (b.judged?.verdict === 'unsure') unsure++;
    }
  return { budgets, failed, unsure, errors };
}

/** memory-growth = false: the steady-growth rule's verdict (`analysis/mem.ts detectGrowth`); too few snapshots to tell is unsure */
export function judgeGrowth(growing: boolean, decidable: boolean, growthBytes: number): Judged {
  return { verdict: growing ? 'fail' : decidable ? 'pass' : 'unsure', value: growthBytes };
}

/**
 * One-sided Mann–Whitney test that `a` is stochastically larger than `b`: U counts pairs with
 * a > b (ties ½); the p-value is exact (the distribution of U by counting, for n·m ≤ 400) or
 * the normal approximation with continuity correction.
 */
export function mannWhitneyGreater(a: readonly number[], b: readonly number[]): { u: number; p: number } {
  const n = a.length;
  const m = b.length;
  let u = 0;
  for (const x of a) for (const y of b) u += x > y ? 1 : x === y ? 0.5 : 0;
  if (n === 0 || m === 0) return { u, p: 1 };
  if (n * m <= 400) {
    // counts[k] = arrangements with U = k (no ties), by the recurrence over (n, m)
    const memo = new Map<string, number[]>();
    const dist = (i: number, j: number): number[] => {
      if (i === 0 || j === 0) return [1];
      const key = `${i},${j}`;
      const hit = memo.get(key);
      if (hit) return hit;
      const x = dist(i - 1, j); // the largest value is in b... shifted by j when it is in a
      const y = dist(i, j - 1);
      const out = new Array<number>(i * j + 1).fill(0);
      x.forEach((c, k) => (out[k + j] += c));
      y.forEach((c, k) => (out[k] += c));
      memo.set(key, out);
      return out;
    };
    const d = dist(n, m);
    const total = d.reduce((s, c) => s + c, 0);
    let tail = 0;
    for (let k = Math.ceil(u - 1e-9); k < d.length; k++) tail += d[k]!;
    return { u, p: tail / total };
  }
  const mean = (n * m) / 2;
  const sd = Math.sqrt((n * m * (n + m + 1)) / 12);
  const z = (u - mean - 0.5) / sd;
  return { u, p: 0.5 * erfc(z / Math.SQRT2) };
}

function erfc(x: number): number {
  // Abramowitz–Stegun 7.1.26 on |x|, reflected
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x);
  return x >= 0 ? y : 2 - y;
}

/**
 * Timings against a baseline's with an allowed slowdown `allowed` (0.1 = 10 %): fails when the
 * runs are significantly slower than the baseline's scaled by 1 + allowed (one-sided
 * Mann–Whitney p < `alpha`, default 0.01); unsure when the medians say slower but the runs do
 * not show it; the value is the median's relative change.
 */
export function judgeRegression(current: readonly number[], baseline: readonly number[], allowed: number, alpha = 0.01): Judged {
  const med = (xs: readonly number[]) => medianInterval([...xs].sort((p, q) => p - q)).median;
  const change = med(current) / med(baseline) - 1;
  const { p } = mannWhitneyGreater(current, baseline.map((x) => x * (1 + allowed)));
  return { verdict: p < alpha ? 'fail' : change > allowed ? 'unsure' : 'pass', value: change, confidence: 1 - p };
}
