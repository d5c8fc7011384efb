/**
 * `pylens diagnose`: the findings (src/analysis/findings.ts) on profiles of known shapes,
 * then the command on real programs — CPU-bound, lock-bound, sleep-bound, native-heavy —
 * with whatever this machine allows (eBPF, perf).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, findings, type Finding } from '../../src/analysis/findings.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import type { SampleState } from '../../src/model/profile.ts';
import { importProfile } from '../../src/formats/index.ts';
import { InputFile } from '../../src/formats/types.ts';
import { ROOT } from '../helpers/format-checks.ts';
import { exclusive } from '../helpers/exclusive.ts';
import { installedPythons } from '../sampler/pythons.ts';

function shaped(parts: Array<{ path: string[]; n: number; state: SampleState; marker?: string; file?: string; pid?: number }>) {
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'test', mode: 'wall', durationNs: 10e9, overhead: { fraction: 0.01, method: 'test' }, environment: { kernel: '6.1', os: 'Linux', python: { version: '3.12.1', implementation: 'CPython' } } }, unitValues: true });
  for (const part of parts) {
    const th = b.thread(part.pid ?? 1, part.pid ?? 1);
    let s = -1;
    for (const name of part.path) s = b.stack(s, b.frame({ kind: 'python', name, qualname: name, file: part.file && name === part.path.at(-1) ? part.file : `/srv/app/${name}.py`, line: 7 }));
    if (part.marker) s = b.stack(s, b.frame({ kind: 'marker', name: part.marker }));
    for (let i = 0; i < part.n; i++) b.sample(s, 1, th, part.state, i * 1e7);
  }
  return b.build();
}

const kinds = (f: Finding[]) => f.map((x) => x.kind);

test('a CPU hotspot under its wide bottom; nothing about waiting when threads do not wait', () => {
  const p = shaped([
    { path: ['main', 'handle', 'parse_json'], n: 500, state: 'on-cpu' },
    { path: ['main', 'handle', 'render'], n: 200, state: 'on-cpu' },
    { path: ['main', 'handle', 'log'], n: 150, state: 'on-cpu' },
    { path: ['main', 'handle', 'auth'], n: 100, state: 'on-cpu' },
    { path: ['main', 'idle'], n: 50, state: 'idle' },
  ]);
  const f = findings({ main: p, target: '-p 1' });
  assert.deepEqual(kinds(f), ['cpu-hotspot', 'cpu-hotspot', 'cpu-hotspot']);
  assert.equal(f[0]!.function, 'parse_json');
  assert.match(f[0]!.title, /^parse_json burns 52\.6 % of the CPU time, under handle \(100\.0 % of CPU fans out there\)$/);
  assert.match(f[0]!.evidence, /52\.6 % ± 3\.2 % of 950 on-CPU samples/);
  assert.match(f[0]!.next, /pylens record -p 1 -d 30/);
});

test('waits by class from the eBPF markers, the waiting line named; GIL waits; ranked by share of thread time', () => {
  const p = shaped([
    { path: ['main', 'query'], n: 400, state: 'off-cpu', marker: '[wait: lock]' },
    { path: ['main', 'fetch'], n: 200, state: 'off-cpu', marker: '[wait: network]' },
    { path: ['main', 'crunch'], n: 100, state: 'gil', marker: '[wait: GIL]' },
    { path: ['main', 'crunch'], n: 300, state: 'on-cpu' },
  ]);
  const f = findings({ main: p, target: '-p 2' });
  // ranked by share of thread time: waiting (70 %), lock (40 %), the CPU hotspot (30 %), network (20 %), GIL (10 %)
  assert.deepEqual(kinds(f), ['waiting', 'lock', 'cpu-hotspot', 'network', 'gil']);
  const lock = f.find((x) => x.kind === 'lock')!;
  assert.equal(lock.function, 'query');
  assert.equal(lock.share, 0.4);
  assert.ok(f.some((x) => x.kind === 'network' && x.function === 'fetch'));
  assert.ok(f.some((x) => x.kind === 'gil' && Math.abs(x.share - 0.1) < 1e-12));
  assert.match(f.find((x) => x.kind === 'waiting')!.evidence, /lock 40\.0 %, network 20\.0 %, gil 10\.0 %; on CPU 30\.0 %/);
});

test('without eBPF, the class comes from the Python leaf: threading → lock, selectors → network', () => {
  const p = shaped([
    { path: ['main', 'acquire_it', 'wait'], n: 300, state: 'idle', file: '/usr/lib/python3.12/threading.py' },
    { path: ['main', 'serve', 'select'], n: 300, state: 'idle', file: '/usr/lib/python3.12/selectors.py' },
    { path: ['main', 'work'], n: 400, state: 'on-cpu' },
  ]);
  const f = findings({ main: p, target: '-p 3' });
  assert.ok(f.some((x) => x.kind === 'lock' && x.function === 'wait'));
  assert.ok(f.some((x) => x.kind === 'network' && x.function === 'select'));
});

test('imbalance across worker processes; the checklist', () => {
  const p = shaped([
    { path: ['worker'], n: 800, state: 'on-cpu', pid: 10 },
    { path: ['worker'], n: 100, state: 'on-cpu', pid: 11 },
    { path: ['worker'], n: 100, state: 'on-cpu', pid: 12 },
  ]);
  const f = findings({ main: p, target: '-p 10' });
  const imb = f.find((x) => x.kind === 'imbalance')!;
  assert.match(imb.title, /3 processes: PID 10 does 2\.4× the mean/);
  const c = checklist(p);
  assert.deepEqual(c.map((x) => [x.name, x.ok]), [['duration', true], ['samples', true], ['overhead', true], ['stacks whole', true], ['environment', true]]);
  const short = shaped([{ path: ['w'], n: 10, state: 'on-cpu' }]);
  short.meta.durationNs = 1e9;
  assert.deepEqual(checklist(short).filter((x) => !x.ok).map((x) => x.name), ['duration', 'samples']);
});

// real programs
const py = installedPythons().find((p) => p.minor === 12 && p.label.startsWith('pyenv'));
const SCRIPTS: Record<string, string> = {
  cpu: `import os, sys\ndef tokenize(s):\n    return [w for w in s.split(' ') if w]\ndef hot():\n    t = 'a b c d e f g ' * 500\n    while True:\n        tokenize(t)\nprint('ready', flush=True)\nhot()\n`,
  lock: `import threading, time\nlock = threading.Lock()\ndef holder():\n    while True:\n        with lock:\n            time.sleep(0.05)\n        time.sleep(0.0005)\ndef waiter():\n    while True:\n        with lock:\n            pass\nthreading.Thread(target=holder, daemon=True).start()\nfor _ in range(3):\n    threading.Thread(target=waiter, daemon=True).start()\nprint('ready', flush=True)\ntime.sleep(3600)\n`,
  sleep: `import time\ndef poll():\n    while True:\n        time.sleep(0.02)\n        sum(range(1000))\nprint('ready', flush=True)\npoll()\n`,
  native: `import os, zlib\ndata = os.urandom(1 << 15) * 8\ndef squeeze():\n    while True:\n        zlib.compress(data, 9)\nprint('ready', flush=True)\nsqueeze()\n`,
};

async function diagnose(kind: string): Promise<{ findings: Finding[]; recorded: string[]; capabilities: { name: string; ok: boolean }[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-diag-'));
  const script = join(dir, `${kind}.py`);
  writeFileSync(script, SCRIPTS[kind]!);
  const child = spawn(py!.exe, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', () => reject(new Error(`${kind}.py exited`)));
    });
    const r = spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'diagnose', '-p', String(child.pid), '-d', '3', '--json', '-o', join(dir, 'r.html')], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    assert.match(html, /Findings, most important first/);
    // the report carries its main profile
    assert.ok(importProfile(InputFile.fromText(html, 'r.html')).profile.samples.length > 0);
    return JSON.parse(r.stdout);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

test('diagnose -p on real programs: CPU-bound → its hot function; lock-bound → lock at the waiting line; sleep-bound → sleep; zlib → native libz', { skip: !py && 'no pyenv 3.12', timeout: 300_000 }, () =>
  exclusive('timing', async () => {
    const cpu = await diagnose('cpu');
    const hot = cpu.findings.find((f) => f.kind === 'cpu-hotspot')!;
    assert.ok(hot && /tokenize/.test(hot.function!), JSON.stringify(cpu.findings));
    const ebpf = cpu.capabilities.find((c) => c.name === 'eBPF')!.ok;
    const perf = cpu.capabilities.find((c) => c.name === 'perf')!.ok;

    const lock = await diagnose('lock');
    const l = lock.findings.find((f) => f.kind === 'lock');
    assert.ok(l, JSON.stringify(lock.findings.map((f) => f.title)));
    if (ebpf) assert.equal(l.function, 'waiter', JSON.stringify(l));
    assert.ok(l.share > 0.3, JSON.stringify(l));

    const sleep = await diagnose('sleep');
    const s = sleep.findings.find((f) => f.kind === (ebpf ? 'sleep' : 'other-wait'));
    assert.ok(s && s.function === 'poll' && s.share > 0.5, JSON.stringify(sleep.findings.map((f) => f.title)));

    if (perf) {
      const native = await diagnose('native');
      const n = native.findings.find((f) => f.kind === 'native');
      assert.ok(n && /^libz\.so/.test(n.file!), JSON.stringify(native.findings.map((f) => f.title)));
      assert.ok(native.recorded.some((r) => /native and kernel frames/.test(r)));
    }
  }));

test('diagnose: a dead PID and a bad -o say so, exit non-zero', () => {
  const dead = spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'diagnose', '-p', '999999', '-d', '1'], { encoding: 'utf8' });
  assert.notEqual(dead.status, 0);
  assert.match(dead.stderr, /999999/);
  const bad = spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'diagnose', '-p', '1', '-o', 'x.txt'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /\.html/);
  assert.equal(existsSync('x.txt'), false);
});

test('diagnose -p on a worker pool: every worker is sampled and the uneven one is named', { skip: !py && 'no pyenv 3.12', timeout: 120_000 }, () =>
  exclusive('timing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pylens-diag-'));
    const script = join(dir, 'pool.py');
    // worker 0 spins; workers 1 and 2 mostly sleep; the parent waits for them
    writeFileSync(script, `import multiprocessing as mp, os, time\ndef work(i):\n    while True:\n        if i == 0:\n            sum(range(10000))\n        else:\n            time.sleep(0.05)\n            sum(range(1000))\nif __name__ == '__main__':\n    ps = [mp.Process(target=work, args=(i,), daemon=True) for i in range(3)]\n    for p in ps:\n        p.start()\n    print(' '.join(str(p.pid) for p in ps), flush=True)\n    time.sleep(3600)\n`);
    const child = spawn(py!.exe, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let pids: number[] = [];
    try {
      pids = await new Promise<number[]>((resolve, reject) => {
        child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim().split(' ').map(Number)));
        child.once('exit', () => reject(new Error('pool.py exited')));
      });
      await new Promise((r) => setTimeout(r, 500));
      const r = spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'diagnose', '-p', String(child.pid), '-d', '3', '--json', '--no-native'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      const j = JSON.parse(r.stdout) as { findings: Finding[]; recorded: string[] };
      assert.match(j.recorded[0]!, /and its 3 Python child processes/);
      const imb = j.findings.find((f) => f.kind === 'imbalance');
      assert.ok(imb, JSON.stringify(j.findings.map((f) => f.title)));
      assert.match(imb.title, new RegExp(`across 3 processes: PID ${pids[0]} does`));
    } finally {
      // the workers outlive a killed parent: they go first
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test('idle workers (queue.get, a thread pool between tasks) are not a lock wait: left out of the waiting share, named in its evidence', () => {
  const p = shaped([
    // 8 pool threads waiting for work, as anyio's or concurrent.futures' do between requests
    { path: ['run', 'get', 'wait'], n: 800, state: 'idle', file: '/usr/lib/python3.11/threading.py' },
    { path: ['main', 'handle', 'encode'], n: 150, state: 'on-cpu' },
    { path: ['main', 'handle', 'acquire_it', 'wait'], n: 50, state: 'idle', file: '/usr/lib/python3.11/threading.py' },
  ]);
  // the pool threads' `get` frame is queue.py's
  const q = p.strings.indexOf('get');
  for (let f = 0; f < p.frames.length; f++) if (p.frames.name[f] === q) p.frames.file[f] = p.strings.push('/usr/lib/python3.11/queue.py') - 1;
  const f = findings({ main: p, target: '-p 5' });
  // of the 200 samples of threads not idle: 75 % CPU, 25 % a real lock wait
  const lock = f.find((x) => x.kind === 'lock');
  assert.ok(lock && lock.function === 'wait' && Math.abs(lock.share - 0.25) < 1e-9, JSON.stringify(f));
  const w = f.find((x) => x.kind === 'waiting')!;
  assert.equal(w.share, 0.25);
  assert.match(w.evidence, /idle workers waiting for work .* 80\.0 % of all thread time/);
  assert.equal(f[0]!.kind, 'cpu-hotspot', 'the CPU hotspot ranks first, not the idle pool');
  // a thread pool worker waiting in SimpleQueue.get (C): its Python leaf is _worker
  const pool = shaped([
    { path: ['_bootstrap', 'run', '_worker'], n: 900, state: 'idle', file: '/usr/lib/python3.11/concurrent/futures/thread.py' },
    { path: ['main', 'work'], n: 100, state: 'on-cpu' },
  ]);
  assert.deepEqual(kinds(findings({ main: pool, target: '-p 6' })), ['cpu-hotspot']);
});

test('diagnose --mem: a launched program whose memory grows steadily gets a memory-growth finding; a flat one does not', { skip: !py && 'no pyenv 3.12', timeout: 120_000 }, () =>
  exclusive('timing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pylens-diag-'));
    try {
      const run = (name: string, code: string) => {
        const script = join(dir, name);
        writeFileSync(script, code);
        const r = spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'diagnose', '--mem', '-d', '4', '--json', '--no-native', '--', py!.exe, script], { encoding: 'utf8', timeout: 60_000 });
        assert.ok(r.status !== null, r.stderr);
        return JSON.parse(r.stdout) as { findings: Finding[]; recorded: string[] };
      };
      // 1 MiB more every 0.1 s, written (so resident), kept
      const leak = run('leak.py', `import time\nkeep = []\ndef cache_result(i):\n    keep.append(b'x' * (1 << 20))\ni = 0\nwhile True:\n    cache_result(i)\n    i += 1\n    time.sleep(0.1)\n`);
      const g = leak.findings.find((f) => f.kind === 'memory-growth');
      assert.ok(g, JSON.stringify(leak.findings.map((f) => f.title)));
      assert.match(g.title, /^memory grows steadily: RSS [\d.]+ MiB → [\d.]+ MiB \([\d.]+ MiB\/min\)$/);
      // ~10 MiB/s, ~600 MiB/min; loose bounds (a loaded machine runs the loop slower)
      const perMin = Number(/\(([\d.]+) MiB\/min\)/.exec(g.title)![1]);
      assert.ok(perMin > 150 && perMin < 800, g.title);
      assert.match(g.next, /^pylens mem --interval 5 -- .*leak\.py/);
      assert.ok(leak.recorded.some((r) => /^resident memory every 0\.5 s: /.test(r)), JSON.stringify(leak.recorded));

      const flat = run('flat.py', `import time\nbuf = b'x' * (20 << 20)\nwhile True:\n    sum(range(1000))\n    time.sleep(0.01)\n`);
      assert.equal(flat.findings.find((f) => f.kind === 'memory-growth'), undefined, JSON.stringify(flat.findings.map((f) => f.title)));
      assert.ok(flat.recorded.some((r) => /^resident memory every 0\.5 s: .*\(no steady growth: /.test(r)), JSON.stringify(flat.recorded));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));
