/**
 * Python stacks walked in the kernel (`pylens record --backend kernel`): a bpftrace
 * `profile:hz` program follows the interrupted thread's frame chain in the target's memory,
 * at the moment the timer interrupted it, and counts each stack in a map. Nothing reaches
 * user space per sample; pylens reads the maps every PRINT_EVERY_S (2 s) and names the code objects
 * itself (through the attached sampler's memory and code cache). Costs: no system call per
 * sample, no wake-up of pylens per sample — see bench/sampler-floor.ts.
 *
 * What the program does at each firing on a CPU running one of the target's threads:
 * 1. Thinning: the timer fires at `oversample` × the rate on every CPU and each firing is kept
 *    with probability 1/oversample (`rand`), so intervals are random multiples of the fine
 *    period, geometric with mean 1/rate, and periodic work cannot lock onto the sampling.
 * 2. The thread's state: `@ts[tid]`, checked by its `thread_id` (pthread_self, which is the
 *    thread's FS base on x86-64 glibc and musl); else found by walking every interpreter's
 *    thread list (up to MAX_THREADS) for that FS base. A thread that is not Python's is
 *    searched again at most once a second (`@nopy`).
 * 3. The stack: from the thread state's current frame (3.8–3.10 `frame`, 3.11/3.12
 *    `cframe->current_frame`, 3.13 `current_frame`) along `f_back`/`previous`, up to
 *    `maxDepth` frames, each packed in one u64 (walker.ts FRAME_WORD_*: code object, owner or
 *    executing flag, instruction) and folded into a 64-bit hash.
 * 4. `@na`/`@nb[generation, tid, fsbase, hash]` count it: the generation is the number of
 *    printouts so far (`@gen`, one every PRINT_EVERY_S), and the maps take turns by its
 *    parity — one is counted into while the other is printed and cleared (a map printed while
 *    it grows loses entries, seen here); with the generation in the key a map printed twice
 *    counts once. A hash not seen lately (`@seen`, cleared every 5 printouts) has its frames
 *    printed at once (`F hash i word`; `F hash 65535 depth|cut<<16` first) by a second walk
 *    (the thread is still stopped: the same chain), and pylens names their code objects as
 *    they come, while the process lives — a stack first seen in a program's last seconds
 *    could not be named after its exit.
 *
 * A walk cannot tear: the thread is stopped in the interrupt for the length of it (another
 * thread holding the GIL could only change frames this thread does not run). Only a thread
 * that is on a CPU is sampled: CPU mode by construction (`CPU_RULE` below).
 */
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostEnvironment } from '../../model/environment.ts';
import type { Profile } from '../../model/profile.ts';
import { withThreadRoots } from '../../model/query.ts';
import type { Layout } from '../sampler/layouts/types.ts';
import { ProcessGoneError } from '../sampler/memory.ts';
import { Recorder, type SampleOptions } from '../sampler/sampler.ts';
import { gatePart, ProcessSampler, withoutGate, type ThreadSample } from '../sampler/session.ts';
import { DEPTH_BOUND_WHY, FRAME_WORD_CODE_MASK, FRAME_WORD_OFFSET_SHIFT, type CodeCache, type WordsWalk } from '../sampler/walker.ts';
import { bpftraceReady, EbpfError, processAlive, spawnTracer, tracerAttached, type Tracer } from './tool.ts';

/** How a kernel-walk profile says what on-CPU means (its meta's `cpuRule`). */
export const KERNEL_CPU_RULE = "on-CPU = the thread the kernel's timer interrupted on a CPU (bpftrace profile:hz): only a running thread is ever sampled";
/** frames a kernel walk follows before it marks the stack `[truncated]` */
export const KERNEL_MAX_DEPTH = 160;
/** thread states searched for the interrupted thread's */
const MAX_THREADS = 256;
/** the timer fires this many times faster than the rate; each firing is kept with probability 1/this */
export const KERNEL_OVERSAMPLE = 4;
const SEED = 1469598103934665603n;
const PRIME = 1099511628211n;
/**
 * bpftrace prints its maps this often, s, and pylens wakes only then: each wake-up of Node
 * costs ~1–3 ms of cold JS here, bpftrace's prints ~0.1 ms a second — at 100 Hz these are
 * most of the cost (bench/sampler-floor.ts). Samples carry the time of the print that gave them.
 */
