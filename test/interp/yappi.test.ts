/**
 * `pylens yappi`: real CPython runs under yappi (Debian's /usr/bin/python3 has python3-yappi),
 * a pyenv Python without it for the error path, and the pure edge → pstats conversion.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodePylens } from '../../src/formats/pylens.ts';
import { frameInfo, type Profile } from '../../src/model/profile.ts';
import { threadPstats, type YappiFunction } from '../../src/capture/python/yappi.ts';
import { installedPythons } from '../sampler/pythons.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE = join(ROOT, 'node_modules/.bin/node');
const MAIN = join(ROOT, 'src/cli/main.ts');
const DEBIAN = '/usr/bin/python3';
const hasYappi = existsSync(DEBIAN) && spawnSync(DEBIAN, ['-c', 'import yappi'], { encoding: 'utf8' }).status === 0;
const noYappiPython = installedPythons().find((p) => p.exe.includes('.pyenv') && spawnSync(p.exe, ['-c', 'import yappi']).status !== 0);

const dir = mkdtempSync(join(tmpdir(), 'pylens-yappi-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const TWO_THREADS = `
import sys, threading, time
def spin(sec):
    end = time.thread_time() + sec
    x = 0
    while True:
        for _ in range(2000):
            x += 1
        if time.thread_time() >= end:
            return x
def sleeper(sec):
    time.sleep(sec)
def tick():
    return 1
a = threading.Thread(target=spin, args=(0.3,), name="spinner")
b = threading.Thread(target=sleeper, args=(0.3,), name="sleeper")
a.start(); b.start()
for _ in range(37):
    tick()
a.join(); b.join()
sys.exit(int(sys.argv[1]))
`;
const script = join(dir, 'two.py');
writeFileSync(script, TWO_THREADS);

interface JsonThread { name: string; tid: number; main: boolean; cpuNs: number | null; wallNs: number | null; yappiNs: number | null; calls: number }
interface JsonOut { clock: string; exitCode: number; threads: JsonThread[]; overhead: { fraction: number | null; method: string }; functions: { top: Array<{ name: string; calls: number | null; selfNs: number }> } }

function pylens(args: string[]) {
  return spawnSync(NODE, [MAIN, 'yappi', ...args], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
}

/** Self time (ns) and calls of the function `name` on the thread named `thread`. */
function fnOnThread(p: Profile, thread: string, name: string): { self: number; calls: number } {
  let self = 0;
  let calls = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const t = p.samples.thread[i]!;
    if (p.strings[p.threads.name[t]!] !== thread) continue;
    const s = p.samples.stack[i]!;
    if (frameInfo(p, p.stacks.frame[s]!).qualname !== name) continue;
    calls += p.samples.values[0]![i]!;
    self += p.samples.values[1]![i]!;
  }
  return { self, calls };
}

const near = (got: number, want: number, tol = 0.2) => Math.abs(got - want) <= want * tol;

function run(clock: 'cpu' | 'wall', exit: number): { out: JsonOut; profile: Profile; stderr: string; status: number | null } {
  const file = join(dir, `two-${clock}.pylens`);
  const r = pylens(['--clock', clock, '--json', '-o', file, '--top', '100', '--', DEBIAN, script, String(exit)]);
  assert.ok(r.stdout.trim().startsWith('{'), `no JSON: ${r.stdout}\n${r.stderr}`);
  return { out: JSON.parse(r.stdout) as JsonOut, profile: decodePylens(readFileSync(file)), stderr: r.stderr, status: r.status };
}

test('--clock cpu: the spinner has its CPU time, the sleeper almost none; names, call counts, exit code', { skip: !hasYappi && 'no yappi in /usr/bin/python3' }, () => {
  const { out, profile, stderr, status } = run('cpu', 5);
  assert.equal(status, 5, stderr);
  assert.equal(out.exitCode, 5);
  assert.equal(out.clock, 'cpu');
  assert.equal(profile.meta.mode, 'cpu');
  assert.equal(profile.meta.backend, 'yappi');
  assert.equal(profile.meta.lens, 'interpreter');
  const by = new Map(out.threads.map((t) => [t.name, t]));
  assert.deepEqual([...by.keys()].sort(), ['MainThread', 'sleeper', 'spinner']);
  const spinner = by.get('spinner')!;
  const sleeper = by.get('sleeper')!;
  // yappi's thread totals in the cpu clock
  assert.ok(near(spinner.yappiNs!, 0.3e9), `spinner yappi cpu ${spinner.yappiNs}`);
  assert.ok(sleeper.yappiNs! < 0.02e9, `sleeper yappi cpu ${sleeper.yappiNs}`);
  // the thread's own clocks, the same run
  assert.ok(near(spinner.cpuNs!, 0.3e9), `spinner cpu ${spinner.cpuNs}`);
  assert.ok(sleeper.cpuNs! < 0.02e9, `sleeper cpu ${sleeper.cpuNs}`);
  assert.ok(near(sleeper.wallNs!, 0.3e9), `sleeper wall ${sleeper.wallNs}`);
  assert.ok(spinner.wallNs! >= spinner.cpuNs! * 0.95);
  // the profile: thread rows with names, spin's self time on the spinner, exact counts
  const names = Array.from({ length: profile.threads.length }, (_, t) => profile.strings[profile.threads.name[t]!]);
  assert.deepEqual(names.sort(), ['MainThread', 'sleeper', 'spinner']);
  const spin = fnOnThread(profile, 'spinner', 'spin');
  assert.ok(near(spin.self, 0.3e9), `spin self ${spin.self}`);
  assert.equal(spin.calls, 1);
  assert.equal(fnOnThread(profile, 'MainThread', 'tick').calls, 37);
  assert.equal(fnOnThread(profile, 'spinner', 'tick').calls, 0);
  assert.equal(out.functions.top.find((f) => f.name === 'tick')?.calls, 37);
  assert.equal(typeof out.overhead.fraction, 'number');
  assert.match(out.overhead.method, /with and without yappi/);
});

