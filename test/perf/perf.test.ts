/**
 * `pylens perf` end to end: the real CLI, real perf, real CPython 3.11/3.12/3.13.
 * Python frames named on 3.12 and 3.13, whole mixed stacks through the trampolines on
 * 3.13, kernel frames under a syscall-heavy function, CPython's frames folded (or kept),
 * the target's exit code passed on, /tmp cleaned, and the errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { installedPythons } from '../sampler/pythons.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { frameInfo, stackFrames, type FrameInfo, type Profile } from '../../src/model/profile.ts';
import { eventSupported } from '../../src/capture/perf/tool.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const NODE = process.execPath;
const pythons = installedPythons().filter((p) => p.label.startsWith('pyenv'));
const py = (minor: number) => pythons.find((p) => p.minor === minor);
const perfMissing = spawnSync('perf', ['--version']).status !== 0 && 'perf is not installed';

// three phases a round: pure Python, zlib (C), os.stat (syscalls); each knows its own time
const WORKLOAD = `import os, sys, time, zlib
def py_loop():
    s = 0
    for i in range(60000):
        s += i * i
    return s
def compress():
    zlib.compress(bytes(range(256)) * 2000, 9)
def stat_loop():
    for _ in range(400):
        os.stat('/')
        os.stat(sys.executable)
def main(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        py_loop(); compress(); stat_loop()
main(float(sys.argv[1]))
`;

function run(args: string[], env: NodeJS.ProcessEnv = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(NODE, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function record(minor: number, extra: string[] = [], seconds = 1.2): { p: Profile; stderr: string; code: number; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-perf-test-'));
  const script = join(dir, 'work.py');
  writeFileSync(script, WORKLOAD);
  const out = join(dir, 'out.pylens');
  const r = run(['perf', '-F', '499', '-o', out, ...extra, '--', py(minor)!.exe, script, String(seconds)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), out);
  return { p: decodePylens(readFileSync(out), out), stderr: r.stderr, code: r.code, dir };
}

function stacks(p: Profile): FrameInfo[][] {
  const out: FrameInfo[][] = [];
  for (let i = 0; i < p.samples.length; i++) out.push(stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f)));
  return out;
}

const names = (s: FrameInfo[]) => s.map((f) => f.name);
const count = (all: FrameInfo[][], pred: (s: FrameInfo[]) => boolean) => all.filter(pred).length;

function noLeftovers(pid: number | undefined): void {
  assert.ok(pid !== undefined && pid > 0);
  const left = readdirSync('/tmp').filter((f) => f === `perf-${pid}.map` || f === `jit-${pid}.dump` || f.startsWith(`jitted-${pid}-`));
  assert.deepEqual(left, [], 'CPython/perf files left in /tmp');
}

test('3.13: perf_jit + inject gives whole Python stacks with native and kernel leaves; interpreter folded', { skip: perfMissing || (!py(13) && 'no CPython 3.13') }, () => {
  const { p, stderr } = record(13);
  assert.match(stderr, /CPython 3\.13\.\d+: -X perf_jit .*perf inject --jit, --call-graph dwarf/);
  assert.equal(p.meta.lens, 'perf');
  assert.equal(p.meta.extra?.callGraph, 'dwarf');
  assert.ok(p.meta.overhead?.fraction !== undefined && p.meta.overhead.fraction > 0 && p.meta.overhead.fraction < 1, `overhead ${p.meta.overhead?.fraction}`);
  const all = stacks(p);
  assert.ok(all.length > 200, `${all.length} samples`);
  // whole stacks: <module> -> main -> phase, all Python frames
  const chain = (leafFn: string) => (s: FrameInfo[]) => {
    const n = names(s);
    const m = n.indexOf('<module>');
    return m >= 0 && n[m + 1] === 'main' && n[m + 2] === leafFn && s[m + 2]!.kind === 'python';
  };
  const inPy = count(all, chain('py_loop'));
  const inZlib = count(all, (s) => chain('compress')(s) && s.some((f) => f.kind === 'native' && (f.lib ?? '').startsWith('libz')));
  const inStat = count(all, (s) => chain('stat_loop')(s) && s.some((f) => f.kind === 'kernel'));
  assert.ok(inPy > all.length * 0.1, `py_loop whole stacks: ${inPy}/${all.length}`);
  assert.ok(inZlib > all.length * 0.05, `zlib leaves under compress: ${inZlib}/${all.length}`);
  assert.ok(inStat > all.length * 0.03, `kernel leaves under stat_loop: ${inStat}/${all.length}`);
  // folded: no eval loop or trampoline anywhere in Python stacks
  for (const s of all) if (s.some((f) => f.kind === 'python')) assert.ok(!names(s).some((n) => n === '_PyEval_EvalFrameDefault' || n === 'py_trampoline_evaluator'), names(s).join(';'));
  noLeftovers(p.meta.pid);
});

test('3.13 --no-hide-interpreter keeps the eval loop; --no-kernel has no kernel frames', { skip: perfMissing || (!py(13) && 'no CPython 3.13') }, () => {
  const { p } = record(13, ['--no-hide-interpreter', '--no-kernel'], 0.8);
  const all = stacks(p);
  assert.ok(count(all, (s) => names(s).includes('_PyEval_EvalFrameDefault')) > all.length * 0.5);
  assert.equal(count(all, (s) => s.some((f) => f.kind === 'kernel')), 0);
  assert.match(String(p.meta.extra?.event), /:u$/);
});

test('3.12: -X perf names the innermost Python function (dwarf stops at the trampoline) and says so', { skip: perfMissing || (!py(12) && 'no CPython 3.12') }, () => {
  const { p, stderr } = record(12);
  assert.match(stderr, /-X perf \(PYTHONPERFSUPPORT=1\), --call-graph dwarf/);
  assert.match(stderr, /stops at the first Python frame.*record --native/);
  const all = stacks(p);
  const py = count(all, (s) => s.some((f) => f.kind === 'python' && f.name === 'py_loop'));
  assert.ok(py > all.length * 0.1, `py_loop named in ${py}/${all.length}`);
  const z = count(all, (s) => {
    const i = s.findIndex((f) => f.kind === 'python' && f.name === 'compress');
    return i >= 0 && s.slice(i + 1).some((f) => (f.lib ?? '').startsWith('libz'));
  });
  assert.ok(z > all.length * 0.05, `zlib under compress: ${z}/${all.length}`);
  noLeftovers(p.meta.pid);
});

test('3.11: no perf support — C frames only, and the mixed mode is offered', { skip: perfMissing || (!py(11) && 'no CPython 3.11') }, () => {
  const { p, stderr } = record(11, [], 0.8);
  assert.match(stderr, /CPython 3\.11\.\d+ has no perf support.*record --native/);
  const all = stacks(p);
  assert.equal(count(all, (s) => s.some((f) => f.kind === 'python')), 0);
  assert.ok(count(all, (s) => s.some((f) => (f.lib ?? '').startsWith('libpython3.11'))) > all.length * 0.5);
});

test("the target's exit code is pylens perf's; -d stops a program that runs on", { skip: perfMissing || (!py(12) && 'no CPython 3.12') }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-perf-test-'));
  const exit3 = join(dir, 'exit3.py');
  writeFileSync(exit3, 'import sys\nsum(i*i for i in range(300000))\nsys.exit(3)\n');
  const r = run(['perf', '-q', '-o', join(dir, 'a.pylens'), '--', py(12)!.exe, exit3]);
  assert.equal(r.code, 3, r.stderr);
  assert.ok(existsSync(join(dir, 'a.pylens')));
  const forever = join(dir, 'forever.py');
  writeFileSync(forever, 'while True:\n    sum(i*i for i in range(10000))\n');
  const t0 = Date.now();
  const f = run(['perf', '-q', '-d', '1.5', '-o', join(dir, 'b.pylens'), '--', py(12)!.exe, forever]);
  assert.ok(Date.now() - t0 < 60_000);
  const p = decodePylens(readFileSync(join(dir, 'b.pylens')), 'b');
  assert.ok(p.meta.sampleCount > 100, `${p.meta.sampleCount} samples in 1 s`);
  assert.notEqual(f.code, 2, f.stderr);
});

test('errors: dead PID, both -p and a command, a bad --call-graph, no perf', () => {
  const dead = run(['perf', '-p', '999999', '-d', '1']);
  if (!perfMissing) {
    assert.equal(dead.code, 1);
    assert.match(dead.stderr, /process 999999 is not running/);
  }
  const both = run(['perf', '-p', '1', '--', 'python3']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /either -p PID or a command/);
  const cg = run(['perf', '--call-graph', 'lbr', '--', 'python3']);
  assert.equal(cg.code, 2);
  const nocmd = run(['perf', '--', '/nonexistent/program']);
  assert.equal(nocmd.code, 1);
  assert.match(nocmd.stderr, /cannot run "\/nonexistent\/program"/);
  if (!perfMissing && !eventSupported('perf', 'cycles')) {
    // a VM without hardware counters: asking for them is an error that names the fallback
    const cyc = run(['perf', '-e', 'cycles', '--', 'python3', '-c', 'pass']);
    assert.equal(cyc.code, 1);
    assert.match(cyc.stderr, /cannot open event 'cycles'/);
    assert.match(cyc.stderr, /fix: .*-e cpu-clock/);
  }
  const none = run(['perf', '--', 'python3', '-c', 'pass'], { PYLENS_PERF: '/nonexistent/perf' });
  assert.equal(none.code, 1);
  assert.match(none.stderr, /PYLENS_PERF=\/nonexistent\/perf is not an executable/);
  assert.match(none.stderr, /fix: install perf/);
});

test('attach: a 3.12 started with -X perf gets its Python frames; one without is told what is missing', { skip: perfMissing || (!py(12) && 'no CPython 3.12') }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-perf-test-'));
  const script = join(dir, 'work.py');
  writeFileSync(script, WORKLOAD);
  for (const withPerf of [true, false]) {
    const child = spawn(py(12)!.exe, [...(withPerf ? ['-X', 'perf'] : []), script, '30'], { stdio: 'ignore' });
    try {
      // the map file appears when the first trampoline is written
      const t0 = Date.now();
      while (withPerf && !existsSync(`/tmp/perf-${child.pid}.map`) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
      const out = join(dir, `attach-${withPerf}.pylens`);
      const r = await runAsync(['perf', '-p', String(child.pid), '-d', '1', '-F', '499', '-o', out]);
      assert.equal(r.code, 0, r.stderr);
      const p = decodePylens(readFileSync(out), out);
      const all = stacks(p);
      const named = count(all, (s) => s.some((f) => f.kind === 'python' && f.name === 'py_loop'));
      if (withPerf) {
        assert.match(r.stderr, /runs with -X perf \(\/tmp\/perf-\d+\.map\)/);
        assert.ok(named > all.length * 0.1, `py_loop in ${named}/${all.length}`);
      } else {
        assert.match(r.stderr, /not started with perf support.*record --native -p \d+/);
        assert.equal(named, 0);
      }
      assert.ok(child.exitCode === null, 'the target keeps running after pylens perf detaches');
    } finally {
      child.kill('SIGKILL');
      rmSync(`/tmp/perf-${child.pid}.map`, { force: true });
    }
  }
});

function runAsync(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(NODE, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
