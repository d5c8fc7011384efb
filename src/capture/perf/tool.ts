/**
 * Driving Linux perf: finding it, checking what this process may do with it, and turning
 * its failures into one clear message with the fix. Shared by `pylens perf`, `record
 * --native`, `sched` and `io`.
 *
 * The access rules (kernel Documentation/admin-guide/perf-security.rst):
 * kernel.perf_event_paranoid  -1 everything · 0 no raw/ftrace function events for users ·
 * 1 no CPU-wide (-a) events · 2 user space only · 3 (Debian/Ubuntu patch) no perf at all
 * for unprivileged users. CAP_PERFMON (5.8+) or CAP_SYS_ADMIN bypasses all of it.
 * kernel.kptr_restrict 0 shows kernel addresses, 1 only to CAP_SYSLOG, 2 to nobody: perf
 * then cannot name kernel frames (a warning, not an error).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { spawnCollecting } from '../spawn.ts';
import { accessSync, closeSync, constants, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** A perf failure the user can fix: what went wrong and how. */
export class PerfError extends Error {
  readonly fix: string;
  constructor(message: string, fix: string) {
    super(message);
    this.name = 'PerfError';
    this.fix = fix;
  }
}

const INSTALL_FIX = 'install perf: Debian `apt-get install linux-perf`, Ubuntu `apt-get install linux-tools-$(uname -r) linux-tools-generic`, Fedora/RHEL `dnf install perf`; or put it on PATH (PYLENS_PERF=/path/to/perf also works)';

/** The perf executable: $PYLENS_PERF, else `perf` on PATH. */
export function findPerf(env: NodeJS.ProcessEnv = process.env): string {
  const forced = env.PYLENS_PERF;
  if (forced) {
    if (!isExecutable(forced)) throw new PerfError(`PYLENS_PERF=${forced} is not an executable file`, INSTALL_FIX);
    return forced;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, 'perf');
    if (isExecutable(p)) return p;
  }
  throw new PerfError('perf is not installed (no `perf` on PATH)', INSTALL_FIX);
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** What the kernel lets this process do with perf_event_open. */
export interface PerfAccess {
  /** kernel.perf_event_paranoid; undefined when the file is missing (no perf events in this kernel). */
  paranoid: number | undefined;
  /** kernel.kptr_restrict (0 when missing). */
  kptrRestrict: number;
  uid: number;
  capPerfmon: boolean;
  capSysAdmin: boolean;
  capSyslog: boolean;
  /** A tracefs with an `events/` folder, or undefined. */
  tracefs: string | undefined;
}

const CAP_SYS_ADMIN = 21n;
const CAP_SYSLOG = 34n;
const CAP_PERFMON = 38n;

export type FileReader = (path: string) => string | undefined;
const readOrUndefined: FileReader = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

const TRACEFS_DIRS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

/** Read the access facts from /proc (a reader can be given for tests). */
export function readPerfAccess(read: FileReader = readOrUndefined, exists: (p: string) => boolean = existsSync): PerfAccess {
  const num = (p: string): number | undefined => {
    const s = read(p)?.trim();
    return s === undefined || s === '' || !/^-?\d+$/.test(s) ? undefined : Number(s);
  };
  const status = read('/proc/self/status') ?? '';
  const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1];
  const caps = capEff ? BigInt(`0x${capEff}`) : 0n;
  const has = (bit: bigint) => ((caps >> bit) & 1n) === 1n;
  const uid = Number(/^Uid:\s*\d+\s+(\d+)/m.exec(status)?.[1] ?? (process.getuid?.() ?? -1));
  return {
    paranoid: num('/proc/sys/kernel/perf_event_paranoid'),
    kptrRestrict: num('/proc/sys/kernel/kptr_restrict') ?? 0,
    uid,
    capPerfmon: has(CAP_PERFMON),
    capSysAdmin: has(CAP_SYS_ADMIN),
    capSyslog: has(CAP_SYSLOG) || has(CAP_SYS_ADMIN),
    tracefs: TRACEFS_DIRS.find((d) => exists(`${d}/events`)),
  };
}

