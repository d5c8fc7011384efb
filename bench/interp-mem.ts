/**
 * Benchmark: what `pylens mem` (tracemalloc with N-frame tracebacks, snapshots every
 * --interval) costs an allocation-heavy Python program, per CPython version.
 *
 * Workload (stdlib, written to a temp dir): a fixed amount of work that builds and drops
 * small objects (dicts, lists, tuples, strings, ints) and keeps a growing list, timing
 * itself (perf_counter around the work only, printed on stderr): interpreter start-up and
 * pylens's own start and exit are not in that figure; the command's wall time is shown too.
 * Each round runs the workload plainly and under `pylens mem -q`, side by side as a pair,
 * the order swapped every round (this VM's speed drifts by ±20 %). Slowdown = median over
 * pairs of (time under mem / plain time), with the spread (min–max over pairs); next to it
 * the lens's own overhead estimate (its calibrated upper bound, see _lens_mem.py).
 *
 *   node_modules/.bin/node bench/interp-mem.ts [--quick] [--rounds N] [--frames N] [--interval S] [--python 3.12]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argValue, benchPythons, busyWarning, CLI, machineLine, median, QUICK } from './sampler-common.ts';

const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 1 : 3));
const FRAMES = argValue('--frames') ?? '16';
const INTERVAL = argValue('--interval') ?? '1';
const only = argValue('--python');
const NODE = process.execPath;

const WORKLOAD = `
import sys, time
N = int(sys.argv[1])
kept = []
def record(i):
    return {"id": i, "name": "item-%d" % i, "tags": [i % 7, i % 11], "pos": (i * 0.5, i * 1.5)}
def work():
    total = 0
    for i in range(N):
        r = record(i)
        total += len(r["name"]) + sum(r["tags"])
        if i % 50 == 0:
            kept.append(r)
    return total
t0 = time.perf_counter()
work()
sys.stderr.write("WORK %.6f\\n" % (time.perf_counter() - t0))
`;

const dir = mkdtempSync(join(tmpdir(), 'pylens-bench-mem-'));
const script = join(dir, 'alloc.py');
writeFileSync(script, WORKLOAD);
const N = QUICK ? '100000' : '200000';

function runOnce(cmd: string[]): { work: number; wall: number; stdout: string } {
  const t = performance.now();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 600_000 });
  const wall = (performance.now() - t) / 1000;
  const m = /WORK ([\d.]+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr.slice(-500)}`);
  return { work: Number(m[1]), wall, stdout: r.stdout };
}

console.log(`pylens mem overhead: allocation-heavy loop (${N} records), --frames ${FRAMES} --interval ${INTERVAL}, ${ROUNDS} round(s) per version`);
console.log(machineLine());
const busy = busyWarning();
if (busy) console.log(busy);
const rows: string[][] = [];
try {
  for (const py of benchPythons().filter((p) => p.label.startsWith('pyenv') && p.minor >= 8 && (!only || `3.${p.minor}` === only)).sort((a, b) => a.minor - b.minor)) {
    const ratios: number[] = [];
    const plainT: number[] = [];
    const memT: number[] = [];
    const plainWall: number[] = [];
    const memWall: number[] = [];
    const est: number[] = [];
    const snapMs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const plain = () => runOnce([py.exe, script, N]);
      const mem = () =>
        runOnce([NODE, CLI, 'mem', '--json', '--frames', FRAMES, '--interval', INTERVAL, '-o', join(dir, 'out.pylens'), '--', py.exe, script, N]);
      const [a, b] = r % 2 === 0 ? [plain(), mem()] : (() => { const m = mem(); return [plain(), m]; })();
      ratios.push(b.work / a.work);
      plainT.push(a.work);
      memT.push(b.work);
      plainWall.push(a.wall);
      memWall.push(b.wall);
      const rep = JSON.parse(b.stdout) as { overhead: { fraction: number | null; method: string } | null; snapshots: unknown[] };
      // the lens states the per-allocation slowdown it calibrated at start (Python counts no allocations, so no share)
      const f = /ran ([\d.]+)x slower/.exec(rep.overhead?.method ?? '');
      if (f) est.push(Number(f[1]));
      snapMs.push(rep.snapshots.length);
    }
    const f = (x: number) => x.toFixed(3);
    const trueFrac = 1 - 1 / median(ratios);
    rows.push([
      `3.${py.minor}`,
      `${f(median(plainT))} s`,
      `${f(median(memT))} s`,
      `${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`,
      `${(100 * trueFrac).toFixed(0)} %`,
      est.length ? `${median(est).toFixed(1)}×` : 'n/a',
      `${median(plainWall).toFixed(2)} / ${median(memWall).toFixed(2)} s`,
    ]);
    console.log(`  done 3.${py.minor}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const head = ['python', 'plain work', 'under mem', 'slowdown (spread)', 'cost share of run', 'calibrated per alloc', 'wall plain / mem'];
const w = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
const line = (r: string[]) => r.map((s, c) => s.padEnd(w[c]!)).join('  ');
console.log(line(head));
for (const r of rows) console.log(line(r));
console.log('cost share of run = 1 − plain/under-mem; calibrated per alloc: the slowdown of a small-object allocation loop the lens measures at start and states (the ceiling for code that does nothing but allocate); slowdown and times are medians over pairs.');
