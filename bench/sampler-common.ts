/**
 * Helpers shared by the sampler benchmarks (bench/sampler-*.ts): spawning workloads, the
 * CLI, waiting for the sampler to attach, stack queries over a Profile, medians.
 * Not a bench itself (run-all does not list it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { frameInfo, type Profile } from '../src/model/profile.ts';
import { installedPythons, type InstalledPython } from '../test/sampler/pythons.ts';

export const ROOT = join(import.meta.dirname, '..');
export const WORKLOADS = join(import.meta.dirname, 'workloads');
export const CLI = join(ROOT, 'src/cli/main.ts');
/** The built CLI (`npm run build`), what the package's `pylens` bin runs. */
export const DIST_CLI = join(ROOT, 'dist/src/cli/main.js');

export const argv = process.argv.slice(2);
export const QUICK = argv.includes('--quick');

/** Value of `--name X` on the command line, if given. */
export function argValue(name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** CPython 3.8–3.13 installed here (pyenv and Debian's /usr/bin/python3.11). */
export function benchPythons(): InstalledPython[] {
  return installedPythons().filter((p) => p.minor >= 8 && p.minor <= 13);
}

export function python(minor: number): InstalledPython | undefined {
  return benchPythons().find((p) => p.minor === minor && p.label.startsWith('pyenv'));
}

export function machineLine(): string {
  const busy = busyOthers();
  return `Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}${busy.length > 0 ? `; WARNING, busy beside this bench: ${busy.join(', ')}` : ''}`;
}

/**
 * Processes other than this bench and its children using over 15 % of a CPU, over 300 ms
 * (/proc/PID/stat utime + stime): a stray busy loop left by an earlier experiment skews
 * every figure taken beside it, and the load average alone was easy to overlook.
 */
export function busyOthers(): string[] {
  const hz = 100;
  const read = () => {
    const m = new Map<number, { ticks: number; ppid: number; comm: string }>();
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const st = readFileSync(`/proc/${d}/stat`, 'latin1');
        const close = st.lastIndexOf(')');
        const f = st.slice(close + 2).split(' ');
        m.set(Number(d), { ticks: Number(f[11]) + Number(f[12]), ppid: Number(f[1]), comm: st.slice(st.indexOf('(') + 1, close) });
      } catch {
        /* gone */
      }
    }
    return m;
  };
  const a = read();
  const t0 = performance.now();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  const b = read();
  const secs = (performance.now() - t0) / 1000;
  const ours = (pid: number): boolean => {
    for (let p = pid, k = 0; p > 1 && k < 64; p = b.get(p)?.ppid ?? 0, k++) if (p === process.pid) return true;
    return false;
  };
  const out: string[] = [];
  for (const [pid, x] of b) {
    const was = a.get(pid);
    if (was === undefined || ours(pid)) continue;
    const share = (x.ticks - was.ticks) / hz / secs;
    if (share > 0.15) out.push(`${x.comm} (pid ${pid}, ${Math.round(100 * share)} %)`);
  }
  return out;
}