export const PRINT_EVERY_S = 2;
/** a new stack's line `F hash META_INDEX value`: depth | cut << 16 */
const META_INDEX = 65535;

export interface KernelWalkProgramOptions {
  pid: number;
  /** `_PyRuntime` */
  runtimeAddress: number;
  layout: Layout;
  minor: number;
  rateHz: number;
  oversample?: number;
  maxDepth?: number;
}

export function kernelIntervals(rateHz: number, oversample = KERNEL_OVERSAMPLE): string {
  const fine = 1000 / (rateHz * oversample);
  return oversample <= 1
    ? `fixed: every ${(1000 / rateHz).toPrecision(3)} ms (the kernel's timer, bpftrace profile:hz)`
    : `random multiples of ${fine.toPrecision(3)} ms, geometric with mean ${(1000 / rateHz).toPrecision(3)} ms (the kernel's timer fires at ${oversample}× the rate on every CPU, bpftrace profile:hz; each firing on a target thread is kept with probability 1/${oversample})`;
}

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;
const CODE_MASK = hex(FRAME_WORD_CODE_MASK);

/** The bpftrace program (text). Throws RangeError for a version or machine it cannot walk. */
export function kernelWalkProgram(o: KernelWalkProgramOptions): string {
  const { layout: L, minor } = o;
  if (minor < 8 || minor > 13) throw new RangeError(`the kernel walk knows CPython 3.8–3.13, not 3.${minor}`);
  const hz = Math.round(o.rateHz * (o.oversample ?? KERNEL_OVERSAMPLE));
  if (!(hz >= 1 && hz <= 20_000)) throw new RangeError(`sampling rate ${o.rateHz} Hz × ${o.oversample ?? KERNEL_OVERSAMPLE} is out of range for the kernel's timer (1..20000 Hz)`);
  const keepOne = Math.max(1, Math.round(o.oversample ?? KERNEL_OVERSAMPLE));
  const depth = o.maxDepth ?? KERNEL_MAX_DEPTH;
  const T = L.tstate;
  const F = L.frame;
  const rd = (t: string, e: string) => `*(${t}*)uptr(${e})`;
  const u64 = (e: string) => rd('uint64', e);
  const first =
    minor <= 10
      ? `$f = ${u64(`$ts + ${T.frame}`)};`
      : minor <= 12
        ? `$f = ${u64(`$ts + ${T.cframe}`)}; if ($f != 0) { $f = ${u64(`$f + ${L.cframe.current_frame}`)}; }`
        : `$f = ${u64(`$ts + ${T.current_frame}`)};`;
  // branch-free (the verifier follows each branch of each step of the loops): the tag in the
  // code object's low 3 bits (an object is 8-aligned), the instruction in the top 17
  let word: string;
  if (minor <= 10) {
    const stateAt = minor <= 9 ? F.executing : F.state;
    if (stateAt == null || F.lasti == null) throw new RangeError(`the 3.${minor} layout lacks the frame state or f_lasti`);
    // f_lasti + 1 (−1: not started); 3.8/3.9 count bytes, 3.10 code units
    word = `$v = (${u64(`$f + ${F.code}`)} & ${CODE_MASK}) | ((uint64)${rd('uint8', `$f + ${stateAt}`)} & 7) | (((uint64)(${rd('int32', `$f + ${F.lasti}`)} + 1)) << ${FRAME_WORD_OFFSET_SHIFT});`;
  } else {
    if (F.instr_ptr == null || F.owner == null) throw new RangeError(`the 3.${minor} layout lacks the frame's instruction pointer or owner`);
    // (instruction pointer − code object) in code units
    word = `$c = ${u64(`$f + ${F.code}`)} & ${CODE_MASK};
        $v = $c | ((uint64)${rd('uint8', `$f + ${F.owner}`)} & 7) | (((${u64(`$f + ${F.instr_ptr}`)} - $c) >> 1) << ${FRAME_WORD_OFFSET_SHIFT});`;
  }
  const keep = keepOne > 1 ? `rand % ${keepOne} == 0` : '1';
  // a new stack's frames, by a second walk (the thread is still stopped: the same chain),
  // printed at once: pylens names its code objects while the process lives (a map read
  // every few seconds would be too late for a program's last seconds, or a short program)
  const store = `printf("F %llu ${META_INDEX} %llu\\n", $h, (uint64)$d | ($cut << 16));
        ${first}
        $i = 0;
        while ($i < ${depth}) {
          if ($i >= $d) { break; }
          ${word}
          printf("F %llu %d %llu\\n", $h, $i, $v);
          $f = ${u64(`$f + ${F.previous}`)};
          $i++;
        }`;
  return `// pylens: Python stacks walked in the kernel (CPython 3.${minor}, pid ${o.pid})
BEGIN { printf("pylens-ready %llu\\n", nsecs); }
profile:hz:${hz} /pid == ${Math.trunc(o.pid)}/
{
  if (${keep}) {
    $fs = (uint64)curtask->thread.fsbase;
    $ts = @ts[tid];
    if ($ts != 0) {
      if (${u64(`$ts + ${T.thread_id}`)} != $fs) { $ts = (uint64)0; }
    }
    if ($ts == 0 && nsecs - @nopy[tid] > 1000000000) {
      $in = ${u64(`${hex(o.runtimeAddress)} + ${L.runtime.interpreters_head}`)};
      $t = (uint64)0;
      if ($in != 0) { $t = ${u64(`$in + ${L.interp.threads_head}`)}; }
      $k = 0;
      while ($k < ${MAX_THREADS}) {
        if ($t == 0) {
          if ($in == 0) { break; }
          $in = ${u64(`$in + ${L.interp.next}`)};
          if ($in == 0) { break; }
          $t = ${u64(`$in + ${L.interp.threads_head}`)};
        } else {
          if (${u64(`$t + ${T.thread_id}`)} == $fs) { $ts = $t; break; }
          $t = ${u64(`$t + ${T.next}`)};
        }
        $k++;
      }
      if ($ts != 0) { @ts[tid] = $ts; } else { @nopy[tid] = nsecs; }
    }
    $g = @gen;
    if ($ts == 0) {
      if (($g & 1) == 0) { @na[$g, tid, $fs, (uint64)0] = count(); }
      if (($g & 1) == 1) { @nb[$g, tid, $fs, (uint64)0] = count(); }
    } else {
      ${first}
      $h = (uint64)${SEED};
      $d = 0;
      while ($d < ${depth}) {
        if ($f == 0) { break; }
        ${word}
        $h = ($h ^ $v) * ${PRIME};
        $f = ${u64(`$f + ${F.previous}`)};
        $d++;
      }
      // the depth through a map: unknown to the verifier from here, which then checks the
      // rest once, not once for every depth the loop can end at (measured: 42 k instructions
      // checked instead of over the 1 M limit)
      @dd[cpu] = $d;
      $d = @dd[cpu];
      $cut = (uint64)0;
      if ($f != 0) { $cut = (uint64)1; }
      $h = ($h ^ ((uint64)$d | ($cut << 16))) * ${PRIME};
      if ($h == 0) { $h = (uint64)1; }
      if (@seen[$h] == 0) {
        @seen[$h] = 1;
        ${store}
      }
      if (($g & 1) == 0) { @na[$g, tid, $fs, $h] = count(); }
      if (($g & 1) == 1) { @nb[$g, tid, $fs, $h] = count(); }
    }
  }
}
interval:s:${PRINT_EVERY_S} {
  @gen = @gen + 1;
  if ((@gen & 1) == 1) { print(@na); clear(@na); }
  if ((@gen & 1) == 0) { print(@nb); clear(@nb); }
  if (@gen % 5 == 0) { clear(@seen); clear(@nopy); }
}
// the target's last thread exits: bpftrace ends (printing its maps), and pylens with it
tracepoint:sched:sched_process_exit /pid == ${Math.trunc(o.pid)}/ { if (curtask->signal->live.counter == 0) { exit(); } }
END { printf("pylens-end %llu\\n", nsecs); }
`;
}

