/**
 * Driving the eBPF tools (bpftrace, bcc's offcputime): finding them, checking what this
 * process may do, running them so that no probe outlives pylens, and turning their
 * failures into one clear message with the fix.
 *
 * Facts and checks are separate (`readEbpfFacts` reads /proc and /sys, `checkEbpfAccess`
 * is pure), like `readPerfAccess` / `checkPerfAccess` of the perf lens.
 *
 * Probes live as long as the file descriptors of the process that attached them: a dead
 * bpftrace leaves nothing attached. So "never leave a probe attached" means "never leave a
 * tracer running", and `spawnTracer` makes sure of that three ways:
 * - the tracer gets a parent-death signal (`setpriv --pdeathsig TERM`, util-linux): when
 *   pylens dies for any reason, SIGKILL included, the kernel signals the tracer;
 * - pylens kills it on its own 'exit';
 * - it runs in its own process group, so a Ctrl-C at the terminal reaches pylens, which
 *   stops the tracer (SIGINT: bpftrace runs END and prints its maps) and keeps its output.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { PerfError, type FileReader } from '../perf/tool.ts';
import { spawnCollecting } from '../spawn.ts';

/** An eBPF failure the user can fix: a PerfError (the CLI prints message + fix), named differently. */
export class EbpfError extends PerfError {
  constructor(message: string, fix: string) {
    super(message, fix);
    this.name = 'EbpfError';
  }
}

export const BPFTRACE_INSTALL = 'install bpftrace: Debian/Ubuntu `apt-get install bpftrace`, Fedora/RHEL `dnf install bpftrace`; or set PYLENS_BPFTRACE=/path/to/bpftrace';
export const BCC_INSTALL = 'install bcc\'s tools: Debian/Ubuntu `apt-get install bpfcc-tools` (offcputime-bpfcc), Fedora/RHEL `dnf install bcc-tools` (/usr/share/bcc/tools/offcputime); or set PYLENS_OFFCPUTIME=/path/to/offcputime';

const CONTAINER_FIX =
  'in Kubernetes run pylens in a privileged pod (securityContext.privileged: true, or capabilities BPF, PERFMON, SYS_PTRACE, SYS_RESOURCE) with hostPID: true and /sys/kernel/tracing mounted from the host, or as an agent DaemonSet with hostPID; in Docker `--privileged --pid=host` (or `--cap-add BPF --cap-add PERFMON --cap-add SYS_PTRACE --cap-add SYS_RESOURCE`)';

/** What the machine and this process allow, as read from /proc and /sys. */
export interface EbpfFacts {
  /** `uname -r` */
  kernel: string;
  uid: number;
  capBpf: boolean;
  capPerfmon: boolean;
  capSysAdmin: boolean;
  capSysResource: boolean;
  /** a tracefs with `events/`, or undefined */
  tracefs: string | undefined;
  /** /sys/kernel/btf/vmlinux exists */
  btf: boolean;
  /** RLIMIT_MEMLOCK soft/hard in bytes (Infinity: unlimited); undefined when unreadable */
  memlock: { soft: number; hard: number } | undefined;
  /** the container runtime we seem to run in, or undefined */
  container: string | undefined;
  /** kernel lockdown mode ("none", "integrity", "confidentiality"), when the kernel has it */
  lockdown: string | undefined;
}

const CAP_SYS_ADMIN = 21n;
const CAP_SYS_RESOURCE = 24n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

const readOrUndefined: FileReader = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

export const TRACEFS_DIRS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

