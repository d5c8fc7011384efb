/**
 * Containers, for real: pylens against a CPython in another PID and mount namespace, both
 * ways users do it, with real processes and no Docker daemon. The "container" is
 * `unshare --pid --mount --fork --mount-proc`; inside it a tmpfs over DIR/ctr holds the
 * program (scripts/container_app.py) and a bind mount of a pyenv CPython, and the original
 * pyenv directory is hidden under another tmpfs: the interpreter, its libpython and the
 * program's files exist only in the container's mounts, and the target is PID 1 there.
 *
 * (a) From the host: `record -p HOST_PID` and `dump -p HOST_PID` (the child of unshare).
 *     pylens must read libpython through /proc/PID/root, not the path in maps — on 3.12 the
 *     host has a different libpython under that very path (a decoy) — and turn the
 *     target's own TIDs (1, 7, …) into the host's.
 * (b) The debug-pod / sidecar way: `nsenter -t HOST_PID -p -m pylens …` and the PID inside
 *     (1): `dump -p 1`, `record -p 1`, `record -- python …` launched inside; and a host PID
 *     asked for from inside is "not visible from this PID namespace", with the fix.
 * (c) What `docker run --pid=container:APP --cap-add SYS_PTRACE`, `kubectl debug --target` and
 *     a shareProcessNamespace sidecar give: the target's PID namespace but pylens's own
 *     mounts (/proc/1/root is the way to its files), as root with CAP_SYS_PTRACE alone
 *     (capabilities drop ALL, add SYS_PTRACE), the app running as another user (nobody).
 * Checked each time: whole stacks (root `<module>` / `Thread._bootstrap` to the leaf), the
 * container's file paths, thread names, OS TIDs of pylens's own namespace, known states.
 * Each test keeps a CPU busy for seconds: under the 'timing' lock, away from the tests that
 * compare sampled CPU time with the workload's own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { exclusive } from '../helpers/exclusive.ts';
import { firstLine, installedPythons, type InstalledPython } from '../sampler/pythons.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { frameInfo, sampleState, stackFrames, type Profile } from '../../src/model/profile.ts';
import type { DumpResult } from '../../src/capture/sampler/dump.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const APP = join(ROOT, 'test', 'launch', 'scripts', 'container_app.py');
/** pyenv's shared builds: the runtime is in libpython, which the container must hide */
const shared = installedPythons().filter((p) => p.label.startsWith('pyenv') && p.lib);

function canUnshare(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (unshare, mount, nsenter)';
  for (const tool of ['unshare', 'nsenter']) if (spawnSync(tool, ['--version']).status !== 0) return `${tool} is not installed`;
  const r = spawnSync('unshare', ['--pid', '--mount', '--fork', '--mount-proc', 'true'], { encoding: 'utf8' });
  return r.status === 0 ? false : `unshare --pid --mount does not work here: ${r.stderr.trim()}`;
}
const noNs = canUnshare();

interface Container {
  dir: string;
  py: InstalledPython;
  /** the prefix the target's interpreter has inside the container (only there) */
  prefix: string;
  /** the python executable inside the container */
  exe: string;
  /** the program inside the container */
  app: string;
  /** the target's PID on the host (the unshare's child); 1 inside */
  hostPid: number;
  unshare: ChildProcess;
}

/** the version directory of a pyenv python: …/versions/3.X.Y */
const versionDir = (py: InstalledPython) => dirname(dirname(py.exe));
const libName = (py: InstalledPython) => py.lib!.slice(py.lib!.lastIndexOf('/') + 1);

/**
 * Start container_app.py as PID 1 of a new PID and mount namespace, from files only its
 * mounts have. `decoy`: the host gets another CPython's libpython (and executable) under the
 * paths the container's maps will show. `uid`: the program runs as that user.
 */
