/**
 * Benchmark: what the sampler costs.
 *
 * 1. Target slowdown, goals ≤ 1 % at 100 Hz and ≤ 3 % at 1 kHz. Workload
 *    bench/workloads/cpu_work.py, fixed work of ~2.5 s (rounds calibrated once), timed inside
 *    the workload (perf_counter and thread_time around the work only). Each pair runs the
 *    baseline (no sampler), and the CLI `pylens record -p PID -r 100` and `-r 1000` in a
 *    separate Node process, the order reversed every other pair; the work starts once the
 *    sampler holds /proc/PID/mem open. Prints the median over pairs of
 *    (sampled wall / baseline wall − 1), and the same for the target's thread CPU time. Nothing
 *    is pinned: on 2 CPUs the sampler and the target usually run side by side, as a user's would.
 * 2. Sampler CPU per sample, goal ≤ 20 µs: sampleProcess in this process on
 *    bench/workloads/deep.py (30 frames of recursion spinning at the bottom) for N ticks;
 *    process.cpuUsage() delta / samples, the fixed cost of a call (attach and final build,
 *    measured with one-tick calls) subtracted; the figure with it is printed too. Three ways: the real clock at 1 kHz and at 100 Hz (what a user pays: every tick is a timer
 *    wake-up), and a virtual clock whose sleeps return at once (ticks back to back: the cost
 *    of walking and recording alone). Then the CPU of an empty setTimeout loop per wake-up,
 *    the floor of any timer-driven tick here (large in a VM).
 * 3. Highest sustained rate: the same target at 1k, 2k, 5k, 10k, 20k Hz for 3 s each;
 *    achieved rate, missed ticks %, sampler CPU %; the highest rate with < 1 % missed.
 * 4. --cpu-prof: record the CLI at 5 kHz for 5 s with `node --cpu-prof` and print its top
 *    self-time functions (where the time of a tick goes).
 *
 *   node_modules/.bin/node bench/sampler-overhead.ts [--quick] [--pairs N] [--python 3.12] [--cpu-prof]
 *   node_modules/.bin/node bench/sampler-overhead.ts --only slowdown|per-sample|rates|cpu-prof
 * --quick: 2 pairs, 1000 ticks, 1 s per rate.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { sampleProcess, type SamplerClock } from '../src/capture/sampler/sampler.ts';
import { argv, argValue, busyWarning, exited, killChild, LineReader, machineLine, median, python, QUICK, startRecord, waitForAttach, WORKLOADS } from './sampler-common.ts';

const PAIRS = Number(argValue('--pairs') ?? (QUICK ? 2 : 5));
const TICKS = Number(argValue('--ticks') ?? (QUICK ? 1000 : 5000));
const RATE_SECONDS = Number(argValue('--rate-seconds') ?? (QUICK ? 1 : 3));
const WORK_SECONDS = Number(argValue('--work-seconds') ?? 2.5);
const MINOR = Number((argValue('--python') ?? '3.12').split('.')[1]);
const ONLY = argValue('--only');
const RATES = [1000, 2000, 5000, 10000, 20000];
const want = (part: string) => (ONLY ? ONLY === part : part !== 'cpu-prof' || argv.includes('--cpu-prof'));

const py = python(MINOR);
if (!py) {
  console.log(`no pyenv CPython 3.${MINOR} installed`);
  process.exit(1);
}
const tmp = mkdtempSync(join(tmpdir(), 'pylens-bench-overhead-'));
console.log(`sampler overhead — target ${py.label}; ${machineLine()}`);

interface WorkResult {
  wall: number;
  cpu: number;
  hot: number;
  rounds: number;
}

/** One run of cpu_work.py; `rate` undefined = baseline. */
async function runWork(rounds: number, rate: number | undefined): Promise<WorkResult & { samples?: string }> {
  const child = spawn(py!.exe, [join(WORKLOADS, 'cpu_work.py'), String(rounds), '--wait'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let rec: ReturnType<typeof startRecord> | undefined;
  try {
    const lines = new LineReader(child);
    await lines.next('cpu_work.py', 20_000);
    if (rate !== undefined) {
      rec = startRecord(child.pid!, ['-r', String(rate), '-o', join(tmp, `r${rate}.pylens`)]);
      await waitForAttach(rec.child.pid!, child.pid!);
    }
    child.stdin!.write('go\n');
    const res = JSON.parse(await lines.next('cpu_work.py result', 120_000)) as WorkResult;
    await exited(child);
    let samples: string | undefined;
    if (rec) {
      const code = await exited(rec.child);
      if (code !== 0) throw new Error(`pylens record exited with ${code}: ${rec.stderr()}`);
      samples = /pylens record: (.*)/.exec(rec.stderr())?.[1]?.trim();
    }
    return { ...res, ...(samples ? { samples } : {}) };
  } finally {
    killChild(child);
    killChild(rec?.child);
  }
}

async function slowdown(): Promise<void> {
  const probe = await runWork(40, undefined);
  const rounds = Math.max(10, Math.round((WORK_SECONDS / probe.wall) * 40));
  console.log(`\n1. target slowdown: ${rounds} rounds of cpu_work.py (~${((probe.wall / 40) * rounds).toFixed(1)} s), ${PAIRS} pairs, order alternating; CLI record in its own process`);
  const kinds: Array<number | undefined> = [undefined, 100, 1000];
  const wall = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  for (let i = 0; i < PAIRS; i++) {
    const order = i % 2 === 0 ? kinds : [...kinds].reverse();
    const got = new Map<number | undefined, WorkResult & { samples?: string }>();
    for (const k of order) got.set(k, await runWork(rounds, k));
    const b = got.get(undefined)!;
    const cells = [`base ${b.wall.toFixed(3)} s`];
    for (const r of [100, 1000]) {
      const s = got.get(r)!;
      const key = String(r);
      (wall.get(key) ?? wall.set(key, []).get(key)!).push(s.wall / b.wall - 1);
      (cpu.get(key) ?? cpu.set(key, []).get(key)!).push(s.cpu / b.cpu - 1);
      cells.push(`${r} Hz ${s.wall.toFixed(3)} s (${(100 * (s.wall / b.wall - 1)).toFixed(2)} %; ${s.samples ?? '?'})`);
    }
    console.log(`  pair ${i + 1} [${order.map((k) => (k === undefined ? 'base' : `${k}`)).join(', ')}]: ${cells.join(' | ')}`);
  }
  const warn = busyWarning();
  if (warn) console.log(`  ${warn}`);
  const goal: Record<string, number> = { '100': 1, '1000': 3 };
  for (const r of ['100', '1000']) {
    const w = median(wall.get(r)!);
    const c = median(cpu.get(r)!);
    console.log(
      `  ${r.padStart(4)} Hz: median slowdown ${(100 * w).toFixed(2)} % wall (pairs: ${wall.get(r)!.map((x) => (100 * x).toFixed(1)).join(', ')}), ` +
        `${(100 * c).toFixed(2)} % thread CPU — ${100 * w <= goal[r]! ? 'meets' : 'MISSES'} ${goal[r]} %`,
    );
  }
}

async function startDeep(): Promise<{ child: ReturnType<typeof spawn>; pid: number }> {
  const child = spawn(py!.exe, [join(WORKLOADS, 'deep.py'), '30'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new LineReader(child).next('deep.py', 20_000);
  return { child, pid: child.pid! };
}

/** A clock whose sleeps return at once: ticks run back to back, no timer wake-ups. */
function virtualClock(): SamplerClock {
  let t = 0;
  return {
    nowNs: () => t,
    sleepUntilNs(d) {
      t = Math.max(t, d);
      return Promise.resolve();
    },
  };
}

/** CPU of an empty setTimeout(ms) loop per wake-up, in µs: the floor of any timer-driven tick on this machine. */
async function wakeupCostUs(ms: number, n: number): Promise<number> {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, ms));
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

async function perSample(): Promise<void> {
  const deep = await startDeep();
  try {
    const rate = 1000;
    console.log(`\n2. sampler CPU per sample: deep.py (stack of 32 frames: <module>, 30 × descend, spin), ${TICKS} ticks, in-process sampleProcess; goal 20 µs`);
    const cases: Array<{ label: string; rate: number; clock?: SamplerClock }> = [
      { label: `real clock ${rate} Hz`, rate },
      { label: 'real clock 100 Hz', rate: 100 },
      { label: 'back to back (virtual clock)', rate, clock: virtualClock() },
    ];
    // fixed cost of a call (attach: ELF symbols, maps, layout; final build), from one-tick calls
    const fixedUs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c0 = process.cpuUsage();
      await sampleProcess(deep.pid, { rateHz: rate, durationS: 1 / rate, clock: virtualClock() });
      const cu = process.cpuUsage(c0);
      fixedUs.push(cu.user + cu.system);
    }
    const fixed = median(fixedUs);
    console.log(`  one-tick call (attach + 1 tick + build): ${(fixed / 1000).toFixed(1)} ms CPU (median of 3), subtracted below for the per-sample cost`);
    for (const c of cases) {
      const ticks = c.rate === 100 ? Math.max(100, Math.round(TICKS / 10)) : TICKS;
      for (let round = 0; round < 2; round++) {
        const c0 = process.cpuUsage();
        const p = await sampleProcess(deep.pid, { rateHz: c.rate, durationS: ticks / c.rate, ...(c.clock ? { clock: virtualClock() } : {}) });
        const cu = process.cpuUsage(c0);
        const n = Math.max(1, p.meta.sampleCount);
        const whole = (cu.user + cu.system) / n;
        const us = (cu.user + cu.system - fixed) / Math.max(1, n - 1);
        const depth = p.samples.length ? depthOf(p, p.samples.stack[p.samples.length - 1]!) : 0;
        console.log(
          `  ${c.label.padEnd(29)} run ${round + 1}: ${p.meta.sampleCount} samples (${p.meta.extra?.ticks} ticks, ${p.meta.extra?.missedTicks} missed, depth ${depth}), ` +
            `CPU ${((cu.user + cu.system) / 1000).toFixed(0)} ms (user ${(cu.user / 1000).toFixed(0)}, sys ${(cu.system / 1000).toFixed(0)}) → ` +
            `${us.toFixed(1)} µs/sample (${whole.toFixed(1)} with attach and build) — ${us <= 20 ? 'meets' : 'MISSES'} 20 µs`,
        );
      }
    }
    const w1 = await wakeupCostUs(1, QUICK ? 500 : 2000);
    const w10 = await wakeupCostUs(10, QUICK ? 50 : 200);
    console.log(`  for scale, an empty setTimeout loop costs ${w1.toFixed(0)} µs CPU per wake-up at 1 ms and ${w10.toFixed(0)} µs at 10 ms on this machine`);
  } finally {
    killChild(deep.child);
  }
}

function depthOf(p: import('../src/model/profile.ts').Profile, s: number): number {
  let d = 0;
  for (; s >= 0; s = p.stacks.parent[s]!) d++;
  return d;
}

async function rates(): Promise<void> {
  const deep = await startDeep();
  try {
    console.log(`\n3. highest sustained rate: deep.py, ${RATE_SECONDS} s per rate, in-process sampleProcess (setTimeout-based waiting)`);
    let best = 0;
    for (const rate of RATES) {
      const c0 = process.cpuUsage();
      const p = await sampleProcess(deep.pid, { rateHz: rate, durationS: RATE_SECONDS });
      const c = process.cpuUsage(c0);
      const ex = p.meta.extra ?? {};
      const ticks = Number(ex.ticks ?? 0);
      const missed = Number(ex.missedTicks ?? 0);
      const missedPct = (100 * missed) / Math.max(1, ticks + missed);
      if (missedPct < 1) best = rate;
      console.log(
        `  ${String(rate).padStart(5)} Hz asked: ${Number(ex.achievedRateHz ?? 0).toFixed(0).padStart(5)} Hz achieved, ${missedPct.toFixed(1).padStart(5)} % ticks missed, ` +
          `sampler CPU ${(100 * (p.meta.overhead?.fraction ?? 0)).toFixed(0)} % of a core, ${((c.user + c.system) / Math.max(1, p.meta.sampleCount)).toFixed(1)} µs/sample`,
      );
    }
    console.log(`  highest rate with < 1 % missed ticks: ${best ? `${best} Hz` : 'none of them'}`);
  } finally {
    killChild(deep.child);
  }
}

async function cpuProf(): Promise<void> {
  const deep = await startDeep();
  const dir = join(tmp, 'cpuprof');
  try {
    const rate = 5000;
    const secs = QUICK ? 2 : 5;
    console.log(`\n4. where a tick goes: node --cpu-prof, CLI record at ${rate} Hz for ${secs} s on deep.py`);
    const rec = startRecord(deep.pid, ['-r', String(rate), '-d', String(secs), '-o', join(tmp, 'prof.pylens')], ['--cpu-prof', '--cpu-prof-dir', dir]);
    const code = await exited(rec.child);
    if (code !== 0) throw new Error(`pylens record exited with ${code}: ${rec.stderr()}`);
    console.log(`  ${rec.stderr().trim()}`);
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('no .cpuprofile written');
    printTopSelf(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile, 18);
  } finally {
    killChild(deep.child);
  }
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time per function over the sampling phase only: from the first to the last profile
 * sample taken inside the walker (start-up, attach and the final export are left out).
 */
function printTopSelf(prof: CpuProfile, n: number): void {
  const label = new Map<number, string>();
  const parent = new Map<number, number>();
  const name = new Map<number, string>();
  for (const nd of prof.nodes) {
    const cf = nd.callFrame;
    const where = cf.url ? ` ${basename(cf.url)}:${cf.lineNumber + 1}` : '';
    label.set(nd.id, `${cf.functionName || '(anonymous)'}${where}`);
    name.set(nd.id, cf.functionName);
    for (const c of nd.children ?? []) parent.set(c, nd.id);
  }
  const inWalker = (id: number): boolean => {
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) if (/^walk(Threads|Stack)$/.test(name.get(x) ?? '')) return true;
    return false;
  };
  let first = -1;
  let last = -1;
  for (let i = 0; i < prof.samples.length; i++) {
    if (inWalker(prof.samples[i]!)) {
      if (first < 0) first = i;
      last = i;
    }
  }
  if (first < 0) {
    console.log('  no profile sample inside the walker');
    return;
  }
  const self = new Map<string, number>();
  let total = 0;
  for (let i = first; i <= last; i++) {
    const dt = prof.timeDeltas[i + 1] ?? 0; // the delta that follows a sample is the time spent in it
    const l = label.get(prof.samples[i]!) ?? '?';
    self.set(l, (self.get(l) ?? 0) + dt);
    total += dt;
  }
  const idle = self.get('(idle)') ?? 0;
  console.log(`  top self time over the sampling phase (${(total / 1e3).toFixed(0)} ms, of which ${((100 * idle) / total).toFixed(0)} % idle; % of the non-idle time):`);
  for (const [l, t] of [...self.entries()].filter(([l]) => l !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, n)) {
    console.log(`    ${((100 * t) / (total - idle)).toFixed(1).padStart(5)} %  ${(t / 1e3).toFixed(0).padStart(6)} ms  ${l}`);
  }
}

try {
  if (want('slowdown')) await slowdown();
  if (want('per-sample')) await perSample();
  if (want('rates')) await rates();
  if (want('cpu-prof')) await cpuProf();
} catch (e) {
  console.log(`failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
