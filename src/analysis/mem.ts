/**
 * The `mem` lens's data (python/pylens/_lens_mem.py, tracemalloc; converted to a profile by
 * src/capture/python/mem.ts) and what is read from it: the memory report (current / peak,
 * RSS, top lines, snapshot diffs, growth verdicts).
 *
 * The helper's `data` (see the module docstring there):
 *   options: {interval, frames, top}
 *   current, current_blocks: bytes / blocks alive at exit (final snapshot, pylens's and
 *     tracemalloc's own allocations filtered out by the most recent frame's file)
 *   peak: the program's peak traced bytes; peak_raw: tracemalloc's reading; peak_exact
 *   traced_raw, tracemalloc_bytes, rss, rss_peak (bytes; rss null off Linux)
 *   snapshots: [{t (s since start), kind: 'interval'|'exit', traced, blocks, rss, peak}]
 *   lines: [{file, line, function, sizes[], counts[]}] aligned with snapshots
 *   frames: [[file, line, function]]
 *   stacks: {exit: [[frame ids root→leaf, bytes, blocks]], peak: same | null}
 *     frame id -1 = "older frames cut" (traceback deeper than --frames), -2 = the
 *     tracebacks beyond the 20,000 largest, summed
 *   peak_snapshot: {t, traced, rss} | null; timing: {calibration_ns, snapshot_ns,
 *     snapshots_taken, final_ns, slowdown}
 *
 * Growth ("memory creep") rule, detectGrowth(): over the interval snapshots (the exit
 * snapshot is left out when there are at least four interval snapshots: clean-up at exit
 * is not creep), with n intervals and deltas d_i, a series grows when
 *   n ≥ 4, and last − first ≥ minBytes (default 64 KiB), and
 *   d_i ≥ 0 in at least 75 % of the intervals, and d_i > 0 in at least max(2, n/3), and
 *   (last − first) / Σ|d_i| ≥ 0.6 (what went up mostly stayed up), and
 *   no single d_i is more than 60 % of the growth (a one-off allocation is not creep), and
 *   the Mann–Kendall trend z ≥ 2 (later snapshots larger than earlier ones well beyond chance).
 * On series of independent random sizes (an allocate-and-free loop seen at random moments)
 * this flags < 1 % at n = 4 (only a perfectly rising series passes there), ~0.1 % at n = 6
 * and none from n = 10 (test/interp/mem.test.ts).
 * A leak appending every interval passes all; an allocate-and-free loop has deltas of both
 * signs summing to about nothing (fails the 75 % and 0.6 tests); a cache filled once fails
 * the last.
 */
export interface MemSnapshot {
  t: number;
  kind: 'interval' | 'exit';
  traced: number;
  blocks: number;
  rss: number | null;
  peak: number;
}

export interface MemLine {
  file: string;
  line: number;
  function: string;
  sizes: number[];
  counts: number[];
}

/** [frame ids root→leaf, bytes, blocks] */
export type MemStack = [number[], number, number];

export interface MemData {
  options: { interval: number; frames: number; top: number };
  current: number | null;
  current_blocks: number | null;
  peak: number;
  peak_raw: number | null;
  peak_exact: boolean;
  traced_raw: number | null;
  tracemalloc_bytes: number | null;
  rss: number | null;
  rss_peak: number | null;
  snapshots: MemSnapshot[];
  lines: MemLine[];
  frames: Array<[string, number, string]>;
  stacks: { exit: MemStack[] | null; peak: MemStack[] | null };
  peak_snapshot: { t: number; traced: number; rss: number | null } | null;
  timing: { calibration_ns: number; snapshot_ns: number; snapshots_taken: number; final_ns: number; slowdown: number | null };
}

export const CUT_FRAME = -1;
export const OTHER_FRAME = -2;

// ---------------------------------------------------------------------------------------
// growth

export interface GrowthOptions {
  /** the least total growth that counts (bytes; default 64 KiB) */
  minBytes?: number;
  /** the fewest intervals a verdict needs (default 3) */
  minIntervals?: number;
}

export interface GrowthVerdict {
  growing: boolean;
  /** why not (or 'grows steadily') */
  reason: string;
  intervals: number;
  /** intervals where it went up / did not go down */
  up: number;
  nonDecreasing: number;
  first: number;
  last: number;
  growth: number;
  /** growth / Σ|delta| */
  efficiency: number;
  /** the largest single rise as a share of the growth */
  largestStep: number;
  /** Mann–Kendall z of the series (how much more often later values exceed earlier ones than chance) */
  trendZ: number;
  /** bytes per second over the span (0 without times) */
  rate: number;
}