async function startContainer(py: InstalledPython, opts: { decoy?: InstalledPython; seconds?: number; uid?: number } = {}): Promise<Container> {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-ns-test-'));
  if (opts.uid !== undefined) chmodSync(dir, 0o755); // the program's user passes through it
  const ctr = join(dir, 'ctr');
  const prefix = join(ctr, 'py');
  const exe = join(prefix, 'bin', `python3.${py.minor}`);
  const app = join(ctr, 'app', 'app.py');
  mkdirSync(ctr);
  if (opts.decoy) {
    mkdirSync(join(prefix, 'lib'), { recursive: true });
    mkdirSync(join(prefix, 'bin'));
    symlinkSync(opts.decoy.lib!, join(prefix, 'lib', libName(py)));
    symlinkSync(opts.decoy.exe, exe);
  }
  const inside = join(dir, 'inside.sh');
  writeFileSync(
    inside,
    [
      'set -e',
      `mount -t tmpfs ctr ${ctr}`,
      `mkdir ${prefix} ${join(ctr, 'app')}`,
      `mount --bind ${versionDir(py)} ${prefix}`,
      `cp ${APP} ${app}`,
      // the host's copy of this CPython is not there in the container
      `mount -t tmpfs hidden ${versionDir(py)}`,
      `export LD_LIBRARY_PATH=${join(prefix, 'lib')} PYTHONHOME=${prefix}`,
      `exec ${opts.uid !== undefined ? `setpriv --reuid=${opts.uid} --regid=${opts.uid} --clear-groups ` : ''}${exe} ${app}${opts.seconds !== undefined ? ` ${opts.seconds}` : ''}`,
    ].join('\n') + '\n',
  );
  const unshare = spawn('unshare', ['--pid', '--mount', '--fork', '--mount-proc', 'sh', inside], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await firstLine(unshare, `container_app.py on ${py.label} in its namespaces`);
    assert.equal(line, 'ready 1', 'the target is PID 1 of its namespace');
    const children = readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    assert.equal(children.length, 1, `unshare has one child: ${children}`);
    const hostPid = children[0]!;
    const nspid = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${hostPid}/status`, 'utf8'))![1]!.trim().split(/\s+/).map(Number);
    assert.deepEqual(nspid, [hostPid, 1], 'host PID, then 1 in its own namespace');
    assert.ok(!existsSync(app), `${app} exists only inside the container`);
    return { dir, py, prefix, exe, app, hostPid, unshare };
  } catch (e) {
    stopContainer({ dir, unshare, hostPid: 0 } as Container);
    throw e;
  }
}

function stopContainer(c: Container): void {
  // PID 1 of a namespace ignores SIGTERM it has no handler for, even from the host
  if (c.hostPid > 0) {
    try {
      process.kill(c.hostPid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  if (c.unshare.exitCode === null) c.unshare.kill('SIGKILL');
  rmSync(c.dir, { recursive: true, force: true });
}

/** pylens on the host */
function pylens(args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000, cwd: tmpdir() });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** pylens in the target's PID and mount namespaces (a debug container, a sidecar) */
function pylensInside(c: Container, args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync('nsenter', ['-t', String(c.hostPid), '-p', '-m', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, MAIN, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/**
 * pylens in the target's PID namespace but a mount namespace of its own, as root with no
 * capability but CAP_SYS_PTRACE: `docker run --pid=container:APP --cap-add SYS_PTRACE` with
 * the rest dropped, or a Kubernetes container beside the app under shareProcessNamespace
 */
function pylensSharedPids(c: Container, args: string[]) {
  const r = spawnSync(
    'nsenter',
    ['-t', String(c.hostPid), '-p', '--', 'unshare', '--mount', '--mount-proc', 'setpriv', '--bounding-set=-all,+sys_ptrace', '--inh-caps=-all', process.execPath, MAIN, ...args],
    { encoding: 'utf8', timeout: 120_000 },
  );
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const hostTids = (pid: number) => readdirSync(`/proc/${pid}/task`).map(Number);

/** root first: the Python frames' names of sample i */
function pyNames(p: Profile, i: number): string[] {
  return stackFrames(p, p.samples.stack[i]!)
    .map((f) => frameInfo(p, f))
    .filter((f) => f.kind === 'python')
    .map((f) => f.name);
}

/** the last dotted part: 3.11+ names methods by qualname (Thread.run), before by name (run) */
const short = (n: string) => n.slice(n.lastIndexOf('.') + 1);

/**
 * Every sample has a whole stack of one of the two threads, with the container's file
 * paths; the threads are the OS threads of pylens's namespace (`tids`, when given), by name; no state
 * is unknown, the sleeper is idle nearly always. `launched`: recorded from the first line, so
 * the main thread's imports come first.
 */
function checkProfile(p: Profile, app: string, tids: number[] | undefined, what: string, launched = false): void {
  assert.ok(p.samples.length >= 20, `${what}: ${p.samples.length} samples`);
  const byThread = new Map<string, { n: number; idle: number; unknown: number; spin: number }>();
  let startup = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const t = p.samples.thread[i]!;
    const name = p.threads.name[t]! >= 0 ? p.strings[p.threads.name[t]!]! : '?';
    if (tids) assert.ok(tids.includes(p.threads.tid[t]!), `${what}: thread ${name} has TID ${p.threads.tid[t]}, one of this namespace's ${tids}`);
    const names = pyNames(p, i).map(short);
    const state = sampleState(p, i);
    if (name === 'MainThread' && launched && names[1] !== 'middle_layer') {
      startup++; // recorded from the first line: the imports before middle_layer
    } else if (name === 'MainThread') {
      assert.deepEqual(names.slice(0, 2), ['<module>', 'middle_layer'], `${what}: whole main-thread stack ${names}`);
      assert.ok(names.length === 2 || (names.length === 3 && names[2] === 'leaf_spin'), `${what}: main-thread leaf ${names}`);
    } else {
      assert.equal(name, 'sleepy', `${what}: thread name`);
      assert.equal(names[0], '_bootstrap', `${what}: the sleeper's stack reaches Thread._bootstrap: ${names}`);
      assert.deepEqual(names.slice(-2), ['sleeper_outer', 'sleeper_leaf'], `${what}: sleeper's leaf ${names}`);
    }
    const s = byThread.get(name) ?? { n: 0, idle: 0, unknown: 0, spin: 0 };
    s.n++;
    if (state === 'idle') s.idle++;
    if (state === 'unknown') s.unknown++;
    if (names.at(-1) === 'leaf_spin') s.spin++;
    byThread.set(name, s);
  }
  for (let f = 0; f < p.frames.length; f++) {
    const fi = frameInfo(p, f);
    if (['leaf_spin', 'middle_layer', 'sleeper_leaf', 'sleeper_outer'].includes(fi.name)) assert.equal(fi.file, app, `${what}: ${fi.name}'s file is the container's path`);
  }
  const main = byThread.get('MainThread');
  const sleepy = byThread.get('sleepy');
  assert.ok(main && sleepy, `${what}: both threads sampled: ${[...byThread.keys()]}`);
  for (const [name, s] of byThread) assert.equal(s.unknown, 0, `${what}: ${name}: ${s.unknown} of ${s.n} samples in state unknown (TIDs not matched to /proc)`);
  assert.ok(main.spin >= (main.n - startup) / 2, `${what}: main thread in leaf_spin in ${main.spin} of ${main.n - startup}`);
  assert.ok(startup <= main.n / 2, `${what}: ${startup} of ${main.n} main-thread samples before middle_layer`);
  assert.ok(sleepy.idle >= 0.8 * sleepy.n, `${what}: sleeper idle in ${sleepy.idle} of ${sleepy.n}`);
}

