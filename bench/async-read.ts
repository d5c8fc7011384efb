/**
 * Benchmark: the cost of one read of every asyncio task (`ProcessSampler.asyncTasks`, what
 * `record --async` does each tick) on bench/workloads/tasks.py, per CPython: µs per read and
 * per task, and the share of one core that reading at 100 Hz would take.
 *
 *   node_modules/.bin/node bench/async-read.ts [--tasks N] [--reads N]
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ProcessSampler } from '../src/capture/sampler/session.ts';
import { argValue, benchPythons, killChild, LineReader, machineLine, WORKLOADS } from './sampler-common.ts';

const TASKS = Number(argValue('--tasks') ?? 1000);
const READS = Number(argValue('--reads') ?? 300);

async function main(): Promise<void> {
  console.log(`one read of all asyncio tasks — ${TASKS} tasks (tasks.py), ${READS} reads 10 ms apart; ${machineLine()}`);
  for (const py of benchPythons().filter((p) => p.label.startsWith('pyenv'))) {
    const target = spawn(py.exe, [join(WORKLOADS, 'tasks.py'), String(TASKS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new LineReader(target).next('tasks.py');
      const s = ProcessSampler.attach(target.pid!);
      let n = 0;
      let chains = 0;
      const times: number[] = [];
      for (let i = 0; i < READS; i++) {
        const c0 = process.cpuUsage();
        const r = s.asyncTasks({ max: 2000 });
        const c = process.cpuUsage(c0);
        if (i >= 20) times.push(c.user + c.system);
        n += r.tasks.length;
        chains += r.tasks.filter((t) => t.stack.length >= 3).length;
        await new Promise((res) => setTimeout(res, 10));
      }
      s.close();
      times.sort((a, b) => a - b);
      const mean = times.reduce((a, b) => a + b, 0) / times.length;
      const per = n / READS;
      console.log(`${py.label.padEnd(14)} ${mean.toFixed(0).padStart(6)} µs/read (median ${times[times.length >> 1]!.toFixed(0)})  ${(mean / per).toFixed(2)} µs/task  ${per.toFixed(0)} tasks  ${(100 * chains / n).toFixed(1)} % 3-deep chains  at 100 Hz: ${(mean / 100).toFixed(1)} % of a core`);
    } finally {
      killChild(target);
    }
  }
}

if (import.meta.main) await main();