export const GROWTH_RULE =
  'over n ≥ 4 snapshot intervals: total growth ≥ min bytes, no decrease in ≥ 75 % of intervals, a rise in ≥ max(2, n/3), growth ≥ 0.6 × Σ|change|, no single rise > 60 % of the growth, Mann–Kendall trend z ≥ 2';

/** Is `sizes` (one value per snapshot, at `times` seconds) growing steadily? See the header. */
export function detectGrowth(sizes: readonly number[], times: readonly number[] = [], o: GrowthOptions = {}): GrowthVerdict {
  const minBytes = o.minBytes ?? 64 * 1024;
  const minIntervals = o.minIntervals ?? 4;
  const n = Math.max(0, sizes.length - 1);
  let up = 0;
  let nonDec = 0;
  let abs = 0;
  let maxRise = 0;
  for (let i = 1; i < sizes.length; i++) {
    const d = sizes[i]! - sizes[i - 1]!;
    if (d > 0) up++;
    if (d >= 0) nonDec++;
    abs += Math.abs(d);
    if (d > maxRise) maxRise = d;
  }
  const first = sizes[0] ?? 0;
  const last = sizes[sizes.length - 1] ?? 0;
  const growth = last - first;
  const efficiency = abs > 0 ? growth / abs : 0;
  const largestStep = growth > 0 ? maxRise / growth : 0;
  const span = times.length === sizes.length && n > 0 ? times[times.length - 1]! - times[0]! : 0;
  const rate = span > 0 ? growth / span : 0;
  // Mann–Kendall trend statistic (ties count 0): S / sqrt(m(m-1)(2m+5)/18), m points
  let S = 0;
  for (let i = 0; i < sizes.length; i++) for (let j = i + 1; j < sizes.length; j++) S += Math.sign(sizes[j]! - sizes[i]!);
  const m = sizes.length;
  const trendZ = m > 1 ? S / Math.sqrt((m * (m - 1) * (2 * m + 5)) / 18) : 0;
  const v = { intervals: n, up, nonDecreasing: nonDec, first, last, growth, efficiency, largestStep, trendZ, rate };
  const no = (reason: string): GrowthVerdict => ({ growing: false, reason, ...v });
  if (n < minIntervals) return no(`too few snapshots (${n} intervals, need ${minIntervals})`);
  if (growth < minBytes) return no(growth <= 0 ? 'no net growth' : `grew ${growth} bytes, under ${minBytes}`);
  if (nonDec < 0.75 * n) return no(`went down in ${n - nonDec} of ${n} intervals`);
  if (up < Math.max(2, n / 3)) return no(`rose in only ${up} of ${n} intervals`);
  if (efficiency < 0.6) return no(`mostly up-and-down (net ${(efficiency * 100).toFixed(0)} % of the movement)`);
  if (largestStep > 0.6) return no(`one step holds ${(largestStep * 100).toFixed(0)} % of the growth (a one-off allocation)`);
  if (trendZ < 2) return no(`no significant trend (Mann–Kendall z ${trendZ.toFixed(2)} < 2)`);
  return { growing: true, reason: 'grows steadily', ...v };
}

/** The snapshot indices the growth rule looks at (the exit one only when intervals are few). */
export function growthIndices(snaps: readonly MemSnapshot[]): number[] {
  const iv = snaps.map((s, i) => (s.kind === 'interval' ? i : -1)).filter((i) => i >= 0);
  if (iv.length >= 4) return iv;
  return snaps.map((_, i) => i);
}

// ---------------------------------------------------------------------------------------
// the report

export interface MemLineRow {
  file: string;
  line: number;
  function: string;
  bytes: number;
  blocks: number;
  /** share of the snapshot's traced bytes */
  share: number;
}

export interface MemSnapshotRow extends MemSnapshot {
  deltaTraced: number | null;
  deltaRss: number | null;
  /** the lines that changed most since the previous snapshot */
  changes: Array<{ file: string; line: number; function: string; delta: number }>;
}

export interface MemGrowthLine extends GrowthVerdict {
  file: string;
  line: number;
  function: string;
}

