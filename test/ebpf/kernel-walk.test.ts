/**
 * `pylens record --backend kernel`: Python stacks walked in the kernel by a bpftrace program
 * (capture/ebpf/pywalk.ts). The printout parser and the frame-word decoder on synthetic input,
 * then real bpftrace on real CPython 3.8–3.13: whole stacks of a known shape, generator churn
 * at 1 kHz, threads, a launched program's first 100 ms, and the options it refuses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { exclusive } from '../helpers/exclusive.ts';
import { stackRoots } from '../helpers/roots.ts';
import { firstLine, installedPythons } from '../sampler/pythons.ts';
import { addTypeObjects, putAsciiStr, putCode, putStruct } from '../sampler/synthetic.ts';
import { KernelWalkOutput, kernelWalkProgram } from '../../src/capture/ebpf/pywalk.ts';
import { layoutFor } from '../../src/capture/sampler/layouts/index.ts';
import { ImageMemory } from '../../src/capture/sampler/memory.ts';
import { CodeTypeCheck, FRAME_WORD_OFFSET_SHIFT, framesFromWords } from '../../src/capture/sampler/walker.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { frameInfo, stackFrames, type Profile } from '../../src/model/profile.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const WORKLOADS = join(ROOT, 'bench', 'workloads');
const noBpftrace = spawnSync('bpftrace', ['--version']).status !== 0 && 'bpftrace is not installed';
const pythons = installedPythons().filter((p) => p.minor >= 8 && p.minor <= 13);

test('kernel walk output: counts per generation, a map printed twice counts once, a stack waits for its frames (printed as they are walked)', () => {
  const o = new KernelWalkOutput();
  const h = 0xfedcba9876543210n;
  const signed = BigInt.asIntN(64, h).toString();
  o.line('pylens-ready 123');
  o.line(`@na[0, 7, 4096, ${signed}]: 5`);
  o.line('@na[0, 7, 4096, 0]: 2');
  // its frames come later (the other map's turn)
  let t = o.take();
  assert.deepEqual(t.counts.map((c) => [c.hash, c.count]), [[0n, 2]], 'the native thread is given, the stack waits for its frames');
  const came: bigint[] = [];
  o.onStack = (hash) => came.push(hash);
  o.line(`F ${h} 65535 ${2 | (1 << 16)}`);
  o.line(`F ${h} 1 22`);
  assert.deepEqual(came, [], 'not whole yet');
  o.line(`F ${h} 0 ${(5n << 47n) | 0x1000n}`);
  assert.deepEqual(o.stacks.get(h), { words: [(5n << 47n) | 0x1000n, 22n], cut: true });
  assert.deepEqual(came, [h], 'named as soon as it is whole');
  t = o.take();
  assert.deepEqual(t.counts.map((c) => [c.tid, c.ident, c.hash, c.count]), [[7, 4096n, h, 5]]);
  // the same generation printed again (bpftrace at exit), then the next generation
  o.line(`@na[0, 7, 4096, ${signed}]: 5`);
  o.line(`@nb[1, 7, 4096, ${signed}]: 3`);
  t = o.take();
  assert.deepEqual(t.counts.map((c) => c.count), [3]);
  // a stack whose frames never come: given at the end, counted as unresolved
  o.line('@na[2, 8, 4096, 99]: 4');
  assert.equal(o.take().counts.length, 0);
  t = o.take(true);
  assert.equal(t.unresolved, 4);
  assert.deepEqual(t.counts.map((c) => [c.tid, c.hash, c.count]), [[8, 99n, 4]]);
  o.line('something else');
  assert.deepEqual(o.skipped, ['something else']);
});

test('kernel walk program: per version, the pid filter and the oversampled timer; versions and rates it refuses', () => {
  for (const minor of [8, 9, 10, 11, 12, 13]) {
    const layout = layoutFor(3, minor)!;
    const prog = kernelWalkProgram({ pid: 4242, runtimeAddress: 0x7f0000001000, layout, minor, rateHz: 100 });
    assert.match(prog, /profile:hz:400 \/pid == 4242\//, `3.${minor}`);
    assert.match(prog, /rand % 4 == 0/);
    assert.match(prog, /0x7f0000001000/);
    assert.match(prog, minor <= 10 ? new RegExp(`\\$f = \\*\\(uint64\\*\\)uptr\\(\\$ts \\+ ${layout.tstate.frame}\\)`) : minor <= 12 ? /cframe|\$ts \+ \d+\); if \(\$f != 0\)/ : new RegExp(`\\$ts \\+ ${layout.tstate.current_frame}\\)`));
  }
  const l12 = layoutFor(3, 12)!;
  assert.throws(() => kernelWalkProgram({ pid: 1, runtimeAddress: 1, layout: l12, minor: 14, rateHz: 100 }), /3\.8–3\.13, not 3\.14/);
  assert.throws(() => kernelWalkProgram({ pid: 1, runtimeAddress: 1, layout: l12, minor: 12, rateHz: 10_000 }), /out of range/);
  assert.match(kernelWalkProgram({ pid: 1, runtimeAddress: 1, layout: l12, minor: 12, rateHz: 100, oversample: 1 }), /profile:hz:100 [^]*if \(1\)/);
});

/** a 3.12 or 3.10 address space with code objects `name@addr` (no line table) */
function codeImage(minor: number, codes: { addr: number; name: string; flags?: number; firstTraceable?: number }[]) {
  const layout = layoutFor(3, minor)!;
  const mem = new ImageMemory();
  const types = addTypeObjects(mem, layout, 0x100000);
  const str = (at: number, text: string) => putAsciiStr(mem, layout, at, text, types.str);
  const table = 0x200000;
  putStruct(mem, table, layout.bytes.ob_sval + 8, (d) => d.setBigUint64(layout.object.ob_type, BigInt(types.bytes), true));
  str(0x210000, 'app.py');
  codes.forEach((c, i) => {
    str(0x220000 + i * 0x100, c.name);
    putCode(mem, layout, c.addr, { codeType: types.code, name: 0x220000 + i * 0x100, file: 0x210000, table, firstLine: 10 * (i + 1), ...(c.flags !== undefined ? { flags: c.flags } : {}), ...(c.firstTraceable !== undefined ? { firstTraceable: c.firstTraceable } : {}) });
  });
  return { mem, layout, check: new CodeTypeCheck(mem, layout) };
}