export function readEbpfFacts(read: FileReader = readOrUndefined, exists: (p: string) => boolean = existsSync, env: NodeJS.ProcessEnv = process.env): EbpfFacts {
  const status = read('/proc/self/status') ?? '';
  const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1];
  const caps = capEff ? BigInt(`0x${capEff}`) : 0n;
  const has = (bit: bigint) => ((caps >> bit) & 1n) === 1n;
  const uid = Number(/^Uid:\s*\d+\s+(\d+)/m.exec(status)?.[1] ?? (process.getuid?.() ?? -1));
  const limits = read('/proc/self/limits') ?? '';
  const ml = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(limits);
  const lim = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
  const lockdown = read('/sys/kernel/security/lockdown');
  return {
    kernel: read('/proc/sys/kernel/osrelease')?.trim() || release(),
    uid,
    capBpf: has(CAP_BPF),
    capPerfmon: has(CAP_PERFMON),
    capSysAdmin: has(CAP_SYS_ADMIN),
    capSysResource: has(CAP_SYS_RESOURCE),
    tracefs: TRACEFS_DIRS.find((d) => exists(`${d}/events`)),
    btf: exists('/sys/kernel/btf/vmlinux'),
    memlock: ml ? { soft: lim(ml[1]!), hard: lim(ml[2]!) } : undefined,
    container: detectContainer(read, exists, env),
    lockdown: lockdown ? (/\[(\w+)\]/.exec(lockdown)?.[1] ?? undefined) : undefined,
  };
}

function detectContainer(read: FileReader, exists: (p: string) => boolean, env: NodeJS.ProcessEnv): string | undefined {
  if (env.KUBERNETES_SERVICE_HOST) return 'kubernetes';
  const cg = read('/proc/1/cgroup') ?? '';
  if (/kubepods/.test(cg)) return 'kubernetes';
  if (exists('/.dockerenv') || /docker/.test(cg)) return 'docker';
  if (exists('/run/.containerenv') || /libpod/.test(cg)) return 'podman';
  if (/containerd|lxc/.test(cg) || env.container) return env.container || 'container';
  return undefined;
}

/** "6.1.0-13-amd64" → [6, 1] */
export function kernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK (later ones to the memory cgroup). */
export function memlockMatters(kernel: string): boolean {
  const [a, b] = kernelVersion(kernel);
  return a < 5 || (a === 5 && b < 11);
}

/** What a tracer needs that bpftrace and bcc need alike. */
export interface EbpfNeeds {
  tool: 'bpftrace' | 'bcc';
}

export interface EbpfCheck {
  warnings: string[];
  /** run the tracer under `prlimit --memlock=unlimited` (an old kernel, and we may raise it) */
  raiseMemlock: boolean;
}

/** 64 MiB: enough for the maps pylens asks for on a kernel that counts them against the limit. */
export const MEMLOCK_NEEDED = 64 << 20;

/**
 * Check the facts for running `needs.tool`. Throws an EbpfError for what cannot work;
 * returns warnings for what works with less.
 */
export function checkEbpfAccess(f: EbpfFacts, needs: EbpfNeeds): EbpfCheck {
  const warnings: string[] = [];
  const name = needs.tool === 'bpftrace' ? 'bpftrace' : 'bcc';
  const inContainer = f.container ? ` (this looks like a ${f.container} container: ${CONTAINER_FIX})` : '';
  if (f.uid !== 0) {
    throw new EbpfError(`${name} runs as root only (pylens runs as uid ${f.uid})`, `run pylens with sudo${inContainer}`);
  }
  const loadOk = f.capBpf || f.capSysAdmin;
  const traceOk = f.capPerfmon || f.capSysAdmin;
  if (!loadOk || !traceOk) {
    const missing = [!loadOk ? 'CAP_BPF' : '', !traceOk ? 'CAP_PERFMON' : ''].filter(Boolean).join(' and ');
    throw new EbpfError(
      `root without ${missing}: the kernel will refuse to load or attach BPF programs`,
      f.container ? CONTAINER_FIX : 'run pylens as full root (not under a capability-dropping wrapper, e.g. `sudo -E`), or grant CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE (CAP_SYS_ADMIN on kernels before 5.8)',
    );
  }
  if (f.lockdown === 'confidentiality') {
    throw new EbpfError('kernel lockdown is in confidentiality mode: BPF tracing programs cannot read kernel memory', 'boot with lockdown=integrity or none (Secure Boot kernels: `mokutil --disable-validation`), or use `pylens sched` (perf) instead');
  }
  if (f.tracefs === undefined) {
    throw new EbpfError(
      'tracefs is not mounted (no /sys/kernel/tracing/events): tracepoints such as sched:sched_switch cannot be found',
      `mount it: \`mount -t tracefs tracefs /sys/kernel/tracing\` (as root)${f.container ? `; in a container mount the host's: \`-v /sys/kernel/tracing:/sys/kernel/tracing\`, or ${CONTAINER_FIX}` : ''}`,
    );
  }
  if (!f.btf) {
    warnings.push('no kernel BTF (/sys/kernel/btf/vmlinux): tracepoints and stacks still work, typed kernel access (kfunc) does not; for BTF use a kernel built with CONFIG_DEBUG_INFO_BTF=y (the distribution kernels of Debian 11+, Ubuntu 20.10+, Fedora 31+ are)');
  }
  let raiseMemlock = false;
  if (memlockMatters(f.kernel) && f.memlock && f.memlock.soft < MEMLOCK_NEEDED) {
    if (f.memlock.hard >= MEMLOCK_NEEDED || f.capSysResource) raiseMemlock = true;
    else {
      throw new EbpfError(
        `RLIMIT_MEMLOCK is ${f.memlock.soft} bytes and kernel ${f.kernel} charges BPF maps against it; it cannot be raised here (hard limit ${f.memlock.hard}, no CAP_SYS_RESOURCE)`,
        `raise it: \`ulimit -l unlimited\` as root before running pylens, or \`LimitMEMLOCK=infinity\` in a systemd unit${f.container ? ', or `docker run --ulimit memlock=-1:-1`' : ''}`,
      );
    }
  }
  return { warnings, raiseMemlock };
}