export interface MemReport {
  current: number | null;
  currentBlocks: number | null;
  peak: number;
  peakExact: boolean;
  rss: number | null;
  rssPeak: number | null;
  tracemallocBytes: number | null;
  interval: number;
  frames: number;
  topLines: MemLineRow[];
  /** top lines at the largest snapshot seen while running (null when none was taken) */
  peakSnapshot: { t: number; traced: number; rss: number | null; topLines: MemLineRow[] } | null;
  snapshots: MemSnapshotRow[];
  growth: { rule: string; minBytes: number; traced: GrowthVerdict; rss: GrowthVerdict | null; lines: MemGrowthLine[] };
}

function leafRows(data: MemData, stacks: MemStack[], total: number, top: number): MemLineRow[] {
  const by = new Map<number, { bytes: number; blocks: number }>();
  for (const [ids, bytes, blocks] of stacks) {
    const leaf = ids[ids.length - 1] ?? OTHER_FRAME;
    if (leaf < 0) continue;
    const e = by.get(leaf);
    if (e) {
      e.bytes += bytes;
      e.blocks += blocks;
    } else by.set(leaf, { bytes, blocks });
  }
  return [...by.entries()]
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .slice(0, top)
    .map(([f, e]) => {
      const [file, line, fn] = data.frames[f]!;
      return { file, line, function: fn, bytes: e.bytes, blocks: e.blocks, share: total > 0 ? e.bytes / total : 0 };
    });
}

export function memReport(data: MemData, o: { top?: number; minBytes?: number } = {}): MemReport {
  const top = o.top ?? data.options.top ?? 15;
  const snaps = data.snapshots;
  const last = snaps.length - 1;
  const lastTotal = last >= 0 ? snaps[last]!.traced : 0;
  const topLines: MemLineRow[] = data.lines
    .filter((l) => last >= 0 && l.sizes[last]! > 0)
    .sort((a, b) => b.sizes[last]! - a.sizes[last]!)
    .slice(0, top)
    .map((l) => ({ file: l.file, line: l.line, function: l.function, bytes: l.sizes[last]!, blocks: l.counts[last]!, share: lastTotal > 0 ? l.sizes[last]! / lastTotal : 0 }));
  const rows: MemSnapshotRow[] = snaps.map((s, i) => {
    const prev = i > 0 ? snaps[i - 1]! : null;
    const changes = prev
      ? data.lines
          .map((l) => ({ file: l.file, line: l.line, function: l.function, delta: l.sizes[i]! - l.sizes[i - 1]! }))
          .filter((c) => c.delta !== 0)
          .sort((a, b) => Math.abs(b.delta) - Math.abs(a.delta))
          .slice(0, 3)
      : [];
    return { ...s, deltaTraced: prev ? s.traced - prev.traced : null, deltaRss: prev && prev.rss !== null && s.rss !== null ? s.rss - prev.rss : null, changes };
  });
  const idx = growthIndices(snaps);
  const times = idx.map((i) => snaps[i]!.t);
  const gopts = { ...(o.minBytes !== undefined ? { minBytes: o.minBytes } : {}) };
  const pick = (arr: readonly number[]) => idx.map((i) => arr[i]!);
  const traced = detectGrowth(pick(snaps.map((s) => s.traced)), times, gopts);
  const rss = snaps.every((s) => s.rss !== null) && snaps.length > 0 ? detectGrowth(pick(snaps.map((s) => s.rss!)), times, gopts) : null;
  const lines: MemGrowthLine[] = [];
  for (const l of data.lines) {
    const v = detectGrowth(pick(l.sizes), times, gopts);
    if (v.growing) lines.push({ file: l.file, line: l.line, function: l.function, ...v });
  }
  lines.sort((a, b) => b.growth - a.growth);
  const ps = data.peak_snapshot;
  const usePeak = ps && data.stacks.peak && ps.traced > (data.current ?? 0);
  return {
    current: data.current,
    currentBlocks: data.current_blocks,
    peak: data.peak,
    peakExact: data.peak_exact,
    rss: data.rss,
    rssPeak: data.rss_peak,
    tracemallocBytes: data.tracemalloc_bytes,
    interval: data.options.interval,
    frames: data.options.frames,
    topLines,
    peakSnapshot: usePeak ? { t: ps.t, traced: ps.traced, rss: ps.rss, topLines: leafRows(data, data.stacks.peak!, ps.traced, top) } : null,
    snapshots: rows,
    growth: { rule: GROWTH_RULE, minBytes: o.minBytes ?? 64 * 1024, traced, rss, lines },
  };
}

// ---------------------------------------------------------------------------------------
// the profile
