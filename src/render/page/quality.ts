/**
 * How trustworthy a sampler profile is, in one line, from the quality counts the sampler
 * records in its metadata (capture/sampler/sampler.ts): stacks that did not reach their
 * thread's base (marked `[truncated]`), torn reads read again, thread stops and their
 * cost, missed ticks, the interval distribution and the CPU rule; with native frames
 * (`record --native`), whether the interpreter had symbols and how many samples end at an
 * unknown address inside it (capture/perf/symbols.ts). Shared by `record`'s
 * summary line, `report`'s header and the HTML header. Runs in Node and in the page: no
 * imports but page modules.
 */
import { groupDigits } from './units.ts';

export interface QualityMeta {
  sampleCount: number;
  durationNs?: number;
  extra?: Record<string, string | number>;
}

const num = (extra: Record<string, string | number>, k: string): number => {
  const v = extra[k];
  return typeof v === 'number' ? v : typeof v === 'string' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : 0;
};

const pct = (n: number, d: number): string => {
  if (d <= 0) return '0 %';
  const p = (100 * n) / d;
  return `${p === 0 ? '0' : p < 0.1 ? '<0.1' : p < 10 ? p.toFixed(1) : p.toFixed(0)} %`;
};

/** The sampler's quality in words (or, for `pylens perf`, the interpreter's symbols), or undefined when the profile has none (another lens, an import). */
export function samplerQuality(meta: QualityMeta): string | undefined {
  const x = meta.extra;
  if (!x) return undefined;
  // perf's own profiles (`pylens perf`) have no sampler counts, only the interpreter's symbols
  if (x.truncatedSamples === undefined) return nativeSymbolsQuality(x);
  const n = meta.sampleCount;
  const truncated = num(x, 'truncatedSamples');
  const parts: string[] = [];
  parts.push(
    truncated === 0
      ? `every stack whole (${groupDigits(n)} samples)`
      : x.kernelCutDepth !== undefined
        ? // the kernel walk (record --backend kernel) cannot tear: its cuts have other causes
          `${groupDigits(truncated)} of ${groupDigits(n)} stacks truncated (${pct(truncated, n)}; marked [truncated]: ${groupDigits(num(x, 'kernelCutDepth'))} at the depth bound, ${groupDigits(num(x, 'kernelCutChain'))} whose chain did not reach the thread's base, ${groupDigits(num(x, 'kernelUnnamed'))} not named before the process ended)`
        : `${groupDigits(truncated)} of ${groupDigits(n)} stacks truncated (${pct(truncated, n)}; marked [truncated]: ${groupDigits(num(x, 'tornStacks'))} torn on every read, ${groupDigits(num(x, 'depthCutStacks'))} past the depth cap)`,
  );
  const retried = num(x, 'retriedWalks');
  if (retried) parts.push(`${groupDigits(retried)} torn reads read again`);
  const pauses = num(x, 'pauses');
  if (pauses) {
    const ms = num(x, 'pausedNs') / 1e6;
    parts.push(`threads stopped ${groupDigits(pauses)}× for ${ms < 10 ? ms.toFixed(2) : ms.toFixed(0)} ms${meta.durationNs ? ` (${pct(ms * 1e6, meta.durationNs)} of wall time)` : ''}`);
  }
  const failures = num(x, 'pauseFailures');
  if (failures) parts.push(`${groupDigits(failures)} stops failed`);
  const skips = num(x, 'pauseBudgetSkips');
  if (skips) parts.push(`${groupDigits(skips)} stops after torn reads skipped (the 1 % stop budget was spent)`);
  const ticks = num(x, 'ticks');
  const missed = num(x, 'missedTicks');
  if (missed) parts.push(`${groupDigits(missed)} of ${groupDigits(ticks + missed)} ticks missed`);
  if (x.intervals !== undefined) parts.push(`intervals ${x.intervals}`);
  const waiting = num(x, 'runnableWaiting');
  if (waiting) parts.push(`${groupDigits(waiting)} runnable-but-waiting thread samples not counted as CPU`);
  if (typeof x.asyncTasksUnreadable === 'string') parts.push(`asyncio tasks not read: ${x.asyncTasksUnreadable}`);
  if (x.asyncTaskSamples !== undefined) {
    const stride = num(x, 'asyncTaskStride');
    const errors = num(x, 'asyncTaskReadErrors');
    parts.push(
      `${groupDigits(num(x, 'asyncTaskSamples'))} asyncio task samples` +
        (stride > 1 ? ` (tasks read in turn to keep the cost bounded: each every ${stride} ticks on average, its samples weighted so)` : '') +
        (num(x, 'asyncTaskTorn') ? `, ${groupDigits(num(x, 'asyncTaskTorn'))} task reads torn (a task finishing while read) left out` : '') +
        (errors ? `, ${groupDigits(errors)} ticks whose tasks could not be read` : ''),
    );
  }
  const native = nativeSymbolsQuality(x);
  if (native) parts.push(native);
  const schedJudged = num(x, 'schedJudged');
  if (schedJudged) parts.push(`${groupDigits(schedJudged)} runnable samples judged without perf events (less exact: needs CAP_PERFMON or kernel.perf_event_paranoid ≤ 1)`);
  return parts.join('; ');
}

/**
 * `record --native`'s interpreter symbols in words: a stripped interpreter always (with the
 * share of samples whose leaf is an unknown address inside it, and the first fix), a debug
 * file where perf found one, and an unknown share of 5 % or more even with symbols.
 */
export function nativeSymbolsQuality(x: Record<string, string | number>): string | undefined {
  const verdict = x.interpreterSymbols;
  if (typeof verdict !== 'string') return undefined;
  const image = String(x.interpreterImage ?? 'the interpreter').split('/').pop()!;
  const share = num(x, 'nativeUnknownInterpreter');
  const unknown = `${share === 0 ? '0' : share < 0.001 ? '<0.1' : (100 * share).toFixed(share < 0.1 ? 1 : 0)} % of samples end at an unknown address in ${image}`;
  if (verdict === 'stripped') {
    const fix = typeof x.interpreterSymbolsFix === 'string' ? x.interpreterSymbolsFix.split('; ')[0] : undefined;
    return `interpreter stripped: ${unknown}${fix ? `, to name them: ${fix}` : ''}`;
  }
  if (verdict === 'debug-file') return `interpreter symbols from ${x.interpreterDebugFile ?? 'a debug file'}${share >= 0.01 ? `; ${unknown}` : ''}`;
  return share >= 0.05 ? unknown : undefined;
}