/** Mount tracefs when it is missing and we are root; returns where it is, or undefined. */
export function ensureTracefs(f: EbpfFacts): string | undefined {
  if (f.tracefs) return f.tracefs;
  if (f.uid !== 0) return undefined;
  for (const dir of TRACEFS_DIRS) {
    if (!existsSync(dir)) continue;
    const r = spawnSync('mount', ['-t', 'tracefs', 'tracefs', dir], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0 && existsSync(`${dir}/events`)) return dir;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Search $PATH, then the sbin folders root's PATH may lack. */
function which(names: string[], env: NodeJS.ProcessEnv, extra: string[] = []): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', '/sbin', '/bin'];
  for (const n of names) {
    for (const d of dirs) {
      const p = join(d, n);
      if (isExecutable(p)) return p;
    }
  }
  return extra.find(isExecutable);
}

/** bpftrace: $PYLENS_BPFTRACE, else on PATH. Throws EbpfError when missing. */
export function findBpftrace(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PYLENS_BPFTRACE) {
    if (!isExecutable(env.PYLENS_BPFTRACE)) throw new EbpfError(`PYLENS_BPFTRACE=${env.PYLENS_BPFTRACE} is not an executable file`, BPFTRACE_INSTALL);
    return env.PYLENS_BPFTRACE;
  }
  const p = which(['bpftrace'], env);
  if (!p) throw new EbpfError('bpftrace is not installed (no `bpftrace` on PATH)', BPFTRACE_INSTALL);
  return p;
}

/** bcc's offcputime: $PYLENS_OFFCPUTIME, offcputime-bpfcc (Debian/Ubuntu), /usr/share/bcc/tools/offcputime (Fedora). */
export function findOffcputime(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PYLENS_OFFCPUTIME) {
    if (!isExecutable(env.PYLENS_OFFCPUTIME)) throw new EbpfError(`PYLENS_OFFCPUTIME=${env.PYLENS_OFFCPUTIME} is not an executable file`, BCC_INSTALL);
    return env.PYLENS_OFFCPUTIME;
  }
  const p = which(['offcputime-bpfcc'], env, ['/usr/share/bcc/tools/offcputime']);
  if (!p) throw new EbpfError('bcc\'s offcputime is not installed (no offcputime-bpfcc on PATH, no /usr/share/bcc/tools/offcputime)', BCC_INSTALL);
  return p;
}

