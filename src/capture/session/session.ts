/**
 * One capture session: what every recording command goes through, whatever it records
 * (see README.md in this folder). It
 * - starts the tools that watch the whole machine (`before` companions: perf -a for sched
 *   and io) before anything is launched;
 * - launches the program held at a gate (python: inside `site`, for the sampler; exec:
 *   before exec, for tools that follow a PID), or attaches to a running process;
 * - attaches the sampler, then starts the tools on the target (perf -p, bpftrace), and only
 *   then lets the program go: its first line is recorded;
 * - ends the recording on --duration (counted from the program's start), signals, the
 *   target's exit or a tool ending by itself (`signal`, `stopped()`, `reason`);
 * - stops the tools (last started first) and the target (grace, SIGINT, SIGKILL), and
 *   gives the target's exit code (`finish`); on any failure, `abandon` leaves nothing
 *   running.
 * It never prints: warnings go to `onWarning`; errors are thrown (LaunchError,
 * LaunchEndedError, AttachError, the tools' own).
 */
import { PermissionError, ProcessGoneError } from '../sampler/memory.ts';
import { UnsupportedVersionError, warmRuntimeFiles } from '../sampler/runtime.ts';
import { pythonOfCommand } from '../perf/python.ts';
import { ProcessSampler } from '../sampler/session.ts';
import { AliveWatch } from '../sampler/threads.ts';
import { AlignedClock } from './clock.ts';
import { pythonGateRefusal, type GateKind } from './gate.ts';
import { holdUntilAttached } from './ptrace-hold.ts';
import { syscalls } from '../sampler/syscalls.ts';
import { endTarget, launch, LaunchError, type Launched } from './target.ts';

/** A tool running beside the program (perf, bpftrace) as the session sees it. */
export interface CompanionRun<R> {
  /** resolves if it ends by itself (its tool died, the target is gone) */
  ended?: Promise<unknown>;
  /** stop it and collect what it recorded */
  stop(): Promise<R>;
  /** synchronous last resort when pylens exits without stopping it (it must not outlive pylens) */
  kill?(): void;
}

export interface CompanionContext {
  /** the recorded process (the one that waited at the gate, or -p); undefined without a target */
  pid: number | undefined;
  sampler: ProcessSampler | undefined;
}

export interface CompanionOptions {
  /** started before the program is launched, not knowing its PID (a system-wide recorder) */
  before?: boolean;
  /** its ending by itself ends the recording (default true) */
  endsRecording?: boolean;
}

/** A tool the session starts and stops; `stop()` (once, memoised) gives its result to the command. */
export class Companion<R> {
  private run: CompanionRun<R> | undefined;
  private stopping: Promise<R> | undefined;

  readonly name: string;
  readonly opts: CompanionOptions;
  private readonly starter: (ctx: CompanionContext) => Promise<CompanionRun<R>>;

  constructor(name: string, starter: (ctx: CompanionContext) => Promise<CompanionRun<R>>, opts: CompanionOptions = {}) {
    this.name = name;
    this.starter = starter;
    this.opts = opts;
  }

  get started(): boolean {
    return this.run !== undefined;
  }

  /** @internal the session starts it */
  async begin(ctx: CompanionContext): Promise<CompanionRun<R>> {
    this.run = await this.starter(ctx);
    return this.run;
  }

  /** Stop it (the first call does) and its result. */
  stop(): Promise<R> {
    if (!this.run) return Promise.reject(new Error(`${this.name} was never started`));
    this.stopping ??= this.run.stop();
    return this.stopping;
  }

  /** @internal */
  killNow(): void {
    if (this.run && !this.stopping) this.run.kill?.();
  }
}

export type CaptureTarget = { pid: number } | { argv: string[]; env?: NodeJS.ProcessEnv };

