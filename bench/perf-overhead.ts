/**
 * Benchmark: what `pylens perf` costs the target, at 99 and 999 Hz, frame-pointer vs
 * dwarf unwinding, and what turning perf's output into a profile costs afterwards.
 *
 * Workload bench/workloads/cpu_work.py (fixed work of ~1.5 s, rounds calibrated once, timed
 * inside the workload: perf_counter and thread_time around the work only). Every round runs
 * each configuration once right next to a baseline run of its own (a pair; the order inside
 * swapped every round: this VM's speed drifts by 10-20 % within a minute):
 *   baseline            python cpu_work.py
 *   trampoline only     python -X perf_jit (3.13+) or -X perf: CPython's perf support, no perf
 *   perf F Hz fp|dwarf  pylens perf -F F --call-graph fp|dwarf -- python cpu_work.py
 * Prints per configuration the median over pairs of (wall / its baseline's wall − 1) and of
 * the thread CPU ratio, the spread over pairs, perf record's own CPU as a share of the target's (what the profile
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
const WORK_SECONDS = Number(argValue('--work-seconds') ?? 1.5);
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
  samples?: number;
}

function runOnce(c: Config): Run | undefined {
  const [cmd, ...args] = c.argv();
  const p = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 600_000 });
  const line = p.stdout.split('\n').find((l) => l.startsWith('{'));
  if (!line) {
    console.log(`${c.label}: no result (exit ${p.status}): ${p.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    return undefined;
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
  }
  return run;
}

// pairs: every configuration right next to its own baseline run (this VM's speed drifts by
// 10-20 % over a minute), the order inside a pair swapped every round
const baseline = configs[0]!;
const ratios = new Map<string, { wall: number[]; cpu: number[]; runs: Run[] }>(configs.slice(1).map((c) => [c.label, { wall: [], cpu: [], runs: [] }]));
const baseRuns: Run[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const others = configs.slice(1);
  const order = others.map((_, i) => others[(i + r) % others.length]!);
  for (const c of order) {
    const pair = r % 2 === 0 ? [baseline, c] : [c, baseline];
    const got = pair.map((x) => runOnce(x));
    const b = got[pair.indexOf(baseline)];
    const x = got[pair.indexOf(c)];
    if (!b || !x) continue;
    baseRuns.push(b);
    const e = ratios.get(c.label)!;
    e.wall.push(x.wall / b.wall - 1);
    e.cpu.push(x.cpu / b.cpu - 1);
    e.runs.push(x);
  }
  process.stdout.write(`round ${r + 1}/${ROUNDS} done\n`);
}

console.log(`\nbaseline: wall ${median(baseRuns.map((b) => b.wall)).toFixed(3)} s, thread CPU ${median(baseRuns.map((b) => b.cpu)).toFixed(3)} s (median of ${baseRuns.length}; min ${Math.min(...baseRuns.map((b) => b.wall)).toFixed(3)}, max ${Math.max(...baseRuns.map((b) => b.wall)).toFixed(3)})`);
console.log('configuration              | slowdown wall | slowdown CPU | perf record CPU / target CPU | samples | inject+script+parse');
for (const c of configs.slice(1)) {
  const e = ratios.get(c.label)!;
  const rs = e.runs;
  if (!rs.length) continue;
  const share = rs[0]!.perfShare !== undefined ? pct(median(rs.map((x) => x.perfShare ?? 0))) : '—';
  const post = rs[0]!.postMs !== undefined ? `${Math.round(median(rs.map((x) => x.postMs ?? 0)))} ms` : '—';
  const n = rs[0]!.samples !== undefined ? String(Math.round(median(rs.map((x) => x.samples ?? 0)))) : '—';
  const spread = `${pct(Math.min(...e.wall))}..${pct(Math.max(...e.wall))}`;
  console.log(`${c.label.padEnd(26)} | ${pct(median(e.wall)).padStart(13)} | ${pct(median(e.cpu)).padStart(12)} | ${share.padStart(28)} | ${n.padStart(7)} | ${post}   (pairs: ${spread})`);
}
console.log('\n(slowdown = median over rounds of run / baseline − 1, each round side by side; the fp rows on a build without frame');
console.log(' pointers measure the cost only — their stacks are short; the -X row is CPython\'s trampoline cost without perf)');
rmSync(tmp, { recursive: true, force: true });
