/**
 * Benchmark: what `pylens perf` costs the target, at 99 and 999 Hz, frame-pointer vs
 * dwarf unwinding, and what turning perf's output into a profile costs afterwards.
 *
 * Workload bench/workloads/cpu_work.py (fixed work of ~2.5 s, rounds calibrated once, timed
 * inside the workload: perf_counter and thread_time around the work only). Every round runs
 * each configuration once, in an order rotated every round (the machine is noisy: ratios are
 * taken side by side):
 *   baseline            python cpu_work.py
 *   trampoline only     python -X perf_jit (3.13+) or -X perf: CPython's perf support, no perf
 *   perf F Hz fp|dwarf  pylens perf -F F --call-graph fp|dwarf -- python cpu_work.py
 * Prints per configuration the median over rounds of (wall / baseline wall − 1) and of the
 * thread CPU ratio, perf record's own CPU as a share of the target's (what the profile
 * records as its overhead), and the post-processing: perf inject + perf script + parse.
 * For the parse alone on 1 GB, bench/perf-script.ts (the foundation parser: ≥ 500 MB/s).
 *
 *   node_modules/.bin/node bench/perf-overhead.ts [--quick] [--rounds N] [--python 3.13] [--work-seconds S]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePylens } from '../src/formats/pylens.ts';
import { argValue, busyWarning, CLI, machineLine, median, pct, python, QUICK, WORKLOADS } from './sampler-common.ts';

const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 1 : 3));
const WORK_SECONDS = Number(argValue('--work-seconds') ?? 2.5);
const MINOR = Number((argValue('--python') ?? '3.13').split('.')[1]);
const py = python(MINOR);
if (!py) {
  console.log(`no pyenv CPython 3.${MINOR} installed`);
  process.exit(1);
}
const tmp = mkdtempSync(join(tmpdir(), 'pylens-bench-perf-'));
const WORK = join(WORKLOADS, 'cpu_work.py');
console.log(`pylens perf overhead — target ${py.label}; ${machineLine()}`);
const busy = busyWarning();
if (busy) console.log(busy);

const cal = spawnSync(py.exe, [WORK, '--calibrate'], { encoding: 'utf8' });
const rounds = Math.max(10, Math.round(WORK_SECONDS / Number(cal.stdout.trim())));
console.log(`work: ${rounds} rounds of cpu_work.py (~${WORK_SECONDS} s)`);

interface Config {
  label: string;
  argv: () => string[];
  perf?: { hz: number; cg: 'fp' | 'dwarf' };
}
const xopt = MINOR >= 13 ? 'perf_jit' : 'perf';
const configs: Config[] = [
  { label: 'baseline', argv: () => [py.exe, WORK, String(rounds)] },
  ...(MINOR >= 12 ? [{ label: `-X ${xopt}, no perf`, argv: () => [py.exe, '-X', xopt, WORK, String(rounds)] }] : []),
];
for (const hz of [99, 999]) {
  for (const cg of ['fp', 'dwarf'] as const) {
    configs.push({
      label: `pylens perf -F ${hz} ${cg}`,
      perf: { hz, cg },
      argv: () => [process.execPath, CLI, 'perf', '-q', '-F', String(hz), '--call-graph', cg, '-o', join(tmp, `p-${hz}-${cg}.pylens`), '--', py.exe, WORK, String(rounds)],
    });
  }
}

interface Run {
  wall: number;
  cpu: number;
  perfShare?: number;
  postMs?: number;
  scriptMB?: number;
  samples?: number;
}
const results = new Map<string, Run[]>(configs.map((c) => [c.label, []]));

for (let r = 0; r < ROUNDS; r++) {
  const order = configs.map((_, i) => configs[(i + r) % configs.length]!);
  for (const c of order) {
    const [cmd, ...args] = c.argv();
    const t0 = performance.now();
    const p = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 600_000 });
    const totalMs = performance.now() - t0;
    const line = p.stdout.split('\n').find((l) => l.startsWith('{'));
    if (!line) {
      console.log(`${c.label}: no result (exit ${p.status}): ${p.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      continue;
    }
    const w = JSON.parse(line) as { wall: number; cpu: number };
    const run: Run = { wall: w.wall, cpu: w.cpu };
    if (c.perf) {
      const out = join(tmp, `p-${c.perf.hz}-${c.perf.cg}.pylens`);
      const prof = decodePylens(readFileSync(out), out);
      run.perfShare = prof.meta.overhead?.fraction;
      const x = prof.meta.extra ?? {};
      run.postMs = Number(x.injectMs ?? 0) + Number(x.scriptMs ?? 0) + Number(x.parseMs ?? 0);
      run.samples = prof.meta.sampleCount;
      void totalMs;
    }
    results.get(c.label)!.push(run);
  }
  process.stdout.write(`round ${r + 1}/${ROUNDS} done\n`);
}

const base = results.get('baseline')!;
const baseWall = median(base.map((b) => b.wall));
const baseCpu = median(base.map((b) => b.cpu));
console.log(`\nbaseline: wall ${baseWall.toFixed(3)} s, thread CPU ${baseCpu.toFixed(3)} s (median of ${base.length})`);
console.log('configuration              | slowdown wall | slowdown CPU | perf record CPU / target CPU | samples | inject+script+parse');
for (const c of configs.slice(1)) {
  const rs = results.get(c.label)!;
  if (!rs.length) continue;
  const sw = median(rs.map((x) => x.wall / baseWall - 1));
  const sc = median(rs.map((x) => x.cpu / baseCpu - 1));
  const share = rs[0]!.perfShare !== undefined ? pct(median(rs.map((x) => x.perfShare ?? 0))) : '—';
  const post = rs[0]!.postMs !== undefined ? `${Math.round(median(rs.map((x) => x.postMs ?? 0)))} ms` : '—';
  const n = rs[0]!.samples !== undefined ? String(Math.round(median(rs.map((x) => x.samples ?? 0)))) : '—';
  console.log(`${c.label.padEnd(26)} | ${pct(sw).padStart(13)} | ${pct(sc).padStart(12)} | ${share.padStart(28)} | ${n.padStart(7)} | ${post}`);
}
console.log('\n(slowdown = median over rounds of run / baseline − 1, each round side by side; the fp rows on a build without frame');
console.log(' pointers measure the cost only — their stacks are short; the -X row is CPython\'s trampoline cost without perf)');
rmSync(tmp, { recursive: true, force: true });
