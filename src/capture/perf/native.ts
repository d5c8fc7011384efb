/**
 * `pylens record --native`: native and kernel frames for any CPython 3.8+, with or without
 * perf trampolines. The pylens sampler reads the Python stacks from the target's memory as
 * usual; next to it, real `perf record` samples the same process with DWARF unwinding (the
 * usual CPython builds have no frame pointers). Afterwards each sampler sample gets the
 * native tail of perf's sample of the same OS thread nearest in time.
 *
 * Clocks. The sampler's sample times are `performance.now()` (libuv's CLOCK_MONOTONIC)
 * relative to its first deadline; perf runs with `-k CLOCK_MONOTONIC`, so its timestamps are
 * the same clock. `monotonicOffsetNs` turns `performance.now()` into absolute
 * CLOCK_MONOTONIC; the perf-script importer keeps times relative to its first sample, whose
 * absolute time is read back from the first sample header (`readPerfScript`).
 *
 * Start. perf starts with its events disabled (`-D -1`) and a control channel (`--control
 * fd:3,4`); once it has attached and synthesised the target's mappings it is told to
 * `enable` and answers `ack`, and only then does sampling start, so the first samples
 * already have perf samples to match. The target is never stopped.
 *
 * Splice (`spliceNative`, pure). For a sampler sample (thread T, time t): the perf sample of
 * T nearest to t, if within `windowNs`. Its stack is cut at the innermost eval-loop frame
 * (`isEvalFrame`): what lies leaf-ward of it is what the Python leaf frame is doing in C.
 * From that part the interpreter's call machinery (`isPlumbing`: vectorcall, cfunction_*,
 * call_function, …) is dropped; the rest (the C function and what it calls, kernel frames)
 * is appended under the sampler's Python leaf. A perf stack without an eval frame (DWARF
 * unwinding stopped early, inside a deep C call) gives all its non-plumbing frames.
 *
 * Switch-outs. perf's CPU clock does not fire for a thread that is off the CPU. Where
 * tracepoints are allowed perf also records `sched:sched_switch` (same DWARF callchains):
 * - always the switch-outs of runnable threads (`prev_state` R: preempted, a busy
 *   machine). A running sample with no CPU sample near it whose thread was switched out
 *   before it, and has had no CPU sample since, gets that stack's user part: the thread has
 *   not run since, so it is the stack the sampler saw (the kernel part is the scheduler
 *   preempting it). These cost nothing on an idle machine.
 * - with `--idle` every switch-out: an idle sample gets the stack its thread had when it
 *   last left the CPU (the latest switch-out at or just before the sample), kernel frames
 *   (`schedule`, `futex_wait`, `do_nanosleep`…) included. A thread blocked since before
 *   perf started has none and stays Python-only, as do idle samples without tracepoints.
 *   Each switch-out is a DWARF sample, so this costs in proportion to context switches.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isEvalFrame, isPlumbing } from '../../analysis/interpreter.ts';
import { ProfileBuilder } from '../../model/builder.ts';
import { SAMPLE_STATES, SampleStateCode, frameInfo, type IndexIntoFrames, type Profile } from '../../model/profile.ts';
import { parseSampleHeader, perfScriptImporter } from '../../formats/perf-script.ts';
import { InputFile, NOT_MINE } from '../../formats/types.ts';
import { checkPerfAccess, cpuEvent, explainPerfStderr, findPerf, PerfError, processCpuNs, readPerfAccess, spawnPerf, startPerfRecord, type PerfRun } from './tool.ts';
import type { InterpreterSymbols } from './symbols.ts';

/** (moved to the capture session; kept here for existing imports) */
export { monotonicOffsetNs } from '../session/clock.ts';

/** perf's rate for a sampler rate: twice it (nearer matches) up to 1 kHz, never below it. */
export function nativePerfRate(samplerHz: number): number {
  return Math.max(Math.ceil(samplerHz), Math.min(Math.ceil(2 * samplerHz), 1000));
}

/** The matching window for a sampler rate: one sampler interval. */
export function nativeWindowNs(samplerHz: number): number {
  return 1e9 / samplerHz;
}

/** What `record --native` will ask perf for, checked before anything starts. */
export interface NativePlan {
  perf: string;
  event: string;
  rateHz: number;
  kernel: boolean;
  /** sched:sched_switch too: of runnable threads only ('preempted'), or every one, for idle samples ('all') */
  switches: 'none' | 'preempted' | 'all';
  /** access warnings (kernel frames left out or unnamed) and the event note */
  warnings: string[];
}

