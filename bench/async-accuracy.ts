/**
 * Benchmark: how right `record --async` is (issue 14's targets), per CPython: on
 * bench/workloads/async_sites.py (workers looping over a sleep, a contended semaphore and a
 * reply queue; a churner starting ~5,000 short tasks a second), the share of task time each
 * awaited call site gets, against the truth the program measures itself (perf_counter around
 * each await); and how many task samples carry a whole await chain (the task's own coroutine
 * down to the innermost await), the churned tasks' included.
 *
 *   node_modules/.bin/node bench/async-accuracy.ts [--seconds S] [--rate HZ] [--workers N] [--python 3.12]
 *
 * With many workers (--workers 400: some 800 tasks) the tasks are read in turn (stride > 1).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePylens } from '../src/formats/pylens.ts';
import { frameInfo, stackFrames } from '../src/model/profile.ts';
import { argValue, benchPythons, CLI, machineLine, python, WORKLOADS } from './sampler-common.ts';

export const SITES = ['site_sleep', 'site_sem', 'site_queue'] as const;
/** the innermost frame of a whole chain, per site (asyncio's own coroutines) */
const LEAVES = new Set(['sleep', 'acquire', 'get']);

export interface AsyncAccuracy {
  /** per site: share of the workers' await time, in-process truth and sampled (0–1) */
  truth: Record<string, number>;
  sampled: Record<string, number>;
  /** largest |sampled − truth| over the sites, in points */
  maxErrorPts: number;
  /** task samples (weights) whose chain runs from the task's coroutine to an asyncio leaf */
  whole: number;
  taskSamples: number;
  /** the same, for the churned short-lived tasks only */
  churnWhole: number;
  churnSamples: number;
  stride: number;
  stderr: string;
}

/** Record async_sites.py under `record --async` for `seconds` and compare with its own timing. */
export function measureAsyncAccuracy(exe: string, opts: { seconds?: number; rateHz?: number; workers?: number; nice?: number } = {}): AsyncAccuracy {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-async-acc-'));
  try {
    const out = join(dir, 'a.pylens');
    const truthFile = join(dir, 'truth.json');
    const argv = [process.execPath, CLI, 'record', '--async', '-r', String(opts.rateHz ?? 100), '-o', out, '--', exe, join(WORKLOADS, 'async_sites.py'), String(opts.seconds ?? 5), truthFile, String(opts.workers ?? 20)];
    // `nice`: record and its program at that priority (a test beside other tests' load)
    if (opts.nice !== undefined) argv.unshift('nice', '-n', String(opts.nice));
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`record --async failed (${r.status}): ${r.stderr}`);
    const spent = (JSON.parse(readFileSync(truthFile, 'utf8')) as { sites: Record<string, number> }).sites;
    const p = decodePylens(readFileSync(out), out);
    const bySite: Record<string, number> = Object.fromEntries(SITES.map((s) => [s, 0]));
    let whole = 0;
    let taskSamples = 0;
    let churnWhole = 0;
    let churnSamples = 0;
    const col = p.samples.values[0]!;
    for (let i = 0; i < p.samples.length; i++) {
      const names = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
      const root = names[0]!;
      if (!root.startsWith('task ')) continue;
      const w = col[i]!;
      const coro = root.slice(5);
      const ok = names[1] === coro && LEAVES.has(names.at(-1)!);
      taskSamples += w;
      if (ok) whole += w;
      if (coro === 'churn_task') {
        churnSamples += w;
        if (ok) churnWhole += w;
      }
      if (coro === 'worker') {
        const site = SITES.find((s) => names.includes(s));
        if (site) bySite[site]! += w;
      }
    }
    const tTotal = SITES.reduce((a, s) => a + (spent[s] ?? 0), 0);
    const sTotal = SITES.reduce((a, s) => a + bySite[s]!, 0);
    const truth = Object.fromEntries(SITES.map((s) => [s, (spent[s] ?? 0) / tTotal]));
    const sampled = Object.fromEntries(SITES.map((s) => [s, sTotal > 0 ? bySite[s]! / sTotal : 0]));
    const maxErrorPts = Math.max(...SITES.map((s) => 100 * Math.abs(sampled[s]! - truth[s]!)));
    return { truth, sampled, maxErrorPts, whole, taskSamples, churnWhole, churnSamples, stride: Number(p.meta.extra?.asyncTaskStride ?? 1), stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const seconds = Number(argValue('--seconds') ?? 8);
  const rate = Number(argValue('--rate') ?? 100);
  const only = argValue('--python');
  const workers = Number(argValue('--workers') ?? 20);
  const pys = only ? [python(Number(only.split('.')[1]))!] : benchPythons();
  console.log(`record --async accuracy — async_sites.py (${workers} workers × 3 awaited sites, ~5,000 churned tasks/s), ${rate} Hz × ${seconds} s; ${machineLine()}`);
  console.log(`${'python'.padEnd(14)} ${SITES.map((s) => `${s} truth/sampled`.padStart(26)).join('')}   max err   whole chains   churned whole   stride   (goal ≤ 5 pts, ≥ 95 %)`);
  for (const py of pys) {
    const a = measureAsyncAccuracy(py.exe, { seconds, rateHz: rate, workers });
    const cells = SITES.map((s) => `${(100 * a.truth[s]!).toFixed(1)} / ${(100 * a.sampled[s]!).toFixed(1)} %`.padStart(26)).join('');
    const pct = (n: number, d: number) => (d > 0 ? `${((100 * n) / d).toFixed(1)} %` : '—');
    console.log(`${py.label.padEnd(14)} ${cells}   ${a.maxErrorPts.toFixed(1).padStart(4)} pts   ${pct(a.whole, a.taskSamples).padStart(12)}   ${pct(a.churnWhole, a.churnSamples).padStart(13)}   ${String(a.stride).padStart(6)}`);
  }
}

if (import.meta.main) await main();