/** one stack's count since the last `take` */
export interface KernelStackCount {
  tid: number;
  /** pthread_self of the thread (its FS base) */
  ident: bigint;
  /** 0n: the thread has no Python thread state (a native thread) */
  hash: bigint;
  count: number;
}

export interface KernelStack {
  /** frame words, leaf first */
  words: bigint[];
  /** the walk stopped before the chain's end (depth bound or an unreadable frame) */
  cut: boolean;
}

const N_LINE = /^@n[ab]\[(\d+), (\d+), (-?\d+), (-?\d+)\]: (\d+)$/;
const FR_LINE = /^F (\d+) (\d+) (\d+)$/;
const u = (s: string): bigint => BigInt.asUintN(64, BigInt(s));

/** The program's printouts: counts per (generation, thread, stack), and the frames of new stacks. */
export class KernelWalkOutput {
  readyNs: number | undefined;
  endNs: number | undefined;
  /** lines that were none of the program's */
  skipped: string[] = [];
  /** `gen tid ident hash` → count */
  private latest = new Map<string, number>();
  private newestGen = 0;
  private taken = new Map<string, number>();
  private partial = new Map<bigint, { meta?: number; words: Map<number, bigint> }>();
  readonly stacks = new Map<bigint, KernelStack>();
  /** called at each count line (a printout of the counts is under way) */
  onCounts: (() => void) | undefined;
  /** called when a stack's frames have all come (at once: its code objects can be named while the process lives) */
  onStack: ((hash: bigint, stack: KernelStack) => void) | undefined;

