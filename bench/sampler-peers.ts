/**
 * Benchmark: pylens's sampler next to its peers on one CPU-bound workload with a known hot
 * function (bench/workloads/cpu_work.py: work() → hot() two thirds of the loop turns, cold()
 * one third, ~3/4 and ~1/4 of the CPU; ~2.5 s of fixed work, timed inside the workload; the true share of hot() in
 * work() from time.thread_time()).
 *
 *   perf     `perf record -F 100 -g --call-graph dwarf -- python3.12 -X perf …`, then
 *            `perf script` read by our importer (the `py::hot` trampoline frames)
 *   austin   Austin 1.0.1 `austin -i 10000 -o … python3.8 …` (it does not support 3.9+),
 *            its collapsed output read by our importer
 *   pylens   `pylens record -p PID -r 100` (CLI, its own process) on 3.12 and 3.8
 *
 * Each round runs every configuration once (plus the baselines: no profiler, and 3.12 with
 * `-X perf` but no perf, which is part of perf's cost), the order reversed every other
 * round. Per configuration: median slowdown over rounds (wall / the same round's baseline
 * wall of that Python − 1; the same for the target's thread CPU time, steadier when the
 * machine is busy) and the median share of samples in hot()+cold() that are in hot(),
 * next to the true share. The share is counted among the samples whose stack holds hot() or
 * cold(), not work(): perf's DWARF unwinder stops at the first `-X perf` trampoline frame
 * (the perf map has no unwind info), so on 3.12 perf's stacks never reach work().
 * The true share is thread CPU in hot() / thread CPU of the work (the loop around the two
 * calls is ~0.1 %). Missing tools are skipped.
 *
 *   node_modules/.bin/node bench/sampler-peers.ts [--quick] [--rounds N]
 * --quick: 2 rounds (default 5).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importProfile, InputFile } from '../src/formats/index.ts';
import type { InstalledPython } from '../test/sampler/pythons.ts';
import { argValue, busyWarning, exited, killChild, LineReader, machineLine, median, python, QUICK, shareAmong, startRecord, waitForAttach, WORKLOADS } from './sampler-common.ts';

const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 2 : 5));
const WORK_SECONDS = Number(argValue('--work-seconds') ?? 2.5);
const WORK = join(WORKLOADS, 'cpu_work.py');
const tmp = mkdtempSync(join(tmpdir(), 'pylens-bench-peers-'));

interface WorkResult {
  wall: number;
  cpu: number;
  hot: number;
}
interface RunResult extends WorkResult {
  share?: number;
  samples?: number;
}

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const py312 = python(12);
const py38 = python(8);

/** Run a command whose stdout ends with cpu_work.py's JSON line. */
function runCommand(cmd: string, args: string[]): Promise<{ res: WorkResult; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
      if (!line) return reject(new Error(`${cmd} ${args.join(' ')} exited with ${code} without a result: ${err.slice(-2000)}`));
      resolve({ res: JSON.parse(line) as WorkResult, stderr: err });
    });
  });
}

async function baseline(py: InstalledPython, rounds: number, extra: string[] = []): Promise<RunResult> {
  return (await runCommand(py.exe, [...extra, WORK, String(rounds)])).res;
}

