/**
 * `pylens record -- python script.py` end to end with the real CLI and real CPythons:
 * stdio passes through, the target's exit code is pylens's, signals are forwarded,
 * -d stops a long-running target, -s follows children, and the frame options
 * (--function, --nolineno, -t, short/full filenames) shape the profile.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { installedPythons } from '../sampler/pythons.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { aggregate, foldedStacks } from '../../src/model/query.ts';
import { frameInfo, type Profile } from '../../src/model/profile.ts';
import { progressLine } from '../../src/render/progress.ts';
import { descendants, shortenFilename } from '../../src/capture/sampler/sampler.ts';
import { syscalls } from '../../src/capture/sampler/syscalls.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const pythons = installedPythons();
const py = pythons.find((p) => p.minor === 12) ?? pythons[0];
const skip = !py && 'no CPython installed';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pylens-launch-'));
}

function script(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function load(path: string): Profile {
  return decodePylens(readFileSync(path), path);
}

const BURN = `import sys, time
def hot(seconds):
    t = time.time()
    while time.time() - t < seconds:
        pass
`;

test('record -- python script: stdout and stdin pass through, exit code is the target’s, hot() is sampled', { skip }, () => {
  const dir = tmp();
  const s = script(dir, 'app.py', `${BURN}
line = sys.stdin.readline().strip()
print("target got", line, flush=True)
hot(1.0)
sys.exit(3)
`);
  const out = join(dir, 'app.pylens');
  // wall-clock mode (-i): hot() spins for 1 s of wall time, which a loaded machine gives less CPU
  const r = spawnSync(process.execPath, [MAIN, 'record', '-i', '-o', out, '--', py!.exe, s], { encoding: 'utf8', input: 'hello-from-stdin\n', cwd: dir });
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stdout, /^target got hello-from-stdin$/m);
  assert.match(r.stdout, new RegExp(`^${out.replace(/[/.]/g, '\\$&')}$`, 'm'));
  const p = load(out);
  assert.deepEqual(p.meta.command, [py!.exe, s]);
  const hot = aggregate(p).rows.find((row) => row.name === 'hot');
  assert.ok(hot && hot.selfPct > 70, `hot self ${hot?.selfPct}%`);
  assert.ok(p.samples.length >= 60, `${p.samples.length} samples in ~1 s at 100 Hz`);
  // run from the script's directory: its frames show the short name, stdlib ones too
  const files = new Set(Array.from({ length: p.frames.length }, (_, f) => frameInfo(p, f).file));
  assert.ok(files.has('app.py'), [...files].join(', '));
});

test('record --full-filenames keeps absolute paths; --function keys frames by first line; --nolineno drops lines', { skip }, () => {
  const dir = tmp();
  const s = script(dir, 'lines.py', `${BURN}
def outer():
    hot(0.3)
    hot(0.3)
time.sleep(1.5)  # the sampler attaches while this sleeps, however loaded the machine
outer()
`);
  const full = join(dir, 'full.pylens');
  assert.equal(spawnSync(process.execPath, [MAIN, 'record', '--full-filenames', '-o', full, '--', py!.exe, s], { cwd: dir }).status, 0);
  const fn = join(dir, 'fn.pylens');
  assert.equal(spawnSync(process.execPath, [MAIN, 'record', '--function', '-o', fn, '--', py!.exe, s], { cwd: dir }).status, 0);
  const none = join(dir, 'none.pylens');
  assert.equal(spawnSync(process.execPath, [MAIN, 'record', '--nolineno', '-o', none, '--', py!.exe, s], { cwd: dir }).status, 0);
  const linesOf = (p: Profile, name: string) => {
    const set = new Set<number>();
    for (let f = 0; f < p.frames.length; f++) {
      const i = frameInfo(p, f);
      if (i.name === name) set.add(i.line);
    }
    return [...set].sort((a, b) => a - b);
  };
  const pFull = load(full);
  assert.ok(Array.from({ length: pFull.frames.length }, (_, f) => frameInfo(pFull, f).file).includes(s), 'absolute script path kept');
  // outer() (def at line 7) calls hot() from lines 8 and 9: both appear by line, one frame by function
  assert.deepEqual(linesOf(pFull, 'outer'), [8, 9]);
  assert.deepEqual(linesOf(load(fn), 'outer'), [7]);
  assert.deepEqual(linesOf(load(fn), 'hot'), [2]);
  assert.deepEqual(linesOf(load(none), 'outer'), [0]);
  assert.equal(load(fn).meta.extra?.lines, 'function');
});

test('record -t puts a thread root on every stack; threads stay apart', { skip }, () => {
  const dir = tmp();
  const s = script(dir, 'threads.py', `${BURN}
import threading
t = threading.Thread(target=hot, args=(0.8,), name="burner")
t.start()
hot(0.8)
t.join()
`);
  const out = join(dir, 't.folded');
  const r = spawnSync(process.execPath, [MAIN, 'record', '-t', '-o', out, '--', py!.exe, s], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  const roots = new Set(lines.map((l) => l.split(';')[0]!));
  assert.ok([...roots].every((root) => /^thread \d+( \(.+\))?$/.test(root)), [...roots].join(' | '));
  assert.equal(roots.size, 2, [...roots].join(' | '));
});

test('record -s follows a Python child and grandchild, each under its own process root', { skip }, () => {
  const dir = tmp();
  const grand = script(dir, 'grand.py', `${BURN}
def grandchild_work(): hot(1.0)
grandchild_work()
`);
  const child = script(dir, 'child.py', `${BURN}
import subprocess
def child_work(): hot(1.0)
p = subprocess.Popen([sys.executable, ${JSON.stringify(grand)}])
child_work()
p.wait()
`);
  const parent = script(dir, 'parent.py', `${BURN}
import subprocess
def parent_work(): hot(1.5)
parent_work()
subprocess.run([sys.executable, ${JSON.stringify(child)}])
`);
  const out = join(dir, 's.pylens');
  const r = spawnSync(process.execPath, [MAIN, 'record', '-s', '-o', out, '--', py!.exe, parent], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /3 processes/);
  const p = load(out);
  const stacks = foldedStacks(p, { lineno: false });
  const why = `${r.stderr}\n${stacks.map(([s, v]) => `${s} ${v}`).join('\n')}`;
  assert.equal(new Set(p.threads.pid).size, 3, why);
  const rootOf = (fn: string) => new Set(stacks.filter(([s]) => s.split(';').some((f) => f.split(' ')[0] === fn)).map(([s]) => s.split(';')[0]!));
  for (const [fn, file] of [['parent_work', parent], ['child_work', child], ['grandchild_work', grand]] as const) {
    const roots = rootOf(fn);
    assert.equal(roots.size, 1, `${fn}: ${[...roots].join(' | ')}\n${why}`);
    assert.match([...roots][0]!, new RegExp(`^process \\d+ \\(.*${file.split('/').pop()!.replace('.', '\\.')}\\)$`));
  }
});

test('record -s: multiprocessing workers that fork without exec are sampled from their first task on, not 0.3 s later', { skip }, () => {
  // each worker burns 0.25 s of CPU and ends: a worker attached only after 0.3 s (the wait
  // for an exec that a vfork'd child would do) gives none of it
  const dir = tmp();
  const prog = script(dir, 'pool.py', `import multiprocessing as mp, os, sys, time
def pool_task(_):
    end = time.thread_time() + 0.25
    x = 0
    while time.thread_time() < end:
        x += 1
    return os.getpid()
if __name__ == "__main__":
    mp.set_start_method(sys.argv[1])
    with mp.Pool(2) as p:
        print(sorted(set(p.map(pool_task, [0, 1], chunksize=1))))
`);
  for (const method of ['fork', 'forkserver']) {
    const out = join(dir, `${method}.pylens`);
    const r = spawnSync(process.execPath, [MAIN, 'record', '-s', '-r', '100', '-o', out, '--', py!.exe, prog, method], { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    const workers = JSON.parse(r.stdout.split('\n')[0]!) as number[];
    const p = load(out);
    const per = new Map<number, number>();
    for (const [stack, v] of foldedStacks(p, { lineno: false })) {
      if (!stack.split(';').some((f) => f.split(' ')[0] === 'pool_task')) continue;
      const pid = Number(/^process (\d+)/.exec(stack)?.[1]);
      per.set(pid, (per.get(pid) ?? 0) + v);
    }
    const why = `${method}: ${JSON.stringify([...per])} for workers ${workers.join(', ')}\n${r.stderr}`;
    // 25 samples each at 100 Hz; at least half, each
    for (const w of workers) assert.ok((per.get(w) ?? 0) >= 12, why);
  }
});

test('record -s: a forked child that later execs the same program with the same arguments (a reloader) is followed into the new program', { skip }, () => {
  const dir = tmp();
  const prog = script(dir, 'reload.py', `import os, sys, time
def burn(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
def before_exec(): burn(0.3)
def after_exec(): burn(0.5)
if os.environ.get("RELOADED"):
    after_exec()
    sys.exit(0)
pid = os.fork()
if pid == 0:
    before_exec()
    os.environ["RELOADED"] = "1"
    os.execv(sys.executable, [sys.executable] + sys.argv)
os.waitpid(pid, 0)
`);
  const out = join(dir, 'reload.pylens');
  const r = spawnSync(process.execPath, [MAIN, 'record', '-s', '-r', '100', '-o', out, '--', py!.exe, prog], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  const p = load(out);
  const stacks = foldedStacks(p, { lineno: false });
  const of = (fn: string) => stacks.filter(([st]) => st.split(';').some((f) => f.split(' ')[0] === fn)).reduce((a, [, v]) => a + v, 0);
  const why = `${r.stderr}\n${stacks.map(([st, v]) => `${st} ${v}`).join('\n')}`;
  // 30 and 50 samples at 100 Hz; at least half of each
  assert.ok(of('before_exec') >= 15, why);
  assert.ok(of('after_exec') >= 25, why);
  // the ticks between the exec and the re-attach read the old program's layout: that is the
  // exec, not a sampling error (10 counted on a loaded machine before ticks checked for it)
  assert.equal(p.meta.errorCount, 0, why);
});

test('sameMemory (kcmp): a process shares its own memory, not a forked child\'s; a dead PID is an error', { skip: !syscalls() && 'no koffi here' }, async () => {
  const sys = syscalls()!;
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)'], { stdio: 'ignore' });
  try {
    await new Promise((r) => child.once('spawn', r));
    assert.equal(sys.sameMemory(process.pid, process.pid), 1);
    assert.equal(sys.sameMemory(process.pid, child.pid!), 0);
    assert.equal(sys.sameMemory(child.pid!, process.pid), 0);
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise((r) => child.once('exit', r));
  assert.equal(sys.sameMemory(process.pid, child.pid!), -3); // ESRCH
});

test('record -s through a shell: the Python programs it runs are sampled, each under its process root; the shell’s exit code is kept', { skip }, () => {
  const dir = tmp();
  const a = script(dir, 'first.py', `${BURN}
def first_work(): hot(0.8)
first_work()
`);
  const b = script(dir, 'second.py', `${BURN}
def second_work(): hot(0.8)
second_work()
`);
  const out = join(dir, 'sh.pylens');
  const r = spawnSync(process.execPath, [MAIN, 'record', '-s', '-o', out, '--', 'sh', '-c', `${py!.exe} ${a} && ${py!.exe} ${b}; exit 5`], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 5, r.stderr);
  assert.match(r.stderr, /2 processes/);
  const p = load(out);
  const stacks = foldedStacks(p, { lineno: false });
  for (const [fn, file] of [['first_work', 'first.py'], ['second_work', 'second.py']] as const) {
    const roots = new Set(stacks.filter(([st]) => st.split(';').some((f) => f.split(' ')[0] === fn)).map(([st]) => st.split(';')[0]!));
    assert.equal(roots.size, 1, `${fn}: ${[...roots].join(' | ')}`);
    assert.match([...roots][0]!, new RegExp(`^process \\d+ \\(.*${file.replace('.', '\\.')}\\)$`));
  }
  const none = spawnSync(process.execPath, [MAIN, 'record', '-s', '-o', join(dir, 'none.pylens'), '--', 'sh', '-c', 'sleep 0.3'], { encoding: 'utf8', cwd: dir });
  assert.equal(none.status, 0);
  assert.match(none.stderr, /no Python process ran under sh; the profile is empty/);
});

test('record forwards SIGTERM to the target and writes the profile; the exit code is the target’s', { skip }, async () => {
  const dir = tmp();
  const s = script(dir, 'term.py', `${BURN}
import signal
def on_term(sig, frame):
    print("target: got SIGTERM", flush=True)
    sys.exit(7)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    hot(0.05)
`);
  const out = join(dir, 'term.pylens');
  const rec = spawn(process.execPath, [MAIN, 'record', '-o', out, '--', py!.exe, s], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  let stdout = '';
  rec.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  let stderr = '';
  rec.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve) => {
    const check = () => (stdout.includes('ready') ? resolve() : setTimeout(check, 20));
    check();
  });
  await new Promise((r) => setTimeout(r, 700));
  rec.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => rec.once('exit', r));
  assert.match(stdout, /target: got SIGTERM/);
  assert.equal(code, 7, stderr);
  const p = load(out);
  assert.ok(p.samples.length > 20, `${p.samples.length} samples`);
});

test('record -d stops sampling a target that would run forever, interrupts it and writes the profile', { skip }, () => {
  const dir = tmp();
  const s = script(dir, 'forever.py', `${BURN}
while True:
    hot(0.1)
`);
  const out = join(dir, 'forever.pylens');
  const t0 = Date.now();
  // wall-clock mode (-i): a sample a tick, whether or not a loaded machine lets the target run
  const r = spawnSync(process.execPath, [MAIN, 'record', '-i', '-d', '1', '-o', out, '--', py!.exe, s], { encoding: 'utf8', cwd: dir, timeout: 30_000 });
  assert.ok(Date.now() - t0 < 15_000);
  // KeyboardInterrupt from our SIGINT: Python exits by the signal (128 + 2) or with 1
  assert.ok(r.status === 130 || r.status === 1, `status ${r.status}: ${r.stderr}`);
  const p = load(out);
  assert.ok(p.samples.length >= 60 && p.samples.length <= 130, `${p.samples.length} samples`);
});

test('record -- errors: no such program (1), a program that is not Python (its exit code, says so), -p with -- (2)', () => {
  const missing = spawnSync(process.execPath, [MAIN, 'record', '--', '/no/such/program-xyz'], { encoding: 'utf8' });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cannot run "\/no\/such\/program-xyz"/);
  const notPy = spawnSync(process.execPath, [MAIN, 'record', '-o', join(tmp(), 'x.pylens'), '--', 'sh', '-c', 'exit 4'], { encoding: 'utf8' });
  assert.equal(notPy.status, 4);
  assert.match(notPy.stderr, /sh ended \(exit code 4\) before a Python interpreter could be sampled/);
  const both = spawnSync(process.execPath, [MAIN, 'record', '-p', '1', '--', 'python3'], { encoding: 'utf8' });
  assert.equal(both.status, 2);
  assert.match(both.stderr, /either -p PID or a command/);
  const conflicting = spawnSync(process.execPath, [MAIN, 'record', '--function', '--nolineno', '--', 'python3'], { encoding: 'utf8' });
  assert.equal(conflicting.status, 2);
});

test('progress line and filename shortening', () => {
  assert.equal(progressLine({ elapsedNs: 12.34e9, ticks: 1234, samples: 2468, errors: 1, threads: 2, processes: 1 }, false), 'pylens record: 12.3 s, 2,468 samples, 100.0 Hz, 1 error, 2 threads');
  assert.equal(progressLine({ elapsedNs: 2e9, ticks: 200, samples: 200, errors: 0, threads: 1, processes: 3 }, true), 'pylens record: 2.0 s, 200 samples, 100.0 Hz, 0 errors, 1 thread, 3 processes');
  assert.equal(shortenFilename('/usr/lib/python3/dist-packages/requests/api.py'), 'requests/api.py');
  assert.equal(shortenFilename('/venv/lib/python3.12/site-packages/flask/app.py', '/srv'), 'flask/app.py');
  assert.equal(shortenFilename('/root/.pyenv/versions/3.12.1/lib/python3.12/threading.py'), 'threading.py');
  assert.equal(shortenFilename('/srv/app/main.py', '/srv'), 'app/main.py');
  assert.equal(shortenFilename('/srv/app/main.py', '/'), '/srv/app/main.py');
  assert.equal(shortenFilename('<frozen importlib._bootstrap>', '/srv'), '<frozen importlib._bootstrap>');
});

test('descendants lists children and grandchildren from /proc', async () => {
  const sh = spawn('sh', ['-c', 'sleep 5 & sh -c "sleep 5" & wait'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const d = descendants(sh.pid!);
    assert.ok(d.length >= 3, `descendants ${d.join(',')}`);
    const comms = d.map((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
    assert.ok(comms.filter((c) => c === 'sleep').length === 2, comms.join(','));
  } finally {
    spawnSync('pkill', ['-P', String(sh.pid)]);
    sh.kill('SIGKILL');
  }
});