/** dump --json: both threads, whole stacks, the container's paths, TIDs of this namespace, states known */
function checkDump(d: DumpResult, app: string, pid: number, tids: number[], what: string): void {
  assert.equal(d.pid, pid);
  assert.equal(d.threads.length, 2, `${what}: ${JSON.stringify(d.threads.map((t) => t.name))}`);
  for (const t of d.threads) {
    assert.ok(t.tidIsOs && tids.includes(t.tid), `${what}: ${t.name} TID ${t.tid} (OS: ${t.tidIsOs}) is one of ${tids}`);
    assert.notEqual(t.state, 'unknown', `${what}: ${t.name}'s state`);
    const names = t.frames.map((f) => short(f.name)).reverse();
    if (t.name === 'MainThread') {
      assert.equal(t.tid, pid);
      assert.deepEqual(names.slice(0, 2), ['<module>', 'middle_layer'], `${what}: ${names}`);
    } else {
      assert.equal(t.name, 'sleepy');
      assert.equal(names[0], '_bootstrap', `${what}: ${names}`);
      assert.deepEqual(names.slice(-2), ['sleeper_outer', 'sleeper_leaf'], `${what}: ${names}`);
    }
    for (const f of t.frames) if (!f.file.includes('threading')) assert.equal(f.file, app, `${what}: ${f.name}'s file`);
  }
}

