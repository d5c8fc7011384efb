/**
 * Benchmark: what `record --async` costs (issue 14: 1,000 live tasks at 100 Hz, ≤ 5 % of one
 * core). bench/workloads/tasks.py keeps N tasks (three coroutines deep, each sleeping 10–100 ms
 * at a time) on one event loop; `pylens record -p PID` runs with and without `--async`, side
 * by side (alternating), each measured over a window after a warm-up: the recorder's CPU
 * (all its threads, schedstat) as a share of one core, the task samples per tick (their weights)
 * and how often each task was read (record --async reads tasks in turn past 2 % of the interval).
 *
 *   node_modules/.bin/node bench/async-cost.ts [--tasks N] [--rate HZ] [--window S] [--python 3.12]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePylens } from '../src/formats/pylens.ts';
import { processCpuNs } from './sampler-floor.ts';
import { argValue, CLI, exited, killChild, LineReader, machineLine, python, sleep, WORKLOADS } from './sampler-common.ts';

const TASKS = Number(argValue('--tasks') ?? 1000);
const RATE = Number(argValue('--rate') ?? 100);
const WINDOW_S = Number(argValue('--window') ?? 6);
const WARMUP_S = 4;
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
    console.log(`record --async cost — ${TASKS} tasks (3 coroutines deep) on ${py.label}, ${RATE} Hz, ${WINDOW_S} s window after ${WARMUP_S} s; ${machineLine()}`);
    const plain = await run(target.pid!, ['-i'], join(tmp, 'plain.pylens'));
    const withAsync = await run(target.pid!, ['--async'], join(tmp, 'async.pylens'));
    console.log(`record -i        ${(100 * plain.cpu).toFixed(1).padStart(6)} % of a core`);
    console.log(`record --async   ${(100 * withAsync.cpu).toFixed(1).padStart(6)} % of a core   ${withAsync.perTick.toFixed(0)} task samples per tick (each task read every ${withAsync.stride} ticks on average)   goal ≤ 5 %${withAsync.cpu <= 0.05 ? '' : '  MISSES'}`);
  } finally {
    killChild(target);
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
