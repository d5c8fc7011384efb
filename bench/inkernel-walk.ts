/**
 * Benchmark (feasibility, issue 12 part 5): what a Python stack walk made in the kernel costs,
 * against the C floor of sampler-floor.ts, side by side in one run.
 *
 * The walk: a bpftrace `profile:hz` probe on every CPU, filtered on the target's PID, follows
 * deep.py's frame chain on CPython 3.12 (the thread state's cframe → current frame, then
 * `previous`, 32 frames) reading user memory at the interrupted moment, and counts each stack
 * of code-object addresses in an in-kernel map (two maps of 16 keys: a bpftrace tuple key has
 * a size limit). Nothing goes to user space per sample: bpftrace prints the maps at the end.
 * The thread being walked is the one the interrupt stopped, so the walk cannot tear, and only
 * a thread on a CPU is walked (what CPU mode asks); the probe fires at a fixed period (the
 * sampler randomises its intervals against aliasing: a probe at a multiple of the rate thinned
 * at random in the program would do it).
 *
 * Printed per rate: the floor's CPU, bpftrace's process CPU (schedstat, ns), the BPF
 * program's own run time (kernel.bpf_stats_enabled: run_time_ns / run_cnt of the perf-event
 * programs, time taken from the interrupted tasks), their sum and its ratio to the floor, and
 * the distinct stacks counted (1 expected: deep.py spins at a fixed depth). What is not built:
 * naming the code objects (pylens reads them from /proc/PID/mem, cached), line numbers (the
 * instruction pointer per frame), other CPythons' layouts, threads' identities.
 *
 *   node_modules/.bin/node bench/inkernel-walk.ts [--seconds 10] [--rates 100,1000]
 *
 * Needs root, bpftrace, bpftool, gcc and pyenv CPython 3.12.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadsCpuNs } from '../src/capture/ebpf/pywalk.ts';
import { layoutFor } from '../src/capture/sampler/layouts/index.ts';
import { locateRuntime } from '../src/capture/sampler/runtime.ts';
import { ProcessSampler } from '../src/capture/sampler/session.ts';
import { argValue, exited, killChild, LineReader, machineLine, python, ROOT, sleep, WORKLOADS } from './sampler-common.ts';

const SECONDS = Number(argValue('--seconds') ?? 10);
const RATES = (argValue('--rates') ?? '100,1000').split(',').map(Number);
const DEPTH = 32;

/** CPU time of every thread of `pid`, ms */
const cpuMs = (pid: number): number => threadsCpuNs(pid) / 1e6;

/** run time and runs of the perf-event BPF programs loaded now */
function bpfRuns(): { ns: number; runs: number } {
  const progs = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j']).toString()) as { type?: string; run_time_ns?: number; run_cnt?: number }[];
  let ns = 0;
  let runs = 0;
  for (const p of progs) {
    if (p.type !== 'perf_event') continue;
    ns += p.run_time_ns ?? 0;
    runs += p.run_cnt ?? 0;
  }
  return { ns, runs };
}

/** the bpftrace program: deep.py's stack walked in the kernel at `rate` Hz, stacks counted in maps */
function walkProgram(pid: number, tstate: number, rate: number): string {
  const L = layoutFor(3, 12)!;
  let body = `  $f = *(uint64*)uptr(*(uint64*)uptr(${tstate + L.tstate.cframe!}) + ${L.cframe.current_frame!});\n`;
  const keys: string[] = [];
  for (let i = 0; i < DEPTH; i++) {
    body += `  $c${i} = (uint64)0; if ($f != 0) { $c${i} = *(uint64*)uptr($f + ${L.frame.code}); $f = *(uint64*)uptr($f + ${L.frame.previous}); }\n`;
    keys.push(`$c${i}`);
  }
  return `profile:hz:${rate} /pid == ${pid}/ {\n${body}  @top[${keys.slice(0, 16).join(', ')}] = count();\n  @bottom[${keys.slice(16).join(', ')}] = count();\n}\n`;
}

async function main(): Promise<void> {
  const py = python(12);
  if (!py) throw new Error('no pyenv CPython 3.12');
  const tmp = mkdtempSync(join(tmpdir(), 'pylens-inkernel-'));
  const floorBin = join(tmp, 'floor');
  execFileSync('gcc', ['-O2', '-o', floorBin, join(ROOT, 'bench/floor/floor.c')]);
  const statsWas = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'latin1').trim();
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  const target = spawn(py.exe, [join(WORKLOADS, 'deep.py'), '30'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new LineReader(target).next('deep.py');
    const pid = target.pid!;
    const s = ProcessSampler.attach(pid);
    const tstate = s.walk()[0]!.tstate;
    s.close();
    const addr = locateRuntime(pid).runtimeAddress;
    console.log(`in-kernel walk (bpftrace, ${DEPTH} frames, counted in maps) against the C floor — target ${py.label} deep.py (30 frames, one thread); ${SECONDS} s a rate; ${machineLine()}`);
    console.log('rate    floor CPU   bpftrace process   BPF program (µs a run)   in-kernel walk   ratio   stacks');
    for (const rate of RATES) {
      const prog = join(tmp, 'walk.bt');
      writeFileSync(prog, walkProgram(pid, tstate, rate));
      const bt = spawn('bpftrace', [prog], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      bt.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      let err = '';
      bt.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const floor = spawn(floorBin, [String(pid), String(rate), String(SECONDS + 15), `0x${addr.toString(16)}`], { stdio: 'inherit' });
      try {
        // bpftrace compiles and attaches in ~1–2 s; both warm up
        await sleep(3000);
        const f0 = cpuMs(floor.pid!);
        const b0 = cpuMs(bt.pid!);
        const p0 = bpfRuns();
        const t0 = performance.now();
        await sleep(SECONDS * 1000);
        const f1 = cpuMs(floor.pid!);
        const b1 = cpuMs(bt.pid!);
        const p1 = bpfRuns();
        const wall = performance.now() - t0;
        bt.kill('SIGINT');
        await exited(bt);
        const floorShare = (f1 - f0) / wall;
        const btShare = (b1 - b0) / wall;
        const progShare = (p1.ns - p0.ns) / 1e6 / wall;
        const perRun = (p1.ns - p0.ns) / Math.max(1, p1.runs - p0.runs) / 1000;
        const stacks = out.split('\n').filter((l) => l.startsWith('@top[')).length;
        if (stacks === 0) console.log(`(bpftrace printed no stack: ${err.trim().split('\n').slice(-2).join(' ')})`);
        const walk = btShare + progShare;
        console.log(
          `${String(rate).padEnd(8)}${(100 * floorShare).toFixed(2).padStart(7)} %   ${(100 * btShare).toFixed(2).padStart(12)} %   ${(100 * progShare).toFixed(3).padStart(10)} % (${perRun.toFixed(2)})   ${(100 * walk).toFixed(2).padStart(10)} %   ${(walk / floorShare).toFixed(2).padStart(5)}×   ${stacks}`,
        );
      } finally {
        killChild(bt);
        killChild(floor);
        await exited(floor);
      }
    }
  } finally {
    killChild(target);
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsWas);
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
