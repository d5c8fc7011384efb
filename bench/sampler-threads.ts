/**
 * Benchmark: what many threads cost the sampler in wall-clock mode (`record -i`, `top -i`):
 * a mostly idle thread pool (bench/workloads/pool.py: N workers blocked on a queue, a few
 * items of ~1 ms a second, one busy thread) sampled at 100 Hz, with and without giving the
 * last stack again for a thread that has not run since its last read (session.ts
 * `reuseUnrun`), alternating in one run on the same target. Prints the sampler's CPU (its
 * own process time over the window, % of one core) and how the two profiles split the
 * samples (blocked workers, workers at work, the busy thread), which must agree.
 *
 *   node_modules/.bin/node bench/sampler-threads.ts [--quick] [--threads 50,200] [--seconds S] [--rounds N] [--python 3.12]
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { sampleProcess } from '../src/capture/sampler/sampler.ts';
import { frameInfo, stackFrames, type Profile } from '../src/model/profile.ts';
import { argValue, killChild, LineReader, machineLine, median, python, QUICK, WORKLOADS } from './sampler-common.ts';

const THREADS = (argValue('--threads') ?? (QUICK ? '200' : '50,200')).split(',').map(Number);
const SECONDS = Number(argValue('--seconds') ?? (QUICK ? 2 : 4));
const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 1 : 3));
const MINOR = Number((argValue('--python') ?? '3.12').split('.')[1]);

/** shares of the wall-clock samples: blocked in the queue, at work in a worker, the busy thread */
function split(p: Profile): { blocked: number; working: number; busy: number } {
  let blocked = 0, working = 0, busy = 0, all = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const names = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
    const w = p.samples.values[0]?.[i] ?? 1;
    all += w;
    if (names.includes('busy')) busy += w;
    else if (names.includes('worker')) {
      if (names.includes('get')) blocked += w;
      else working += w;
    }
  }
  return { blocked: blocked / all, working: working / all, busy: busy / all };
}

async function main(): Promise<void> {
  const py = python(MINOR);
  if (!py) throw new Error(`no pyenv CPython 3.${MINOR}`);
  console.log(`many threads in wall-clock mode — ${py.label} pool.py, 100 Hz, ${SECONDS} s windows, ${ROUNDS} round(s) each way, alternating; ${machineLine()}`);
  console.log('threads  sampler CPU: every stack read   unrun stacks given again   ratio   samples given again   split (blocked / at work / busy), read vs given');
  for (const n of THREADS) {
    const target = spawn(py.exe, [join(WORKLOADS, 'pool.py'), String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new LineReader(target).next('pool.py');
      const pid = target.pid!;
      await sampleProcess(pid, { rateHz: 100, durationS: 1, idle: true }); // warm the JIT
      const cpu: Record<'read' | 'reuse', number[]> = { read: [], reuse: [] };
      const last: Partial<Record<'read' | 'reuse', Profile>> = {};
      for (let r = 0; r < ROUNDS; r++) {
        for (const way of r % 2 ? (['reuse', 'read'] as const) : (['read', 'reuse'] as const)) {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          const p = await sampleProcess(pid, { rateHz: 100, durationS: SECONDS, idle: true, reuseUnrun: way === 'reuse' });
          const c = process.cpuUsage(c0);
          cpu[way].push((c.user + c.system) / 1000 / (performance.now() - t0));
          last[way] = p;
        }
      }
      const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
      const a = median(cpu.read), b = median(cpu.reuse);
      const given = Number(last.reuse!.meta.extra!.unrunReused);
      const all = last.reuse!.samples.length;
      const s1 = split(last.read!), s2 = split(last.reuse!);
      const sp = (s: { blocked: number; working: number; busy: number }) => `${pct(s.blocked)} / ${pct(s.working)} / ${pct(s.busy)}`;
      console.log(`${String(n).padStart(7)}  ${pct(a).padStart(26)}   ${pct(b).padStart(24)}   ${(b / a).toFixed(2)}×   ${given} of ${all} rows   ${sp(s1)} vs ${sp(s2)}`);
    } finally {
      killChild(target);
    }
  }
}

await main();
