/**
 * Benchmark: CPU attribution with every CPU busy (issue 12, part 2), and aliasing with
 * periodic work (part 3).
 *
 * 1. Saturation. bench/workloads/sleepwork.py loops over nap() (time.sleep(0.01)), crunch()
 *    (~6 ms of CPU) and brief() (~2 ms), measuring time.thread_time() around each call: the
 *    truth. Busy loops on every CPU (one per CPU, plain `python3 -c "while 1: pass"`) keep
 *    the machine saturated. The sampler records it in CPU mode; each function's share of
 *    the thread's on-CPU samples is compared with its share of thread CPU time. Two rules side
 *    by side in the same run, one after the other: 'runnable' (state R = on a CPU: what
 *    pylens did before) and 'moving' (the default: running Python, or runnable with its
 *    task clock moving; session.ts CPU_RULE). Goal: every function within
 *    3 points with 'moving'.
 * 2. Aliasing. bench/workloads/periodic.py alternates two functions of H ms of CPU each;
 *    sampled at R Hz with the default random intervals and with a fixed period, side by
 *    side: the share of a(), its error against 50 % and z = error/σ (σ of a perfect sampler
 *    with n samples). Goal: |z| ≤ 3 with random intervals.
 *
 * Both also for `record --backend kernel` (rule and intervals `kernel`: a thread is sampled
 * only while the kernel's timer finds it on a CPU; random multiples of a quarter period).
 *
 *   node_modules/.bin/node bench/sampler-saturation.ts [--quick] [--seconds S] [--python 3.12] [--rate HZ] [--only saturation|aliasing] [--no-kernel]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { sampleProcessInKernel } from '../src/capture/ebpf/pywalk.ts';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { sampleProcess } from '../src/capture/sampler/sampler.ts';
import type { Profile } from '../src/model/profile.ts';
import { argValue, benchPythons, exited, killChild, LineReader, machineLine, QUICK, stackMembership, WORKLOADS } from './sampler-common.ts';

const SECONDS = Number(argValue('--seconds') ?? (QUICK ? 4 : 10));
const RATE = Number(argValue('--rate') ?? 100);
const ONLY_PY = argValue('--python');
const ONLY = argValue('--only');
/** `record --backend kernel` too (the walk in the kernel, its own CPU rule and intervals), where bpftrace is */
const KERNEL = !process.argv.includes('--no-kernel') && spawnSync('bpftrace', ['--version']).status === 0;

/** Busy loops on every CPU; returns a function that stops them. */
export function saturate(n = availableParallelism()): () => Promise<void> {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < n; i++) hogs.push(spawn('python3', ['-c', 'while 1: pass'], { stdio: 'ignore' }));
  return async () => {
    for (const h of hogs) killChild(h);
    await Promise.all(hogs.map(exited));
  };
}

/** Share (0–1) of the samples of the busiest thread whose stack holds each of `names`. */
export function shares(p: Profile, names: string[]): { shares: number[]; n: number } {
  // weighted: a sample of the kernel walk counts its value
  const w = p.samples.values[p.defaultValue]!;
  const perThread = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) perThread.set(p.samples.thread[i]!, (perThread.get(p.samples.thread[i]!) ?? 0) + w[i]!);
  const main = [...perThread].sort((a, b) => b[1] - a[1])[0]?.[0];
  const member = stackMembership(p, names);
  const counts = names.map(() => 0);
  let n = 0;
  for (let i = 0; i < p.samples.length; i++) {
    if (p.samples.thread[i] !== main) continue;
    n += w[i]!;
    names.forEach((_, k) => {
      if (member[i]! & (1 << k)) counts[k]! += w[i]!;
    });
  }
  return { shares: counts.map((c) => (n ? c / n : NaN)), n };
}

interface Truth {
  total: number;
  funcs: Record<string, number>;
}

const FUNCS = ['nap', 'crunch', 'brief'];

