/**
 * `pylens doctor`: what each lens can do on this machine, why, and the exact fix — and, for a
 * process, whether it can be sampled and what each lens would see of it.
 *
 * Everything here is probed, not assumed: the sampler's memory read is tried on a child
 * process, perf's hardware counters with `perf stat`, the task clock with perf_event_open;
 * the rest is read from /proc and /sys (capabilities, Yama, perf_event_paranoid, kptr_restrict,
 * tracefs, BTF, RLIMIT_MEMLOCK, seccomp, lockdown, container and PID namespace). The result
 * is data (`DoctorReport`); render/doctor.ts prints it.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { release } from 'node:os';
import { checkEbpfAccess, EbpfError, findBpftrace, findOffcputime, bpftraceVersion, readEbpfFacts, type EbpfFacts } from './ebpf/tool.ts';
import { checkPerfAccess, eventSupported, findPerf, PerfError, readPerfAccess, type PerfAccess } from './perf/tool.ts';
import { interpreterSymbolsOf, interpreterSymbolsOfPython, symbolsFix, type InterpreterSymbols, type SymbolsVerdict } from './perf/symbols.ts';
import { findLibpython, PYTHON_EXE, readMaps } from './sampler/maps.ts';
import { inChildPidNamespace, PermissionError, ProcessGoneError, ProcMemory } from './sampler/memory.ts';
import { locateRuntime, MAX_SUPPORTED, MIN_SUPPORTED } from './sampler/runtime.ts';
import { syscalls, syscallsError } from './sampler/syscalls.ts';

export type DoctorStatus = 'ready' | 'degraded' | 'unavailable';

/** One capability: its state, why, and what to do about it. */
export interface DoctorCheck {
  name: string;
  /** unavailable: the lens cannot run without it; degraded: it runs with less */
  status: DoctorStatus;
  detail: string;
  fix?: string;
}

export type LensId = 'sampler' | 'perf' | 'ebpf' | 'hooks';

export interface LensReport {
  id: LensId;
  title: string;
  commands: string[];
  /** the worst of its checks */
  status: DoctorStatus;
  checks: DoctorCheck[];
}

export interface EnvironmentReport {
  kernel: string;
  os: string | undefined;
  node: string;
  uid: number;
  /** effective capabilities that matter to pylens, by name */
  capabilities: string[];
  /** the container runtime we seem to run in */
  container: string | undefined;
  /** 'host': the machine's first PID namespace; 'own': a container's (memory.ts inChildPidNamespace) */
  pidNamespace: 'host' | 'own';
  seccomp: 'off' | 'strict' | 'filter' | 'unknown';
  ptraceScope: number | undefined;
}

export interface TargetReport {
  pid: number;
  command: string;
  uid: number | undefined;
  checks: DoctorCheck[];
  python?: { version: string; binary: string; kind: string; symbols: SymbolsVerdict | 'unknown'; symbolsFile?: string; symbolsFix?: string };
  /** what each lens would see of this process */
  lenses: Array<{ id: LensId; status: DoctorStatus; sees: string }>;
  /** the worst of its checks: can it be sampled at all */
  status: DoctorStatus;
}

export interface DoctorReport {
  lenses: LensReport[];
  environment: EnvironmentReport;
  /** container recipes, when we run in one or a lens is held back by the container */
  container: string[];
  target?: TargetReport;
}

const RANK: Record<DoctorStatus, number> = { ready: 0, degraded: 1, unavailable: 2 };
export const worst = (xs: DoctorStatus[]): DoctorStatus => xs.reduce<DoctorStatus>((a, b) => (RANK[b] > RANK[a] ? b : a), 'ready');

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

const CAPS: Array<[number, string]> = [
  [19, 'SYS_PTRACE'],
  [21, 'SYS_ADMIN'],
  [24, 'SYS_RESOURCE'],
  [34, 'SYSLOG'],
  [38, 'PERFMON'],
  [39, 'BPF'],
];

