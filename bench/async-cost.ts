/**
 * Benchmark: what `record --async` costs (issue 14: 1,000 live tasks at 100 Hz, ≤ 5 % of one
 * core). bench/workloads/tasks.py keeps N tasks (three coroutines deep, each sleeping 10–100 ms
 * at a time) on one event loop; `pylens record -p PID` runs with and without `--async`, side
 * by side (alternating, --rounds times), each measured over a window after a warm-up (V8
 * tiers code up by use: at 100 Hz the recorder's per-tick code is optimized after ~15 s, its
 * steady state; the figures of both runs are medians over the rounds): the recorder's CPU
 * (all its threads, schedstat) as a share of one core, the task samples per tick (their weights)
 * and how often each task was read (record --async reads tasks in turn past 2 % of the interval).
 *
 *   node_modules/.bin/node bench/async-cost.ts [--tasks N] [--rate HZ] [--window S] [--warmup S] [--rounds N] [--python 3.12]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePylens } from '../src/formats/pylens.ts';
import { processCpuNs } from './sampler-floor.ts';
import { argValue, CLI, exited, killChild, LineReader, machineLine, median, python, sleep, WORKLOADS } from './sampler-common.ts';

const TASKS = Number(argValue('--tasks') ?? 1000);
const RATE = Number(argValue('--rate') ?? 100);
const WINDOW_S = Number(argValue('--window') ?? 6);
const WARMUP_S = Number(argValue('--warmup') ?? 15);
const ROUNDS = Number(argValue('--rounds') ?? 3);
const MINOR = Number((argValue('--python') ?? '3.12').split('.')[1]);

async function run(pid: number, extra: string[], out: string): Promise<{ cpu: number; perTick: number; stride: number }> {
  const rec: ChildProcess = spawn(process.execPath, [CLI, 'record', '-p', String(pid), '-r', String(RATE), '-d', String(WARMUP_S + WINDOW_S), '-q', '-o', out, ...extra], { stdio: ['ignore', 'ignore', 'inherit'] });
  await sleep(WARMUP_S * 1000);
  const c0 = processCpuNs(rec.pid!);
  const t0 = performance.now();
  await sleep(WINDOW_S * 1000);
  const cpu = (processCpuNs(rec.pid!) - c0) / ((performance.now() - t0) * 1e6);
  await exited(rec);
  const p = decodePylens(readFileSync(out), out);
  return { cpu, perTick: Number(p.meta.extra?.asyncTaskSamples ?? 0) / Math.max(1, Number(p.meta.extra?.ticks)), stride: Number(p.meta.extra?.asyncTaskStride ?? 1) };
}

async function main(): Promise<void> {
  const py = python(MINOR);
  if (!py) throw new Error(`no pyenv CPython 3.${MINOR}`);
  const tmp = mkdtempSync(join(tmpdir(), 'pylens-async-bench-'));
  const target = spawn(py.exe, [join(WORKLOADS, 'tasks.py'), String(TASKS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new LineReader(target).next('tasks.py');
    console.log(`record --async cost — ${TASKS} tasks (3 coroutines deep) on ${py.label}, ${RATE} Hz, ${WINDOW_S} s window after ${WARMUP_S} s, ${ROUNDS} round(s); ${machineLine()}`);
    const plain: number[] = [];
    const withAsync: number[] = [];
    let last = { cpu: 0, perTick: 0, stride: 1 };
    for (let round = 1; round <= ROUNDS; round++) {
      plain.push((await run(target.pid!, ['-i'], join(tmp, 'plain.pylens'))).cpu);
      last = await run(target.pid!, ['--async'], join(tmp, 'async.pylens'));
      withAsync.push(last.cpu);
      console.log(`  round ${round}: record -i ${(100 * plain.at(-1)!).toFixed(1)} %, record --async ${(100 * last.cpu).toFixed(1)} %`);
    }
    const a = median(withAsync);
    console.log(`record -i        ${(100 * median(plain)).toFixed(1).padStart(6)} % of a core (median)`);
    console.log(`record --async   ${(100 * a).toFixed(1).padStart(6)} % of a core (median)   ${last.perTick.toFixed(0)} task samples per tick (each task read every ${last.stride} ticks on average, last round)   goal ≤ 5 %${a <= 0.05 ? '' : '  MISSES'}`);
  } finally {
    killChild(target);
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
