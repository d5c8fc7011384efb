/**
 * The agent's sampling side: every target process (targets.ts) sampled by one loop — one
 * wake-up per tick for all of them, at a low rate — and, at every window boundary aligned
 * to the wall clock (10 s: :00, :10, :20…), each process's window turned into pprof with
 * its labels (window.ts `AgentWindow`) and handed on (the queue and its destinations ship
 * it). New processes are picked up by a scan every few seconds, exited ones give their last
 * window and are dropped; a process that cannot be read (permissions, an unsupported
 * CPython) is reported once, not retried while it stays the same process.
 */
import { hostname } from 'node:os';
import { hostEnvironment } from '../model/environment.ts';
import type { Profile } from '../model/profile.ts';
import { pprofExporter } from '../formats/pprof.ts';
import { DEFAULT_JITTER, realClock, Recorder, runSchedule, type SamplerClock } from '../capture/sampler/sampler.ts';
import { PermissionError, ProcessGoneError } from '../capture/sampler/memory.ts';
import { ProcessSampler, readExecMark, TickStart } from '../capture/sampler/session.ts';
import { UnsupportedVersionError } from '../capture/sampler/runtime.ts';
import { cgroupLabels, readText, TargetFinder, type Found, type TargetSpec } from './targets.ts';
import type { AgentWindow } from './window.ts';
import { basename } from 'node:path';

export interface AgentOptions {
  targets: TargetSpec;
  /** samples per second per process (default 19, as Parca's agent) */
  rateHz?: number;
  /** cpu: on-CPU samples only (default); wall: every thread, running or waiting */
  mode?: 'cpu' | 'wall';
  /** only the thread holding the GIL */
  gilOnly?: boolean;
  /** window length, s (default 10), aligned to the wall clock */
  windowS?: number;
  /** the service name of every target (default: each program's own name) */
  service?: string;
  /** labels added to every window */
  labels?: Record<string, string>;
  /** seconds between scans for new targets (default 2) */
  scanS?: number;
  /** stop after this long, s (default: until the signal) */
  durationS?: number;
  signal?: AbortSignal;
  clock?: SamplerClock;
  /** each window, as soon as it is cut */
  onWindow: (w: AgentWindow) => void;
  /** one line per event worth a log line (attached, exited, unreadable) */
  log?: (line: string) => void;
  /** the host label (default os.hostname()) */
  host?: string;
}

/** what the agent has done so far, for /metrics */
export interface AgentStats {
  targets: number;
  windows: number;
  samples: number;
  errors: number;
  attached: number;
  exited: number;
  /** pid → why it cannot be sampled (reported once) */
  unreadable: Map<number, string>;
  ticks: number;
  missedTicks: number;
  /** per pid: read errors so far */
  errorsByPid: Map<number, number>;
}

interface Target {
  found: Found;
  rec: Recorder;
  labels: Record<string, string>;
  service: string;
  python: string;
  /** monotonic ns (since the agent's start) when its current window began */
  windowStartNs: number;
  /** wall ms when its current window began */
  windowFromMs: number;
  /** read errors of the recorder at the last window */
  errorsAtWindow: number;
  /** time spent in its ticks this window, ns */
  samplerNs: number;
  ended: boolean;
  /** `readExecMark` when attached: a change means the process exec'd (its memory is another program's) */
  execMark: string | undefined;
}

/** the program's name for `python app.py` (app), `python -m pkg.mod` (pkg.mod), gunicorn / uvicorn / celery by their entry point */
export function serviceName(cmdline: string[], exe: string): string {
  const clean = (x: string) => x.replace(/[^\w.-]+/g, '_') || 'python';
  const interp = PY_EXE_NAME.test(basename(cmdline[0] ?? ''));
  // a console script (gunicorn, uvicorn, celery): its own name
  if (!interp && cmdline[0]) return clean(basename(cmdline[0]));
  const args = cmdline.slice(1);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-m' && args[i + 1]) return clean(args[i + 1]!);
    if (a === '-c') break;
    if (a === '-W' || a === '-X' || a === '--check-hash-based-pycs') {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return clean(basename(a).replace(/\.py$/, ''));
  }
  return clean(basename(exe));
}

const PY_EXE_NAME = /^python(\d+(\.\d+)?)?[dmu]*$/;

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** the window's samples with a time column (samples × period, ns) beside the counts: what Pyroscope and Parca read as CPU or wall time */
function withTime(p: Profile, mode: 'cpu' | 'wall', periodNs: number): Profile {
  const counts = p.samples.values[0]!;
  const ns = new Float64Array(counts.length);
  for (let i = 0; i < counts.length; i++) ns[i] = counts[i]! * periodNs;
  return { ...p, valueTypes: [...p.valueTypes, { name: mode, unit: 'nanoseconds' }], samples: { ...p.samples, values: [...p.samples.values, ns] } };
}