function capabilities(status: string): Set<string> {
  const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1];
  const caps = capEff ? BigInt(`0x${capEff}`) : 0n;
  return new Set(CAPS.filter(([bit]) => ((caps >> BigInt(bit)) & 1n) === 1n).map(([, n]) => n));
}

export function readEnvironment(ebpf: EbpfFacts): EnvironmentReport {
  const status = read('/proc/self/status') ?? '';
  const seccomp = /^Seccomp:\s*(\d)/m.exec(status)?.[1];
  const scope = read('/proc/sys/kernel/yama/ptrace_scope')?.trim();
  const osRelease = read('/etc/os-release') ?? '';
  return {
    kernel: ebpf.kernel || release(),
    os: /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1],
    node: process.version,
    uid: ebpf.uid,
    capabilities: [...capabilities(status)],
    container: ebpf.container,
    pidNamespace: inChildPidNamespace() === true ? 'own' : 'host',
    seccomp: seccomp === '0' ? 'off' : seccomp === '1' ? 'strict' : seccomp === '2' ? 'filter' : 'unknown',
    ptraceScope: scope !== undefined && /^\d+$/.test(scope) ? Number(scope) : undefined,
  };
}

const DOCTOR_RECIPES = {
  dockerPtrace: '`docker run --cap-add SYS_PTRACE …` (and `--pid=host` or `--pid=container:APP` to see another container\'s processes)',
  k8sPtrace: 'Kubernetes: `securityContext.capabilities.add: ["SYS_PTRACE"]`, with `shareProcessNamespace: true` for a sidecar, or `kubectl debug -it POD --image=IMAGE --target=APP --profile=general`',
  seccomp: 'a seccomp filter is on: if a probe below fails with EPERM, run with `--security-opt seccomp=unconfined` (Docker) or `seccompProfile: {type: Unconfined}` (Kubernetes)',
};

/** Read a few bytes of a child's memory the way the sampler does (process_vm_readv or /proc/PID/mem). */
async function probeRead(): Promise<{ ok: true; how: string } | { ok: false; error: string; fix?: string }> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 50));
    const pid = child.pid;
    if (pid === undefined) return { ok: false, error: 'could not start a probe process' };
    const maps = readMaps(pid);
    const m = maps.find((r) => r.perms.startsWith('r') && r.path !== '[vvar]' && r.path !== '[vsyscall]');
    if (!m) return { ok: false, error: 'the probe process has no readable mapping' };
    const mem = ProcMemory.open(pid);
    try {
      mem.read(m.start, 8);
    } finally {
      mem.close();
    }
    return { ok: true, how: syscalls() ? 'process_vm_readv' : '/proc/PID/mem' };
  } catch (e) {
    if (e instanceof PermissionError) return { ok: false, error: e.message.split('. ')[0]!, fix: e.message.split('. ').slice(1).join('. ') };
    return { ok: false, error: (e as Error).message };
  } finally {
    child.kill('SIGKILL');
  }
}

/** The task clock of one of our own threads, as the sampler's CPU rule opens it. */
function probeTaskClock(): { ok: boolean; detail: string } {
  const sys = syscalls();
  if (!sys) return { ok: false, detail: 'no koffi' };
  const fd = sys.openTaskClock(process.pid);
  if (fd < 0) return { ok: false, detail: `perf_event_open failed (errno ${-fd})` };
  closeSync(fd);
  return { ok: true, detail: 'per-thread task clocks (perf_event_open)' };
}

interface PythonFound {
  command: string;
  executable: string;
  version: string;
  minor: number;
  yappi: boolean;
}

