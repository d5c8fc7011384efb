/**
 * `pylens record --backend ebpf`: the kernel's CPU samples (bpftrace profile:hz) joined with
 * the sampler's Python stacks. The join on synthetic samples, then the real CLI with real
 * bpftrace on CPython 3.12, one process and the whole machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { exclusive } from '../helpers/exclusive.ts';
import { installedPythons } from '../sampler/pythons.ts';
import { joinEbpfSamples, nativeLeaf } from '../../src/capture/ebpf/join.ts';
import type { CpuStackSample } from '../../src/capture/ebpf/cpu.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { frameInfo, stackFrames, type Profile } from '../../src/model/profile.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const py312 = installedPythons().find((p) => p.minor === 12 && p.label.startsWith('pyenv'));
const noBpftrace = spawnSync('bpftrace', ['--version']).status !== 0 && 'bpftrace is not installed';

const names = (p: Profile, i: number) => stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f));

test('nativeLeaf keeps the user stack up to the eval loop or the call machinery', () => {
  assert.deepEqual(nativeLeaf(['longest_match', 'deflate_slow', 'deflate', 'zlib_compress_impl', '_PyEval_EvalFrameDefault', 'garbage']), ['longest_match', 'deflate_slow', 'deflate', 'zlib_compress_impl']);
  assert.deepEqual(nativeLeaf(['_PyObject_Malloc', 'cfunction_vectorcall_O', 'x']), ['_PyObject_Malloc']);
  assert.deepEqual(nativeLeaf(['a', 'b', 'c'], 2), ['a', 'b']);
});

test('join: nearest sampler sample of the same thread within the window lends its Python stack; others keep native frames under a process root', () => {
  const b = new ProfileBuilder({ valueTypes: [{ name: 'samples', unit: 'samples' }], timed: true });
  const t7 = b.thread(100, 7, 'worker');
  const mainF = b.frame({ name: 'main', file: 'app.py', line: 1, kind: 'python' });
  const hot = b.frame({ name: 'hot', file: 'app.py', line: 5, kind: 'python' });
  const comp = b.frame({ name: 'compress', file: 'app.py', line: 9, kind: 'python' });
  const sHot = b.stack(b.stack(-1, mainF), hot);
  const sComp = b.stack(b.stack(-1, mainF), comp);
  // sampler samples every 10 ms from its time 0: hot at 0..40 ms, compress at 50..90 ms
  for (let k = 0; k < 10; k++) b.sample(k < 5 ? sHot : sComp, 1, t7, 'on-cpu', k * 10e6);
  const sampler = b.build();
  const origin = 1_000_000_000; // monotonic ns of the sampler's time 0
  const s = (tid: number, pid: number, tMs: number, ustack: string[], kstack: string[] = [], count = 1): CpuStackSample => ({ pid, tid, comm: pid === 100 ? 'python3' : 'nginx', ustack, kstack, timeNs: origin + tMs * 1e6, count });
  const { profile, stats } = joinEbpfSamples(
    [
      s(7, 100, 12, ['_PyEval_EvalFrameDefault']), // near hot
      s(7, 100, 71, ['deflate', 'zlib_compress', 'cfunction_vectorcall_O', 'junk'], ['copy_page'], 3), // near compress, 3 samples
      s(7, 100, 500, ['x']), // no sampler sample within the window
      s(9, 200, 20, ['epoll_wait', 'main'], ['do_epoll_wait']), // another process
    ],
    sampler,
    { samplerOriginNs: origin, windowNs: 15e6 },
  );
  assert.deepEqual(stats, { matched: 4, bridged: 0, unmatched: 1, foreign: 1 });
  assert.equal(profile.meta.sampleCount, 6);
  const rows = Array.from({ length: profile.samples.length }, (_, i) => names(profile, i).map((f) => `${f.name}:${f.kind}`).join(';'));
  assert.deepEqual(rows, [
    'main:python;hot:python',
    'main:python;compress:python;zlib_compress:native;deflate:native;copy_page:kernel',
    'process 100 (python3):marker;x:native',
    'process 200 (nginx):marker;main:native;epoll_wait:native;do_epoll_wait:kernel',
  ]);
  assert.equal(profile.samples.values[0]![1], 3);
  assert.equal(profile.strings[profile.threads.name[profile.samples.thread[0]!]!], 'worker');
});

test('join: across a gap in the sampler, two samples in the same functions (other lines) lend the nearer stack; different functions or a gap too long lend nothing', () => {
  const b = new ProfileBuilder({ valueTypes: [{ name: 'samples', unit: 'samples' }], timed: true });
  const t7 = b.thread(100, 7, 'main');
  const mainF = b.frame({ name: 'main', file: 'app.py', line: 1, kind: 'python' });
  const hot5 = b.frame({ name: 'hot', file: 'app.py', line: 5, kind: 'python' });
  const hot6 = b.frame({ name: 'hot', file: 'app.py', line: 6, kind: 'python' });
  const cold = b.frame({ name: 'cold', file: 'app.py', line: 9, kind: 'python' });
  const st = (f: number) => b.stack(b.stack(-1, mainF), f);
  // hot:5 at 0 ms, hot:6 at 40 ms (a gap of missed ticks), cold at 80 ms, hot:5 at 200 ms
  b.sample(st(hot5), 1, t7, 'on-cpu', 0);
  b.sample(st(hot6), 1, t7, 'on-cpu', 40e6);
  b.sample(st(cold), 1, t7, 'on-cpu', 80e6);
  b.sample(st(hot5), 1, t7, 'on-cpu', 200e6);
  const sampler = b.build();
  const s = (tMs: number): CpuStackSample => ({ pid: 100, tid: 7, comm: 'python3', ustack: [], kstack: [], timeNs: tMs * 1e6, count: 1 });
  const run = (bridgeNs?: number) =>
    joinEbpfSamples([s(2), s(15), s(28), s(60), s(140)], sampler, { samplerOriginNs: 0, windowNs: 5e6, ...(bridgeNs !== undefined ? { bridgeNs } : {}) });
  const { profile, stats } = run(50e6);
  // 2 ms: in the window; 15 and 28 ms: bridged between hot:5 and hot:6 (the nearer's line);
  // 60 ms: between hot and cold: nothing; 140 ms: 60 ms from both sides, past the bridge
  assert.deepEqual(stats, { matched: 3, bridged: 2, unmatched: 2, foreign: 0 });
  const rows = Array.from({ length: profile.samples.length }, (_, i) => names(profile, i).map((f) => `${f.name}${f.line ? `:${f.line}` : ''}`).join(';'));
  assert.deepEqual(rows, ['main:1;hot:5', 'main:1;hot:5', 'main:1;hot:6', 'process 100 (python3)', 'process 100 (python3)']);
  assert.deepEqual(run().stats, { matched: 1, bridged: 0, unmatched: 4, foreign: 0 });
});

const WORK = `import sys, time, zlib
def py_loop():
    s = 0
    for i in range(60000):
        s += i * i
def compress():
    zlib.compress(bytes(range(256)) * 3000, 9)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    py_loop(); compress()
`;

test('record --backend ebpf on CPython 3.12: kernel samples with the Python frames of the sampler, native leaves under compress', { skip: noBpftrace || (!py312 && 'no CPython 3.12') }, () =>
  exclusive('timing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pylens-ebpf-rec-'));
    writeFileSync(join(dir, 'work.py'), WORK);
    const out = join(dir, 'e.pylens');
    const r = spawnSync(process.execPath, [MAIN, 'record', '--backend', 'ebpf', '-q', '-o', out, '--', py312!.exe, join(dir, 'work.py'), '5'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const p = decodePylens(readFileSync(out), out);
    assert.equal(p.meta.lens, 'ebpf');
    const matched = Number(p.meta.extra?.ebpfMatched);
    const unmatched = Number(p.meta.extra?.ebpfUnmatched);
    // bpftrace takes 0.4-3 s to attach before sampling starts
    assert.ok(matched > 100, `${matched} matched`);
    assert.ok(matched >= 0.8 * (matched + unmatched), `matched ${matched}, unmatched ${unmatched}`);
    let inCompress = 0;
    let withNative = 0;
    let inLoop = 0;
    for (let i = 0; i < p.samples.length; i++) {
      const fr = names(p, i);
      const n = p.samples.values[0]![i]!;
      const c = fr.findIndex((f) => f.kind === 'python' && f.name === 'compress');
      if (c >= 0) {
        inCompress += n;
        if (fr.slice(c + 1).some((f) => f.kind === 'native')) withNative += n;
      }
      if (fr.some((f) => f.kind === 'python' && f.name === 'py_loop')) inLoop += n;
    }
    assert.ok(inLoop > 0.2 * matched && inCompress > 0.1 * matched, `py_loop ${inLoop}, compress ${inCompress} of ${matched}`);
    assert.ok(withNative > 0.5 * inCompress, `${withNative} of ${inCompress} compress samples have a native leaf`);
  }));

test('record --backend ebpf --all without a target: every process, native and kernel frames', { skip: noBpftrace }, () =>
  exclusive('timing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pylens-ebpf-all-'));
    const out = join(dir, 'all.pylens');
    // two processes pylens is not told about, busy for the whole recording (an idle machine
    // may give the kernel's timer nothing to sample for 1.5 s)
    const spinners = [spawn('/bin/sh', ['-c', 'while :; do :; done']), spawn('python3', ['-c', 'while True: pass'])];
    try {
      const r = spawnSync(process.execPath, [MAIN, 'record', '--backend', 'ebpf', '--all', '-d', '1.5', '-o', out], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      const p = decodePylens(readFileSync(out), out);
      const pids = new Set(p.threads.pid);
      for (const s of spinners) assert.ok(pids.has(s.pid!), `spinner ${s.pid} not among ${[...pids].join(', ')}; ${r.stderr}`);
      assert.ok(p.frames.kind.includes('marker'));
    } finally {
      for (const s of spinners) s.kill('SIGKILL');
    }
  }));

test('record --backend: usage errors', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [MAIN, 'record', ...args], { encoding: 'utf8' });
  assert.equal(run(['--all', '-p', '1']).status, 2);
  assert.equal(run(['--backend', 'ebpf', '--native', '-p', '1']).status, 2);
  assert.equal(run(['--backend', 'bogus', '-p', '1']).status, 2);
});
