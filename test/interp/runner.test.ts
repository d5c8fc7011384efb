/**
 * The interpreter lenses' launcher: the stdlib helper runs the user's program exactly as
 * `python` would (argv, sys.path[0], __main__, -m, -c, exit codes, tracebacks, atexit,
 * threads), on every installed CPython 3.8+, and the TS side splits Python command lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HELPER_BOOT, HelperError, parsePythonCommand, readHelperResult, runLens } from '../../src/capture/python/helper.ts';
import { installedPythons } from '../sampler/pythons.ts';

const PYTHONS = installedPythons().filter((p) => p.minor >= 8 && p.label.startsWith('pyenv'));

const PROGRAM = `
import atexit, os, pickle, sys, threading, time
import pylens

class Point:
    pass

# pickling a class defined in __main__ needs sys.modules['__main__'] to be this module
pickle.loads(pickle.dumps(Point()))
report = {"argv": sys.argv, "path0": sys.path[0], "name": __name__, "file": __file__,
          "main_is_me": sys.modules["__main__"].__dict__ is globals()}
with pylens.region("outer"):
    with pylens.region("inner"):
        pass
out = os.environ["PROBE_OUT"]
def late():
    time.sleep(0.2)
    with open(out + ".thread", "w") as f:
        f.write("done")
threading.Thread(target=late).start()
atexit.register(lambda: open(out + ".atexit", "w").write("ran"))
import json
with open(out, "w") as f:
    json.dump(report, f)
what = sys.argv[1] if len(sys.argv) > 1 else "0"
if what == "raise":
    def inner():
        raise ValueError("boom from the program")
    inner()
if what == "kbd":
    raise KeyboardInterrupt
sys.exit(int(what) if what.isdigit() else what)
`;

function setup(): { dir: string; script: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-runner-'));
  const script = join(dir, 'prog.py');
  writeFileSync(script, PROGRAM);
  mkdirSync(join(dir, 'pkg'));
  writeFileSync(join(dir, 'pkg', '__init__.py'), '');
  writeFileSync(join(dir, 'pkg', '__main__.py'), 'import sys\nprint("pkg", __name__, sys.argv[1:], flush=True)\nsys.exit(4)\n');
  return { dir, script };
}

/** Run the helper directly with the none lens. */
function helper(py: string, dir: string, target: string[], env: Record<string, string> = {}) {
  const res = join(dir, 'result.json');
  rmSync(res, { force: true });
  const r = spawnSync(py, [HELPER_BOOT, 'none', res, '{"k":1}', '--', ...target], { cwd: dir, encoding: 'utf8', env: { ...process.env, PROBE_OUT: join(dir, 'probe.json'), ...env }, timeout: 60_000 });
  return { ...r, result: () => readHelperResult<{ options: { k: number }; regions: [string, string][] }>(res) };
}