/**
 * Find perf and check what it may do here. Throws PerfError (missing, not allowed).
 * `idle`: idle samples are kept, so switch-outs are recorded too when tracepoints are allowed.
 */
export function planNative(samplerHz: number, o: { idle?: boolean } = {}): NativePlan {
  const perf = findPerf();
  const access = readPerfAccess();
  const checked = checkPerfAccess(access, { kernel: true });
  const ev = cpuEvent(perf, undefined);
  const warnings = [...checked.warnings];
  if (ev.note) warnings.push(ev.note);
  let switches: NativePlan['switches'] = 'none';
  try {
    checkPerfAccess(access, { tracepoints: true });
    switches = o.idle ? 'all' : 'preempted';
  } catch (e) {
    if (!(e instanceof PerfError)) throw e;
    if (o.idle) warnings.push(`idle samples keep Python frames only: ${e.message} (${e.fix})`);
  }
  return { perf, event: checked.kernel ? ev.event : `${ev.event}:u`, rateHz: nativePerfRate(samplerHz), kernel: checked.kernel, switches, warnings };
}

/** The perf command line (for meta and messages), without the output and control options. */
export function perfRecordArgs(plan: NativePlan, pid: number): string[] {
  // with a tracepoint too, the rate goes on the CPU event only (-F would put the
  // tracepoint in frequency mode as well, and lose switch-outs)
  const [name, mods] = plan.event.split(':') as [string, string | undefined];
  const events =
    plan.switches === 'none'
      ? ['-e', plan.event, '-F', String(plan.rateHz)]
      : [
          '-e', `${name}/freq=${plan.rateHz}/${mods ?? ''}`,
          '-e', 'sched:sched_switch',
          // runnable: 0 (TASK_RUNNING), or TASK_REPORT_MAX (256 since 4.14) when preempted in the kernel
          ...(plan.switches === 'preempted' ? ['--filter', 'prev_state == 0 || prev_state >= 256'] : []),
        ];
  // -N: no copies of the target's libraries in ~/.debug (perf script runs here, right after)
  return ['record', ...events, '--call-graph', 'dwarf', '-k', 'CLOCK_MONOTONIC', '-N', '-p', String(pid)];
}

/** A running `perf record` next to the sampler. */
export class NativeRecording {
  readonly plan: NativePlan;
  readonly pid: number;
  readonly dir: string;
  readonly dataFile: string;
  private readonly run: PerfRun;
  private exit: { code: number } | undefined;
  readonly exited: Promise<{ code: number }>;
  /** the target's interpreter image and its symbols, as found before perf started (symbols.ts) */
  interpreter: InterpreterSymbols | undefined;
  private perfCpu0: number | undefined;
  private perfCpuLast: number | undefined;
  private targetCpu0: number | undefined;
  private targetCpuLast: number | undefined;
  private poll: NodeJS.Timeout | undefined;
  private killOnExit = () => this.kill();

  private constructor(plan: NativePlan, pid: number, dir: string, run: PerfRun) {
    this.plan = plan;
    this.pid = pid;
    this.dir = dir;
    this.dataFile = join(dir, 'perf.data');
    this.run = run;
    this.exited = run.done.then(({ code }) => (this.exit = { code }));
    process.on('exit', this.killOnExit);
  }

