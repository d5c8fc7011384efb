/**
 * Benchmark: how much of a launched program's start each launching command records.
 *
 * Every command that launches a program (`record`, `record --native`, `record --backend
 * ebpf`, `offcpu`, `top`, `sched`, `io`, `perf`) is run once on test/launch/scripts/first.py,
 * whose first 100 ms are the interesting part (CPU in pure Python, CPU in zlib, a lock
 * wait, or direct synchronous writes; then 0.3 s of CPU). Printed per command:
 * - covered: how much of the first 100 ms the recording has (samples of first_100ms over
 *   the samples 100 ms give at the rate; off-CPU or waiting time; the program's own count
 *   of writes);
 * - gap (record, top): from the program's first line (its time.time()) to the first sample
 *   (the profile's start time plus the first sample's offset); 0 when the sampler was
 *   attached before the first line ran. Other commands: covered only.
 *
 *   node_modules/.bin/node bench/launch-gap.ts [--python 3.12] [--only record,offcpu]
 *
 * `--python` takes a pyenv minor version (3.12) or an interpreter's path.
 * One run per command, no repetition: the machine is shared. Needs root, perf, bpftrace.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { decodePylens } from '../src/formats/pylens.ts';
import { frameInfo, stackFrames, type Profile } from '../src/model/profile.ts';
import { argValue, CLI, python } from './sampler-common.ts';

const ROOT = join(import.meta.dirname, '..');
const FIRST = join(ROOT, 'test', 'launch', 'scripts', 'first.py');
const only = argValue('--only')?.split(',');
const pyArg = argValue('--python') ?? '3.12';
const py = pyArg.startsWith('/') ? { label: pyArg, exe: pyArg } : python(Number(pyArg.split('.')[1]));
if (!py) throw new Error(`no pyenv CPython ${pyArg}`);
const dir = mkdtempSync(join('/var/tmp', 'pylens-launch-gap-'));

interface Result {
  pid: number;
  t0: number;
  t1: number;
  end: number;
  writes: number;
}

function run(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: dir, timeout: 180_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const has = (p: Profile, i: number, name: string) => stackFrames(p, p.samples.stack[i]!).some((f) => frameInfo(p, f).name === name);

function samplesOf(p: Profile, name: string, also?: (names: string[]) => boolean): number {
  let n = 0;
  for (let i = 0; i < p.samples.length; i++) {
    if (!has(p, i, name)) continue;
    if (also && !also(stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name))) continue;
    n++;
  }
  return n;
}

/** ms from the program's first line to the first sample (0 when sampling started first). */
function gapMs(p: Profile, r: Result): number {
  const start = Date.parse(p.meta.startTime ?? '');
  const first = p.samples.length ? Number(p.samples.time?.[0]) / 1e6 : NaN;
  return Math.max(0, start + first - r.t0 * 1000);
}

const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const rows: string[][] = [];
function row(cmd: string, covered: string, gap: string, note = ''): void {
  rows.push([cmd, covered, gap, note]);
  console.log(`${cmd.padEnd(24)} covered ${covered.padEnd(22)} gap ${gap.padEnd(10)} ${note}`);
}

const want = (c: string) => !only || only.includes(c);
const result = (f: string): Result => JSON.parse(readFileSync(f, 'utf8'));