export interface CaptureOptions {
  /** a running process, a command to launch, or nothing (system-wide recorders only) */
  target?: CaptureTarget;
  /** attach the pylens sampler to the target (a launched program is then held inside its interpreter until attached) */
  sampler?: boolean | { maxDepth?: number; attachTimeoutMs?: number };
  /** tools beside the program, in start order */
  companions?: Companion<unknown>[];
  /** end the recording after this long: from the program's start (launch) or from when everything is attached */
  durationS?: number;
  /**
   * Launch mode: the Ctrl-Cs that end the recording. 2 (default): the first reaches the
   * target (the terminal sends it to the whole process group), which usually ends it, and
   * recording goes on until it does; 1: the first ends the recording too.
   */
  interruptsToStop?: 1 | 2;
  /** attach mode and no target: SIGHUP also ends the recording (SIGINT and SIGTERM always do) */
  stopOnHangup?: boolean;
  /** the target's exit ends the recording (default true; `record -s` follows its children on) */
  stopOnExit?: boolean;
  /** attach mode: how often the target is looked for, ms (default 200; a companion that ends with the target can do with less) */
  exitPollMs?: number;
  /** launch mode: which gate; default python with the sampler, exec with tools that follow a PID, else none */
  gate?: GateKind;
  /** the caller samples the launched program's Python processes itself (`record -s`): their interpreter's files are parsed before the launch, as for the sampler */
  samplesDescendants?: boolean;
  /** warnings for the command to show */
  onWarning?: (w: string) => void;
}

export type StopReason =
  | { kind: 'duration'; seconds: number }
  | { kind: 'signal'; signal: NodeJS.Signals }
  /** the target ended: launch mode its status ("exit code 3"), attach mode "exited" */
  | { kind: 'exit'; how: string }
  | { kind: 'companion'; name: string }
  | { kind: 'caller'; why: string };

/** The launched program ended (or the user interrupted) before anything could be recorded. */
export class LaunchEndedError extends Error {
  readonly exitCode: number;
  /** "exit code 4" / "signal SIGKILL" */
  readonly how: string;
  /** stopped by a signal rather than by the program ending */
  readonly interrupted: boolean;

  constructor(exitCode: number, how: string, interrupted: boolean) {
    super(interrupted ? 'interrupted before recording started' : `the program ended (${how}) before recording started`);
    this.name = 'LaunchEndedError';
    this.exitCode = exitCode;
    this.how = how;
    this.interrupted = interrupted;
  }
}