/** `python3`, `python` and the system's python3 as this shell would run them: the real executable, version, yappi (probed in parallel). */
async function findPythons(env: NodeJS.ProcessEnv): Promise<PythonFound[]> {
  const code = 'import sys, importlib.util as u; print(sys.executable); print("%d.%d.%d" % sys.version_info[:3]); print(sys.version_info[1]); print(u.find_spec("yappi") is not None)';
  const run = (command: string) =>
    new Promise<PythonFound | undefined>((resolve) => {
      execFile(command, ['-c', code], { encoding: 'utf8', timeout: 10_000, env }, (err, stdout) => {
        if (err || !stdout) return resolve(undefined);
        const [executable, version, minor, yappi] = stdout.trim().split('\n');
        if (!executable) return resolve(undefined);
        resolve({ command, executable, version: version ?? '?', minor: Number(minor), yappi: yappi === 'True' });
      });
    });
  const found = await Promise.all(['python3', 'python', '/usr/bin/python3'].map(run));
  const out: PythonFound[] = [];
  const seen = new Set<string>();
  for (const p of found) {
    if (!p) continue;
    let real = p.executable;
    try {
      real = realpathSync(p.executable);
    } catch {
      /* keep the name */
    }
    if (seen.has(real)) continue;
    seen.add(real);
    out.push(p);
  }
  return out;
}

function samplerLens(env: EnvironmentReport, readProbe: Awaited<ReturnType<typeof probeRead>>, pythons: PythonFound[]): LensReport {
  const checks: DoctorCheck[] = [];
  const ptrace = env.capabilities.includes('SYS_PTRACE');
  const scope = env.ptraceScope;
  const inContainer = env.container !== undefined;
  const capFix = `run pylens as root or with CAP_SYS_PTRACE (\`sudo pylens …\`)${inContainer ? `; in a container ${DOCTOR_RECIPES.dockerPtrace}; ${DOCTOR_RECIPES.k8sPtrace}` : ''}`;
  if (scope === 3) {
    checks.push({ name: 'attach to a running process (-p PID)', status: 'degraded', detail: 'Yama ptrace_scope is 3: no process may attach to another, not even root; only programs pylens launches (`pylens record -- python app.py`) can be sampled', fix: 'ptrace_scope 3 can only be lowered by a reboot: set kernel.yama.ptrace_scope=1 (or 0) in /etc/sysctl.d/ and reboot' });
  } else if (ptrace) {
    checks.push({ name: 'attach to a running process (-p PID)', status: 'ready', detail: `CAP_SYS_PTRACE: any process${scope !== undefined ? ` (Yama ptrace_scope ${scope})` : ''}` });
  } else if (scope === 2) {
    checks.push({ name: 'attach to a running process (-p PID)', status: 'degraded', detail: 'Yama ptrace_scope is 2: only CAP_SYS_PTRACE may attach; only programs pylens launches can be sampled', fix: capFix });
  } else if (scope === 1) {
    checks.push({ name: 'attach to a running process (-p PID)', status: 'degraded', detail: `Yama ptrace_scope is 1: only descendants — programs pylens launches (\`pylens record -- python app.py\`); -p PID works for none of this user's other processes`, fix: `${capFix}, or \`sudo sysctl kernel.yama.ptrace_scope=0\`` });
  } else {
    checks.push({ name: 'attach to a running process (-p PID)', status: 'degraded', detail: `${env.uid === 0 ? 'root without CAP_SYS_PTRACE: processes of uid 0 that hold no capability pylens lacks (a root service with its capabilities is refused)' : `processes of your own user (uid ${env.uid}) only`}${scope !== undefined ? ` (Yama ptrace_scope ${scope})` : ' (no Yama)'}`, fix: capFix });
  }
  if (readProbe.ok) {
    const fast = readProbe.how === 'process_vm_readv';
    checks.push({
      name: 'read process memory',
      status: fast ? 'ready' : 'degraded',
      detail: fast ? 'process_vm_readv (koffi), tried on a child process' : `/proc/PID/mem, tried on a child process (koffi did not load: ${syscallsError() ?? 'unknown'}): slower reads, no --blocking`,
      ...(fast ? {} : { fix: 'reinstall pylens so that its koffi dependency brings its prebuilt binary for this platform (`npm install -g pylens`)' }),
    });
  } else {
    checks.push({ name: 'read process memory', status: 'unavailable', detail: `a read of a child process's memory failed: ${readProbe.error}`, fix: readProbe.fix ?? `${capFix}${env.seccomp === 'filter' ? `; ${DOCTOR_RECIPES.seccomp}` : ''}` });
  }
  const clock = probeTaskClock();
  checks.push(clock.ok
    ? { name: 'CPU rule (which threads are on a CPU)', status: 'ready', detail: `${clock.detail}: a long C call is told from a thread waiting for a CPU` }
    : { name: 'CPU rule (which threads are on a CPU)', status: 'degraded', detail: `no task clocks (${clock.detail}): the rule falls back to the scheduler's counters and misses some preempted C calls`, fix: 'CAP_PERFMON, or `sudo sysctl kernel.perf_event_paranoid=1`' });
  const supported = pythons.filter((p) => p.minor >= MIN_SUPPORTED.minor && p.minor <= MAX_SUPPORTED.minor);
  checks.push(pythons.length === 0
    ? { name: 'a Python to launch', status: 'degraded', detail: 'no python3 or python on PATH (attaching with -p PID still works)', fix: 'install CPython 3.8+ or give its path: `pylens record -- /path/to/python app.py`' }
    : supported.length === 0
      ? { name: 'a Python to launch', status: 'degraded', detail: `${pythons.map((p) => `${p.command} is ${p.version}`).join(', ')}: the sampler reads CPython ${MIN_SUPPORTED.major}.${MIN_SUPPORTED.minor}–${MAX_SUPPORTED.major}.${MAX_SUPPORTED.minor}`, fix: 'use a supported CPython' }
      : { name: 'a Python to launch', status: 'ready', detail: pythons.map((p) => `${p.command} → CPython ${p.version} (${p.executable})`).join('; ') });
  return { id: 'sampler', title: 'sampling', commands: ['record', 'top', 'dump', 'diagnose'], status: worst(checks.map((c) => c.status)), checks };
}