async function saturationRun(exe: string, rule: 'moving' | 'runnable' | 'kernel'): Promise<{ truth: number[]; got: number[]; n: number; waiting: number; clock: number; sched: number }> {
  const child = spawn(exe, [join(WORKLOADS, 'sleepwork.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const lines = new LineReader(child);
    await lines.next('sleepwork ready');
    child.kill('SIGUSR1');
    const p = rule === 'kernel' ? await sampleProcessInKernel(child.pid!, { rateHz: RATE, durationS: SECONDS }) : await sampleProcess(child.pid!, { rateHz: RATE, durationS: SECONDS, cpuRule: rule });
    child.kill('SIGUSR2');
    const t = JSON.parse(await lines.next('sleepwork result')) as Truth;
    const s = shares(p, FUNCS);
    // each function's CPU is calls × CPU per call (sleepwork.py): shares of their sum
    const sum = FUNCS.reduce((a, f) => a + t.funcs[f]!, 0);
    const x = p.meta.extra ?? {};
    return { truth: FUNCS.map((f) => t.funcs[f]! / sum), got: s.shares, n: s.n, waiting: Number(x.runnableWaiting ?? 0), clock: Number(x.clockJudged ?? 0), sched: Number(x.schedJudged ?? 0) };
  } finally {
    killChild(child);
    await exited(child);
  }
}

async function aliasingRun(exe: string, halfMs: number, rate: number, jitter: number | 'kernel'): Promise<{ share: number; n: number }> {
  const child = spawn(exe, [join(WORKLOADS, 'periodic.py'), String(halfMs), String(SECONDS + 5)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new LineReader(child).next('periodic ready');
    const p = jitter === 'kernel' ? await sampleProcessInKernel(child.pid!, { rateHz: rate, durationS: SECONDS }) : await sampleProcess(child.pid!, { rateHz: rate, durationS: SECONDS, jitter });
    const s = shares(p, ['a', 'b']);
    const ab = s.shares[0]! + s.shares[1]!;
    return { share: s.shares[0]! / ab, n: s.n };
  } finally {
    killChild(child);
    await exited(child);
  }
}

const pts = (x: number) => (100 * x).toFixed(1);

async function main(): Promise<void> {
  console.log(`sampler CPU attribution and aliasing — ${SECONDS} s per run; ${machineLine()}`);
  const pys = benchPythons().filter((p) => p.label.startsWith('pyenv') && (!ONLY_PY || `3.${p.minor}` === ONLY_PY));
  if (!ONLY || ONLY === 'saturation') {
    console.log(`\n1. every CPU busy (${availableParallelism()} busy loops), sleepwork.py at ${RATE} Hz: share of on-CPU samples vs share of thread CPU (points)`);
    console.log('python  rule      ' + FUNCS.map((f) => `${f} true/got`.padStart(18)).join('') + '   max error  max z  samples  waiting  judged by task clock / sched');
    const stop = saturate();
    try {
      for (const py of pys) {
        for (const rule of KERNEL ? (['runnable', 'moving', 'kernel'] as const) : (['runnable', 'moving'] as const)) {
          const r = await saturationRun(py.exe, rule);
          const errs = r.truth.map((t, i) => Math.abs(t - r.got[i]!));
          // z: the error in σ of a perfect sampler with this many samples (√(p(1−p)/n))
          const zs = r.truth.map((t, i) => errs[i]! / Math.sqrt(Math.max(t * (1 - t), 1e-4) / r.n));
          console.log(
            `3.${py.minor}`.padEnd(8) + rule.padEnd(10) + FUNCS.map((_, i) => `${pts(r.truth[i]!)} / ${pts(r.got[i]!)}`.padStart(18)).join('') +
              pts(Math.max(...errs)).padStart(12) + Math.max(...zs).toFixed(1).padStart(7) + String(r.n).padStart(9) + String(r.waiting).padStart(9) + `${r.clock} / ${r.sched}`.padStart(16),
          );
        }
      }
    } finally {
      await stop();
    }
  }
  if (!ONLY || ONLY === 'aliasing') {
    console.log('\n2. periodic work: a() and b() alternate, H ms of CPU each; share of a() (truth 50 %)');
    console.log('python  H ms   rate  intervals    a() %    error   z (σ of n samples)  samples');
    for (const py of pys) {
      for (const [half, rate] of [
        [5, 100],
        [2.7, 200],
      ] as const) {
        for (const jitter of KERNEL ? ([0, 0.5, 'kernel'] as const) : ([0, 0.5] as const)) {
          const r = await aliasingRun(py.exe, half, rate, jitter);
          const sigma = Math.sqrt(0.25 / r.n);
          const err = r.share - 0.5;
          console.log(
            `3.${py.minor}`.padEnd(8) + String(half).padEnd(7) + String(rate).padStart(4) + (jitter === 'kernel' ? '' : jitter ? '  random ±50%' : '  fixed      ') +
              (jitter === 'kernel' ? '  kernel ×4  ' : '') +
              pts(r.share).padStart(8) + pts(err).padStart(9) + (err / sigma).toFixed(1).padStart(10) + String(r.n).padStart(20),
          );
        }
      }
    }
  }
}

if (import.meta.main) await main();