export interface AccessNeeds {
  /** Kernel frames or kernel-mode sampling. */
  kernel?: boolean;
  /** Every CPU (`-a`), as `io` and system-wide `sched` need. */
  systemWide?: boolean;
  /** Tracepoints (sched:*, block:*): need a readable tracefs. */
  tracepoints?: boolean;
}

/**
 * Check `a` against `needs`. Throws a PerfError for what cannot work; returns warnings for
 * what works with less (kernel frames unnamed, kernel frames dropped).
 */
export function checkPerfAccess(a: PerfAccess, needs: AccessNeeds): { warnings: string[]; kernel: boolean } {
  const warnings: string[] = [];
  if (a.paranoid === undefined) {
    throw new PerfError('this kernel has no perf events (/proc/sys/kernel/perf_event_paranoid is missing)', 'use a kernel built with CONFIG_PERF_EVENTS; in a container, the host kernel decides');
  }
  // the kernel asks for the capability, not for uid 0 (root without capabilities is refused)
  const privileged = a.capPerfmon || a.capSysAdmin;
  let kernel = needs.kernel ?? false;
  if (!privileged) {
    const raise = `sudo sysctl kernel.perf_event_paranoid=${needs.systemWide || needs.tracepoints ? -1 : kernel ? 1 : 2}`;
    const orCap = 'or run pylens with CAP_PERFMON (`sudo setcap cap_perfmon,cap_sys_ptrace+ep $(command -v perf)` or as root; in Docker `--cap-add PERFMON`)';
    if (a.paranoid >= 3) throw new PerfError(`perf_event_paranoid is ${a.paranoid}: this kernel allows perf only to privileged users`, `${raise}, ${orCap}`);
    if (needs.tracepoints && a.paranoid >= 0) throw new PerfError(`perf_event_paranoid is ${a.paranoid}: tracepoints need -1 or CAP_PERFMON`, `${raise}, ${orCap}`);
    if (needs.systemWide && a.paranoid >= 1) throw new PerfError(`perf_event_paranoid is ${a.paranoid}: system-wide recording needs 0 or less, or CAP_PERFMON`, `${raise}, ${orCap}`);
    if (kernel && a.paranoid >= 2) {
      warnings.push(`perf_event_paranoid is ${a.paranoid}: kernel frames are left out (user space only); for them: sudo sysctl kernel.perf_event_paranoid=1, ${orCap}`);
      kernel = false;
    }
  }
  if (needs.tracepoints && a.tracefs === undefined) {
    throw new PerfError('tracefs is not mounted (no /sys/kernel/tracing/events): perf cannot find tracepoints', 'mount it: `mount -t tracefs tracefs /sys/kernel/tracing` (as root; in Docker, run with --privileged or mount it on the host)');
  }
  if (kernel && (a.kptrRestrict >= 2 || (a.kptrRestrict === 1 && !a.capSyslog))) {
    warnings.push(`kptr_restrict is ${a.kptrRestrict}: kernel frames will show as [unknown]; to name them: sudo sysctl kernel.kptr_restrict=0`);
  }
  return { warnings, kernel };
}

/**
 * Whether `event` can be opened here: VMs often have no hardware counters, so `cycles`
 * fails and the caller falls back to `cpu-clock`. Runs `perf stat` on `true` (~20 ms).
 */
