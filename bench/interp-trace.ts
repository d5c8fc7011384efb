/**
 * `pylens trace` slowdown on a call-heavy workload, per installed CPython 3.8–3.13:
 * the program alone vs under trace (cProfile; and sys.monitoring on 3.12+ with both
 * backends side by side), whole-program and scoped to one small module (`--include`), where
 * sys.monitoring DISABLEs the code outside the scope and cProfile still sees every call.
 * 3.12+ also: the default (`auto`) on the same workload (one thread: cProfile throughout)
 * and on a variant that runs its second half in a thread (cProfile, then sys.monitoring),
 * against that variant alone. Runs alternate in order within each round; medians and spread.
 *
 *   node_modules/.bin/node bench/interp-trace.ts [--rounds N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installedPythons, type InstalledPython } from '../test/sampler/pythons.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const NODE = join(ROOT, 'node_modules/.bin/node');
const MAIN = join(ROOT, 'src/cli/main.ts');
const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 5;
const dir = mkdtempSync(join(tmpdir(), 'pylens-bench-trace-'));
const work = join(dir, 'work.py');
// ~1.1M Python calls in hotlib (recursion, methods, small helpers) and 200 calls into a small
// module, scoped, that a tight trace looks at alone; prints its own wall time
writeFileSync(join(dir, 'hotlib.py'), `
def fib(n):
    return n if n < 2 else fib(n-1) + fib(n-2)
class P:
    def __init__(self, v): self.v = v
    def add(self, o): return P(self.v + o.v)
def f(x): return x + 1
`);
writeFileSync(join(dir, 'scoped.py'), `
def checkout(i):
    return sum(price(j) for j in range(i % 7))
def price(j):
    return j * 3
`);
writeFileSync(work, `
import time
from hotlib import fib, P, f
from scoped import checkout
t0 = time.perf_counter()
fib(24)
p = P(0)
for i in range(100000): p = p.add(P(i))
s = 0
for i in range(300000):
    s = f(s)
    if i % 1500 == 0: checkout(i)
print("WALL", time.perf_counter() - t0)
`);

// the same work, its second half (the f loop) in a thread started there
const workT = join(dir, 'work_t.py');
writeFileSync(workT, `
import time, threading
from hotlib import fib, P, f
from scoped import checkout
t0 = time.perf_counter()
fib(24)
p = P(0)
for i in range(100000): p = p.add(P(i))
def loop():
    s = 0
    for i in range(300000):
        s = f(s)
        if i % 1500 == 0: checkout(i)
t = threading.Thread(target=loop); t.start(); t.join()
print("WALL", time.perf_counter() - t0)
`);

type Mode = 'none' | 'cprofile' | 'monitoring' | 'auto' | 'cprofile scoped' | 'monitoring scoped' | 'none threaded' | 'auto threaded';
function runOnce(py: InstalledPython, mode: Mode): number {
  const out = join(dir, 'o.pylens');
  const [backend, variant] = mode.split(' ');
  const script = variant === 'threaded' ? workT : work;
  const argv = backend === 'none' ? [py.exe, script] : [NODE, MAIN, 'trace', '-q', '-o', out, '--backend', backend!, ...(variant === 'scoped' ? ['--include', 'scoped'] : []), '--', py.exe, script];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: dir });
  const m = /WALL ([\d.]+)/.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  return Number(m[1]);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
const byMinor = new Map<number, InstalledPython>();
for (const p of installedPythons()) if (p.minor >= 8 && p.minor <= 13 && !byMinor.has(p.minor)) byMinor.set(p.minor, p);

console.log(`pylens trace slowdown (program's own wall time of the workload; ${ROUNDS} rounds, order alternating; median, min–max)`);
console.log('scoped: --include scoped (200 calls of a small module among 1.1 M others)');
console.log('threaded: the second half of the work in a thread; against that variant alone');
const COLS: Mode[] = ['cprofile', 'monitoring', 'auto', 'cprofile scoped', 'monitoring scoped', 'auto threaded'];
console.log(['python', 'alone s', ...COLS.map((c) => `${c} ×`)].map((h, i) => (i === 0 ? h.padEnd(16) : h.padStart(22))).join(''));
for (const py of [...byMinor.values()].sort((a, b) => a.minor - b.minor)) {
  const modes: Mode[] = py.minor >= 12 ? ['none', ...COLS, 'none threaded'] : ['none', 'cprofile', 'cprofile scoped'];
  const t: Record<string, number[]> = Object.fromEntries(['none', ...COLS, 'none threaded'].map((m) => [m, [] as number[]]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? modes : [...modes].reverse();
    for (const m of order) t[m]!.push(runOnce(py, m));
  }
  const base = median(t.none!);
  const ratio = (m: string) => {
    if (!t[m]!.length) return '-';
    const alone = m.endsWith('threaded') ? t['none threaded']! : t.none!;
    return `${(median(t[m]!) / median(alone)).toFixed(2)} (${spread(t[m]!.map((x, i) => x / alone[i]!))})`;
  };
  console.log([py.label.padEnd(16), `${base.toFixed(3)} (${spread(t.none!)})`.padStart(22), ...COLS.map((c) => ratio(c).padStart(22))].join(''));
}
rmSync(dir, { recursive: true, force: true });