  line(l: string): void {
    let m = N_LINE.exec(l);
    if (m) {
      const gen = Number(m[1]);
      const key = `${gen} ${m[2]} ${u(m[3]!)} ${u(m[4]!)}`;
      const n = Number(m[5]);
      // a generation's count grows until its map is printed and cleared; a map printed again
      // (at exit, bpftrace 0.17 may print one it has just printed) repeats it: the larger is kept
      if (n > (this.latest.get(key) ?? 0)) this.latest.set(key, n);
      if (gen > this.newestGen) this.newestGen = gen;
      this.onCounts?.();
      return;
    }
    m = FR_LINE.exec(l);
    if (m) {
      const h = u(m[1]!);
      let p = this.partial.get(h);
      const i = Number(m[2]);
      // the meta line comes first: a stack printed again (every few printouts, or by two CPUs at once) starts over
      if (i === META_INDEX || p === undefined) this.partial.set(h, (p = { words: new Map() }));
      if (i === META_INDEX) p.meta = Number(u(m[3]!));
      else p.words.set(i, u(m[3]!));
      if (p.meta !== undefined && p.words.size === (p.meta & 0xffff)) {
        const words: bigint[] = [];
        for (let j = 0; j < p.words.size; j++) words.push(p.words.get(j) ?? 0n);
        const stack = { words, cut: (p.meta >> 16) !== 0 };
        this.stacks.set(h, stack);
        this.partial.delete(h);
        this.onStack?.(h, stack);
      }
      return;
    }
    const r = /^pylens-(ready|end) (\d+)$/.exec(l);
    if (r) {
      if (r[1] === 'ready') this.readyNs = Number(r[2]);
      else this.endNs = Number(r[2]);
      return;
    }
    if (l.trim() === '' || /^Attaching \d+ probes/.test(l) || /^@(seen|ts|nopy|dd)\[|^@gen: /.test(l)) return;
    if (this.skipped.length < 5) this.skipped.push(l);
  }

  /**
   * Counts since the last call. A stack whose frames have not come yet waits for them
   * (`final`: it is given with no frames — `unresolved` — instead).
   */
  take(final = false): { counts: KernelStackCount[]; unresolved: number } {
    const counts: KernelStackCount[] = [];
    let unresolved = 0;
    for (const [key, n] of this.latest) {
      const was = this.taken.get(key) ?? 0;
      if (n <= was) continue;
      const [, tid, ident, hash] = key.split(' ');
      const h = BigInt(hash!);
      if (h !== 0n && !this.stacks.has(h)) {
        if (!final) continue;
        unresolved += n - was;
      }
      counts.push({ tid: Number(tid), ident: BigInt(ident!), hash: h, count: n - was });
      this.taken.set(key, n);
    }
    // generations long printed are done with (a stack still without frames waits in its own)
    for (const key of this.taken.keys()) {
      if (Number(key.slice(0, key.indexOf(' '))) < this.newestGen - 2 && this.taken.get(key) === this.latest.get(key)) {
        this.taken.delete(key);
        this.latest.delete(key);
      }
    }
    return { counts, unresolved };
  }
}

/**
 * CPU time of `pid`'s live threads (their schedstat: ns), 0 when it is gone. Not capture/perf's
 * `processCpuNs`: that takes /proc/PID/stat's utime + stime when they are more (10 ms ticks,
 * counting exited threads), and over a window of seconds a process using ~0.2 % of a core then
 * reads as using none (seen: bench/inkernel-walk.ts printed 0.00 % for bpftrace).
 */
export function threadsCpuNs(pid: number): number {
  let sum = 0;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        sum += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'latin1').split(' ')[0]);
      } catch {
        /* gone */
      }
    }
  } catch {
    /* gone */
  }
  return sum;
}

