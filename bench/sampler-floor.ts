/**
 * Benchmark: what `pylens record` costs against the floor any sampler pays (issue 12, part 5).
 *
 * The floor is bench/floor/floor.c, built here with gcc: wake at absolute deadlines
 * (clock_nanosleep TIMER_ABSTIME), then 6 preads of /proc/PID/mem, nothing else. The target
 * is bench/workloads/deep.py (a single thread, 30 frames of recursion spinning at the
 * bottom) on CPython 3.12. Side by side in one run, alternating, for each rate (100 Hz and
 * 1 kHz): the floor and `pylens record -p PID -r RATE` (the CLI, in its own Node process),
 * each measured in steady state: the CPU time of all its threads (schedstat, ns) over a
 * window after a warm-up, as a share of one core. Prints both, the ratio (goal ≤ 1.5×), and
 * the sampler's RSS at the start and end of the window (memory must not grow). A third
 * column: the floor's own loop run by Node (bench/floor/node-floor.ts: koffi
 * clock_nanosleep + one process_vm_readv of the same 6 ranges), what any sampler whose loop
 * runs in Node pays before it walks a frame. A fourth: `pylens record --backend kernel`
 * (the stack walked in the kernel by a bpftrace program, capture/ebpf/pywalk.ts), whose cost
 * is pylens's CPU + bpftrace's CPU + the BPF program's own run time in the kernel (its
 * run_time_ns, time taken from the interrupted threads; pylens turns kernel.bpf_stats_enabled
 * on while it records). Skipped with --no-kernel or where bpftrace is missing.
 *
 *   node_modules/.bin/node bench/sampler-floor.ts [--quick] [--window S] [--warmup S] [--rounds N] [--python 3.12] [--rates 100,1000] [--together]
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { bpfProgFds, bpfRunNs } from '../src/capture/ebpf/pywalk.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { locateRuntime } from '../src/capture/sampler/runtime.ts';
import { argValue, exited, killChild, LineReader, machineLine, median, procStatusKb, python, QUICK, ROOT, sleep, startRecord, waitForAttach, WORKLOADS } from './sampler-common.ts';

const WINDOW_S = Number(argValue('--window') ?? (QUICK ? 3 : 6));
// a JIT reaches its steady state after ~1,000 ticks (V8 tiers code up by use): at 100 Hz
// that is 10 s; the floor, compiled ahead, gets the same warm-up
const WARMUP_S = Number(argValue('--warmup') ?? (QUICK ? 3 : 10));
const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 1 : 3));
const MINOR = Number((argValue('--python') ?? '3.12').split('.')[1]);
const RATES = (argValue('--rates') ?? '100,1000').split(',').map(Number);
/**
 * --together: the three run at the same time on the target, each round, and are measured
 * over the same window — this VM's cost per wake-up drifts by 2× within minutes (noisy
 * neighbours), which alternating windows of 16 s do not cancel; three samplers sharing one
 * core for ~1 % of its time each seldom meet
 */
const TOGETHER = process.argv.includes('--together');
const KERNEL = !process.argv.includes('--no-kernel') && spawnSync('bpftrace', ['--version']).status === 0;

/** the bpftrace child of a `record --backend kernel` process (through setpriv/prlimit, which exec) */
async function bpftraceOf(parent: number, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'latin1');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === parent && stat.includes('(bpftrace)') && bpfProgFds(Number(d)).length > 0) return Number(d);
      } catch {
        /* gone */
      }
    }
    await sleep(100);
  }
  throw new Error(`record --backend kernel (pid ${parent}) started no bpftrace within ${timeoutMs / 1000} s`);
}

/** `record --backend kernel` on `pid`: its process, its bpftrace, and their cost so far (ns) */
async function startKernel(pid: number, rate: number, out: string): Promise<{ child: ChildProcess; costNs: () => number }> {
  const rec = startRecord(pid, ['--backend', 'kernel', '-r', String(rate), '-q', '-o', out]);
  const bt = await bpftraceOf(rec.child.pid!);
  return { child: rec.child, costNs: () => processCpuNs(rec.child.pid!) + processCpuNs(bt) + bpfRunNs(bt).ns };
}

/** CPU time of every thread of `pid`, ns (from /proc/PID/task/TID/schedstat). */
export function processCpuNs(pid: number): number {
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      /* thread gone */
    }
  }
  return sum;
}

/** CPU share of one core and RSS (kB, start and end) of `pid` over WINDOW_S after WARMUP_S. */
async function steady(pid: number): Promise<{ cpu: number; rss0: number; rss1: number }> {
  return (await steadyAll([pid]))[0]!;
}

/** `steady` for several processes over one window; `costs`: other costs (ns so far) measured over it, as shares */
async function steadyAll(pids: number[], costs: (() => number)[] = []): Promise<{ cpu: number; rss0: number; rss1: number }[] & { costs?: number[] }> {
  await sleep(WARMUP_S * 1000);
  const c0 = pids.map(processCpuNs);
  const k0 = costs.map((c) => c());
  const t0 = performance.now();
  const rss0 = pids.map((p) => procStatusKb(p)?.VmRSS ?? NaN);
  await sleep(WINDOW_S * 1000);
  const c1 = pids.map(processCpuNs);
  const k1 = costs.map((c) => c());
  const t1 = performance.now();
  const out: { cpu: number; rss0: number; rss1: number }[] & { costs?: number[] } = pids.map((p, i) => ({ cpu: (c1[i]! - c0[i]!) / ((t1 - t0) * 1e6), rss0: rss0[i]!, rss1: procStatusKb(p)?.VmRSS ?? NaN }));
  out.costs = costs.map((_, i) => (k1[i]! - k0[i]!) / ((t1 - t0) * 1e6));
  return out;
}

