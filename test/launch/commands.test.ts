/**
 * "Nothing missed at launch": every command that launches a program records it from its
 * first line. The real CLI, real perf and bpftrace, real CPython 3.12, on
 * test/launch/scripts/first.py, whose interesting part is its first 100 ms:
 * - record --native: 100 ms of zlib, its samples with zlib's C frames under first_100ms
 * - record --backend ebpf: 100 ms of Python, the kernel's samples with first_100ms
 * - offcpu: a 100 ms lock wait, the wait attributed to first_100ms
 * - top: 100 ms of Python, first_100ms's share of the table
 * - sched: a 100 ms lock wait of the main thread
 * - io: direct synchronous writes for 100 ms, each one seen
 * - perf: 100 ms of Python, perf's samples in first_100ms (and a shell program, behind the exec gate)
 * Each must have at least 80 % of what the 100 ms give (record itself: gate.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { exclusive } from '../helpers/exclusive.ts';
import { installedPythons } from '../sampler/pythons.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { frameInfo, stackFrames, type Profile } from '../../src/model/profile.ts';
import { checkPerfAccess, findPerf, readPerfAccess } from '../../src/capture/perf/tool.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const FIRST = join(ROOT, 'test', 'launch', 'scripts', 'first.py');
const py = installedPythons().find((p) => p.minor === 12 && p.label.startsWith('pyenv'));
const noPy = !py && 'no pyenv CPython 3.12';
const noBpftrace = spawnSync('bpftrace', ['--version']).status !== 0 && 'bpftrace is not installed';
const root = process.getuid?.() !== 0 && 'needs root';
function perfSkip(needs: Parameters<typeof checkPerfAccess>[1]): string | false {
  try {
    findPerf();
    checkPerfAccess(readPerfAccess(), needs);
    return false;
  } catch (e) {
    return `perf not usable here: ${(e as Error).message}`;
  }
}

interface Result {
  pid: number;
  t0: number;
  writes: number;
}

/** A disk-backed scratch dir (O_DIRECT writes need a real block device). */
function diskDir(): string {
  return mkdtempSync(join('/var/tmp', 'pylens-launch-test-'));
}

/** The real CLI; `nice`: at that niceness (root only for < 0), with the program it launches. */
function pylens(args: string[], cwd: string, nice?: number) {
  const argv = [process.execPath, MAIN, ...args];
  if (nice !== undefined) argv.unshift('nice', '-n', String(nice));
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 180_000, cwd });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function names(p: Profile, i: number): string[] {
  return stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
}

function count(p: Profile, pred: (n: string[]) => boolean): number {
  let n = 0;
  for (let i = 0; i < p.samples.length; i++) if (pred(names(p, i))) n++;
  return n;
}

const result = (f: string): Result => JSON.parse(readFileSync(f, 'utf8'));

/** One niced busy loop per CPU (as the io tests do: perf keeps block completions then). */
function spinners(): ChildProcess[] {
  return Array.from({ length: availableParallelism() }, () => spawn('nice', ['-n', '19', 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }));
}

