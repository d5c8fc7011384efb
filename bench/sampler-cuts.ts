/**
 * Benchmark: whole stacks under frame churn. Samples bench/workloads/churn.py (nested
 * generator expressions consumed by join/dict/sum, generators driven from deep call chains;
 * one main thread and one worker) on every CPython 3.8–3.13 at 100 Hz and 1 kHz, and checks
 * the root of every sample's stack: the main thread must end at `<module>`, a worker at
 * threading's `_bootstrap`. Prints per version and rate: samples, unmarked cut stacks
 * (a wrong root, silently), marked ones (`[truncated]` root), errors and retried walks.
 * Goal (issue 12): ≤ 0.5 % unmarked and ≤ 2 % marked.
 *
 *   node_modules/.bin/node bench/sampler-cuts.ts [--quick] [--seconds S] [--python 3.12] [--rates 100,1000] [--blocking]
 */
import { spawn } from 'node:child_process';
import { sampleProcess } from '../src/capture/sampler/sampler.ts';
import type { Profile } from '../src/model/profile.ts';
import { apartImpossible, stackRoots } from '../test/helpers/roots.ts';
import { argValue, argv, benchPythons, exited, killChild, LineReader, machineLine, QUICK, WORKLOADS } from './sampler-common.ts';

const SECONDS = Number(argValue('--seconds') ?? (QUICK ? 2 : 5));
const RATES = (argValue('--rates') ?? '100,1000').split(',').map(Number);
const ONLY = argValue('--python');
const BLOCKING = argv.includes('--blocking');

export interface CutCounts {
  samples: number;
  unmarked: number;
  marked: number;
  errors: number;
  retries: number;
  ticks: number;
  missed: number;
  pauses: number;
  pausedMs: number;
  examples: string[];
}

/** Root counts (test/helpers/roots.ts) with the run's quality figures. */
export function countCuts(p: Profile): CutCounts {
  const r = stackRoots(p);
  const x = p.meta.extra ?? {};
  return {
    samples: p.samples.length,
    unmarked: r.cut,
    marked: r.marked,
    errors: p.meta.errorCount,
    retries: Number(x.retriedWalks ?? 0),
    ticks: Number(x.ticks ?? 0),
    missed: Number(x.missedTicks ?? 0),
    pauses: Number(x.pauses ?? 0),
    pausedMs: Number(x.pausedNs ?? 0) / 1e6,
    examples: r.examples,
  };
}

const pct = (n: number, d: number) => (d ? ((100 * n) / d).toFixed(2) : '-') + ' %';

/**
 * Each pyenv CPython (or the one --python names) at each rate: `script ARGS` from
 * bench/workloads started, sampled in-process for SECONDS once it prints `ready`, its profile
 * given to `row`, the process killed.
 */
async function eachRun(script: string, args: string[], ready: string, row: (minor: number, rate: number, p: Profile) => void): Promise<void> {
  for (const py of benchPythons()) {
    if (ONLY && `3.${py.minor}` !== ONLY) continue;
    if (!py.label.startsWith('pyenv')) continue;
    for (const rate of RATES) {
      const child = spawn(py.exe, [`${WORKLOADS}/${script}`, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await new LineReader(child).next(ready);
        row(py.minor, rate, await sampleProcess(child.pid!, { rateHz: rate, durationS: SECONDS, ...(BLOCKING ? { blocking: true } : {}) } as never));
      } finally {
        killChild(child);
        await exited(child);
      }
    }
  }
}

async function main(): Promise<void> {
  console.log(`sampler cut stacks — churn.py, ${SECONDS} s per run${BLOCKING ? ', --blocking' : ''}; ${machineLine()}`);
  console.log('python   rate   samples  unmarked cut  marked [truncated]  errors  retried walks  ticks (missed)  pauses  paused % of wall');
  await eachRun('churn.py', [String(SECONDS + 3), '1'], 'churn.py ready', (minor, rate, p) => {
    const c = countCuts(p);
    console.log(
      `3.${minor}`.padEnd(8) + String(rate).padStart(5) + String(c.samples).padStart(10) + pct(c.unmarked, c.samples).padStart(14) +
        pct(c.marked, c.samples).padStart(20) + String(c.errors).padStart(8) + String(c.retries).padStart(15) +
        `${c.ticks} (${c.missed})`.padStart(16) + String(c.pauses).padStart(8) + pct(c.pausedMs, SECONDS * 1000).padStart(18),
    );
    for (const e of c.examples) console.log(`         e.g. ${e.slice(0, 160)}`);
  });
  console.log(`\nstacks that never existed — apart.py (a(3) and b(8) to one leaf, in turn), ${SECONDS} s per run`);
  console.log('python   rate   samples  never existed  retried walks  unsteady given  marked [truncated]  pauses');
  await eachRun('apart.py', [String(SECONDS + 3)], 'apart.py ready', (minor, rate, p) => {
    const c = countCuts(p);
    const x = apartImpossible(p);
    console.log(
      `3.${minor}`.padEnd(8) + String(rate).padStart(5) + String(c.samples).padStart(10) + pct(x.impossible, c.samples).padStart(15) +
        String(c.retries).padStart(15) + String(Number(p.meta.extra?.unsteadyStacks ?? 0)).padStart(16) + pct(c.marked, c.samples).padStart(20) + String(c.pauses).padStart(8),
    );
    for (const e of x.examples) console.log(`         e.g. ${e.slice(0, 160)}`);
  });
}

if (import.meta.main) await main();