// ---- (a) from the host --------------------------------------------------------------------

for (const minor of [9, 12, 13]) {
  const py = shared.find((p) => p.minor === minor);
  const decoy = minor === 12 ? shared.find((p) => p.minor !== minor && p.minor >= 8) : undefined;
  const name =
    `from the host: dump -p and record -p HOST_PID of CPython 3.${minor} in its own PID and mount namespace, ` +
    (decoy ? `libpython only there and the host's file under its path another CPython (${decoy.label})` : 'interpreter and program only there');
  test(name, { skip: noNs || (!py && `no pyenv shared CPython 3.${minor}`), timeout: 120_000 }, () =>
    exclusive('timing', async () => {
      const c = await startContainer(py!, decoy ? { decoy } : {});
      try {
        const d = pylens(['dump', '-p', String(c.hostPid), '--json']);
        assert.equal(d.code, 0, d.err);
        const dump = JSON.parse(d.out) as DumpResult;
        assert.equal(dump.python.library, join(c.prefix, 'lib', libName(py!)), 'the library as the container names it');
        assert.match(dump.python.version, new RegExp(`^3\\.${minor}\\.`));
        checkDump(dump, c.app, c.hostPid, hostTids(c.hostPid), 'dump');

        const out = join(c.dir, 'host.pylens');
        const r = pylens(['record', '-p', String(c.hostPid), '-d', '2', '--idle', '-o', out]);
        assert.equal(r.code, 0, r.err);
        const p = decodePylens(readFileSync(out));
        assert.equal(p.meta.pid, c.hostPid);
        checkProfile(p, c.app, hostTids(c.hostPid), `record -p ${c.hostPid} (3.${minor})`);
      } finally {
        stopContainer(c);
      }
    }));
}

// ---- (b) inside the target's namespaces ---------------------------------------------------