async function main(): Promise<void> {
  const py = python(MINOR);
  if (!py) throw new Error(`no pyenv CPython 3.${MINOR}`);
  const tmp = mkdtempSync(join(tmpdir(), 'pylens-floor-'));
  const floorBin = join(tmp, 'floor');
  execFileSync('gcc', ['-O2', '-o', floorBin, join(ROOT, 'bench/floor/floor.c')]);
  const target = spawn(py.exe, [join(WORKLOADS, 'deep.py'), '30'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let runner: ChildProcess | undefined;
  try {
    await new LineReader(target).next('deep.py');
    const pid = target.pid!;
    // somewhere readable and hot in the target: the interpreter state
    const addr = locateRuntime(pid).runtimeAddress;
    console.log(`sampler cost against the floor — target ${py.label} deep.py (30 frames, one thread); window ${WINDOW_S} s after ${WARMUP_S} s, ${ROUNDS} round(s), ${TOGETHER ? 'the three at once' : 'alternating'}; ${machineLine()}`);
    console.log(`rate    floor CPU   Node floor (ratio)   pylens CPU   ratio   pylens RSS (start → end of window)${KERNEL ? '   --backend kernel (ratio)' : ''}`);
    for (const rate of RATES) {
      const floors: number[] = [];
      const nodeFloors: number[] = [];
      const ours: number[] = [];
      const kernels: number[] = [];
      let rss = '';
      for (let r = 0; r < ROUNDS && TOGETHER; r++) {
        const floor = spawn(floorBin, [String(pid), String(rate), String(WARMUP_S + WINDOW_S + 40), `0x${addr.toString(16)}`], { stdio: 'inherit' });
        const node = spawn(process.execPath, [join(ROOT, 'bench/floor/node-floor.ts'), String(pid), String(rate), String(WARMUP_S + WINDOW_S + 40), String(addr)], { stdio: 'inherit' });
        const rec = startRecord(pid, ['-r', String(rate), '-q', '-o', join(tmp, 'out.pylens')]);
        let kern: Awaited<ReturnType<typeof startKernel>> | undefined;
        try {
          await waitForAttach(rec.child.pid!, pid);
          if (KERNEL) kern = await startKernel(pid, rate, join(tmp, 'kernel.pylens'));
          const s = await steadyAll([floor.pid!, node.pid!, rec.child.pid!], kern ? [kern.costNs] : []);
          floors.push(s[0]!.cpu);
          nodeFloors.push(s[1]!.cpu);
          ours.push(s[2]!.cpu);
          if (kern) kernels.push(s.costs![0]!);
          rss = `${(s[2]!.rss0 / 1024).toFixed(0)} → ${(s[2]!.rss1 / 1024).toFixed(0)} MB`;
        } finally {
          const all = [floor, node, rec.child, ...(kern ? [kern.child] : [])];
          for (const c of all) killChild(c);
          for (const c of all) await exited(c);
        }
      }
      for (let r = 0; r < ROUNDS && !TOGETHER; r++) {
        const order = KERNEL ? (['floor', 'node', 'pylens', 'kernel'] as const) : (['floor', 'node', 'pylens'] as const);
        for (const which of r % 2 ? [...order].reverse() : order) {
          if (which === 'kernel') {
            const k = await startKernel(pid, rate, join(tmp, 'kernel.pylens'));
            runner = k.child;
            const s = await steadyAll([], [k.costNs]);
            kernels.push(s.costs![0]!);
          } else if (which === 'floor') {
            runner = spawn(floorBin, [String(pid), String(rate), String(WARMUP_S + WINDOW_S + 40), `0x${addr.toString(16)}`], { stdio: 'inherit' });
            const s = await steady(runner.pid!);
            floors.push(s.cpu);
          } else if (which === 'node') {
            runner = spawn(process.execPath, [join(ROOT, 'bench/floor/node-floor.ts'), String(pid), String(rate), String(WARMUP_S + WINDOW_S + 40), String(addr)], { stdio: 'inherit' });
            const s = await steady(runner.pid!);
            nodeFloors.push(s.cpu);
          } else {
            const rec = startRecord(pid, ['-r', String(rate), '-q', '-o', join(tmp, 'out.pylens')]);
            runner = rec.child;
            await waitForAttach(runner.pid!, pid);
            const s = await steady(runner.pid!);
            ours.push(s.cpu);
            rss = `${(s.rss0 / 1024).toFixed(0)} → ${(s.rss1 / 1024).toFixed(0)} MB`;
          }
          killChild(runner);
          await exited(runner);
        }
      }
      const f = median(floors);
      const nf = median(nodeFloors);
      const o = median(ours);
      const k = median(kernels);
      console.log(`${String(rate).padEnd(8)}${(100 * f).toFixed(2).padStart(7)} %   ${(100 * nf).toFixed(2).padStart(8)} % (${(nf / f).toFixed(2)}×)   ${(100 * o).toFixed(2).padStart(8)} %   ${(o / f).toFixed(2).padStart(5)}×   ${rss}${KERNEL ? `   ${(100 * k).toFixed(2).padStart(8)} % (${(k / f).toFixed(2)}×)` : ''}`);
    }
  } finally {
    killChild(runner);
    killChild(target);
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