console.log(`launch gap, ${py.label} (${py.exe}), one run each`);
try {
  if (want('record')) {
    const out = join(dir, 'r.pylens');
    const res = join(dir, 'r.json');
    const r = run(['record', '-r', '1000', '-o', out, '--', py.exe, FIRST, 'burn', res]);
    if (r.code !== 0) row('record', 'failed', '', r.err.trim().split('\n').pop()!);
    else {
      const p = decodePylens(readFileSync(out));
      const n = samplesOf(p, 'first_100ms');
      row('record -r 1000', `${pct(n / 100)} (${n} samples)`, `${gapMs(p, result(res)).toFixed(0)} ms`);
    }
  }
  if (want('native')) {
    const out = join(dir, 'n.pylens');
    const res = join(dir, 'n.json');
    const r = run(['record', '--native', '-r', '200', '-o', out, '--', py.exe, FIRST, 'zlib', res]);
    if (r.code !== 0) row('record --native', 'failed', '', r.err.trim().split('\n').pop()!);
    else {
      const p = decodePylens(readFileSync(out));
      const n = samplesOf(p, 'first_100ms');
      const nat = samplesOf(p, 'first_100ms', (names) => names.some((x) => /deflate|longest_match|compress/.test(x) && !/zlib_compress_impl/.test(x)));
      row('record --native -r 200', `${pct(nat / 20)} (${nat} with zlib frames, ${n} in all)`, `${gapMs(p, result(res)).toFixed(0)} ms`);
    }
  }
  if (want('ebpf')) {
    const out = join(dir, 'e.pylens');
    const res = join(dir, 'e.json');
    const r = run(['record', '--backend', 'ebpf', '-r', '200', '-o', out, '--', py.exe, FIRST, 'burn', res]);
    if (r.code !== 0) row('record --backend ebpf', 'failed', '', r.err.trim().split('\n').pop()!);
    else {
      const p = decodePylens(readFileSync(out));
      const n = samplesOf(p, 'first_100ms');
      row('record --backend ebpf', `${pct(n / 20)} (${n} kernel samples)`, '-');
    }
  }
  if (want('offcpu')) {
    const out = join(dir, 'o.pylens');
    const res = join(dir, 'o.json');
    const r = run(['offcpu', '--json', '-o', out, '--', py.exe, FIRST, 'wait', res]);
    if (r.code !== 0) row('offcpu', 'failed', '', r.err.trim().split('\n').pop()!);
    else {
      const j = JSON.parse(r.out) as { functions: { name: string; totalNs: number }[] };
      const f = j.functions.find((x) => x.name === 'first_100ms');
      const ns = f?.totalNs ?? 0;
      row('offcpu', `${pct(ns / 1e8)} (${(ns / 1e6).toFixed(0)} ms waiting)`, '-');
    }
  }
  if (want('top')) {
    const res = join(dir, 't.json');
    const r = run(['top', '-r', '1000', '--interval', '30', '--', py.exe, FIRST, 'burn', res]);
    if (r.code !== 0) row('top', 'failed', '', r.err.trim().split('\n').pop()!);
    else {
      // one row per line of first_100ms: their own times added up
      const lines = r.out.split('\n').filter((l) => /\bfirst_100ms\b/.test(l));
      const s = lines.reduce((a, l) => a + Number(/^\s*[\d.]+%\s+[\d.]+%\s+([\d.]+)s/.exec(l)?.[1] ?? 0), 0);
      row('top -r 1000', `${pct(s / 0.1)} (${s.toFixed(2)} s own time)`, '-', lines.length ? '' : 'no first_100ms row');
    }
  }
  if (want('sched')) {
    const res = join(dir, 's.json');
    const r = run(['sched', '--json', '-o', join(dir, 's.html'), '--', py.exe, FIRST, 'wait', res]);
    if (r.code !== 0) row('sched', 'failed', '', r.err.trim().split('\n').pop()!);
    else {
      const j = JSON.parse(r.out) as { waits: { tid: number; durNs: number; state: string }[]; threads: { tid: number; runNs: number }[] };
      const pid = result(res).pid;
      const w = j.waits.filter((x) => x.tid === pid && x.durNs > 50e6).sort((a, b) => b.durNs - a.durNs)[0];
      row('sched', `${pct((w?.durNs ?? 0) / 1e8)} (${((w?.durNs ?? 0) / 1e6).toFixed(0)} ms wait of the main thread)`, '-');
    }
  }
  if (want('io')) {
    const res = join(dir, 'i.json');
    const r = run(['io', '--json', '--', py.exe, FIRST, 'io', res, '0.1']);
    if (r.code !== 0) row('io', 'failed', '', r.err.trim().split('\n').pop()!);
    else {
      const j = JSON.parse(r.out) as { processes: { pid: number; count: number }[] };
      const got = result(res);
      const p = j.processes.find((x) => x.pid === got.pid);
      row('io', `${pct((p?.count ?? 0) / got.writes)} (${p?.count ?? 0} of ${got.writes} writes)`, '-');
    }
  }
  if (want('perf')) {
    const out = join(dir, 'p.pylens');
    const res = join(dir, 'p.json');
    const r = run(['perf', '-F', '999', '-o', out, '--', py.exe, FIRST, 'burn', res]);
    if (r.code !== 0) row('perf', 'failed', '', r.err.trim().split('\n').pop()!);
    else {
      const p = decodePylens(readFileSync(out));
      const n = samplesOf(p, 'first_100ms');
      row('perf -F 999', `${pct(n / 100)} (${n} samples)`, '-');
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