export function eventSupported(perf: string, event: string): boolean {
  const r = spawnSync(perf, ['stat', '-x', ',', '-e', event, '--', 'true'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) return false;
  const text = `${r.stderr}`;
  return !/<not supported>|<not counted>|not supported|Error/i.test(text);
}

/** The event to sample CPU with: `cycles` where the hardware counts it, else `cpu-clock`. */
export function cpuEvent(perf: string, wanted: string | undefined): { event: string; note?: string } {
  if (wanted) {
    if (!eventSupported(perf, wanted)) {
      throw new PerfError(`perf cannot open event '${wanted}' here`, wanted === 'cycles' || wanted.startsWith('cycles') || wanted.startsWith('instructions')
        ? 'hardware counters are missing (usual in VMs and containers): use -e cpu-clock'
        : 'list the events this machine has with `perf list`');
    }
    return { event: wanted };
  }
  if (eventSupported(perf, 'cycles')) return { event: 'cycles' };
  return { event: 'cpu-clock', note: 'no hardware cycle counter here (a VM?): sampling on cpu-clock, a timer' };
}

/**
 * Turn perf's stderr from a failed run into a PerfError with the fix, or undefined when the
 * text says nothing known. `what` names the step (e.g. "perf record").
 */
export function explainPerfStderr(stderr: string, what: string): PerfError | undefined {
  const s = stderr;
  const first = s.split('\n').map((l) => l.trim()).find((l) => l && !/^(Error|Warning):?$/.test(l)) ?? '';
  if (/perf_event_paranoid|Access to performance monitoring and observability operations is limited|No permission to enable/i.test(s)) {
    return new PerfError(`${what}: the kernel refused access to perf events (${first})`, 'run as root or with CAP_PERFMON, or lower kernel.perf_event_paranoid (`sudo sysctl kernel.perf_event_paranoid=1`)');
  }
  if (/event syntax error|not supported|The (cycles|instructions)[^\n]* event is not supported|Invalid event/i.test(s)) {
    return new PerfError(`${what}: an event is not supported here (${first})`, 'hardware events are missing in most VMs: use -e cpu-clock; `perf list` shows what this machine has');
  }
  if (/Can't access file .*tracing|tracefs|debugfs|No such file or directory.*events/i.test(s)) {
    return new PerfError(`${what}: tracepoints are not reachable (${first})`, 'mount tracefs: `mount -t tracefs tracefs /sys/kernel/tracing`');
  }
  if (/Couldn't synthesize|No such process|Problems finding threads of monitor|thread map/i.test(s)) {
    return new PerfError(`${what}: the target process is gone or cannot be traced (${first})`, 'check the PID with `ps -p PID`; attaching to another user\'s process needs root or CAP_PERFMON + CAP_SYS_PTRACE');
  }
  if (/perf: command not found|not found for kernel|WARNING: perf not found/i.test(s)) {
    return new PerfError(`${what}: perf is installed but not for this kernel (${first})`, INSTALL_FIX);
  }
  return undefined;
}

/** A running perf process with its stderr collected. */
export interface PerfRun {
  child: ChildProcess;
  pid: number;
  /** Resolves with perf's exit code (128 + signal when killed) and everything it wrote on stderr. */
  done: Promise<{ code: number; stderr: string }>;
  /** Stderr so far. */
  stderr(): string;
}

export interface SpawnPerfOptions {
  /** Passed through; default: stdin ignored, stdout/stderr piped. */
  stdio?: Array<'inherit' | 'pipe' | 'ignore' | number>;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called with each stderr chunk (stderr is collected either way). */
  onStderr?: (chunk: string) => void;
  /** Its own process group: a Ctrl-C at the terminal does not reach it (pylens stops it). */
  detached?: boolean;
}

/** Start perf with `args`. Never rejects: a failure to start shows as exit code 127. */
export function spawnPerf(perf: string, args: string[], opts: SpawnPerfOptions = {}): PerfRun {
  return spawnCollecting(perf, args, { ...opts, stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
}

/**
 * Start `perf record <args>` with its events disabled (`-D -1`) and enable them through its
 * control descriptors (`--control fd:3,4`, two pipes), resolving once perf acks: what
 * happens after this resolves is recorded, and a duration counted from here is a duration
 * of data. Stdin/stdout come from `opts.stdio` (default ignored), stderr is collected.
 * `hint` is the command to suggest running by hand when perf fails to start.
 */
export async function startPerfRecord(perf: string, recordArgs: string[], opts: SpawnPerfOptions & { readyTimeoutMs?: number; hint?: string } = {}): Promise<PerfRun> {
  const [sub, ...rest] = recordArgs;
  const stdio = [opts.stdio?.[0] ?? 'ignore', opts.stdio?.[1] ?? 'ignore', 'pipe', 'pipe', 'pipe'] as Array<'inherit' | 'pipe' | 'ignore'>;
  const run = spawnPerf(perf, [sub!, '-D', '-1', '--control', 'fd:3,4', ...rest], { ...opts, stdio });
  const ctl = run.child.stdio[3] as NodeJS.WritableStream | null;
  const ack = run.child.stdio[4] as NodeJS.ReadableStream | null;
  const hint = opts.hint ?? `perf ${recordArgs.join(' ')}`;
  if (!ctl || !ack) {
    run.child.kill('SIGKILL');
    throw new PerfError('perf record: could not open its control pipes', `run \`${hint}\` by hand`);
  }
  // perf may exit before reading or writing them: those errors are the exit's, reported below
  (ctl as unknown as { on(e: string, f: () => void): void }).on('error', () => {});
  (ack as unknown as { on(e: string, f: () => void): void }).on('error', () => {});
  const acked = new Promise<'ack'>((resolve) => {
    let text = '';
    const onData = (c: Buffer) => {
      text += c.toString('latin1');
      if (!text.includes('ack')) return;
      ack.off('data', onData);
      ack.resume(); // keep draining, so the pipe closes when perf exits
      resolve('ack');
    };
    ack.on('data', onData);
  });
  ctl.write('enable\n');
  const timeoutMs = opts.readyTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const first = await Promise.race([acked, run.done.then(() => 'exited' as const), new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)))]);
  clearTimeout(timer);
  if (first !== 'ack') {
    if (first === 'timeout') run.child.kill('SIGKILL');
    const { code, stderr } = await run.done;
    if (first === 'timeout') throw new PerfError(`perf record did not start within ${Math.round(timeoutMs / 1000)} s`, `the machine may be overloaded; try again, or run \`${hint}\` by hand`);
    throw explainPerfStderr(stderr, 'perf record') ?? new PerfError(`perf record failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no message'}`, `run \`${hint}\` by hand to see the whole message`);
  }
  return run;
}