  /**
   * Start perf on `pid` and wait until its events are enabled (at most `timeoutMs`).
   * Throws PerfError when perf fails to start.
   */
  static async start(plan: NativePlan, pid: number, timeoutMs = 20_000): Promise<NativeRecording> {
    const dir = mkdtempSync(join(tmpdir(), 'pylens-native-'));
    let run: PerfRun;
    try {
      // its own process group: a Ctrl-C at the terminal is for the target and pylens, which
      // decide when sampling ends; perf is stopped by pylens then
      run = await startPerfRecord(plan.perf, [...perfRecordArgs(plan, pid), '-o', join(dir, 'perf.data')], {
        detached: true,
        readyTimeoutMs: timeoutMs,
        hint: ['perf', ...perfRecordArgs(plan, pid)].join(' '),
      });
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    const r = new NativeRecording(plan, pid, dir, run);
    r.perfCpu0 = processCpuNs(run.pid);
    r.targetCpu0 = processCpuNs(pid);
    r.perfCpuLast = r.perfCpu0;
    r.targetCpuLast = r.targetCpu0;
    // the last reading before either process ends is what the overhead uses
    r.poll = setInterval(() => r.readCpu(), 200);
    r.poll.unref();
    return r;
  }

  private readCpu(): void {
    if (!this.exit) {
      const p = processCpuNs(this.run.pid);
      if (p !== undefined) this.perfCpuLast = p;
    }
    const t = processCpuNs(this.pid);
    if (t !== undefined) this.targetCpuLast = t;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  stderr(): string {
    return this.run.stderr();
  }

  /** Stop perf (SIGINT: it writes out its buffers) and wait for it; it may have ended already (the target exited). */
  async stop(timeoutMs = 30_000): Promise<{ code: number; stderr: string }> {
    this.readCpu();
    if (this.poll) clearInterval(this.poll);
    if (!this.exit) {
      try {
        this.run.child.kill('SIGINT');
      } catch {
        /* gone */
      }
      const timer = setTimeout(() => this.kill(), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    process.off('exit', this.killOnExit);
    return { ...this.exit!, stderr: this.run.stderr() };
  }

  private kill(): void {
    if (this.exit) return;
    try {
      this.run.child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }

  /** perf's CPU time and the target's over the recording (ns), as last read. */
  cpu(): { perfNs: number; targetNs: number } | undefined {
    if (this.perfCpu0 === undefined || this.perfCpuLast === undefined || this.targetCpu0 === undefined || this.targetCpuLast === undefined) return undefined;
    return { perfNs: this.perfCpuLast - this.perfCpu0, targetNs: this.targetCpuLast - this.targetCpu0 };
  }

  /** Size of perf.data so far (bytes). */
  dataBytes(): number {
    try {
      return statSync(this.dataFile).size;
    } catch {
      return 0;
    }
  }

  /** `perf script` over what was recorded, imported. Throws PerfError. */
  async script(timeoutMs = 600_000): Promise<PerfSamples> {
    const out = join(this.dir, 'perf.script');
    const fd = openSync(out, 'w');
    const run = spawnPerf(this.plan.perf, ['script', '-i', this.dataFile, '--ns', '-F', 'comm,pid,tid,time,event,ip,sym,dso'], { stdio: ['ignore', fd] });
    const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
    const { code, stderr } = await run.done;
    clearTimeout(timer);
    closeSync(fd);
    if (code !== 0) throw explainPerfStderr(stderr, 'perf script') ?? new PerfError(`perf script failed (exit ${code}): ${lastLine(stderr)}`, `run \`perf script -i ${this.dataFile}\` by hand to see the whole message`);
    return readPerfScript(readFileSync(out), out);
  }

  /** Remove the temporary perf.data and script. */
  dispose(): void {
    if (this.poll) clearInterval(this.poll);
    process.off('exit', this.killOnExit);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const lastLine = (s: string) => s.trim().split('\n').filter((l) => l.trim()).slice(-1)[0]?.trim() ?? '';

/** perf's samples as a profile, and the absolute (perf clock) time of its time 0. */
export interface PerfSamples {
  profile: Profile;
  /** perf clock ns of the profile's time 0 (for -k CLOCK_MONOTONIC: CLOCK_MONOTONIC ns) */
  originNs: number;
}

/** Import `perf script` text; `originNs` from its first sample header. */
export function readPerfScript(bytes: Uint8Array, name = 'perf.script'): PerfSamples {
  const profile = perfScriptImporter.parse(new InputFile(bytes, name));
  if (profile === NOT_MINE) throw new PerfError('perf script wrote nothing pylens can read', 'run `perf script` by hand on the recording');
  if (profile.samples.length === 0 || !profile.samples.time) return { profile, originNs: 0 };
  // the importer keeps the samples in file order: sample 0 is the first header in the file
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 1 << 16)).toString('utf8');
  for (const line of head.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('\t') || line.startsWith(' ')) continue;
    const h = parseSampleHeader(line);
    if (!h) continue;
    return { profile, originNs: h.sec * 1e9 + h.fracNs - profile.samples.time[0]! };
  }
  throw new PerfError('perf script output has samples but no readable sample header', 'run `perf script` by hand on the recording');
}

export interface SpliceOptions {
  /** time 0 of the perf profile on the sampler profile's time axis (ns) */
  perfOffsetNs: number;
  /** the farthest a perf sample may be from the sampler sample it is matched to (ns) */
  windowNs: number;
  /**
   * an idle sample may take a switch-out up to this much after its time (the sampler reads
   * a thread's stack a little after the tick's time); default 1 ms
   */
  switchSlackNs?: number;
  /**
   * a running sample with no CPU sample of its thread within the window takes its thread's
   * last switch-out when no CPU sample came after it and it is at most this old; default 1 s
   */
  maxOffCpuNs?: number;
}

export interface SpliceStats {
  /** running samples that got a perf sample (native tail possibly empty: the thread was in the eval loop) */
  matched: number;
  /** …of which a switch-out: runnable, but kept off the CPU since (a busy machine) */
  matchedSwitch: number;
  /** running samples with no perf sample of their thread within the window */
  unmatched: number;
  /** idle samples */
  idle: number;
  /** idle samples that got the stack of their thread's last switch-out */
  idleMatched: number;
  /** matched samples whose perf stack had no eval-loop frame (unwinding stopped early) */
  noEvalFrame: number;
  /** median |sampler time - perf time| of the matches with CPU samples (ns) */
  medianOffsetNs: number;
}

/**
 * The native tail of a perf stack (root-first frames): what lies leaf-ward of the innermost
 * eval-loop frame, without the interpreter's call machinery. `eval` says whether an eval
 * frame was found.
 */
export function nativeTail(perf: Profile, frames: readonly IndexIntoFrames[]): { tail: IndexIntoFrames[]; eval: boolean } {
  const kind = perf.frames.kind;
  let cut = -1;
  for (let j = frames.length - 1; j >= 0; j--) {
    const f = frames[j]!;
    if (kind[f] === 'native' && isEvalFrame(perf.strings[perf.frames.name[f]!]!)) {
      cut = j;
      break;
    }
  }
  const tail: IndexIntoFrames[] = [];
  for (let j = cut + 1; j < frames.length; j++) {
    const f = frames[j]!;
    const k = kind[f];
    if (k === 'python' || k === 'marker') continue;
    if (k === 'native') {
      const lib = perf.frames.lib[f]! >= 0 ? perf.strings[perf.frames.lib[f]!]! : null;
      if (isPlumbing(perf.strings[perf.frames.name[f]!]!, lib)) continue;
    }
    tail.push(f);
  }
  return { tail, eval: cut >= 0 };
}

/**
 * Splice perf's native and kernel frames under the sampler's Python stacks (see the top of
 * this file). Returns a new profile (same samples, threads, times, values and meta) and
 * the counts; neither input is changed.
 */
export function spliceNative(py: Profile, perf: Profile, o: SpliceOptions): { profile: Profile; stats: SpliceStats } {
  // perf samples per OS thread, by time on the sampler's axis: CPU samples and switch-outs apart
  const perTid = new Map<number, { t: number[]; s: number[] }>();
  const switchesOf = new Map<number, { t: number[]; s: number[] }>();
  const pt = perf.samples.time;
  if (pt) {
    const order = Array.from({ length: perf.samples.length }, (_, i) => i).sort((a, b) => pt[a]! - pt[b]!);
    for (const i of order) {
      const tid = perf.threads.tid[perf.samples.thread[i]!]!;
      const into = perf.samples.state[i] === SampleStateCode['off-cpu'] ? switchesOf : perTid;
      let e = into.get(tid);
      if (!e) into.set(tid, (e = { t: [], s: [] }));
      e.t.push(pt[i]! + o.perfOffsetNs);
      e.s.push(perf.samples.stack[i]!);
    }
  }
  const slack = o.switchSlackNs ?? 1e6;
  const maxOffCpu = o.maxOffCpuNs ?? 1e9;
  const b = new ProfileBuilder({ meta: { ...py.meta }, valueTypes: py.valueTypes, defaultValue: py.defaultValue, timed: py.samples.time !== null });
  const pyFrame = new Int32Array(py.frames.length).fill(-1);
  const perfFrame = new Int32Array(perf.frames.length).fill(-1);
  const copy = (p: Profile, map: Int32Array, f: number): number => {
    let m = map[f]!;
    if (m < 0) {
      const fi = frameInfo(p, f);
      m = map[f] = b.frame({ name: fi.name, qualname: fi.qualname, ...(fi.file !== null ? { file: fi.file } : {}), line: fi.line, kind: fi.kind, ...(fi.lib !== null ? { lib: fi.lib } : {}) });
    }
    return m;
  };
  // sampler stack → new stack, perf stack → tail (new frames), both memoised
  const pyStack = new Map<number, number>();
  const stackOfPy = (s: number): number => {
    if (s < 0) return -1;
    let r = pyStack.get(s);
    if (r === undefined) {
      r = b.stack(stackOfPy(py.stacks.parent[s]!), copy(py, pyFrame, py.stacks.frame[s]!));
      pyStack.set(s, r);
    }
    return r;
  };
  const tails = new Map<number, { tail: number[]; user: number[]; eval: boolean }>();
  const tailOf = (s: number) => {
    let r = tails.get(s);
    if (!r) {
      const frames: number[] = [];
      for (let a = s; a >= 0; a = perf.stacks.parent[a]!) frames.push(perf.stacks.frame[a]!);
      frames.reverse();
      const t = nativeTail(perf, frames);
      const tail = t.tail.map((f) => copy(perf, perfFrame, f));
      r = { tail, user: tail.filter((f) => b.frames.kind[f] !== 'kernel'), eval: t.eval };
      tails.set(s, r);
    }
    return r;
  };
  const threadMap = new Map<number, number>();
  const stats: SpliceStats = { matched: 0, matchedSwitch: 0, unmatched: 0, idle: 0, idleMatched: 0, noEvalFrame: 0, medianOffsetNs: 0 };
  const offsets: number[] = [];
  const sm = py.samples;
  const nv = py.valueTypes.length;
  const vals = new Array<number>(nv);
  for (let i = 0; i < sm.length; i++) {
    let st = stackOfPy(sm.stack[i]!);
    const state = SAMPLE_STATES[sm.state[i]!]!;
    const th = sm.thread[i]!;
    if (state === 'idle' || state === 'off-cpu') {
      stats.idle++;
      const e = sm.time ? switchesOf.get(py.threads.tid[th]!) : undefined;
      const j = e ? lastAtOrBefore(e.t, sm.time![i]! + slack) : -1;
      if (e && j >= 0) {
        stats.idleMatched++;
        for (const f of tailOf(e.s[j]!).tail) st = b.stack(st, f);
      }
    } else if (sm.time) {
      const t = sm.time[i]!;
      const tid = py.threads.tid[th]!;
      const e = perTid.get(tid);
      const j = e ? nearest(e.t, t) : -1;
      const dCpu = e && j >= 0 ? Math.abs(e.t[j]! - t) : Infinity;
      // a runnable thread kept off the CPU (a busy machine): perf's clock skips it, but it
      // has not run since it was switched out, so the stack it left with is the stack now
      const w = switchesOf.get(tid);
      let k = w ? lastAtOrBefore(w.t, t + slack) : -1;
      if (k >= 0 && e) {
        const before = lastAtOrBefore(e.t, t);
        if (before >= 0 && e.t[before]! > w!.t[k]!) k = -1;
      }
      const dSwitch = k >= 0 ? Math.abs(t - w!.t[k]!) : Infinity;
      let perfStack = -1;
      let fromSwitch = false;
      if (dCpu <= o.windowNs && dCpu <= dSwitch) {
        stats.matched++;
        offsets.push(dCpu);
        perfStack = e!.s[j]!;
      } else if (dSwitch <= maxOffCpu) {
        stats.matched++;
        stats.matchedSwitch++;
        perfStack = w!.s[k]!;
        fromSwitch = true;
      } else stats.unmatched++;
      if (perfStack >= 0) {
        const tl = tailOf(perfStack);
        if (!tl.eval) stats.noEvalFrame++;
        // the kernel half of a switch-out is the scheduler preempting it, not its work
        for (const f of fromSwitch ? tl.user : tl.tail) st = b.stack(st, f);
      }
    } else stats.unmatched++;
    let tm = threadMap.get(th);
    if (tm === undefined) {
      const nm = py.threads.name[th]!;
      threadMap.set(th, (tm = b.thread(py.threads.pid[th]!, py.threads.tid[th]!, nm >= 0 ? py.strings[nm] : undefined)));
    }
    for (let v = 0; v < nv; v++) vals[v] = sm.values[v]![i]!;
    b.sample(st, vals, tm, state, sm.time ? sm.time[i]! : 0);
  }
  offsets.sort((a, c) => a - c);
  if (offsets.length) stats.medianOffsetNs = offsets[offsets.length >> 1]!;
  return { profile: b.build(), stats };
}

/** Index of the last value in sorted `a` that is <= x; -1 when there is none. */
function lastAtOrBefore(a: number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Index of the value in sorted `a` nearest to `x`; -1 when `a` is empty. */
function nearest(a: number[], x: number): number {
  if (a.length === 0) return -1;
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return 0;
  if (lo === a.length) return a.length - 1;
  return x - a[lo - 1]! <= a[lo]! - x ? lo - 1 : lo;
}