function perfLens(access: PerfAccess, symbols: Array<{ python: PythonFound; sym: InterpreterSymbols | undefined }>): LensReport {
  const checks: DoctorCheck[] = [];
  let perf: string | undefined;
  try {
    perf = findPerf();
    const v = spawnSync(perf, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    if (v.status !== 0) throw new PerfError(`${perf} does not run for this kernel: ${(v.stderr || v.stdout).trim().split('\n')[0]}`, 'install the perf that matches the running kernel (Debian: linux-perf; Ubuntu: linux-tools-$(uname -r))');
    checks.push({ name: 'perf', status: 'ready', detail: `${v.stdout.trim()} at ${perf}` });
  } catch (e) {
    const err = e as PerfError;
    checks.push({ name: 'perf', status: 'unavailable', detail: err.message, ...(err.fix ? { fix: err.fix } : {}) });
    return { id: 'perf', title: 'perf', commands: ['perf', 'sched', 'io', 'record --native'], status: 'unavailable', checks };
  }
  try {
    const w = checkPerfAccess(access, { kernel: true });
    const para = `perf_event_paranoid ${access.paranoid}${access.capPerfmon ? ', CAP_PERFMON' : access.capSysAdmin ? ', CAP_SYS_ADMIN' : ''}`;
    if (w.warnings.length === 0) checks.push({ name: 'perf events of a process, with kernel frames', status: 'ready', detail: `${para}; kernel symbols readable (kptr_restrict ${access.kptrRestrict})` });
    for (const warn of w.warnings) {
      const [detail, fix] = warn.split(/;\s*(?=to name them|for them)/);
      checks.push({ name: 'perf events of a process, with kernel frames', status: 'degraded', detail: detail!, ...(fix ? { fix: fix.replace(/^(to name them|for them):\s*/, '') } : {}) });
    }
  } catch (e) {
    const err = e as PerfError;
    checks.push({ name: 'perf events of a process', status: 'unavailable', detail: err.message, fix: err.fix });
  }
  try {
    checkPerfAccess(access, { systemWide: true, tracepoints: true });
    checks.push({ name: 'tracepoints, every CPU (sched, io)', status: 'ready', detail: `tracefs at ${access.tracefs}` });
  } catch (e) {
    const err = e as PerfError;
    checks.push({ name: 'tracepoints, every CPU (sched, io)', status: 'degraded', detail: `${err.message}: pylens sched -a and pylens io cannot run`, fix: err.fix });
  }
  for (const { python, sym } of symbols) {
    if (!sym) continue;
    const name = `symbols of ${python.command}'s interpreter (native frames)`;
    if (sym.verdict === 'stripped') checks.push({ name, status: 'degraded', detail: `${sym.path} (CPython ${python.version}) is stripped and no debug file was found${sym.buildId ? ` for build id ${sym.buildId}` : ''}: record --native and perf show its own C frames as unknown addresses`, fix: symbolsFix(sym) });
    else checks.push({ name, status: 'ready', detail: sym.verdict === 'symbols' ? `${sym.path} has its symbol table` : `${sym.path} is stripped; perf reads its symbols from ${sym.debugFile}` });
  }
  const cycles = eventSupported(perf, 'cycles');
  checks.push(cycles
    ? { name: 'hardware cycle counter', status: 'ready', detail: 'cycles' }
    : { name: 'hardware cycle counter', status: 'degraded', detail: 'none here (usual in VMs and containers): perf samples on cpu-clock, a timer — fine for where time goes, no cycle or cache counts', fix: 'on a VM, enable the virtual PMU (e.g. KVM `-cpu host`, AWS metal or instances with PMU access) if you need hardware counters' });
  return { id: 'perf', title: 'perf', commands: ['perf', 'sched', 'io', 'record --native'], status: worst(checks.map((c) => c.status)), checks };
}

function ebpfLens(facts: EbpfFacts): LensReport {
  const checks: DoctorCheck[] = [];
  let bpftrace: string | undefined;
  try {
    bpftrace = findBpftrace();
    const v = bpftraceVersion(bpftrace);
    checks.push({ name: 'bpftrace', status: 'ready', detail: `${v ? `bpftrace ${v.join('.')}` : 'bpftrace'} at ${bpftrace}` });
  } catch (e) {
    const err = e as EbpfError;
    checks.push({ name: 'bpftrace', status: 'unavailable', detail: err.message, fix: err.fix });
  }
  try {
    const t = findOffcputime();
    checks.push({ name: "bcc's offcputime (offcpu --backend bcc)", status: 'ready', detail: t });
  } catch (e) {
    const err = e as EbpfError;
    checks.push({ name: "bcc's offcputime (offcpu --backend bcc)", status: bpftrace ? 'degraded' : 'unavailable', detail: `${err.message}${bpftrace ? ' (bpftrace is enough for every eBPF command)' : ''}`, fix: err.fix });
  }
  try {
    const c = checkEbpfAccess(facts, { tool: 'bpftrace' });
    checks.push({ name: 'load and attach BPF programs', status: 'ready', detail: `uid ${facts.uid}, ${[facts.capBpf ? 'CAP_BPF' : '', facts.capPerfmon ? 'CAP_PERFMON' : '', facts.capSysAdmin ? 'CAP_SYS_ADMIN' : ''].filter(Boolean).join(', ')}; tracefs at ${facts.tracefs}${facts.lockdown ? `; lockdown ${facts.lockdown}` : ''}` });
    checks.push(facts.btf ? { name: 'kernel BTF', status: 'ready', detail: '/sys/kernel/btf/vmlinux' } : { name: 'kernel BTF', status: 'degraded', detail: c.warnings.find((w) => /BTF/.test(w)) ?? 'no /sys/kernel/btf/vmlinux', fix: 'a kernel built with CONFIG_DEBUG_INFO_BTF=y' });
    // record --backend kernel reads the interrupted thread's FS base through BTF (curtask), on x86-64
    const kernelWalk = 'record --backend kernel (Python stacks walked in the kernel)';
    checks.push(
      !facts.btf
        ? { name: kernelWalk, status: 'unavailable', detail: 'it reads the interrupted thread\'s FS base through the kernel\'s BTF', fix: 'a kernel built with CONFIG_DEBUG_INFO_BTF=y; else the default sampler' }
        : process.arch !== 'x64'
          ? { name: kernelWalk, status: 'unavailable', detail: `x86-64 only (this is ${process.arch})`, fix: 'the default sampler (record without --backend)' }
          : { name: kernelWalk, status: 'ready', detail: 'CPython 3.8–3.13, CPU samples, a fraction of the sampler\'s cost' },
    );
    const ml = facts.memlock;
    checks.push({
      name: 'RLIMIT_MEMLOCK',
      status: 'ready',
      detail: `${ml ? (ml.soft === Infinity ? 'unlimited' : `${ml.soft} bytes`) : 'unknown'}${c.raiseMemlock ? ' (pylens raises it for the tracer: kernel < 5.11 charges BPF maps to it)' : ` (kernel ${facts.kernel}${/^[0-4]\.|^5\.([0-9]|10)\./.test(facts.kernel) ? '' : ' charges BPF maps to the memory cgroup, not to this limit'})`}`,
    });
  } catch (e) {
    const err = e as EbpfError;
    checks.push({ name: 'load and attach BPF programs', status: 'unavailable', detail: err.message, fix: err.fix });
  }
  return { id: 'ebpf', title: 'eBPF', commands: ['offcpu', 'record --backend ebpf', 'record --backend kernel', 'diagnose (off-CPU)'], status: worst(checks.map((c) => c.status)), checks };
}

function hooksLens(pythons: PythonFound[]): LensReport {
  const checks: DoctorCheck[] = [];
  const ok = pythons.filter((p) => p.minor >= 8);
  if (ok.length === 0) {
    checks.push({ name: 'CPython 3.8+ to run the program under', status: 'unavailable', detail: pythons.length ? pythons.map((p) => `${p.command} is ${p.version}`).join(', ') : 'no python3 or python on PATH', fix: 'install CPython 3.8+ (or name one: `pylens trace -- /path/to/python3 app.py`)' });
  } else {
    checks.push({ name: 'CPython 3.8+ to run the program under', status: 'ready', detail: ok.map((p) => `${p.command} → ${p.version}: ${p.minor >= 12 ? 'sys.monitoring' : 'cProfile / sys.setprofile'}; tracemalloc`).join('; ') });
    const y = ok.filter((p) => p.yappi);
    checks.push(y.length
      ? { name: 'yappi (pylens yappi)', status: 'ready', detail: y.map((p) => p.command).join(', ') }
      : { name: 'yappi (pylens yappi)', status: 'degraded', detail: `not importable by ${ok.map((p) => p.command).join(' or ')}: only \`pylens yappi\` needs it`, fix: '`python3 -m pip install yappi` (Debian/Ubuntu: `apt-get install python3-yappi`)' });
  }
  checks.push({ name: 'attach to a running process', status: 'ready', detail: 'not needed: these lenses run the program themselves (`pylens trace -- python app.py`); for a running process use the sampler' });
  return { id: 'hooks', title: 'interpreter hooks', commands: ['trace', 'count', 'mem', 'yappi', 'check'], status: worst(checks.map((c) => c.status)), checks };
}

function containerRecipes(env: EnvironmentReport): string[] {
  if (env.container === undefined && env.pidNamespace === 'host') return [];
  const out: string[] = [];
  if (env.container) out.push(`this looks like a ${env.container} container`);
  if (env.pidNamespace === 'own') out.push("this PID namespace is not the host's: only processes in this container (or those sharing its namespace) are visible; to profile another container's process: `docker run --pid=container:APP --cap-add SYS_PTRACE …`, a Kubernetes sidecar with `shareProcessNamespace: true`, or `kubectl debug -it POD --image=IMAGE --target=APP --profile=general`; from the host: `nsenter -t HOSTPID -p -m pylens record -p PID`");
  out.push(`capabilities: the sampler needs SYS_PTRACE; perf needs PERFMON (SYS_ADMIN on kernels before 5.8); eBPF needs BPF, PERFMON and SYS_RESOURCE, root, and the host's /sys/kernel/tracing mounted (\`-v /sys/kernel/tracing:/sys/kernel/tracing\`)`);
  if (env.seccomp === 'filter') out.push(DOCTOR_RECIPES.seccomp);
  return out;
}

/** What this process can learn about `pid` and what each lens would see of it. */
export async function diagnoseTarget(pid: number, lenses: LensReport[], env: NodeJS.ProcessEnv = process.env): Promise<TargetReport> {
  if (!existsSync(`/proc/${pid}`)) {
    throw new ProcessGoneError(pid, inChildPidNamespace() !== true ? 'check the PID with `ps -p PID`' : 'not visible from this PID namespace (a container?): run pylens in the target\'s PID namespace (`nsenter -t HOSTPID -p -m`, `--pid=host`, `shareProcessNamespace: true`)');
  }
  const checks: DoctorCheck[] = [];
  const status = read(`/proc/${pid}/status`) ?? '';
  const uid = /^Uid:\s*\d+\s+(\d+)/m.exec(status)?.[1];
  const command = (read(`/proc/${pid}/cmdline`) ?? '').split('\0').filter(Boolean).join(' ') || (read(`/proc/${pid}/comm`)?.trim() ?? '?');
  let readable = false;
  try {
    const maps = readMaps(pid);
    const m = maps.find((r) => r.perms.startsWith('r') && r.path !== '[vvar]' && r.path !== '[vsyscall]');
    const mem = ProcMemory.open(pid);
    try {
      if (m) mem.read(m.start, 8);
    } finally {
      mem.close();
    }
    readable = true;
    checks.push({ name: 'read its memory', status: 'ready', detail: `${syscalls() ? 'process_vm_readv' : '/proc/PID/mem'} of PID ${pid} works` });
  } catch (e) {
    if (e instanceof PermissionError) {
      const [what, ...fix] = e.message.split('. ');
      checks.push({ name: 'read its memory', status: 'unavailable', detail: what!, fix: fix.join('. ') });
    } else checks.push({ name: 'read its memory', status: 'unavailable', detail: (e as Error).message });
  }
  let python: TargetReport['python'];
  if (readable) {
    try {
      const rt = locateRuntime(pid);
      const sym = interpreterSymbolsOf(pid, { env });
      const symbols = sym?.verdict ?? 'unknown';
      python = { version: rt.version.text, binary: rt.libraryPath, kind: rt.kind, symbols, ...(sym?.debugFile ? { symbolsFile: sym.debugFile } : {}), ...(sym && sym.verdict === 'stripped' ? { symbolsFix: symbolsFix(sym) } : {}) };
      checks.push({ name: 'CPython', status: 'ready', detail: `CPython ${rt.version.text} in ${rt.libraryPath} (${rt.kind === 'library' ? 'shared libpython' : 'the executable holds the interpreter'}; runtime found by ${rt.source})` });
    } catch (e) {
      const maps = (() => {
        try {
          return readMaps(pid);
        } catch {
          return [];
        }
      })();
      const exe = (() => {
        try {
          return readlinkSync(`/proc/${pid}/exe`);
        } catch {
          return '';
        }
      })();
      const looksPython = findLibpython(maps) !== undefined || PYTHON_EXE.test(exe.replace(/ \(deleted\)$/, ''));
      checks.push({ name: 'CPython', status: 'unavailable', detail: looksPython ? (e as Error).message : `PID ${pid} (${command.slice(0, 60)}) does not look like a CPython process: ${(e as Error).message}`, fix: looksPython ? `the sampler reads CPython ${MIN_SUPPORTED.major}.${MIN_SUPPORTED.minor}–${MAX_SUPPORTED.major}.${MAX_SUPPORTED.minor}` : 'give the PID of the Python process (`pgrep -af python`); a launcher (gunicorn master, a shell) has Python children: `pylens record --subprocesses -p PID`' });
    }
  }
  const lens = (id: LensId) => lenses.find((l) => l.id === id)!;
  const threads = (() => {
    try {
      return Number(/^Threads:\s*(\d+)/m.exec(status)?.[1] ?? NaN);
    } catch {
      return NaN;
    }
  })();
  const sees: TargetReport['lenses'] = [];
  const canSample = readable && python !== undefined;
  sees.push({ id: 'sampler', status: canSample ? 'ready' : 'unavailable', sees: canSample ? `Python stacks of its ${Number.isFinite(threads) ? `${threads} thread${threads === 1 ? '' : 's'}` : 'threads'}, CPU or wall, GIL and asyncio tasks: \`pylens record -p ${pid}\`` : 'nothing: see the checks above' });
  const perf = lens('perf');
  const perfOk = perf.status !== 'unavailable' && canSample;
  sees.push({
    id: 'perf',
    status: perfOk ? (python?.symbols === 'stripped' || perf.checks.some((c) => c.status !== 'ready' && c.name.startsWith('perf events')) ? 'degraded' : 'ready') : 'unavailable',
    sees: perfOk
      ? `native and kernel frames under the Python ones: \`pylens record --native -p ${pid}\`${python?.symbols === 'stripped' ? `; its interpreter ${python.binary} is stripped: its own C frames show as unknown addresses — ${python.symbolsFix ?? 'install its debug symbols'}` : python?.symbols === 'debug-file' ? ` (the interpreter's symbols from ${python.symbolsFile})` : ''}`
      : perf.status === 'unavailable' ? 'nothing: perf cannot run here (see perf above)' : 'nothing: the sampler cannot read it',
  });
  const ebpf = lens('ebpf');
  sees.push({ id: 'ebpf', status: ebpf.status === 'unavailable' ? 'unavailable' : canSample ? ebpf.status : 'degraded', sees: ebpf.status === 'unavailable' ? 'nothing: eBPF cannot run here (see eBPF above)' : `where its threads wait off the CPU, by kernel wait class${canSample ? ', under their Python stacks' : ' (kernel stacks only: the sampler cannot read it)'}: \`pylens offcpu -p ${pid}\`` });
  sees.push({ id: 'hooks', status: 'unavailable', sees: 'nothing for a running process: trace, count, mem and yappi run the program themselves (`pylens trace -- python app.py`)' });
  return { pid, command, uid: uid !== undefined ? Number(uid) : undefined, checks, ...(python ? { python } : {}), lenses: sees, status: worst(checks.map((c) => c.status)) };
}

/** Every lens, the environment and, with `pid`, that process. */
export async function runDoctor(o: { pid?: number; env?: NodeJS.ProcessEnv } = {}): Promise<DoctorReport> {
  const env = o.env ?? process.env;
  const facts = readEbpfFacts();
  const environment = readEnvironment(facts);
  const [readProbe, pythons] = await Promise.all([probeRead(), findPythons(env)]);
  const symbols = await Promise.all(pythons.map(async (python) => ({ python, sym: await interpreterSymbolsOfPython(python.executable, { env }) })));
  const lenses = [samplerLens(environment, readProbe, pythons), perfLens(readPerfAccess(), symbols), ebpfLens(facts), hooksLens(pythons)];
  const report: DoctorReport = { lenses, environment, container: containerRecipes(environment) };
  if (o.pid !== undefined) report.target = await diagnoseTarget(o.pid, lenses, env);
  return report;
}
