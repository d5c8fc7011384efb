/**
 * Benchmark: what `pylens count` costs a call-heavy program, per CPython version.
 *
 * Workload (stdlib Python, written to a temp dir): a loop calling a small function `hot`
 * (plus a recursive fib), about 1.5 M Python calls; `cold` is called once. The workload
 * times its own work section (time.process_time, steadier than wall on a shared VM; wall
 * is printed too), so interpreter start-up and the lens's calibration are not in the figures.
 * Configurations, run through the helper directly (python pylens_boot.py LENS …, no Node in
 * the way):
 *   plain      python workload.py
 *   none       the runner with the `none` lens: the baseline
 *   cold       count one function that is called once (what the hook costs the rest of the
 *              program: nothing on 3.12+, a profile-function call per call before)
 *   hot        count the function called 1.5 M times
 *   hot+time   the same with --time
 * Each round runs every configuration once, the order reversed every other round (the VM's
 * speed drifts); a slowdown is taken per round against that round's `none` (pairs side by
 * side), and the median over rounds is printed with the min–max spread. The lens's own
 * overhead estimate (its calibration × the events it saw) is printed next to the measured
 * slowdown.
 *
 *   node_modules/.bin/node bench/interp-count.ts [--quick] [--rounds N] [--python 3.12]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HELPER_BOOT } from '../src/capture/python/helper.ts';
import { argValue, benchPythons, busyWarning, machineLine, median, pct, QUICK } from './sampler-common.ts';

const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 2 : 5));
const only = argValue('--python');
const pythons = benchPythons().filter((p) => p.label.startsWith('pyenv') && (!only || `3.${p.minor}` === only));

const dir = mkdtempSync(join(tmpdir(), 'pylens-bench-count-'));
const WORK = join(dir, 'work.py');
writeFileSync(
  WORK,
  `import sys, time
def hot(x):
    return x + 1
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def cold():
    return 0
N = int(sys.argv[1])
c0 = time.process_time(); w0 = time.perf_counter()
s = 0
for i in range(N):
    s = hot(s)
fib(22)
cold()
print("work", time.process_time() - c0, time.perf_counter() - w0, flush=True)
`,
);
const N = QUICK ? 300_000 : 1_500_000;

type Config = 'plain' | 'none' | 'cold' | 'hot' | 'hot+time';
const CONFIGS: Config[] = ['plain', 'none', 'cold', 'hot', 'hot+time'];

interface Run {
  cpu: number;
  wall: number;
  estimate: number | null;
}

function runOnce(exe: string, cfg: Config): Run {
  const result = join(dir, 'r.json');
  let argv: string[];
  if (cfg === 'plain') argv = [WORK, String(N)];
  else if (cfg === 'none') argv = [HELPER_BOOT, 'none', result, '{}', '--', WORK, String(N)];
  else {
    const fn = cfg === 'cold' ? '__main__:cold' : '__main__:hot';
    argv = [HELPER_BOOT, 'count', result, JSON.stringify({ functions: [fn], time: cfg === 'hot+time' }), '--', WORK, String(N)];
  }
  const r = spawnSync(exe, argv, { encoding: 'utf8' });
  const m = /^work (\S+) (\S+)$/m.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`${exe} ${cfg}: exit ${r.status}: ${r.stderr}`);
  let estimate: number | null = null;
  if (cfg !== 'plain' && cfg !== 'none') {
    const doc = JSON.parse(readFileSync(result, 'utf8'));
    const calls = doc.data.functions[0].calls;
    const want = cfg === 'cold' ? 1 : N;
    if (calls !== want) throw new Error(`${exe} ${cfg}: counted ${calls} calls, expected ${want}`);
    estimate = doc.overhead?.fraction ?? null;
  }
  return { cpu: Number(m[1]), wall: Number(m[2]), estimate };
}

console.log(`pylens count overhead: ${N.toLocaleString('en-US')} calls of a small function + fib(22) (28,657 calls), ${ROUNDS} rounds; ${machineLine()}`);
const busy = busyWarning();
if (busy) console.log(`warning: ${busy}`);
const rows: string[][] = [['python', 'mechanism', 'plain cpu s', 'none cpu s', 'none vs plain', 'count cold', 'count hot', 'hot ns/call', 'hot+time', 'estimate hot', 'estimate hot+time']];
try {
  for (const py of pythons) {
    const runs = new Map<Config, Run[]>(CONFIGS.map((c) => [c, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...CONFIGS].reverse() : CONFIGS;
      for (const c of order) runs.get(c)!.push(runOnce(py.exe, c));
    }
    const none = runs.get('none')!;
    const slow = (c: Config) => runs.get(c)!.map((r, i) => r.cpu / none[i]!.cpu - 1);
    const fmt = (xs: number[]) => `${pct(median(xs))} (${pct(Math.min(...xs), 0)}…${pct(Math.max(...xs), 0)})`;
    const perCall = runs.get('hot')!.map((r, i) => ((r.cpu - none[i]!.cpu) / N) * 1e9);
    const est = (c: Config) => pct(median(runs.get(c)!.map((r) => r.estimate ?? NaN)));
    rows.push([
      `3.${py.minor}`,
      py.minor >= 12 ? 'sys.monitoring' : 'sys.setprofile',
      median(runs.get('plain')!.map((r) => r.cpu)).toFixed(3),
      median(none.map((r) => r.cpu)).toFixed(3),
      fmt(none.map((r, i) => r.cpu / runs.get('plain')![i]!.cpu - 1)),
      fmt(slow('cold')),
      fmt(slow('hot')),
      median(perCall).toFixed(0),
      fmt(slow('hot+time')),
      est('hot'),
      est('hot+time'),
    ]);
    process.stderr.write(`done 3.${py.minor}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
console.log('slowdowns: process CPU time of the work section vs the `none` run of the same round; median (min…max) over rounds');