/**
 * The agent's sampling loop lets the event loop run every this many ms while it sleeps in
 * clock_nanosleep (runSchedule's yieldEveryMs): a turn costs ~110 µs here, and between
 * windows nothing waits on it but signals and /metrics (the sender and the queue, when they
 * have work, turn it at every tick: `preferAsync`).
 */
const AGENT_YIELD_MS = 250;

export class Agent {
  readonly stats: AgentStats = { targets: 0, windows: 0, samples: 0, errors: 0, attached: 0, exited: 0, unreadable: new Map(), ticks: 0, missedTicks: 0, errorsByPid: new Map() };
  private opts: AgentOptions;
  private finder: TargetFinder;
  private targets = new Map<number, Target>();
  /** each tick's start, shared by every target (session.ts TickStart) */
  private tickStart = new TickStart();
  /** (pid:start) of processes that cannot be sampled, with when they were first tried (ms) */
  private refused = new Map<string, { first: number; reason: string; final: boolean }>();
  private rate: number;
  private mode: 'cpu' | 'wall';
  private windowMs: number;
  private host: string;

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.rate = opts.rateHz ?? 19;
    this.mode = opts.mode ?? 'cpu';
    this.windowMs = (opts.windowS ?? 10) * 1000;
    this.host = opts.host ?? hostname();
    this.finder = new TargetFinder(opts.targets);
    for (const [k, v] of Object.entries(opts.labels ?? {})) if (!LABEL_NAME.test(k)) throw new RangeError(`label name '${k}' is not valid: letters, digits and _ only, not starting with a digit`);
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  /** attach new targets, forget gone ones that were never attached */
  private scan(nowMs: number, sinceStartNs: number): void {
    const found = this.finder.scan();
    for (const [pid, f] of found) {
      const t = this.targets.get(pid);
      if (t && t.found.start === f.start) {
        // the same process, exec'd in place (a reloader, a wrapper that execs the service): its
        // window ends here and the new program is attached once that window is cut
        const mark = !t.ended && t.execMark !== undefined ? readExecMark(pid) : undefined;
        // (undefined: unreadable or ending, which its tick will see)
        if (mark !== undefined && mark !== t.execMark) {
          t.ended = true;
          this.log(`PID ${pid} exec'd: its window ends, the new program is attached after it`);
        }
        continue;
      }
      const key = `${pid}:${f.start}`;
      const refused = this.refused.get(key);
      if (refused?.final) continue;
      if (refused && nowMs - refused.first > 10_000) {
        // still not attachable after 10 s (not a CPython after all, or stuck starting): said once
        refused.final = true;
        this.stats.unreadable.set(pid, refused.reason);
        this.log(`cannot sample PID ${pid} after 10 s: ${refused.reason}`);
        continue;
      }
      try {
        const mark = readExecMark(pid); // before the attach: an exec during it shows at the next scan
        const s = ProcessSampler.attach(pid);
        const rec = new Recorder(s, { rateHz: this.rate, idle: this.mode === 'wall', ...(this.opts.gilOnly ? { gilOnly: true } : {}), filenames: 'short', skipStill: true });
        // a worker is named by the master it descends from (uvicorn's are `python -c …`)
        const service = this.opts.service ?? serviceName(f.rootCmdline ?? f.cmdline, f.exe);
        const labels: Record<string, string> = {
          ...cgroupLabels(readText(`/proc/${pid}/cgroup`)),
          ...(this.opts.labels ?? {}),
          service_name: service,
          host: this.host,
          pid: String(pid),
          python: s.version.text,
          process: basename(f.exe),
        };
        this.targets.set(pid, { found: f, rec, labels, service, python: s.version.text, windowStartNs: sinceStartNs, windowFromMs: nowMs, errorsAtWindow: 0, samplerNs: 0, ended: false, execMark: mark });
        this.refused.delete(key);
        this.stats.attached++;
        this.log(`attached PID ${pid} (${f.why}; CPython ${s.version.text}; service ${service}): ${f.cmdline.join(' ').replace(/\s+/g, ' ').slice(0, 120)}`);
      } catch (e) {
        if (e instanceof ProcessGoneError) continue;
        // permissions or an unsupported CPython do not change for the same process: said once;
        // a process not yet initialised (just exec'd) is tried again for 10 s
        const final = e instanceof PermissionError || e instanceof UnsupportedVersionError || /free-threaded/i.test((e as Error).message);
        if (!refused) {
          this.refused.set(key, { first: nowMs, reason: (e as Error).message, final });
          if (final) {
            this.stats.unreadable.set(pid, (e as Error).message);
            this.log(`cannot sample PID ${pid}: ${(e as Error).message}`);
          }
        } else refused.reason = (e as Error).message;
      }
    }
    // bookkeeping of processes gone before they were ever attached
    for (const key of this.refused.keys()) {
      const pid = Number(key.split(':')[0]);
      if (!found.has(pid)) {
        this.refused.delete(key);
        this.stats.unreadable.delete(pid);
      }
    }
    this.stats.targets = this.targets.size;
  }