const inPy = shared.find((p) => p.minor === 12) ?? shared.at(-1);
test('debug pod / sidecar: nsenter -t PID -p -m, then dump -p 1, record -p 1, record -- python; a host PID is not visible', { skip: noNs || (!inPy && 'no pyenv shared CPython'), timeout: 180_000 }, () =>
  exclusive('timing', async () => {
    const c = await startContainer(inPy!);
    try {
      // the TIDs inside: as the target's namespace numbers them
      const tids = /^NSpid:.*\s(\d+)$/gm;
      const inside = readdirSync(`/proc/${c.hostPid}/task`).map((t) => Number([...readFileSync(`/proc/${c.hostPid}/task/${t}/status`, 'utf8').matchAll(tids)][0]![1]));
      assert.ok(inside.includes(1));

      const d = pylensInside(c, ['dump', '-p', '1', '--json']);
      assert.equal(d.code, 0, d.err);
      checkDump(JSON.parse(d.out) as DumpResult, c.app, 1, inside, 'dump -p 1 inside');

      const out = join(c.dir, 'inside.pylens'); // c.dir is the same directory on both sides (only ctr/ is the container's)
      const r = pylensInside(c, ['record', '-p', '1', '-d', '2', '--idle', '-o', out]);
      assert.equal(r.code, 0, r.err);
      const p = decodePylens(readFileSync(out));
      assert.equal(p.meta.pid, 1);
      checkProfile(p, c.app, inside, 'record -p 1 inside');

      // pylens launching the program inside the container
      const launched = join(c.dir, 'launched.pylens');
      const l = pylensInside(c, ['record', '--idle', '-o', launched, '--', c.exe, c.app, '1.5'], { LD_LIBRARY_PATH: join(c.prefix, 'lib'), PYTHONHOME: c.prefix });
      assert.equal(l.code, 0, l.err);
      const lp = decodePylens(readFileSync(launched));
      const pid = lp.meta.pid!;
      // the program has exited; its PID and TIDs were the container's (small numbers next to the host's)
      assert.ok(pid > 1 && pid < c.hostPid, `the launched program's PID is the container's: ${pid}`);
      checkProfile(lp, c.app, undefined, 'record -- python inside', true);
      const mainTid = lp.threads.tid[lp.threads.name.findIndex((n) => n >= 0 && lp.strings[n] === 'MainThread')];
      assert.equal(mainTid, pid, 'the main thread is the OS thread of the PID');
      assert.ok(lp.threads.tid.every((t) => t >= pid && t < c.hostPid), `container TIDs: ${lp.threads.tid}`);

      // a host PID asked for from inside the container's PID namespace
      for (const cmd of [['dump', '-p', String(c.hostPid)], ['record', '-p', String(c.hostPid), '-d', '1', '-o', join(c.dir, 'x.pylens')]]) {
        const e = pylensInside(c, cmd);
        assert.equal(e.code, 1, `${cmd[0]}: ${e.err}`);
        assert.match(e.err, new RegExp(`process ${c.hostPid} is not visible from this PID namespace`), e.err);
        for (const fix of ['nsenter -t', '-p -m', '--pid=host', 'shareProcessNamespace: true']) assert.ok(e.err.includes(fix), `${cmd[0]}: the fix names ${fix}: ${e.err}`);
      }
    } finally {
      stopContainer(c);
    }
  }));

// ---- (c) a shared PID namespace only (docker --pid=container:APP, shareProcessNamespace) ---

const noSetpriv = spawnSync('setpriv', ['--version']).status !== 0 && 'setpriv is not installed';
test('shared PID namespace, own mounts, CAP_SYS_PTRACE alone, the app another user: dump -p 1 and record -p 1', { skip: noNs || noSetpriv || (!inPy && 'no pyenv shared CPython'), timeout: 120_000 }, () =>
  exclusive('timing', async () => {
    const c = await startContainer(inPy!, { uid: 65534 });
    try {
      assert.match(readFileSync(`/proc/${c.hostPid}/status`, 'utf8'), /^Uid:\s+65534\s/m);
      const inside = [1, ...readdirSync(`/proc/${c.hostPid}/task`).map((t) => Number(/^NSpid:.*\s(\d+)$/m.exec(readFileSync(`/proc/${c.hostPid}/task/${t}/status`, 'utf8'))![1]))];
      const d = pylensSharedPids(c, ['dump', '-p', '1', '--json']);
      assert.equal(d.code, 0, d.err);
      checkDump(JSON.parse(d.out) as DumpResult, c.app, 1, inside, 'dump -p 1, shared PIDs');
      const out = join(c.dir, 'shared.pylens');
      const r = pylensSharedPids(c, ['record', '-p', '1', '-d', '2', '--idle', '-o', out]);
      assert.equal(r.code, 0, r.err);
      checkProfile(decodePylens(readFileSync(out)), c.app, inside, 'record -p 1, shared PIDs');
    } finally {
      stopContainer(c);
    }
  }));