test('frame words named: shims left out, incomplete frames hidden, the chain must end at the entry frame (3.12); a frame not executing cuts it (3.10)', () => {
  const A = 0x300000;
  const B = 0x301000;
  const SHIM = 0x302000;
  const { mem, layout, check } = codeImage(12, [{ addr: A, name: 'leaf' }, { addr: B, name: 'caller', firstTraceable: 4 }, { addr: SHIM, name: 'shim' }]);
  const adaptive = layout.code.code_adaptive!;
  // (instruction − code object) in code units, at `units` past the first instruction
  const w = (code: number, owner: number, units: number) => BigInt(code) | BigInt(owner) | (BigInt((adaptive >> 1) + units) << BigInt(FRAME_WORD_OFFSET_SHIFT));
  const names = (r: ReturnType<typeof framesFromWords>) => r.frames.map((f) => f.name);
  let r = framesFromWords(mem, layout, 12, [w(A, 0, 3), w(B, 0, 6), w(SHIM, 3, 0)], false, new Map(), check);
  assert.deepEqual([names(r), r.truncated], [['leaf', 'caller'], false]);
  // caller before its first traceable instruction: incomplete, hidden
  r = framesFromWords(mem, layout, 12, [w(A, 0, 3), w(B, 0, 2), w(SHIM, 3, 0)], false, new Map(), check);
  assert.deepEqual([names(r), r.truncated], [['leaf'], false]);
  // the chain ends at a thread-owned frame: not a whole stack
  r = framesFromWords(mem, layout, 12, [w(A, 0, 3), w(B, 0, 6)], false, new Map(), check);
  assert.equal(r.truncated, true);
  assert.match(r.why!, /not the thread's entry frame/);
  // the walk stopped at its depth bound; a frame with no code object
  assert.equal(framesFromWords(mem, layout, 12, [w(A, 0, 3)], true, new Map(), check).why, 'the depth bound');
  r = framesFromWords(mem, layout, 12, [w(A, 0, 3), 0n], false, new Map(), check);
  assert.deepEqual([names(r), r.truncated], [['leaf'], true]);
  // a generator right above an entry shim with nothing under it: the shim a generator resumed
  // from C runs under, not the thread's base (a thread's stack never starts with a generator)
  const GEN = 0x304000;
  const g12 = codeImage(12, [{ addr: A, name: 'leaf' }, { addr: GEN, name: '<genexpr>', flags: 0x20 }, { addr: SHIM, name: 'shim' }]);
  r = framesFromWords(g12.mem, g12.layout, 12, [w(A, 0, 3), w(GEN, 1, 2), w(SHIM, 3, 0)], false, new Map(), g12.check);
  assert.deepEqual([names(r), r.truncated], [['leaf', '<genexpr>'], true]);
  // a code address that is no code object
  r = framesFromWords(mem, layout, 12, [w(A, 0, 3), w(0x220000, 0, 1), w(SHIM, 3, 0)], false, new Map(), check);
  assert.equal(r.truncated, true);
  assert.match(r.why!, /not code/);

  const G = 0x303000;
  const m10 = codeImage(10, [{ addr: A, name: 'leaf' }, { addr: B, name: 'main' }, { addr: G, name: 'gen', flags: 0x20 }]);
  // 3.10 words: f_state's low bits (EXECUTING 0; SUSPENDED −1 → 7), f_lasti + 1
  const w10 = (code: number, state: number, lasti: number) => BigInt(code) | BigInt(state & 7) | (BigInt(lasti + 1) << BigInt(FRAME_WORD_OFFSET_SHIFT));
  r = framesFromWords(m10.mem, m10.layout, 10, [w10(A, 0, 4), w10(B, 0, 9)], false, new Map(), m10.check);
  assert.deepEqual([names(r), r.truncated], [['leaf', 'main'], false]);
  // a leaf caught entering (not yet executing) is the thread's; a caller not executing is not
  assert.equal(framesFromWords(m10.mem, m10.layout, 10, [w10(A, -1, -1), w10(B, 0, 9)], false, new Map(), m10.check).truncated, false);
  assert.equal(framesFromWords(m10.mem, m10.layout, 10, [w10(A, 0, 4), w10(B, -1, 9)], false, new Map(), m10.check).truncated, true);
  // a generator's code never starts a thread's stack
  assert.equal(framesFromWords(m10.mem, m10.layout, 10, [w10(A, 0, 4), w10(G, 0, 2)], false, new Map(), m10.check).truncated, true);
});

function record(args: string[], cwd?: string) {
  return spawnSync(process.execPath, [MAIN, 'record', '--backend', 'kernel', '-q', ...args], { encoding: 'utf8', timeout: 120_000, ...(cwd ? { cwd } : {}) });
}

const names = (p: Profile, i: number) => stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);

