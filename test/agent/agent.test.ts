/**
 * The agent's sampling side on real CPython processes: which processes are targets (a
 * command-line match, given PIDs and their Python children, cgroup labels), windows aligned
 * to the wall clock per process as pprof that `go tool pprof` reads, a process started during
 * the run picked up and one that exits dropped after its last window, an unsupported CPython
 * reported once, and the local store as a destination.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, serviceName } from '../../src/agent/agent.ts';
import { StoreDestination } from '../../src/agent/store-destination.ts';
import { cgroupLabels, TargetFinder } from '../../src/agent/targets.ts';
import type { AgentWindow } from '../../src/agent/window.ts';
import { ProfileStore } from '../../src/store/store.ts';
import { firstLine, installedPythons, pyenvRoot } from '../sampler/pythons.ts';

const py = installedPythons().find((p) => p.minor === 12) ?? installedPythons().at(-1)!;
const hasGo = spawnSync('go', ['version']).status === 0;

/** a Python process with `tag` on its command line, spinning in `work_<tag>` (or sleeping) */
async function start(tag: string, o: { sleep?: boolean; exe?: string; children?: number; spawned?: number } = {}): Promise<ChildProcess> {
  const body = o.sleep ? 'time.sleep(0.01)' : 'sum(range(2000))';
  // forked children share the parent's command line; spawned ones (uvicorn's workers) run `python -c "from multiprocessing.spawn import …"`
  const kids = o.children
    ? `import multiprocessing as mp\nps = [mp.Process(target=work_${tag}) for _ in range(${o.children})]\n[p.start() for p in ps]\n`
    : o.spawned
      ? `import multiprocessing as mp\nctx = mp.get_context("spawn")\nps = [ctx.Process(target=time.sleep, args=(60,)) for _ in range(${o.spawned})]\n[p.start() for p in ps]\n`
      : '';
  const code = `import time, sys\ndef work_${tag}():\n    while True:\n        ${body}\n${kids}print("ready", flush=True)\nwork_${tag}()\n`;
  const c = spawn(o.exe ?? py.exe, ['-c', code, `pylens-agent-test-${tag}`], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  await firstLine(c, tag);
  return c;
}

/** kill each process and its group (multiprocessing children share the group) */
function kill(...cs: Array<ChildProcess | undefined>): void {
  for (const c of cs) {
    if (!c || c.pid === undefined) continue;
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      if (c.exitCode === null) c.kill('SIGKILL');
    }
  }
}