/**
 * Run a perf subcommand to completion (e.g. `perf script`), stdout into `outFile` when
 * given. Throws a PerfError naming `what` when it fails.
 */
export function runPerfSync(perf: string, args: string[], what: string, opts: { outFile?: string; timeoutMs?: number } = {}): { stdout: string; stderr: string } {
  const fd = opts.outFile ? openSync(opts.outFile, 'w') : -1;
  let r: ReturnType<typeof spawnSync>;
  try {
    r = spawnSync(perf, args, {
      encoding: 'utf8',
      maxBuffer: 1 << 29,
      timeout: opts.timeoutMs ?? 600_000,
      stdio: ['ignore', fd >= 0 ? fd : 'pipe', 'pipe'],
    });
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  const stderr = String(r.stderr ?? '');
  if (r.error) throw new PerfError(`${what}: ${r.error.message}`, (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? INSTALL_FIX : 'run the same perf command by hand to see the whole message');
  if (r.status !== 0) {
    throw explainPerfStderr(stderr, what) ?? new PerfError(`${what} failed (exit ${r.status ?? r.signal}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`, 'run the same perf command by hand to see the whole message');
  }
  return { stdout: String(r.stdout ?? ''), stderr };
}

/**
 * CPU time (user + system) a live process has used, in ns; undefined when it is gone. The
 * sum of its threads' /proc/PID/task/TID/schedstat (ns precision), or /proc/PID/stat's
 * utime + stime (10 ms ticks, but it counts threads that have exited) when that is more.
 */
export function processCpuNs(pid: number, read: FileReader = readOrUndefined, list: (dir: string) => string[] = listDir): number | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 (utime, stime) are at 11 and 12 after the state field at 0
  const ticks = Number(after[11]) + Number(after[12]);
  const fromStat = Number.isFinite(ticks) ? ticks * (1e9 / CLOCK_TICKS) : undefined;
  let sum = 0;
  for (const t of list(`/proc/${pid}/task`)) {
    const s = read(`/proc/${pid}/task/${t}/schedstat`);
    if (s) sum += Number(s.split(' ')[0]) || 0;
  }
  return fromStat === undefined ? (sum > 0 ? sum : undefined) : Math.max(sum, fromStat);
}

const listDir = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

/** USER_HZ: 100 on every Linux architecture pylens runs on. */
const CLOCK_TICKS = 100;