for (const py of pythons) {
  test(`${py.label}: record --backend kernel -p on deep.py — every sample the whole 32-frame stack, named`, { skip: noBpftrace, timeout: 120_000 }, () =>
    exclusive('timing', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pylens-kwalk-'));
      const child = spawn(py.exe, [join(WORKLOADS, 'deep.py'), '30'], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await firstLine(child, 'deep.py');
        const out = join(dir, 'k.pylens');
        const r = record(['-p', String(child.pid), '-d', '2.5', '-r', '200', '-o', out]);
        assert.equal(r.status, 0, r.stderr);
        const p = decodePylens(readFileSync(out), out);
        assert.equal(p.meta.backend, 'pylens-kernel-walk (bpftrace)');
        assert.equal(p.meta.mode, 'cpu');
        const total = p.meta.sampleCount;
        // the walk starts once bpftrace has attached: ~2 s of a spinning thread at 200 Hz
        assert.ok(total > 150, `${total} samples`);
        let whole = 0;
        for (let i = 0; i < p.samples.length; i++) {
          const n = names(p, i);
          if (n.length === 32 && n[0] === '<module>' && n[31] === 'spin' && n.slice(1, 31).every((x) => x === 'descend')) whole += p.samples.values[0]![i]!;
        }
        assert.equal(whole, total, `${whole} of ${total} samples are <module> > 30 × descend > spin`);
        assert.equal(p.meta.extra?.truncatedSamples, 0);
        assert.equal(p.meta.extra?.kernelUnresolvedSamples, 0);
        assert.ok(Number(p.meta.extra?.kernelProgramRuns) > 0, 'the BPF program ran');
        assert.equal(p.threads.tid[p.samples.thread[0]!], child.pid, 'the main thread, by its TID');
      } finally {
        child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    }));
}