test('cgroup labels: systemd unit, docker / containerd container id, Kubernetes pod uid', () => {
  assert.deepEqual(cgroupLabels('0::/system.slice/orders.service\n'), { cgroup: '/system.slice/orders.service', systemd_unit: 'orders.service' });
  const id = 'a'.repeat(64);
  assert.equal(cgroupLabels(`0::/system.slice/docker-${id}.scope\n`).container_id, id);
  const k8s = cgroupLabels(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_aaaa_bbbb_cccc_0123456789ab.slice/cri-containerd-${id}.scope\n`);
  assert.equal(k8s.pod_uid, '1b2c3d4e-aaaa-bbbb-cccc-0123456789ab');
  assert.equal(k8s.container_id, id);
  assert.deepEqual(cgroupLabels('0::/\n'), {});
  assert.deepEqual(cgroupLabels(undefined), {});
});

test('service names: a script, -m, a console script, -c', () => {
  assert.equal(serviceName(['/usr/bin/python3', '-u', 'app/server.py', '--port', '1'], '/usr/bin/python3.11'), 'server');
  assert.equal(serviceName(['python3', '-X', 'dev', '-m', 'uvicorn', 'app:app'], '/usr/bin/python3.11'), 'uvicorn');
  assert.equal(serviceName(['/srv/venv/bin/gunicorn', 'app:app'], '/usr/bin/python3.11'), 'gunicorn');
  assert.equal(serviceName(['python3', '-c', 'print(1)'], '/usr/bin/python3.11'), 'python3.11');
});

test('targets: a command-line match finds only Python processes that match, and their Python children; a given PID brings its Python children', { timeout: 60_000 }, async () => {
  const a = await start('alpha', { sleep: true });
  const b = await start('beta', { sleep: true });
  const parent = await start('gamma', { sleep: true, children: 2 });
  const master = await start('delta', { sleep: true, spawned: 2 });
  const sh = spawn('sh', ['-c', 'sleep 30 # pylens-agent-test-alpha'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const m = new TargetFinder({ match: /pylens-agent-test-alpha/ }).scan();
    assert.deepEqual([...m.keys()], [a.pid], 'the shell with the same words is not Python');
    // a uvicorn-like master: its spawned workers do not match by their own command line
    const d = new TargetFinder({ match: /pylens-agent-test-delta/ }).scan();
    const children = [...d.values()].filter((f) => f.why === `child of ${master.pid}`);
    const workers = children.filter((f) => f.cmdline.join(' ').includes('spawn_main'));
    // (and the spawn context's resource tracker, a Python child too)
    assert.equal(workers.length, 2, `the master's 2 spawned workers: ${[...d.values()].map((f) => `${f.pid} ${f.why} ${f.cmdline.join(' ').slice(0, 60)}`).join(', ')}`);
    assert.ok(d.has(master.pid!));
    for (const w of children) {
      assert.match(w.cmdline.join(' '), /multiprocessing/);
      assert.match(w.rootCmdline!.join(' '), /pylens-agent-test-delta/, 'named by the master');
    }
    const p = new TargetFinder({ pids: [parent.pid!] }).scan();
    assert.equal(p.size, 3, `the parent and its 2 multiprocessing children: ${[...p.values()].map((f) => `${f.pid} ${f.why}`).join(', ')}`);
    assert.ok([...p.values()].filter((f) => f.why === `child of ${parent.pid}`).length === 2);
    const alone = new TargetFinder({ pids: [parent.pid!], children: false }).scan();
    assert.deepEqual([...alone.keys()], [parent.pid]);
    const all = new TargetFinder({ allPython: true }).scan();
    for (const c of [a, b, parent]) assert.ok(all.has(c.pid!), `all-python misses ${c.pid}`);
    assert.ok(!all.has(sh.pid!));
  } finally {
    kill(a, b, parent, master, sh);
  }
});