/** the file descriptors by which `pid` holds BPF programs (empty when it is gone) */
export function bpfProgFds(pid: number): number[] {
  const fds: number[] = [];
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:bpf-prog') fds.push(Number(fd));
      } catch {
        /* closed */
      }
    }
  } catch {
    /* gone */
  }
  return fds;
}

/**
 * Run time of the BPF programs `pid` holds at `fds` (fdinfo run_time_ns, kept while
 * kernel.bpf_stats_enabled is 1), ns.
 */
export function bpfRunNs(pid: number, fds: readonly number[] = bpfProgFds(pid)): { ns: number; runs: number } {
  let ns = 0;
  let runs = 0;
  for (const fd of fds) {
    try {
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
      ns += Number(/run_time_ns:\s*(\d+)/.exec(info)?.[1] ?? 0);
      runs += Number(/run_cnt:\s*(\d+)/.exec(info)?.[1] ?? 0);
    } catch {
      /* closed, or gone */
    }
  }
  return { ns, runs };
}

const STATS = '/proc/sys/kernel/bpf_stats_enabled';

export interface KernelWalk {
  output: KernelWalkOutput;
  tracer: Tracer;
  /** bpftrace's own CPU time so far, ns */
  tracerCpuNs(): number;
  /** the walk's run time in the kernel so far (undefined: the kernel keeps no BPF run times) */
  programNs(): { ns: number; runs: number } | undefined;
  /** stop bpftrace (it prints its maps) and restore what was changed; warnings */
  stop(): Promise<string[]>;
  /** resolves when bpftrace ends (the target exited, or stop) */
  ended: Promise<void>;
  program: string;
}

/**
 * Start the kernel walk; resolves once the probes are attached. Throws EbpfError (bpftrace
 * missing or not allowed, the target gone, the program refused) and RangeError (a version or
 * architecture the walk does not know).
 */