async function perfRun(py: InstalledPython, rounds: number, i: number): Promise<RunResult> {
  const data = join(tmp, `perf-${i}.data`);
  const { res } = await runCommand('perf', ['record', '-q', '-F', '100', '-g', '--call-graph', 'dwarf', '-o', data, '--', py.exe, '-X', 'perf', WORK, String(rounds)]);
  const script = spawnSync('perf', ['script', '-i', data], { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  const p = importProfile(new InputFile(script.stdout, 'perf.txt'), 'perf-script').profile;
  // CPython -X perf leaves /tmp/perf-PID.map behind: remove ours
  for (const pid of new Set(p.threads.pid)) rmSync(`/tmp/perf-${pid}.map`, { force: true });
  rmSync(data, { force: true });
  const s = shareAmong(p, 'hot', ['hot', 'cold']);
  return { ...res, share: s.share, samples: s.of };
}

async function austinRun(py: InstalledPython, rounds: number, i: number): Promise<RunResult> {
  const out = join(tmp, `austin-${i}.txt`);
  // --delay: Austin starts the interpreter and then attaches; let it before the timed work
  const { res } = await runCommand('austin', ['-i', '10000', '-o', out, py.exe, WORK, String(rounds), '--delay', '0.3']);
  const p = importProfile(new InputFile(readFileSync(out), out), 'austin').profile;
  rmSync(out, { force: true });
  const s = shareAmong(p, 'hot', ['hot', 'cold']);
  return { ...res, share: s.share, samples: s.of };
}

async function pylensRun(py: InstalledPython, rounds: number, i: number): Promise<RunResult> {
  const out = join(tmp, `pylens-${i}.pylens`);
  const child = spawn(py.exe, [WORK, String(rounds), '--wait'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let rec: ReturnType<typeof startRecord> | undefined;
  try {
    const lines = new LineReader(child);
    await lines.next('cpu_work.py', 20_000);
    rec = startRecord(child.pid!, ['-r', '100', '-o', out]);
    await waitForAttach(rec.child.pid!, child.pid!);
    child.stdin!.write('go\n');
    const res = JSON.parse(await lines.next('cpu_work.py result', 120_000)) as WorkResult;
    const code = await exited(rec.child);
    if (code !== 0) throw new Error(`pylens record exited with ${code}: ${rec.stderr()}`);
    const p = importProfile(new InputFile(readFileSync(out), out)).profile;
    rmSync(out, { force: true });
    const s = shareAmong(p, 'hot', ['hot', 'cold']);
    return { ...res, share: s.share, samples: s.of };
  } finally {
    killChild(child);
    killChild(rec?.child);
  }
}

interface Config {
  name: string;
  py: InstalledPython;
  base: string;
  run: (rounds: number, i: number) => Promise<RunResult>;
}

async function roundsFor(py: InstalledPython): Promise<number> {
  const r = await baseline(py, 40);
  return Math.max(10, Math.round((WORK_SECONDS / r.wall) * 40));
}

console.log(`sampler peers — cpu_work.py (hot() ≈ 3/4 of the CPU), ~${WORK_SECONDS} s of work, ${ROUNDS} rounds; ${machineLine()}`);
const configs: Config[] = [];
const rounds = new Map<InstalledPython, number>();
if (py312) {
  rounds.set(py312, await roundsFor(py312));
  configs.push({ name: 'baseline 3.12', py: py312, base: 'baseline 3.12', run: (r) => baseline(py312, r) });
  if (has('perf')) {
    configs.push({ name: 'python -X perf, no perf', py: py312, base: 'baseline 3.12', run: (r) => baseline(py312, r, ['-X', 'perf']) });
    configs.push({ name: 'perf 100 Hz dwarf (-X perf)', py: py312, base: 'baseline 3.12', run: (r, i) => perfRun(py312, r, i) });
  } else console.log('perf not found: skipped');
  configs.push({ name: 'pylens 100 Hz', py: py312, base: 'baseline 3.12', run: (r, i) => pylensRun(py312, r, i) });
} else console.log('no pyenv CPython 3.12: perf and pylens-on-3.12 skipped');
if (py38) {
  rounds.set(py38, await roundsFor(py38));
  configs.push({ name: 'baseline 3.8', py: py38, base: 'baseline 3.8', run: (r) => baseline(py38, r) });
  if (has('austin')) configs.push({ name: 'austin 1.0.1 -i 10ms', py: py38, base: 'baseline 3.8', run: (r, i) => austinRun(py38, r, i) });
  else console.log('austin not found: skipped');
  configs.push({ name: 'pylens 100 Hz', py: py38, base: 'baseline 3.8', run: (r, i) => pylensRun(py38, r, i) });
} else console.log('no pyenv CPython 3.8: austin and pylens-on-3.8 skipped');

const results = new Map<Config, RunResult[]>(configs.map((c) => [c, []]));
const slow = new Map<Config, number[]>(configs.map((c) => [c, []]));
const slowCpu = new Map<Config, number[]>(configs.map((c) => [c, []]));
try {
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? configs : [...configs].reverse();
    const got = new Map<string, RunResult>();
    for (const c of order) {
      const r = await c.run(rounds.get(c.py)!, i);
      results.get(c)!.push(r);
      got.set(`${c.name}|${c.py.minor}`, r);
    }
    for (const c of configs) {
      const b = got.get(`${c.base}|${c.py.minor}`)!;
      slow.get(c)!.push(got.get(`${c.name}|${c.py.minor}`)!.wall / b.wall - 1);
      slowCpu.get(c)!.push(got.get(`${c.name}|${c.py.minor}`)!.cpu / b.cpu - 1);
    }
    console.log(`  round ${i + 1}: ${configs.map((c) => `${c.name} ${c.py.minor === 8 ? '3.8' : '3.12'} ${got.get(`${c.name}|${c.py.minor}`)!.wall.toFixed(2)} s`).join(', ')}`);
  }
  console.log('');
  const warn = busyWarning();
  if (warn) console.log(warn);
  console.log(`${'profiler'.padEnd(30)} ${'python'.padEnd(7)} ${'slowdown wall'.padEnd(14)} ${'thread CPU'.padEnd(11)} ${'hot share'.padEnd(10)} ${'true'.padEnd(8)} ${'error'.padEnd(9)} samples in hot()+cold()`);
  for (const c of configs) {
    const rs = results.get(c)!;
    const truth = median(rs.map((r) => r.hot / r.cpu));
    const shares = rs.map((r) => r.share).filter((x): x is number => x !== undefined);
    const share = shares.length ? median(shares) : NaN;
    const isBase = c.name === c.base;
    console.log(
      `${c.name.padEnd(30)} ${(c.py.minor === 8 ? '3.8' : '3.12').padEnd(7)} ${(isBase ? `(${median(rs.map((r) => r.wall)).toFixed(3)} s)` : `${(100 * median(slow.get(c)!)).toFixed(2)} %`).padEnd(14)} ` +
        `${(isBase ? `(${median(rs.map((r) => r.cpu)).toFixed(3)} s)` : `${(100 * median(slowCpu.get(c)!)).toFixed(2)} %`).padEnd(11)} ` +
        `${(shares.length ? `${(100 * share).toFixed(1)} %` : '—').padEnd(10)} ${`${(100 * truth).toFixed(1)} %`.padEnd(8)} ` +
        `${(shares.length ? `${(100 * (share - truth)).toFixed(1)} pt` : '—').padEnd(9)} ${shares.length ? median(rs.map((r) => r.samples ?? 0)).toFixed(0) : '—'}`,
    );
  }
  console.log(`  slowdowns per round: ${configs.filter((c) => c.name !== c.base).map((c) => `${c.name} ${c.py.minor === 8 ? '3.8' : '3.12'}: ${slow.get(c)!.map((x) => (100 * x).toFixed(1)).join(', ')}`).join('; ')}`);
} catch (e) {
  console.log(`failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