test('agent: windows aligned to the wall clock per process, pprof go tool pprof reads, a new process picked up, an exited one dropped, an unsupported CPython said once; the local store takes the windows', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-agent-'));
  const a = await start('one');
  let b: ChildProcess | undefined;
  let late: ChildProcess | undefined;
  const oldExe = `${pyenvRoot()}/versions/3.7.16/bin/python3.7`;
  let old: ChildProcess | undefined;
  try {
    b = await start('two', { sleep: true });
    old = await start('old', { sleep: true, exe: oldExe }).catch(() => undefined);
    const windows: AgentWindow[] = [];
    const logs: string[] = [];
    const ac = new AbortController();
    const agent = new Agent({ targets: { match: /pylens-agent-test-(one|two|three|old)/ }, rateHz: 50, mode: 'wall', windowS: 1, scanS: 0.3, labels: { env: 'test' }, signal: ac.signal, onWindow: (w) => windows.push(w), log: (l) => logs.push(l) });
    const run = agent.run();
    await new Promise((r) => setTimeout(r, 1500));
    late = await start('three');
    await new Promise((r) => setTimeout(r, 1200));
    kill(b);
    const killedAt = Date.now();
    await new Promise((r) => setTimeout(r, 3500));
    ac.abort();
    await run;
    const by = (pid: number | undefined) => windows.filter((w) => w.labels.pid === String(pid));
    assert.ok(by(a.pid).length >= 4, `one: ${by(a.pid).length} windows`);
    // after the first, every window starts on a whole second and ends where the next begins
    const wa = by(a.pid);
    for (let i = 1; i < wa.length; i++) {
      assert.equal(wa[i]!.fromMs % 1000, 0, 'aligned to the wall clock');
      assert.equal(wa[i]!.fromMs, wa[i - 1]!.untilMs, 'no gap between windows');
    }
    assert.ok(by(late?.pid).length >= 2, 'a process started during the run is picked up');
    const wb = by(b.pid);
    assert.ok(wb.length >= 1, 'the process that exits had windows');
    // an idle process is looked at in full at least every second (skipStill): its exit is seen
    // within ~1 s, its last window cut at the next boundary, and nothing after that
    assert.ok(wb.at(-1)!.untilMs <= killedAt + 3000, `and none after it exited: the last ends ${wb.at(-1)!.untilMs - killedAt} ms after the kill`);
    assert.ok(agent.stats.exited >= 1);
    assert.ok(logs.some((l) => new RegExp(`PID ${b!.pid} exited`).test(l)));
    if (old) {
      assert.equal(by(old.pid).length, 0);
      assert.match(agent.stats.unreadable.get(old.pid!) ?? '', /3\.7/);
      assert.equal(logs.filter((l) => l.includes(`PID ${old!.pid}`)).length, 1, 'said once');
    }
    // labels
    const w = wa[1]!;
    assert.match(w.labels.service_name!, /^python3\.\d+$/, 'python -c: the interpreter names the service');
    assert.equal(w.labels.env, 'test');
    assert.equal(w.labels.python.split('.').slice(0, 2).join('.'), `3.${py.minor}`);
    assert.ok(w.labels.host);
    assert.equal(w.type, 'wall');
    assert.ok(w.quality.samples > 20, `${w.quality.samples} samples in a 1 s window at 50 Hz`);
    // the pprof as go tool pprof reads it
    if (hasGo) {
      const f = join(dir, 'w.pb.gz');
      writeFileSync(f, w.pprof);
      const r = spawnSync('go', ['tool', 'pprof', '-raw', f], { encoding: 'utf8', env: { ...process.env, HOME: dir } });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /samples\/count(\[dflt\])? wall\/nanoseconds/);
      assert.match(r.stdout, /work_one/);
    }
    // the local store takes them
    const store = new StoreDestination(join(dir, 'p.db'));
    for (const x of windows) await store.send(x);
    store.close();
    const s = ProfileStore.open(join(dir, 'p.db'));
    try {
      const { total, rows } = s.list({ where: [`pid=${a.pid}`], limit: 100 });
      assert.equal(total, wa.length);
      assert.equal(rows[0]!.labels.env, 'test');
    } finally {
      s.close();
    }
  } finally {
    kill(a, b, late, old);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agent: a target that execs in place (same PID and start time, the same program again) gets its window ended and the new program attached, never read with the old layout', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-agent-exec-'));
  const prog = join(dir, 'pylens-agent-test-reexec.py');
  writeFileSync(prog, [
    'import os, sys, time',
    'def before_exec_work():',
    '    end = time.time() + 1.5',
    '    while time.time() < end:',
    '        sum(range(2000))',
    'def after_exec_work():',
    '    while True:',
    '        sum(range(2000))',
    'if os.environ.get("REEXECED"):',
    '    after_exec_work()',
    'print("ready", flush=True)',
    'before_exec_work()',
    'os.environ["REEXECED"] = "1"',
    'os.execv(sys.executable, [sys.executable] + sys.argv)',
  ].join('\n'));
  const c = spawn(py.exe, [prog], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  try {
    await firstLine(c, 'reexec');
    const windows: AgentWindow[] = [];
    const logs: string[] = [];
    const ac = new AbortController();
    const agent = new Agent({ targets: { match: /pylens-agent-test-reexec/ }, rateHz: 50, mode: 'cpu', windowS: 1, scanS: 0.3, signal: ac.signal, onWindow: (w) => windows.push(w), log: (l) => logs.push(l) });
    const run = agent.run();
    await new Promise((r) => setTimeout(r, 5000));
    ac.abort();
    await run;
    const has = (w: AgentWindow, fn: string) => gunzipSync(w.pprof).toString('latin1').includes(fn);
    const why = `${logs.join('\n')}\n${windows.map((w) => `${w.fromMs} before=${has(w, 'before_exec_work')} after=${has(w, 'after_exec_work')} ${JSON.stringify(w.quality)}`).join('\n')}`;
    assert.ok(windows.some((w) => has(w, 'before_exec_work')), why);
    assert.ok(windows.some((w) => has(w, 'after_exec_work')), `the new program is sampled\n${why}`);
    assert.ok(!windows.some((w) => has(w, 'before_exec_work') && has(w, 'after_exec_work')), `one window, one program\n${why}`);
    assert.ok(logs.some((l) => l.includes(`PID ${c.pid} exec'd`)), why);
  } finally {
    kill(c);
    rmSync(dir, { recursive: true, force: true });
  }
});