export async function startKernelWalk(o: KernelWalkProgramOptions): Promise<KernelWalk> {
  if (process.arch !== 'x64') throw new EbpfError(`the kernel walk finds a thread's Python state by its FS base, an x86-64 register; this is ${process.arch}`, 'use the default backend (--backend sampler)');
  if (!processAlive(o.pid)) throw new EbpfError(`process ${o.pid} does not exist`, 'check the PID with `ps -p PID`');
  const { bpftrace, facts, check } = bpftraceReady();
  const program = kernelWalkProgram(o);
  const dir = mkdtempSync(join(tmpdir(), 'pylens-kernel-walk-'));
  const file = join(dir, 'walk.bt');
  writeFileSync(file, program);
  // BPF run times: kept by the kernel only while this is 1; restored at stop
  let statsWas: string | undefined;
  try {
    statsWas = readFileSync(STATS, 'latin1').trim();
    if (statsWas !== '1') writeFileSync(STATS, '1');
  } catch {
    statsWas = undefined;
  }
  const restoreStats = () => {
    if (statsWas !== undefined && statsWas !== '1') {
      try {
        writeFileSync(STATS, statsWas);
      } catch {
        /* not ours to fix */
      }
      statsWas = '1';
    }
  };
  // PYLENS_KEEP_BPF=1 keeps the program, to run bpftrace on it by hand
  const removeProgram = () => {
    if (process.env.PYLENS_KEEP_BPF !== '1') rmSync(dir, { recursive: true, force: true });
  };
  const output = new KernelWalkOutput();
  // room for two seconds of new stacks' frames (bpftrace's default is 4,096 keys a map)
  const tracer = spawnTracer(bpftrace, [file], { onLine: (l) => output.line(l), raiseMemlock: check.raiseMemlock, env: { ...process.env, BPFTRACE_MAP_KEYS_MAX: '65536' } });
  const hint = `bpftrace ${file}`;
  await tracerAttached(tracer, () => output.readyNs !== undefined, {
    kernel: facts.kernel,
    hint,
    refused: 'bpftrace refused the kernel walk',
    fix: `use the default backend (--backend sampler); to see the whole message, run pylens with PYLENS_KEEP_BPF=1, then \`${hint}\``,
    cleanup: () => {
      restoreStats();
      removeProgram();
    },
  });
  let stopped: Promise<string[]> | undefined;
  // where bpftrace holds its programs, found once they are there
  let progFds: number[] = [];
  return {
    output,
    tracer,
    program,
    ended: tracer.done.then(() => {}),
    tracerCpuNs: () => threadsCpuNs(tracer.pid),
    programNs: () => {
      if (statsWas === undefined) return undefined;
      if (progFds.length === 0) progFds = bpfProgFds(tracer.pid);
      return bpfRunNs(tracer.pid, progFds);
    },
    stop() {
      stopped ??= (async () => {
        const { code, stderr } = await tracer.stop('SIGINT');
        restoreStats();
        removeProgram();
        const warnings = [...check.warnings];
        if (output.endNs === undefined) warnings.push(`bpftrace ended without running its END probe (exit ${code}): the last printout's samples may be missing`);
        const lost = /Lost (\d+) events/.exec(stderr);
        if (lost) warnings.push(`bpftrace lost ${lost[1]} events`);
        if (output.skipped.length) warnings.push(`bpftrace printed lines pylens did not understand, e.g. ${JSON.stringify(output.skipped[0])}`);
        return warnings;
      })();
      return stopped;
    },
  };
}

export interface KernelSampleOptions extends Omit<SampleOptions, 'idle' | 'async' | 'gilOnly' | 'subprocesses' | 'blocking' | 'weighted'> {
  /** the timer's oversampling (KERNEL_OVERSAMPLE) */
  oversample?: number;
  /** a program pylens launched, held at its start gate until a tick of the sampler finds it there */
  launched?: boolean;
}

/** the costs (bpftrace's CPU, the walk's run time) are read every this many drains, and at the end */
const COST_EVERY = 5;
const GONE_WHY = 'the process had ended before its code objects were read';
const NEVER_WHY = 'its frames never came';
/** how long a code object's name is trusted (a freed one's address may be reused), ms */
const CODE_TTL_MS = 10_000;

/**
 * Record `sampler`'s process from a started kernel walk until `signal` aborts (duration,
 * Ctrl-C, the target's exit: the capture session's), then stop the walk and build the
 * profile. The sampler is not ticked (only while a launched program may still be at the
 * start gate, to let it go); it names code objects and threads.
 */