test('record --native -- python: perf runs before the first line: zlib under first_100ms from the start', { skip: noPy || perfSkip({ kernel: false }), timeout: 180_000 }, () =>
  exclusive('timing', async () => {
    const dir = diskDir();
    try {
      const out = join(dir, 'native.pylens');
      const r = pylens(['record', '--native', '-r', '200', '-o', out, '--', py!.exe, FIRST, 'zlib', join(dir, 'r.json')], dir);
      assert.equal(r.code, 0, r.err);
      const p = decodePylens(readFileSync(out), out);
      const first = count(p, (n) => n.includes('first_100ms'));
      const isZlib = (n: string[]) => n.some((x) => /^(deflate|longest_match|fill_window|compress)/.test(x));
      const withZlib = count(p, (n) => n.includes('first_100ms') && isZlib(n));
      const expected = 0.1 * Math.min(200, Number(p.meta.extra?.achievedRateHz) || 200);
      assert.ok(first >= Math.floor(0.8 * expected), `first_100ms: ${first} samples of ${expected}\n${r.err}`);
      // alone ≥ 80 % carry zlib's frames; with the rest of the suite loading both CPUs the target
      // is often pushed off its CPU and perf's nearest sample is a switch-out elsewhere (54–76 %
      // seen). What a late perf cannot give is zlib at the start: the earlier half of
      // first_100ms's samples (by time) has its share of them
      const times: number[] = [];
      const zlibAt: boolean[] = [];
      for (let i = 0; i < p.samples.length; i++) {
        const n = names(p, i);
        if (!n.includes('first_100ms')) continue;
        times.push(p.samples.time?.[i] ?? i);
        zlibAt.push(isZlib(n));
      }
      const order = times.map((_, k) => k).sort((a, b) => times[a]! - times[b]!);
      const early = order.slice(0, Math.ceil(order.length / 2));
      const earlyZlib = early.filter((k) => zlibAt[k]).length;
      assert.ok(withZlib >= Math.floor(0.4 * first), `${withZlib} of ${first} first_100ms samples with zlib frames\n${r.err}`);
      assert.ok(earlyZlib >= Math.max(2, Math.floor(0.3 * early.length)), `${earlyZlib} of the earliest ${early.length} first_100ms samples with zlib frames (${withZlib} of ${first} in all)\n${r.err}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test('record --backend ebpf -- python: bpftrace samples the program from its first line', { skip: noPy || noBpftrace || root, timeout: 180_000 }, () =>
  exclusive('timing', async () => {
    const dir = diskDir();
    try {
      const out = join(dir, 'ebpf.pylens');
      // at a higher priority than the rest of the suite: the kernel counts CPU time in 5 ms
      // ticks, so a program pushed off its CPU every few ms by other tests gets a binomial
      // count (100 ms of CPU gave 13–27 samples beside three busy loops; 20–22 at nice −10),
      // and this test is about a start not missed, not about a busy machine
      const r = pylens(['record', '--backend', 'ebpf', '-r', '200', '-o', out, '--', py!.exe, FIRST, 'burn', join(dir, 'r.json')], dir, -10);
      assert.equal(r.code, 0, r.err);
      const p = decodePylens(readFileSync(out), out);
      const first = count(p, (n) => n.includes('first_100ms'));
      const after = count(p, (n) => n.includes('afterwards'));
      // the kernel samples at 200 Hz: 20 samples in 100 ms of CPU, or what the program's own
      // 0.3 s afterwards, sampled the same way, says the same CPU time got in this run (a
      // missed start leaves first_100ms with a few samples at most)
      const expected = Math.min(20, after / 3);
      assert.ok(first >= Math.floor(0.8 * expected), `kernel samples in first_100ms: ${first} of ${expected.toFixed(1)} (200 Hz, or a third of afterwards' ${after})\n${r.err}`);
      // the sampler keeps every thread's stack at every tick for lending, and bridges its missed
      // ticks: nearly every kernel sample of the program gets its Python frames
      const matched = Number(p.meta.extra?.ebpfMatched);
      const unmatched = Number(p.meta.extra?.ebpfUnmatched);
      assert.ok(unmatched <= 0.05 * (matched + unmatched), `${unmatched} of ${matched + unmatched} kernel samples without Python frames\n${r.err}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test('offcpu -- python (and python -I, held by ptrace until the probes are on): a 100 ms lock wait on the first line is attributed to first_100ms', { skip: noPy || noBpftrace || root, timeout: 180_000 }, () =>
  exclusive('timing', async () => {
    const dir = diskDir();
    try {
      for (const flags of [[], ['-I']]) {
        const r = pylens(['offcpu', '--json', '-o', join(dir, 'o.pylens'), '--', py!.exe, ...flags, FIRST, 'wait', join(dir, 'r.json')], dir);
        assert.equal(r.code, 0, r.err);
        assert.doesNotMatch(r.err, /first moments may be missing/);
        const j = JSON.parse(r.out) as { functions: { name: string; totalNs: number; byClass: Record<string, { ns: number }> }[] };
        const f = j.functions.find((x) => x.name === 'first_100ms');
        assert.ok(f && f.totalNs >= 80e6, `${flags.join(' ')}: first_100ms waited ${((f?.totalNs ?? 0) / 1e6).toFixed(1)} ms of 100\n${r.err}`);
        assert.ok((f.byClass.lock?.ns ?? 0) >= 0.8 * f.totalNs, JSON.stringify(f.byClass));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test('top -- python: first_100ms is in the table with its whole 100 ms', { skip: noPy, timeout: 120_000 }, () => {
  const dir = diskDir();
  try {
    // wall-clock mode (--idle): first_100ms's whole time, whether or not a loaded machine lets it run
    const r = pylens(['top', '--idle', '-r', '500', '--interval', '60', '--', py!.exe, FIRST, 'burn', join(dir, 'r.json')], dir);
    assert.equal(r.code, 0, r.err);
    const head = /Samples\/s ([\d.]+).*\n.*Samples (\d+)/.exec(r.out);
    assert.ok(head, r.out);
    const hz = Number(head[1]);
    const total = Number(head[2]);
    const own = r.out.split('\n').filter((l) => /\bfirst_100ms\b/.test(l)).reduce((a, l) => a + Number(/^\s*([\d.]+)%/.exec(l)?.[1] ?? 0), 0);
    const samples = (own / 100) * total;
    assert.ok(samples >= 0.8 * 0.1 * hz, `first_100ms: ${samples.toFixed(1)} samples, ${(0.1 * hz).toFixed(1)} expected\n${r.out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sched -- python: the main thread’s 100 ms wait on its first line is recorded', { skip: noPy || perfSkip({ kernel: true, systemWide: true, tracepoints: true }), timeout: 180_000 }, () => {
  const dir = diskDir();
  try {
    const res = join(dir, 'r.json');
    const r = pylens(['sched', '--json', '-o', join(dir, 's.html'), '--', py!.exe, FIRST, 'wait', res], dir);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { waits: { tid: number; durNs: number; state: string }[] };
    const pid = result(res).pid;
    const w = j.waits.filter((x) => x.tid === pid).sort((a, b) => b.durNs - a.durNs)[0];
    assert.ok(w && w.durNs >= 80e6 && w.state === 'S', `longest wait of ${pid}: ${JSON.stringify(w)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('io -- python: every direct write of the first 100 ms is seen, issued by the program', { skip: noPy || perfSkip({ systemWide: true, tracepoints: true }), timeout: 180_000 }, () =>
  exclusive('timing', async () => {
    const dir = diskDir();
    const spin = spinners();
    try {
      const res = join(dir, 'r.json');
      const r = pylens(['io', '--json', '--', py!.exe, FIRST, 'io', res, '0.1'], dir);
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out.slice(r.out.indexOf('{'))) as { processes: { pid: number; count: number }[] };
      const got = result(res);
      const mine = j.processes.find((x) => x.pid === got.pid);
      assert.ok(got.writes > 20, `${got.writes} writes`);
      assert.ok(mine && mine.count >= 0.8 * got.writes, `requests of ${got.pid}: ${mine?.count ?? 0} for ${got.writes} writes`);
    } finally {
      for (const s of spin) s.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test('perf -- python: perf -p is on the program before its first line: first_100ms has its samples', { skip: noPy || perfSkip({ kernel: false }), timeout: 180_000 }, () =>
  exclusive('timing', async () => {
    const dir = diskDir();
    try {
      const out = join(dir, 'p.pylens');
      const r = pylens(['perf', '-F', '499', '-o', out, '--', py!.exe, FIRST, 'burn', join(dir, 'r.json')], dir);
      assert.equal(r.code, 0, r.err);
      const p = decodePylens(readFileSync(out), out);
      const first = count(p, (n) => n.includes('first_100ms'));
      // 100 ms of CPU at 499 Hz: ~50 samples; 3.12's dwarf unwinding names the innermost Python function
      assert.ok(first >= 40, `perf samples in first_100ms: ${first} of ~50\n${r.err}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test('perf -- a program that is not Python: held in a shell before exec (same PID), recorded, its exit code passed on', { skip: perfSkip({ kernel: false }), timeout: 120_000 }, () =>
  exclusive('timing', async () => {
    const dir = diskDir();
    try {
      const out = join(dir, 'sh.pylens');
      const r = pylens(['perf', '-F', '499', '-o', out, '--', 'sh', '-c', 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exit 3'], dir);
      assert.equal(r.code, 3, r.err);
      const p = decodePylens(readFileSync(out), out);
      assert.ok(p.samples.length >= 50, `${p.samples.length} samples`);
      assert.equal(new Set(p.threads.pid).size, 1, 'one process: the gate shell became the program');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));