test('--clock wall: both threads near their wall time; text report has the thread table', { skip: !hasYappi && 'no yappi in /usr/bin/python3' }, () => {
  const { out, profile, status } = run('wall', 0);
  assert.equal(status, 0);
  assert.equal(profile.meta.mode, 'wall');
  const by = new Map(out.threads.map((t) => [t.name, t]));
  const spinner = by.get('spinner')!;
  const sleeper = by.get('sleeper')!;
  assert.ok(near(sleeper.yappiNs!, 0.3e9), `sleeper yappi wall ${sleeper.yappiNs}`);
  assert.ok(near(spinner.yappiNs!, spinner.wallNs!), `spinner yappi wall ${spinner.yappiNs} vs lifetime ${spinner.wallNs}`);
  assert.ok(spinner.yappiNs! >= 0.3e9 * 0.95, `spinner yappi wall ${spinner.yappiNs}`);
  assert.ok(near(fnOnThread(profile, 'sleeper', 'sleeper').self, 0.3e9));
  // CPU still measured in a wall-clock run: the sleeper's is near 0
  assert.ok(sleeper.cpuNs! < 0.02e9);

  const text = pylens(['-o', join(dir, 'two.html'), '--', DEBIAN, script, '0']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^Thread\s+TID\s+CPU\s+Wall\s+CPU\/Wall/m);
  assert.match(text.stdout, /^spinner\s+\d+\s/m);
  assert.match(text.stdout, /^sleeper\s+\d+\s/m);
  assert.match(text.stdout, /spin \(two\.py\)/);
  assert.match(text.stderr, /3 threads, .*overhead about/);
});

test('exit codes and exceptions pass through', { skip: !hasYappi && 'no yappi in /usr/bin/python3' }, () => {
  const boom = join(dir, 'boom.py');
  writeFileSync(boom, 'def f():\n    raise ValueError("bad thing")\nf()\n');
  const r = pylens(['-q', '-o', join(dir, 'boom.pylens'), '--', DEBIAN, boom]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /ValueError: bad thing/);
  assert.match(r.stderr, /program raised ValueError/);
  const p = decodePylens(readFileSync(join(dir, 'boom.pylens')));
  assert.equal(fnOnThread(p, 'MainThread', 'f').calls, 1);
});

test('no yappi in the interpreter: a clear error, non-zero exit, the program never ran', { skip: !noYappiPython && 'no pyenv Python without yappi' }, () => {
  const marker = join(dir, 'ran.txt');
  const prog = join(dir, 'side.py');
  writeFileSync(prog, `open(${JSON.stringify(marker)}, "w").write("ran")\n`);
  const r = pylens(['-o', join(dir, 'side.html'), '--', noYappiPython!.exe, prog]);
  assert.notEqual(r.status, 0);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /yappi is not importable by \S+python3\.\d+ \(ModuleNotFoundError: No module named 'yappi'\); the program was not run/);
  assert.match(r.stderr, new RegExp(`${noYappiPython!.exe.replace(/[.]/g, '\\.')} -m pip install yappi`));
  assert.equal(existsSync(marker), false, 'the program ran');
  assert.equal(existsSync(join(dir, 'side.html')), false);
});

test('--clock checks its value before running anything', () => {
  const r = pylens(['--clock', 'gpu', '--', DEBIAN, script, '0']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /clock/);
});

test('threadPstats: callers come from the callers’ children edges; unknown children are skipped', () => {
  const fns: YappiFunction[] = [
    { ctx_id: 1, index: 1, name: 'main', module: '/a.py', lineno: 1, ncall: 1, nactualcall: 1, ttot: 3, tsub: 0.5, children: [[2, 4, 4, 2.5, 2.5], [99, 1, 1, 9, 9]] },
    { ctx_id: 1, index: 2, name: 'K.work', module: '/a.py', lineno: 5, ncall: 4, nactualcall: 4, ttot: 2.5, tsub: 2.5, children: [] },
  ];
  const d = threadPstats(fns);
  assert.equal(d.entries.length, 2);
  const work = d.entries.find((e) => e.key[2] === 'K.work')!;
  assert.deepEqual(work.callers, [{ key: ['/a.py', 1, 'main'], value: [4, 4, 2.5, 2.5] }]);
  assert.deepEqual([work.cc, work.nc, work.tt, work.ct], [4, 4, 2.5, 2.5]);
  assert.deepEqual(d.entries.find((e) => e.key[2] === 'main')!.callers, []);
});