export async function sampleInKernel(sampler: ProcessSampler, walk: KernelWalk, opts: KernelSampleOptions = {}): Promise<Profile> {
  const rateHz = opts.rateHz ?? 100;
  const oversample = opts.oversample ?? KERNEL_OVERSAMPLE;
  const rec = new Recorder(sampler, { ...opts, weighted: true });
  const pid = sampler.pid;
  const startTime = new Date().toISOString();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const bt0 = walk.tracerCpuNs();
  const prog0 = walk.programNs();
  let cache: CodeCache = new Map();
  let cacheBorn = Date.now();
  /** each stack as named when its frames came (the process alive then); named again when the kernel prints it again */
  const decoded = new Map<bigint, WordsWalk>();
  const name = (stack: KernelStack): WordsWalk => {
    if (Date.now() - cacheBorn > CODE_TTL_MS) {
      cache = new Map();
      cacheBorn = Date.now();
    }
    try {
      return sampler.wordsWalk(stack.words, stack.cut, cache);
    } catch (e) {
      if (!(e instanceof ProcessGoneError)) throw e;
      return { frames: [], truncated: true, why: GONE_WHY };
    }
  };
  walk.output.onStack = (h, stack) => decoded.set(h, name(stack));
  // stacks that came while the walk started
  for (const [h, stack] of walk.output.stacks) if (!decoded.has(h)) decoded.set(h, name(stack));
  let samples = 0;
  let nonPython = 0;
  let gateSamples = 0;
  let unresolved = 0;
  let cutDepth = 0;
  let cutChain = 0;
  let unnamed = 0;
  // bpftrace's CPU and the walk's run time, read at each drain and before the stop (gone with bpftrace)
  let bt1 = bt0;
  let prog1 = prog0;
  const readCosts = () => {
    if (!walk.tracer.running()) return;
    bt1 = Math.max(bt1, walk.tracerCpuNs());
    const p = walk.programNs();
    if (p !== undefined && p.ns >= (prog1?.ns ?? 0)) prog1 = p;
  };
  const consume = (final: boolean) => {
    const now = performance.now();
    const sinceStart = (now - t0) * 1e6;
    const took = walk.output.take(final);
    unresolved += took.unresolved;
    for (const c of took.counts) {
      if (c.hash === 0n) {
        nonPython += c.count;
        continue;
      }
      const stack = walk.output.stacks.get(c.hash);
      let w: WordsWalk;
      if (stack === undefined) w = { frames: [], truncated: true, why: NEVER_WHY };
      else {
        let d = decoded.get(c.hash);
        if (d === undefined) decoded.set(c.hash, (d = name(stack)));
        w = d;
      }
      let frames = w.frames;
      if (opts.launched && !sampler.gatePassed) {
        const part = gatePart(frames);
        if (part === 'held') {
          gateSamples += c.count;
          continue;
        }
        if (part === 'through') frames = withoutGate(frames);
      }
      if (frames.length === 0 && !w.truncated) continue;
      const t: ThreadSample = { tid: c.tid, tidIsOs: true, ident: c.ident, frames, state: 'on-cpu', holdsGil: false, truncated: w.truncated, torn: false };
      if (!rec.recordWeighted(pid, t, sinceStart, c.count)) continue;
      samples += c.count;
      if (w.truncated) {
        if (w.why === DEPTH_BOUND_WHY) cutDepth += c.count;
        else if (w.why === GONE_WHY || w.why === NEVER_WHY) unnamed += c.count;
        else cutChain += c.count;
      }
    }
    opts.onProgress?.({ elapsedNs: sinceStart, ticks: samples, samples, errors: 0, threads: rec.lastThreads, processes: 1 });
  };
  const signal = opts.signal;
  const until = opts.durationS !== undefined ? t0 + opts.durationS * 1000 : Infinity;
  let drains = 0;
  let warnings: string[] = [];
  // pylens wakes when bpftrace prints (every PRINT_EVERY_S) and for nothing else: a wake-up of Node
  // costs ~0.2–1 ms here, more than the whole walk at 100 Hz
  let printed = false;
  let wake: (() => void) | undefined;
  walk.output.onCounts = () => {
    printed = true;
    wake?.();
  };
  const ended = { v: false };
  void walk.ended.then(() => {
    ended.v = true;
    wake?.();
  });
  try {
    while (!signal?.aborted && !ended.v && performance.now() < until) {
      // a launched program at the start gate is let go by the tick that finds it there (session.ts)
      const gateTicks = opts.launched === true && !sampler.gatePassed && performance.now() - t0 < 5000;
      if (gateTicks) {
        try {
          sampler.tick();
        } catch (e) {
          if (!(e instanceof ProcessGoneError)) throw e;
        }
      }
      if (!printed) {
        const wait = gateTicks ? 5 : until === Infinity ? undefined : Math.max(0, until - performance.now());
        await new Promise<void>((resolve) => {
          const timer = wait === undefined ? undefined : setTimeout(done, wait);
          function done() {
            clearTimeout(timer);
            signal?.removeEventListener('abort', done);
            wake = undefined;
            resolve();
          }
          wake = done;
          signal?.addEventListener('abort', done, { once: true });
        });
      }
      if (printed) {
        printed = false;
        if (++drains % COST_EVERY === 0) readCosts();
        consume(false);
      }
    }
  } finally {
    readCosts();
    warnings = await walk.stop();
  }
  const durationNs = (performance.now() - t0) * 1e6;
  const cpu = process.cpuUsage(cpu0);
  const btNs = bt1 - bt0;
  consume(true);
  rec.close();
  const ownNs = (cpu.user + cpu.system) * 1000;
  const progNs = prog0 !== undefined && prog1 !== undefined ? prog1.ns - prog0.ns : undefined;
  const costNs = ownNs + Math.max(0, btNs) + (progNs ?? 0);
  const b = rec.builder;
  b.meta = {
    ...b.meta,
    lens: 'ebpf',
    backend: 'pylens-kernel-walk (bpftrace)',
    mode: 'cpu',
    rateHz,
    durationNs,
    startTime,
    pid,
    sampleCount: samples,
    errorCount: 0,
    overhead: {
      fraction: durationNs > 0 ? costNs / durationNs : 0,
      method:
        progNs !== undefined
          ? "(pylens's CPU + bpftrace's CPU + the walk's run time in the kernel, from the BPF program's run_time_ns) / wall time"
          : "(pylens's CPU + bpftrace's CPU) / wall time; the walk's run time in the kernel is not in it (kernel.bpf_stats_enabled could not be set)",
    },
    environment: { ...hostEnvironment(), python: { version: sampler.version.text, implementation: 'CPython', ...(sampler.executable ? { executable: sampler.executable } : {}) } },
    extra: {
      intervals: kernelIntervals(rateHz, oversample),
      cpuRule: KERNEL_CPU_RULE,
      truncatedSamples: rec.truncatedSamples,
      stackReads: `in the kernel, while the thread is stopped by the timer's interrupt (bpftrace, up to ${KERNEL_MAX_DEPTH} frames): whole by construction`,
      kernelSamplerCpuNs: Math.round(ownNs),
      kernelTracerCpuNs: Math.round(btNs),
      ...(progNs !== undefined ? { kernelProgramNs: Math.round(progNs), kernelProgramRuns: prog1!.runs - prog0!.runs } : {}),
      kernelCutDepth: cutDepth,
      kernelCutChain: cutChain,
      kernelUnnamed: unnamed,
      kernelNonPythonSamples: nonPython,
      kernelUnresolvedSamples: unresolved,
      kernelStacks: walk.output.stacks.size,
      ...(gateSamples ? { gateSamples } : {}),
      ...(rec.pathRoots.size ? { pathRoots: JSON.stringify([...rec.pathRoots]) } : {}),
      ...(opts.lines && opts.lines !== 'line' ? { lines: opts.lines } : {}),
      ...(warnings.length ? { kernelWarnings: warnings.join('; ') } : {}),
    },
  };
  if (sampler.command) b.meta.command = sampler.command;
  const profile = b.build();
  if (!opts.threadRoots) return profile;
  return withThreadRoots(profile, { threads: true, processes: false, processLabel: (p) => rec.processLabel(p) });
}

/** `startKernelWalk` on the process `sampler` is attached to (its runtime, layout and version) */
export function startKernelWalkOn(sampler: ProcessSampler, rateHz: number, oversample?: number): Promise<KernelWalk> {
  return startKernelWalk({ pid: sampler.pid, runtimeAddress: sampler.runtime.runtimeAddress, layout: sampler.layout, minor: sampler.version.minor, rateHz, ...(oversample !== undefined ? { oversample } : {}) });
}

/**
 * `sampleInKernel` on a running process for `durationS` (the benchmarks' and tests' way in;
 * the CLI goes through the capture session). Throws what attach and `startKernelWalk` throw.
 */
export async function sampleProcessInKernel(pid: number, opts: KernelSampleOptions & { durationS: number }): Promise<Profile> {
  const s = ProcessSampler.attach(pid);
  let walk: KernelWalk;
  try {
    walk = await startKernelWalkOn(s, opts.rateHz ?? 100, opts.oversample);
  } catch (e) {
    s.close();
    throw e;
  }
  // (the recorder closes the sampler)
  return sampleInKernel(s, walk, opts);
}