for (const py of PYTHONS) {
  test(`helper on ${py.label}: the program runs as python would run it`, () => {
    const { dir, script } = setup();
    try {
      // plain python first: what the program sees without pylens
      const plain = spawnSync(py.exe, ['prog.py', '7'], { cwd: dir, encoding: 'utf8', env: { ...process.env, PROBE_OUT: join(dir, 'plain.json'), PYTHONPATH: join(HELPER_BOOT, '..') } });
      assert.equal(plain.status, 7, plain.stderr);
      const want = JSON.parse(spawnSync('cat', [join(dir, 'plain.json')], { encoding: 'utf8' }).stdout);

      const r = helper(py.exe, dir, ['prog.py', '7']);
      assert.equal(r.status, 7, r.stderr);
      const got = JSON.parse(spawnSync('cat', [join(dir, 'probe.json')], { encoding: 'utf8' }).stdout);
      assert.deepEqual(got, want);
      assert.equal(got.main_is_me, true);
      assert.deepEqual(got.argv, ['prog.py', '7']);
      const res = r.result();
      assert.equal(res.exit.code, 7);
      assert.equal(res.exit.exception, null);
      assert.equal(res.target.kind, 'script');
      assert.equal(res.target.value, script);
      assert.equal(res.python.version.split('.').slice(0, 2).join('.'), `3.${py.minor}`);
      assert.deepEqual(res.data.options, { k: 1 });
      assert.deepEqual(res.data.regions, [['enter', 'outer'], ['enter', 'inner'], ['exit', 'inner'], ['exit', 'outer']]);
      // the result is written after non-daemon threads and the program's atexit handlers
      assert.ok(res.wall_ns >= 150e6, `wall ${res.wall_ns}`);
      assert.equal(spawnSync('cat', [join(dir, 'probe.json.thread')], { encoding: 'utf8' }).stdout, 'done');
      assert.equal(spawnSync('cat', [join(dir, 'probe.json.atexit')], { encoding: 'utf8' }).stdout, 'ran');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`helper on ${py.label}: exceptions, KeyboardInterrupt, SystemExit messages, -m, -c and a missing script`, () => {
    const { dir } = setup();
    try {
      const plain = spawnSync(py.exe, ['prog.py', 'raise'], { cwd: dir, encoding: 'utf8', env: { ...process.env, PROBE_OUT: join(dir, 'p.json'), PYTHONPATH: join(HELPER_BOOT, '..') } });
      const r = helper(py.exe, dir, ['prog.py', 'raise']);
      assert.equal(r.status, 1);
      // the same traceback as plain python: no helper frames
      assert.equal(r.stderr, plain.stderr);
      assert.doesNotMatch(r.stderr, /_runner|pylens_boot/);
      assert.deepEqual(r.result().exit.exception, { type: 'ValueError', module: 'builtins', message: 'boom from the program' });

      const k = helper(py.exe, dir, ['prog.py', 'kbd']);
      assert.equal(k.signal, 'SIGINT', 'an uncaught KeyboardInterrupt ends the process by SIGINT, like python');
      assert.equal(k.result().exit.signal, 'SIGINT');

      const m = helper(py.exe, dir, ['prog.py', 'bye']);
      assert.equal(m.status, 1);
      assert.match(m.stderr, /^bye$/m);

      const mod = helper(py.exe, dir, ['-m', 'pkg', 'a', 'b']);
      assert.equal(mod.status, 4, mod.stderr);
      assert.equal(mod.stdout, "pkg __main__ ['a', 'b']\n");
      assert.deepEqual(mod.result().target, { kind: 'module', value: 'pkg' });

      const c = helper(py.exe, dir, ['-c', 'import sys; print(sys.argv, __name__); sys.exit(5)', 'x']);
      assert.equal(c.status, 5);
      assert.equal(c.stdout, "['-c', 'x'] __main__\n");

      const missing = helper(py.exe, dir, ['nope.py']);
      assert.equal(missing.status, 2);
      assert.match(missing.stderr, /can't open file '.*nope\.py': \[Errno 2\] No such file or directory/);
      const nomod = helper(py.exe, dir, ['-m', 'no_such_module_here']);
      assert.equal(nomod.status, 1);
      assert.match(nomod.stderr, /No module named no_such_module_here/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('runLens: interpreter options kept, stdio passed through, the exit code and result returned', { skip: PYTHONS.length === 0 && 'no pyenv CPython' }, async () => {
  const py = PYTHONS.at(-1)!;
  const { dir } = setup();
  try {
    const script = join(dir, 'opt.py');
    writeFileSync(script, 'import sys\nassert not __debug__, "-O was lost"\nprint(sys.flags.optimize)\nsys.exit(3)\n');
    const run = await runLens<{ options: Record<string, unknown> }>('none', { a: [1, 2] }, [py.exe, '-O', script]);
    assert.equal(run.exitCode, 3);
    assert.deepEqual(run.command.interpreterArgs, ['-O']);
    assert.deepEqual(run.result?.data.options, { a: [1, 2] });
    assert.equal(run.build.minor, py.minor);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('helper: SIGTERM writes the result and ends the process by SIGTERM (a program with its own handler keeps it)', { skip: PYTHONS.length === 0 && 'no pyenv CPython' }, async () => {
  const py = PYTHONS.at(-1)!;
  const dir = mkdtempSync(join(tmpdir(), 'pylens-term-'));
  try {
    // a non-daemon thread that never ends: without pylens SIGTERM kills it all at once
    const prog = join(dir, 'forever.py');
    writeFileSync(prog, 'import threading, time\nthreading.Thread(target=lambda: [time.sleep(0.05) for _ in iter(int, 1)]).start()\nprint("up", flush=True)\nwhile True:\n    time.sleep(0.01)\n');
    const own = join(dir, 'own.py');
    writeFileSync(own, 'import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\nprint("up", flush=True)\nwhile True:\n    time.sleep(0.01)\n');
    for (const [script, want] of [[prog, { signal: 'SIGTERM', code: null, recorded: 'SIGTERM' }], [own, { signal: null, code: 7, recorded: null }]] as const) {
      const res = join(dir, 'r.json');
      rmSync(res, { force: true });
      const child = spawn(py.exe, [HELPER_BOOT, 'none', res, '{}', '--', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.includes('up') && resolve()));
      child.kill('SIGTERM');
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
      assert.equal(signal, want.signal, script);
      assert.equal(code, want.code, script);
      assert.equal(readHelperResult(res).exit.signal, want.recorded);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('helper: a forked child exiting after the parent does not overwrite the parent\'s result', { skip: PYTHONS.length === 0 && 'no pyenv CPython' }, async () => {
  const py = PYTHONS.at(-1)!;
  const dir = mkdtempSync(join(tmpdir(), 'pylens-fork-'));
  try {
    const prog = join(dir, 'forky.py');
    const done = join(dir, 'child-done');
    writeFileSync(prog, `import os, sys, time\nif os.fork() == 0:\n    time.sleep(0.5)\n    open(${JSON.stringify(done)}, "w").close()\n    sys.exit(0)\nprint(os.getpid())\n`);
    const res = join(dir, 'r.json');
    const r = spawnSync(py.exe, [HELPER_BOOT, 'none', res, '{}', '--', prog], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const parent = Number(r.stdout.trim());
    for (let i = 0; i < 100 && !existsSync(done); i++) await new Promise((w) => setTimeout(w, 50));
    assert.ok(existsSync(done), 'the child finished');
    await new Promise((w) => setTimeout(w, 200)); // its atexit would run right after
    assert.equal(readHelperResult(res).pid, parent);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('helper: an unknown lens stops before the program runs', { skip: PYTHONS.length === 0 && 'no pyenv CPython' }, () => {
  const py = PYTHONS.at(-1)!;
  const dir = mkdtempSync(join(tmpdir(), 'pylens-nolens-'));
  try {
    const r = spawnSync(py.exe, [HELPER_BOOT, 'no_such_lens', join(dir, 'r.json'), '{}', '--', '-c', 'print("the program ran")'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /no lens 'no_such_lens'/);
    const bad = spawnSync(py.exe, [HELPER_BOOT, 'none', join(dir, 'r.json'), '{not json', '--', '-c', 'print("the program ran")'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /bad options JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parsePythonCommand: interpreter options, -m/-c, launcher scripts, and what is refused', () => {
  const py = PYTHONS.at(-1)?.exe ?? '/usr/bin/python3';
  const dir = mkdtempSync(join(tmpdir(), 'pylens-cmd-'));
  try {
    assert.deepEqual(parsePythonCommand([py, 'app.py', '-x', '--y']), { python: py, interpreterArgs: [], target: ['app.py', '-x', '--y'] });
    assert.deepEqual(parsePythonCommand([py, '-X', 'dev', '-W', 'error', '-u', 'app.py', 'a']).interpreterArgs, ['-X', 'dev', '-W', 'error', '-u']);
    assert.deepEqual(parsePythonCommand([py, '-Xutf8', '-m', 'http.server', '8000']), { python: py, interpreterArgs: ['-Xutf8'], target: ['-m', 'http.server', '8000'] });
    assert.deepEqual(parsePythonCommand([py, '-um', 'pkg', 'x']), { python: py, interpreterArgs: ['-u'], target: ['-m', 'pkg', 'x'] });
    assert.deepEqual(parsePythonCommand([py, '-c', 'print(1)', 'x']).target, ['-c', 'print(1)', 'x']);
    assert.deepEqual(parsePythonCommand([py, '--', '-weird.py']).target, ['-weird.py']);
    // a console script: its #! names the interpreter, the script is the program
    const launcher = join(dir, 'mytool');
    writeFileSync(launcher, `#!${py}\nprint("hi")\n`);
    chmodSync(launcher, 0o755);
    assert.deepEqual(parsePythonCommand([launcher, '--flag']), { python: py, interpreterArgs: [], target: [launcher, '--flag'] });
    for (const bad of [[], [py], [py, '-'], [py, '-m'], ['/bin/ls', '-l'], ['no-such-program-here']]) {
      assert.throws(() => parsePythonCommand(bad), HelperError, JSON.stringify(bad));
    }
    assert.throws(() => parsePythonCommand(['/bin/ls']), /is not a Python interpreter/);
    assert.throws(() => parsePythonCommand(['no-such-program-here']), /no such program on PATH/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readHelperResult: a damaged or foreign file names itself', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-res-'));
  try {
    const f = join(dir, 'r.json');
    writeFileSync(f, '{"format":"pylens-interp","version":1,');
    assert.throws(() => readHelperResult(f), (e: Error) => e instanceof HelperError && e.message.includes(f) && /not valid JSON/.test(e.message));
    writeFileSync(f, '{"format":"other"}');
    assert.throws(() => readHelperResult(f), /is not a pylens interpreter-lens result/);
    writeFileSync(f, '{"format":"pylens-interp","version":99}');
    assert.throws(() => readHelperResult(f), /result version 99/);
    assert.throws(() => readHelperResult(join(dir, 'none.json')), /cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