/** `bpftrace --version` → [0, 17, 0], or undefined. */
export function bpftraceVersion(bpftrace: string): [number, number, number] | undefined {
  const r = spawnSync(bpftrace, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(`${r.stdout ?? ''}`);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/**
 * Turn a tracer's stderr into an EbpfError with the fix, or undefined when the text says
 * nothing known. The RLIMIT_MEMLOCK warning bpftrace prints on every run is only blamed on
 * kernels that charge maps to it (`kernel`).
 */
export function explainTracerStderr(stderr: string, what: string, kernel: string = release()): EbpfError | undefined {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/RLIMIT_MEMLOCK/.test(l));
  const first = lines.find((l) => /ERROR|error|fail|denied|not permitted/i.test(l)) ?? lines[0] ?? '';
  const s = stderr;
  if (/only supports running as the root user|must be run as root|Need super-user privileges/i.test(s)) {
    return new EbpfError(`${what} runs as root only (${first})`, 'run pylens with sudo');
  }
  if (/lockdown|Lockdown/.test(s)) {
    return new EbpfError(`${what}: kernel lockdown refuses BPF tracing (${first})`, 'boot with lockdown=integrity or none, or use `pylens sched` (perf) instead');
  }
  if (/tracefs|debugfs|Could not read tracepoint format|\/sys\/kernel\/(debug\/)?tracing/i.test(s) && /No such file|not found|could not|failed/i.test(s)) {
    return new EbpfError(`${what}: tracepoints are not reachable (${first})`, 'mount tracefs: `mount -t tracefs tracefs /sys/kernel/tracing`');
  }
  if (/BTF/.test(s) && /not available|missing|failed|no BTF/i.test(s)) {
    return new EbpfError(`${what}: the kernel has no BTF (${first})`, 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (/sys/kernel/btf/vmlinux)');
  }
  if (memlockMatters(kernel) && /RLIMIT_MEMLOCK|Operation not permitted|EPERM|failed to create map|Failed to load/i.test(s)) {
    return new EbpfError(`${what}: the kernel refused BPF memory (RLIMIT_MEMLOCK is too low on kernel ${kernel}) (${first})`, 'raise it: `ulimit -l unlimited` as root before running pylens; in Docker `--ulimit memlock=-1:-1`');
  }
  if (/Operation not permitted|Permission denied|EPERM|EACCES/i.test(s)) {
    return new EbpfError(`${what}: the kernel refused to load or attach a BPF program (${first})`, `run as root with CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); ${CONTAINER_FIX}`);
  }
  if (/Unable to find kernel headers|kernel headers/i.test(s)) {
    return new EbpfError(`${what}: bcc compiles its programs against the kernel headers, and they are missing (${first})`, 'install them: Debian `apt-get install linux-headers-$(uname -r)`, Ubuntu the same, Fedora/RHEL `dnf install kernel-devel-$(uname -r)`; or use a kernel with CONFIG_IKHEADERS; bpftrace needs no headers');
  }
  if (/No such process|does not exist|pid .* not found|Invalid PID/i.test(s)) {
    return new EbpfError(`${what}: the target process is gone (${first})`, 'check the PID with `ps -p PID`');
  }
  if (/Could not resolve symbol|No probes to attach|Unable to attach probe|Could not add uprobe/i.test(s)) {
    return new EbpfError(`${what}: a probe could not be placed (${first})`, 'run without the GIL probe (gil: false), or check the target\'s libpython with `nm`');
  }
  return undefined;
}

/** A running tracer, its stdout as lines. */
export interface Tracer {
  child: ChildProcess;
  pid: number;
  /** exit code (128 + signal number when killed) and stderr */
  done: Promise<{ code: number; stderr: string }>;
  stderr(): string;
  /** ask it to stop (default SIGINT: bpftrace and bcc print what they have) and wait; SIGKILL after `killAfterMs` */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<{ code: number; stderr: string }>;
  running(): boolean;
}

export interface SpawnTracerOptions {
  env?: NodeJS.ProcessEnv;
  /** each stdout line */
  onLine: (line: string) => void;
  /** run under `prlimit --memlock=unlimited` */
  raiseMemlock?: boolean;
}

let setprivPath: string | null | undefined;
/** util-linux `setpriv` when it knows --pdeathsig, else null. */
function findSetpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  const p = which(['setpriv'], process.env);
  if (p) {
    const r = spawnSync(p, ['--help'], { encoding: 'utf8', timeout: 5000 });
    setprivPath = /--pdeathsig/.test(`${r.stdout}${r.stderr}`) ? p : null;
  } else setprivPath = null;
  return setprivPath;
}

/**
 * The argv that runs `cmd args` so it dies with pylens: `setpriv --pdeathsig TERM` when
 * available, else a `sh` watchdog that kills the tracer when pylens' end of its stdin pipe
 * closes (pylens gone). With `raiseMemlock`, under `prlimit --memlock=unlimited`.
 */
export function tracerArgv(cmd: string, args: string[], o: { setpriv: string | null; raiseMemlock?: boolean; prlimit?: string }): { argv: string[]; watchdog: boolean } {
  const inner = o.raiseMemlock ? [o.prlimit ?? 'prlimit', '--memlock=unlimited:unlimited', cmd, ...args] : [cmd, ...args];
  if (o.setpriv) return { argv: [o.setpriv, '--pdeathsig', 'TERM', ...inner], watchdog: false };
  // sh: start the tracer in the background, forward INT/TERM, and kill it when stdin hits EOF
  const script = 'exec 3<&0; "$@" </dev/null & c=$!; trap \'kill -INT $c 2>/dev/null\' INT; trap \'kill -TERM $c 2>/dev/null\' TERM; (while read -r _; do :; done; kill -TERM $c 2>/dev/null) <&3 & w=$!; while :; do wait $c; s=$?; kill -0 $c 2>/dev/null || break; done; kill $w 2>/dev/null; exit $s';
  return { argv: ['/bin/sh', '-c', script, 'pylens-tracer', ...inner], watchdog: true };
}

/** Start a tracer (bpftrace, offcputime) that cannot outlive pylens. Never rejects: a failure to start is exit code 127. */
export function spawnTracer(cmd: string, args: string[], opts: SpawnTracerOptions): Tracer {
  const { argv, watchdog } = tracerArgv(cmd, args, { setpriv: findSetpriv(), raiseMemlock: opts.raiseMemlock ?? false });
  const run = spawnCollecting(argv[0]!, argv.slice(1), {
    stdio: [watchdog ? 'pipe' : 'ignore', 'pipe'],
    env: opts.env ?? process.env,
    // its own process group: a terminal Ctrl-C is for pylens, which stops the tracer in order
    detached: true,
  });
  const child = run.child;
  let exited = false;
  child.stdin?.on('error', () => {});
  const rl = createInterface({ input: child.stdout!, crlfDelay: Infinity });
  rl.on('line', opts.onLine);
  const stdoutClosed = new Promise<void>((r) => rl.once('close', () => r()));
  const killOnExit = () => {
    if (!exited) {
      try {
        child.kill('SIGTERM');
      } catch {
        /* gone */
      }
    }
  };
  process.on('exit', killOnExit);
  const done = run.done.then(async (r) => {
    exited = true;
    process.off('exit', killOnExit);
    // every line it printed has been handed to onLine (a failure to start has no stdout to wait for)
    if (r.code !== 127 || child.pid !== undefined) await stdoutClosed;
    return r;
  });
  let stopping: Promise<{ code: number; stderr: string }> | undefined;
  return {
    child,
    pid: child.pid ?? -1,
    done,
    stderr: run.stderr,
    running: () => !exited,
    stop(signal: NodeJS.Signals = 'SIGINT', killAfterMs = 15_000) {
      stopping ??= (async () => {
        if (!exited) {
          try {
            child.kill(signal);
          } catch {
            /* gone */
          }
        }
        const timer = setTimeout(() => {
          try {
            child.kill('SIGKILL');
          } catch {
            /* gone */
          }
        }, killAfterMs);
        const r = await done;
        clearTimeout(timer);
        return r;
      })();
      return stopping;
    },
  };
}

/** Whether a process exists (and is not a zombie). */
export function processAlive(pid: number, read: FileReader = readOrUndefined): boolean {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * The output of pylens's bpftrace programs, line by line: `pylens-ready NS` once the probes
 * are attached, `pylens-end NS` from END, "Lost N events", and map entries whose stacks span
 * several indented lines. A subclass takes whole entries in `entry(text)`; `ignore` names
 * the program's bookkeeping maps printed at exit.
 */
export class BpftraceOutput {
  readyNs: number | undefined;
  endNs: number | undefined;
  lost = 0;
  skipped: string[] = [];
  protected buf: string[] = [];
  private readonly ignore: RegExp;
  /** Maps that are the program's own data (anything else printed alone is skipped). */
  private readonly ours: RegExp;

  constructor(ignore: RegExp, ours: RegExp) {
    this.ignore = ignore;
    this.ours = ours;
  }

  line(l: string): void {
    if (this.buf.length > 0) {
      this.buf.push(l);
      if (/^[ \t]/.test(l)) return;
      this.tryEntry();
      if (this.buf.length > 64 * 1024) this.drop();
      return;
    }
    if (l.startsWith('@')) {
      if (this.ignore.test(l)) return;
      this.buf.push(l);
      this.tryEntry();
      return;
    }
    let m = /^pylens-ready (\d+)/.exec(l);
    if (m) {
      this.readyNs = Number(m[1]);
      return;
    }
    m = /^pylens-end (\d+)/.exec(l);
    if (m) {
      this.endNs = Number(m[1]);
      return;
    }
    m = /Lost (\d+) events/.exec(l);
    if (m) {
      this.lost += Number(m[1]);
      return;
    }
    if (l.trim() === '' || /^Attaching \d+ probes?/.test(l)) return;
    if (this.skipped.length < 5) this.skipped.push(l.slice(0, 200));
  }

  /** One whole map entry (its lines joined by \n): true when it was taken. */
  protected entry(_text: string): boolean {
    return false;
  }

  protected drop(): void {
    if (this.skipped.length < 5) this.skipped.push(this.buf.slice(0, 3).join('\\n').slice(0, 200));
    this.buf = [];
  }

  private tryEntry(): void {
    if (this.entry(this.buf.join('\n'))) {
      this.buf = [];
      return;
    }
    // a new entry while one is pending: the pending one is malformed
    const last = this.buf[this.buf.length - 1]!;
    if (this.buf.length > 1 && last.startsWith('@')) {
      this.buf.pop();
      this.drop();
      this.buf.push(last);
      this.tryEntry();
    } else if (this.buf.length === 1 && !this.ours.test(last)) {
      // some other map (e.g. printed by a newer bpftrace at exit): not ours
      this.drop();
    }
  }
}

/** bpftrace, the machine's eBPF facts (tracefs mounted where it can be) and the access check: throws EbpfError with the fix */
export function bpftraceReady(): { bpftrace: string; facts: EbpfFacts; check: EbpfCheck } {
  const bpftrace = findBpftrace();
  let facts = readEbpfFacts();
  if (!facts.tracefs && ensureTracefs(facts)) facts = readEbpfFacts();
  return { bpftrace, facts, check: checkEbpfAccess(facts, { tool: 'bpftrace' }) };
}

/**
 * Wait until `ready()` (the program printed that its probes are attached). A tracer that
 * ends first throws its stderr explained (`refused`: the message's start otherwise); one not
 * ready within 60 s is killed. `cleanup` runs before either throw.
 */
export async function tracerAttached(tracer: Tracer, ready: () => boolean, o: { kernel: string; hint: string; refused: string; fix: string; cleanup: () => void }): Promise<void> {
  const start = Date.now();
  while (!ready()) {
    if (!tracer.running()) {
      const { code, stderr } = await tracer.done;
      o.cleanup();
      throw explainTracerStderr(stderr, 'bpftrace', o.kernel) ?? new EbpfError(`${o.refused} (exit ${code}): ${stderr.split('\n').filter((l) => l.trim() && !/RLIMIT_MEMLOCK/.test(l)).slice(-3).join(' | ') || 'no message'}`, o.fix);
    }
    if (Date.now() - start > 60_000) {
      await tracer.stop('SIGKILL');
      o.cleanup();
      throw new EbpfError('bpftrace did not attach its probes within 60 s', `the machine may be overloaded; try again, or run \`${o.hint}\` by hand`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