for (const minor of [8, 12, 13]) {
  const py = pythons.find((p) => p.minor === minor && p.label.startsWith('pyenv'));
  test(`3.${minor}: generator churn at 1 kHz in the kernel — no stack cut without a mark, ≤ 2 % marked`, { skip: noBpftrace || (!py && `no 3.${minor}`), timeout: 120_000 }, () =>
    exclusive('timing', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pylens-kchurn-'));
      const child = spawn(py!.exe, [join(WORKLOADS, 'churn.py'), '20', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        assert.equal(await firstLine(child, 'churn.py'), 'ready');
        const out = join(dir, 'c.pylens');
        const r = record(['-p', String(child.pid), '-d', '3', '-r', '1000', '-o', out]);
        assert.equal(r.status, 0, r.stderr);
        const p = decodePylens(readFileSync(out), out);
        const roots = stackRoots(p);
        const n = p.meta.sampleCount;
        assert.ok(n > 800, `${n} samples`);
        assert.equal(roots.cut, 0, `cut without a mark: ${roots.examples.join(' | ')}`);
        assert.ok(roots.marked <= 0.02 * n, `${roots.marked} of ${n} marked`);
        assert.equal(roots.marked, Number(p.meta.extra?.truncatedSamples));
        // both threads sampled, each under its own thread
        assert.ok(new Set(Array.from(p.samples.thread, (t) => p.threads.tid[t])).size >= 2, 'two threads');
      } finally {
        child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    }));
}

test('record --backend kernel -- python: held at the start gate until the walk is attached; its first 100 ms are sampled, no gate frame', { skip: noBpftrace, timeout: 120_000 }, () =>
  exclusive('timing', async () => {
    const py = pythons.find((p) => p.minor === 12) ?? pythons[0];
    assert.ok(py, 'a CPython');
    const dir = mkdtempSync(join(tmpdir(), 'pylens-kfirst-'));
    try {
      const out = join(dir, 'f.pylens');
      const r = record(['-r', '200', '-o', out, '--', py.exe, join(ROOT, 'test', 'launch', 'scripts', 'first.py'), 'burn', join(dir, 'r.json'), '0.3'], dir);
      assert.equal(r.status, 0, r.stderr);
      const p = decodePylens(readFileSync(out), out);
      let first = 0;
      let after = 0;
      let gate = 0;
      for (let i = 0; i < p.samples.length; i++) {
        const fr = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f));
        const v = p.samples.values[0]![i]!;
        if (fr.some((f) => f.name === 'first_100ms')) first += v;
        if (fr.some((f) => f.name === 'afterwards')) after += v;
        if (fr.some((f) => f.file?.includes('pylens') && f.file.includes('gate'))) gate += v;
      }
      // 100 ms of CPU at 200 Hz: 20 samples expected (a random count: geometric intervals)
      assert.ok(first >= 12, `first_100ms: ${first} samples\n${r.stderr}`);
      assert.ok(after >= 35, `afterwards: ${after} samples`);
      assert.equal(gate, 0, 'no frame of the gate');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test('record --backend kernel refuses what it cannot do, naming the option', () => {
  for (const opt of ['--idle', '--async', '--native', '--blocking', '-s']) {
    const r = record(['-p', '1', opt]);
    assert.equal(r.status, 2, `${opt}: ${r.stderr}`);
    assert.match(r.stderr, /--backend kernel samples running threads of one process in the kernel: it cannot be combined with --/);
  }
});