  /** cut every target's window (`untilMs` the boundary); drop ended targets after their last one */
  private cut(untilMs: number, sinceStartNs: number): void {
    // the host's facts, read once a cut for every target's window (/proc/cpuinfo, os-release)
    let host: ReturnType<typeof hostEnvironment> | undefined;
    for (const [pid, t] of this.targets) {
      const { builder, rows, truncated } = t.rec.takeWindow();
      const errors = t.rec.errors - t.errorsAtWindow;
      t.errorsAtWindow = t.rec.errors;
      const durationNs = Math.max(0, sinceStartNs - t.windowStartNs);
      if (rows > 0) {
        builder.meta = {
          ...builder.meta,
          name: t.service,
          rateHz: this.rate,
          durationNs,
          startTime: new Date(t.windowFromMs).toISOString(),
          pid,
          command: t.found.cmdline,
          sampleCount: rows,
          errorCount: errors,
          environment: { ...(host ??= hostEnvironment()), python: { version: t.python, implementation: 'CPython', executable: t.found.exe } },
          extra: { truncatedSamples: truncated, agentSamplerNs: Math.round(t.samplerNs) },
        };
        const p = withTime(builder.build(), this.mode, 1e9 / this.rate);
        const degraded = errors > 0.01 * rows || truncated > 0.02 * rows;
        const w: AgentWindow = {
          id: `${String(t.windowFromMs).padStart(14, '0')}-${String(pid).padStart(8, '0')}-${this.mode}`,
          service: t.service,
          type: this.mode,
          fromMs: t.windowFromMs,
          untilMs,
          sampleRateHz: this.rate,
          labels: { ...t.labels, pylens_quality: degraded ? 'degraded' : 'good' },
          pprof: pprofExporter.write(p) as Uint8Array,
          quality: { samples: rows, errors, truncated, samplerCpuNs: Math.round(t.samplerNs) },
        };
        this.stats.windows++;
        this.stats.samples += rows;
        this.opts.onWindow(w);
      }
      this.stats.errors += errors;
      if (errors) this.stats.errorsByPid.set(pid, (this.stats.errorsByPid.get(pid) ?? 0) + errors);
      t.windowStartNs = sinceStartNs;
      t.windowFromMs = untilMs;
      t.samplerNs = 0;
      if (t.ended) {
        t.rec.close();
        this.targets.delete(pid);
        this.stats.errorsByPid.delete(pid);
        this.stats.exited++;
      }
    }
    this.stats.targets = this.targets.size;
  }

  /** Sample until the signal (or durationS); the last, partial window is cut at the end. */
  async run(): Promise<void> {
    const clock = this.opts.clock ?? realClock;
    const scanMs = (this.opts.scanS ?? 2) * 1000;
    const t0Ms = Date.now();
    let nextScan = 0;
    let boundary = Math.floor(t0Ms / this.windowMs) * this.windowMs + this.windowMs;
    this.scan(t0Ms, 0);
    nextScan = t0Ms + scanMs;
    let last = 0;
    const sched = await runSchedule(
      clock,
      1e9 / this.rate,
      (sinceStartNs) => {
        last = sinceStartNs;
        this.stats.ticks++;
        const nowMs = Date.now();
        if (nowMs >= boundary) {
          // the boundary passed between ticks: the window ends at the boundary
          this.cut(boundary, sinceStartNs);
          boundary += this.windowMs * Math.max(1, Math.ceil((nowMs - boundary + 1) / this.windowMs));
        }
        if (nowMs >= nextScan) {
          nextScan = nowMs + scanMs;
          this.scan(nowMs, sinceStartNs);
        }
        // the sampler's own tick start, read once for every target (the CPU rule compares with it)
        const shared = this.tickStart.restart();
        // each target's time: from the end of the one before (one clock read per target)
        let a = performance.now();
        for (const t of this.targets.values()) {
          if (t.ended) continue;
          const rel = sinceStartNs - t.windowStartNs;
          if (t.rec.tick(rel, rel, shared) === 'stop') {
            t.ended = true;
            const c = t.rec.counts();
            this.log(`PID ${t.found.pid} exited (${t.rec.ticks} ticks, ${t.rec.errors} errors; threads not walked asleep ${c.asleepNotWalked}, runnable-waiting ${c.runnableWaiting}, by clock ${c.clockJudged})`);
          }
          const b = performance.now();
          t.samplerNs += (b - a) * 1e6;
          a = b;
        }
      },
      { ...(this.opts.durationS !== undefined ? { durationNs: this.opts.durationS * 1e9 } : {}), ...(this.opts.signal ? { signal: this.opts.signal } : {}), jitter: DEFAULT_JITTER, yieldEveryMs: AGENT_YIELD_MS },
    );
    this.stats.missedTicks = sched.missedTicks;
    this.cut(Date.now(), Math.max(last, sched.endNs - sched.startNs));
    for (const t of this.targets.values()) t.rec.close();
    this.targets.clear();
  }
}