/** A warning when the machine is busy enough (1-min load above its CPU count / 2) to make wall figures unreliable. */
export function busyWarning(): string | undefined {
  const l = loadavg()[0]!;
  const cpus = availableParallelism();
  return l > cpus / 2
    ? `machine busy: load average ${l.toFixed(1)} on ${cpus} CPUs — the wall-clock slowdowns below are mostly other processes' noise; the thread-CPU figures are steadier`
    : undefined;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Lines a child writes on stdout, as they come. */
export class LineReader {
  private buf = '';
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  private ended = false;

  constructor(child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
      this.wake();
    });
    child.stdout!.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next line; rejects when stdout ends first or after `timeoutMs`. */
  async next(what: string, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = this.lines.shift();
      if (l !== undefined) return l;
      if (this.ended) throw new Error(`${what}: output ended`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: no line within ${timeoutMs / 1000} s`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (c) => r(c)));
}

/** Kill a child we started (by its pid), if it is still running. */
export function killChild(child: ChildProcess | undefined): void {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/**
 * Resolve once process `samplerPid` holds /proc/<targetPid>/mem open: the sampler has
 * attached and its first tick is due at once. (The CLI prints nothing when it starts.)
 */
export async function waitForAttach(samplerPid: number, targetPid: number, timeoutMs = 20_000): Promise<void> {
  const want = `/proc/${targetPid}/mem`;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      for (const fd of readdirSync(`/proc/${samplerPid}/fd`)) {
        try {
          if (readlinkSync(`/proc/${samplerPid}/fd/${fd}`) === want) return;
        } catch {
          /* fd closed meanwhile */
        }
      }
    } catch {
      throw new Error(`sampler process ${samplerPid} is gone before attaching`);
    }
    await sleep(10);
  }
  throw new Error(`sampler process ${samplerPid} did not open ${want} within ${timeoutMs / 1000} s`);
}

/** Start `node src/cli/main.ts record -p PID ...`; stderr is collected. */
export function startRecord(pid: number, args: string[], nodeArgs: string[] = [], cli = CLI): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, [...nodeArgs, cli, 'record', '-p', String(pid), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  child.stdout!.resume();
  return { child, stderr: () => err };
}

/** Fields of /proc/PID/status in kB (VmRSS, VmHWM, …); undefined when the process is gone. */
export function procStatusKb(pid: number): Record<string, number> | undefined {
  try {
    const out: Record<string, number> = {};
    for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+) kB$/.exec(line);
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  } catch {
    return undefined;
  }
}

/** Per frame: does its (short) name equal one of `names`? */
function frameNameMask(p: Profile, names: string[]): Int32Array {
  const mask = new Int32Array(p.frames.length).fill(-1);
  for (let f = 0; f < p.frames.length; f++) {
    const fi = frameInfo(p, f);
    if (fi.kind !== 'python') continue;
    const short = fi.name.includes('.') ? fi.name.slice(fi.name.lastIndexOf('.') + 1) : fi.name;
    const k = names.indexOf(short);
    if (k >= 0) mask[f] = k;
  }
  return mask;
}

/** For each sample, which of `names` occur on its stack: bit k set ⇔ names[k] is on it. */
export function stackMembership(p: Profile, names: string[]): Uint32Array {
  const mask = frameNameMask(p, names);
  const perStack = new Uint32Array(p.stacks.length);
  for (let s = 0; s < p.stacks.length; s++) {
    const parent = p.stacks.parent[s]!;
    const k = mask[p.stacks.frame[s]!]!;
    perStack[s] = (parent >= 0 ? perStack[parent]! : 0) | (k >= 0 ? 1 << k : 0);
  }
  const out = new Uint32Array(p.samples.length);
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    out[i] = s >= 0 ? perStack[s]! : 0;
  }
  return out;
}

/**
 * Share of samples (counted, not weighted) whose stack holds `name`, among the samples whose
 * stack holds `within` (or all samples when `within` is undefined). NaN when none qualify.
 */
export function sampleShare(p: Profile, name: string, within?: string): { share: number; n: number; of: number } {
  const m = stackMembership(p, within ? [name, within] : [name]);
  let n = 0;
  let of = 0;
  for (let i = 0; i < m.length; i++) {
    if (within && !(m[i]! & 2)) continue;
    of++;
    if (m[i]! & 1) n++;
  }
  return { share: of ? n / of : NaN, n, of };
}

/**
 * Share of samples whose stack holds `name` among the samples whose stack holds any of
 * `among` (counted, not weighted). NaN when none qualify.
 */
export function shareAmong(p: Profile, name: string, among: string[]): { share: number; n: number; of: number } {
  const names = [name, ...among.filter((a) => a !== name)];
  const m = stackMembership(p, names);
  let n = 0;
  let of = 0;
  for (let i = 0; i < m.length; i++) {
    if (m[i] === 0) continue;
    of++;
    if (m[i]! & 1) n++;
  }
  return { share: of ? n / of : NaN, n, of };
}

export const pct = (x: number, digits = 1) => (Number.isFinite(x) ? `${(100 * x).toFixed(digits)} %` : 'n/a');