/** The sampler could not attach to `pid`: `cause` is the sampler's error (ProcessGoneError, PermissionError, …). */
export class AttachError extends Error {
  readonly pid: number;
  constructor(pid: number, cause: unknown) {
    super(`cannot attach to process ${pid}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'AttachError';
    this.pid = pid;
  }
}

const ATTACH_STOP: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
/** the longest a program that waits at the python gate is held for the sampler's first tick there */
const GATE_HOLD_MS = 100;
/** how long a program the sampler attached to while it was starting is awaited at the gate */
const GATE_ARRIVAL_MS = 2000;

export class CaptureSession {
  readonly clock = new AlignedClock();
  /** the launched program */
  target: Launched | undefined;
  /** the attached sampler, when asked for */
  sampler: ProcessSampler | undefined;
  /** the recorded process: the sampled one, the one that waited at the gate, or -p */
  pid: number | undefined;
  /** the gate the program was launched behind */
  gate: GateKind = 'none';
  /** a python the python gate cannot hold, with the sampler: why (held with ptrace instead) */
  private ptraceHold: string | undefined;
  /** how the program was held by ptrace until the sampler attached, when it was */
  held: { how: 'ptrace'; stops: number; heldMs: number } | undefined;
  /** lets the program held by ptrace go (openGate) */
  private heldResume: (() => void) | undefined;
  /** performance.now() when the program was let go (launch) or everything was attached */
  startedMs: number | undefined;

  private readonly abort = new AbortController();
  private why: StopReason | undefined;
  private readonly waiters: ((r: StopReason) => void)[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  /** what `stop` closes besides the timers (the exit watch's kept-open file) */
  private readonly closers: (() => void)[] = [];
  private readonly handlers: [NodeJS.Signals, () => void][] = [];
  private readonly companions: Companion<unknown>[];
  private interrupts = 0;
  private disposed = false;
  private readonly exitHook = () => this.killEverything();

  private readonly o: CaptureOptions;

  private constructor(o: CaptureOptions) {
    this.o = o;
    this.companions = o.companions ?? [];
    process.on('exit', this.exitHook);
  }

  /** Start: companions, launch or attach, sampler, release. On failure nothing is left running. */
  static async start(o: CaptureOptions): Promise<CaptureSession> {
    const s = new CaptureSession(o);
    try {
      await s.begin();
    } catch (e) {
      const endedByItself = s.target?.hasExited() === true;
      const interrupted = s.why?.kind === 'signal' || (e instanceof LaunchEndedError && e.interrupted);
      const code = await s.abandon();
      const cause = e instanceof AttachError ? e.cause : e;
      if (s.target && (endedByItself || interrupted) && !(cause instanceof PermissionError || cause instanceof UnsupportedVersionError)) {
        throw new LaunchEndedError(code, s.target.howEnded() ?? `exit code ${code}`, interrupted && !endedByItself);
      }
      throw e;
    }
    return s;
  }

  /** Aborts when the recording should end. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Why the recording ended (undefined while it goes on). */
  get reason(): StopReason | undefined {
    return this.why;
  }

  /** Resolves with the reason once the recording should end. */
  stopped(): Promise<StopReason> {
    if (this.why) return Promise.resolve(this.why);
    return new Promise((r) => this.waiters.push(r));
  }

  /** End the recording (the first reason wins). */
  stop(reason: StopReason): void {
    if (this.why) return;
    this.why = reason;
    this.abort.abort();
    for (const w of this.waiters.splice(0)) w(reason);
  }

  /** Stop the companions, last started first; each one's result or error stays with it (`companion.stop()`). */
  async stopCompanions(): Promise<void> {
    for (const c of [...this.companions].reverse()) {
      if (c.started) await c.stop().catch(() => {});
    }
  }

  /**
   * The end: companions stopped, the target given `graceMs` to exit (default 3 s after a
   * forwarded SIGTERM/SIGHUP stopped the recording, else 0), then `signal` (SIGINT), then
   * SIGKILL `killAfterMs` (5 s) later. The target's exit code; 0 without a launched target.
   */
  async finish(o: { graceMs?: number; signal?: NodeJS.Signals; killAfterMs?: number } = {}): Promise<number> {
    this.stop({ kind: 'caller', why: 'finished' });
    await this.stopCompanions();
    this.resumeHeld();
    let code = 0;
    if (this.target) {
      const forwarded = this.why?.kind === 'signal' && (this.why.signal === 'SIGTERM' || this.why.signal === 'SIGHUP');
      code = await endTarget(this.target, { graceMs: o.graceMs ?? (forwarded ? 3000 : 0), ...(o.signal ? { signal: o.signal } : {}), ...(o.killAfterMs !== undefined ? { killAfterMs: o.killAfterMs } : {}) });
      if (this.gate === 'python' && this.target.gate && this.target.gate.seen.length === 0 && this.sampler) {
        this.warn('the program did not wait at pylens\u2019s start gate (its Python did not import sitecustomize from PYTHONPATH), so it started before the sampler was attached: its first moments may be missing');
      }
    }
    this.dispose();
    return code;
  }

  /** After a failure: companions stopped, the sampler closed, a launched target ended with SIGTERM (SIGKILL 5 s later). Its exit code. */
  async abandon(): Promise<number> {
    this.stop({ kind: 'caller', why: 'abandoned' });
    await this.stopCompanions();
    this.sampler?.close();
    this.resumeHeld();
    let code = 0;
    if (this.target) code = await endTarget(this.target, { signal: 'SIGTERM' });
    this.dispose();
    return code;
  }

  /** Remove handlers and timers (finish and abandon do). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.timers) clearTimeout(t);
    for (const c of this.closers.splice(0)) c();
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.target?.dispose();
    process.off('exit', this.exitHook);
  }

  private warn(w: string): void {
    this.o.onWarning?.(w);
  }

  private killEverything(): void {
    for (const c of this.companions) c.killNow();
    this.target?.kill('SIGTERM');
  }

  private async startCompanion(c: Companion<unknown>): Promise<void> {
    const run = await c.begin({ pid: this.pid, sampler: this.sampler });
    if (c.opts.endsRecording !== false) void run.ended?.then(() => this.stop({ kind: 'companion', name: c.name }), () => this.stop({ kind: 'companion', name: c.name }));
  }

  private onSignal(sig: NodeJS.Signals, launched: boolean): void {
    if (sig === 'SIGINT') {
      if (launched && ++this.interrupts < (this.o.interruptsToStop ?? 2)) return;
      this.stop({ kind: 'signal', signal: sig });
    } else if (sig === 'SIGTERM' || (sig === 'SIGHUP' && (launched || this.o.stopOnHangup))) {
      this.stop({ kind: 'signal', signal: sig });
    }
  }

  private async begin(): Promise<void> {
    const o = this.o;
    const target = o.target;
    for (const c of this.companions) if (c.opts.before) await this.startCompanion(c);
    if (target && 'argv' in target) {
      const env = target.env ?? process.env;
      let gate: GateKind = o.gate ?? (o.sampler ? 'python' : this.companions.some((c) => !c.opts.before) ? 'exec' : 'none');
      if (gate === 'python') {
        const refusal = pythonGateRefusal(target.argv, env);
        if (refusal && o.sampler) {
          if (syscalls() !== undefined) {
            // held at the exec gate, then stepped with ptrace until the sampler attaches (ptrace-hold.ts)
            this.ptraceHold = refusal;
            gate = 'exec';
          } else {
            this.warn(`${refusal}: pylens cannot hold the program until the sampler is attached, so its first moments may be missing`);
            gate = 'none';
          }
        } else if (refusal) gate = 'exec';
      }
      this.gate = gate;
      // a program nothing holds runs while the sampler attaches: the interpreter's ELF files
      // are parsed before it starts, so the first attach takes ms, not ~100 ms (runtime.ts)
      if ((gate === 'none' || this.ptraceHold !== undefined) && (o.sampler || o.samplesDescendants)) {
        const py = pythonOfCommand(target.argv, env);
        if (py !== undefined) warmRuntimeFiles(py);
      }
      this.target = await launch(target.argv, { env, gate, onSignal: (sig) => this.onSignal(sig, true) });
      const t = this.target;
      if (o.stopOnExit !== false) void t.exited.then(() => this.stop({ kind: 'exit', how: t.howEnded() ?? 'exited' }));
      if (o.sampler) {
        try {
          this.sampler = this.ptraceHold !== undefined ? await this.attachHeld(t, this.ptraceHold) : await this.attachLaunched(t);
        } catch (e) {
          throw new AttachError(t.pid, e);
        }
        this.pid = this.sampler.pid;
      } else if (gate !== 'none') {
        this.pid = await this.heldAtGate(t);
      } else this.pid = t.pid;
    } else {
      for (const sig of [...ATTACH_STOP, 'SIGHUP' as const]) {
        const h = () => this.onSignal(sig, false);
        this.handlers.push([sig, h]);
        process.on(sig, h);
      }
      if (target) {
        this.pid = target.pid;
        if (o.sampler) {
          try {
            this.sampler = ProcessSampler.attach(target.pid, typeof o.sampler === 'object' && o.sampler.maxDepth !== undefined ? { maxDepth: o.sampler.maxDepth } : {});
          } catch (e) {
            throw new AttachError(target.pid, e);
          }
        }
        if (o.stopOnExit !== false) {
          const pid = target.pid;
          const alive = new AliveWatch(pid);
          const watch = setInterval(() => {
            if (!alive.alive()) this.stop({ kind: 'exit', how: 'exited' });
          }, o.exitPollMs ?? 200);
          this.closers.push(() => alive.close());
          watch.unref();
          this.timers.push(watch);
        }
      }
    }
    for (const c of this.companions) if (!c.opts.before) await this.startCompanion(c);
    this.openGate();
    this.startedMs = performance.now();
    if (o.durationS !== undefined) {
      const s = o.durationS;
      this.timers.push(setTimeout(() => this.stop({ kind: 'duration', seconds: s }), s * 1000));
    }
  }

  /**
   * Let the launched program go. With the sampler on a program held at the python gate,
   * once the sampler has warmed up on it there (`ProcessSampler.warmAtGate`): at once when it
   * already waits, else from the first tick that finds it waiting (the sampler attached
   * while its interpreter was still starting, and samples that start as the program's
   * start). Never held longer than GATE_HOLD_MS after it said it waits (ticks at a low
   * rate, or a caller that does not tick), nor when another process waits there first.
   */
  private openGate(): void {
    this.resumeHeld();
    const g = this.target?.gate;
    if (!g) return;
    const s = this.sampler;
    if (!s || this.gate !== 'python' || g.seen.some((pid) => pid !== s.pid)) return g.release();
    if (g.seen.includes(s.pid)) {
      s.warmAtGate();
      return g.release();
    }
    // one deadline: GATE_ARRIVAL_MS for the program to come (its Python may skip
    // sitecustomize: then its stacks are no longer searched for the gate), then GATE_HOLD_MS
    // once it waits there
    let deadline: NodeJS.Timeout | undefined;
    const open = () => {
      clearTimeout(deadline);
      s.onGate(undefined);
      g.release();
    };
    const openIn = (ms: number) => {
      clearTimeout(deadline);
      deadline = setTimeout(open, ms);
      deadline.unref();
      this.timers.push(deadline);
    };
    s.onGate(open);
    void g.waiting().then((pid) => (pid !== s.pid ? open() : openIn(GATE_HOLD_MS)));
    openIn(GATE_ARRIVAL_MS);
  }

  /** Let a program held by ptrace go (a signal sent to it meanwhile is then delivered). */
  private resumeHeld(): void {
    const r = this.heldResume;
    this.heldResume = undefined;
    r?.();
  }

  /** Without the sampler: the PID that waits at the gate; throws when the program ends first. */
  private async heldAtGate(t: Launched): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      t.gate!.waiting(),
      t.exited.then(() => 'exited' as const),
      this.stopped().then(() => 'stopped' as const),
      new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), 30_000))),
    ]);
    clearTimeout(timer);
    if (typeof r === 'number') return r;
    if (r === 'timeout') throw new LaunchError(`the program (pid ${t.pid}) did not reach pylens's start gate within 30 s`);
    throw new LaunchEndedError(0, t.howEnded() ?? 'exited', r === 'stopped');
  }

  /**
   * Attach the sampler to a Python the python gate cannot hold (`-I`, `-E`, `-S`): it waits
   * at the exec gate, and is held with ptrace from its exec until the sampler attaches
   * (ptrace-hold.ts). Where ptrace is refused (another tracer) or the hold times out, it
   * runs on and the sampler attaches as early as it can, with a warning.
   */
  private async attachHeld(t: Launched, refusal: string): Promise<ProcessSampler> {
    const pid = await this.heldAtGate(t);
    const maxDepth = typeof this.o.sampler === 'object' ? this.o.sampler.maxDepth : undefined;
    const r = holdUntilAttached(syscalls()!, pid, () => t.gate!.releaseNow(), () => {
      const s = attachOnce(pid, maxDepth);
      return s instanceof ProcessSampler ? s : undefined;
    });
    if (r.state === 'attached') {
      this.held = { how: 'ptrace', stops: r.stops, heldMs: r.heldMs };
      // still stopped: let go when the gate opens (the tools beside the sampler ready), or on cleanup
      this.heldResume = r.resume;
      return r.value;
    }
    if (r.state !== 'gone') {
      this.warn(`${refusal}, and holding it with ptrace failed (${r.state === 'refused' ? r.why : 'timed out'}): pylens could not hold the program until the sampler was attached, so its first moments may be missing`);
    }
    t.gate!.release();
    const alive = new AliveWatch(pid);
    this.closers.push(() => alive.close());
    return attachWhenReady(pid, { isAlive: () => alive.alive() && !t.hasExited(), signal: this.abort.signal, timeoutMs: 10_000, intervalMs: 2, ...(maxDepth !== undefined ? { maxDepth } : {}) });
  }

  /**
   * Attach the sampler to a launched program: to the process that says it waits at the
   * gate (the interpreter is up and none of the program has run), or, racing it, to the
   * launched process as soon as its interpreter has a thread (the only way without a gate).
   */
  private async attachLaunched(t: Launched): Promise<ProcessSampler> {
    const o = this.o;
    const maxDepth = typeof o.sampler === 'object' ? o.sampler.maxDepth : undefined;
    const timeoutMs = (typeof o.sampler === 'object' ? o.sampler.attachTimeoutMs : undefined) ?? 10_000;
    const done = new AbortController();
    const signal = AbortSignal.any([done.signal, this.abort.signal]);
    const gated = t.gate !== undefined && this.gate === 'python';
    return new Promise<ProcessSampler>((resolve, reject) => {
      let winner: ProcessSampler | undefined;
      let viaGate: Promise<unknown> | undefined;
      const win = (s: ProcessSampler) => {
        if (winner) return s.close();
        winner = s;
        done.abort();
        resolve(s);
      };
      const common = { signal, ...(maxDepth !== undefined ? { maxDepth } : {}) };
      if (t.gate) {
        void t.gate.waiting().then((pid) => {
          if (winner) return;
          const alive = new AliveWatch(pid);
          this.closers.push(() => alive.close());
          viaGate = attachWhenReady(pid, { ...common, isAlive: () => alive.alive(), timeoutMs: 5000 }).then(win);
          viaGate.catch((e: unknown) => {
            if (!winner && (e instanceof PermissionError || e instanceof UnsupportedVersionError)) reject(e);
          });
        });
      }
      // with a gate, polling is the fallback: slower, so it costs the starting interpreter less
      attachWhenReady(t.pid, { ...common, isAlive: () => !t.hasExited(), timeoutMs, intervalMs: gated ? 20 : 2 }).then(win, async (e: unknown) => {
        if (winner) return;
        if (viaGate) {
          try {
            await viaGate;
            if (winner) return;
          } catch {
            /* the poll's error explains more */
          }
        }
        reject(e);
      });
    });
  }
}

/**
 * Attach to a freshly launched process as soon as its interpreter is up: retry every
 * `intervalMs` until `_PyRuntime` is found and its thread list has a thread. Permission
 * and unsupported-version errors are final; other errors (still exec'ing, runtime not
 * initialised) are retried until the target exits, `signal` aborts, or `timeoutMs` passes —
 * then the last error is thrown (ProcessGoneError when the target exited first).
 */
export async function attachWhenReady(
  pid: number,
  opts: { isAlive: () => boolean; signal?: AbortSignal; timeoutMs?: number; intervalMs?: number; maxDepth?: number },
): Promise<ProcessSampler> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const interval = opts.intervalMs ?? 2;
  let last: unknown = new ProcessGoneError(pid);
  for (;;) {
    if (!opts.isAlive()) throw last instanceof ProcessGoneError ? last : new ProcessGoneError(pid);
    if (opts.signal?.aborted) throw last;
    const r = attachOnce(pid, opts.maxDepth);
    if (r instanceof ProcessSampler) return r;
    last = r;
    if (Date.now() > deadline) throw last;
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * One try to attach to a starting interpreter: the sampler once `_PyRuntime` is found and
 * has a thread, else why not (to try again). Permission and unsupported-version errors are
 * thrown: they will not change.
 */
function attachOnce(pid: number, maxDepth: number | undefined): ProcessSampler | unknown {
  try {
    const s = ProcessSampler.attach(pid, maxDepth !== undefined ? { maxDepth } : {});
    if (s.walk().length > 0) return s;
    s.close();
    return new LaunchError(`process ${pid}: the interpreter has no thread yet`);
  } catch (e) {
    // the version is read from the binary: an unsupported one will not change
    if (e instanceof PermissionError || e instanceof UnsupportedVersionError) throw e;
    return e;
  }
}
