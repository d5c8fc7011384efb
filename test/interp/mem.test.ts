/**
 * `pylens mem`: the growth rule on made-up series (pure), then the real thing on every
 * installed CPython 3.8–3.13: a 30 MB buffer kept alive at a known line, a 60 MB transient
 * peak, a leaking line and an allocate-and-free line, snapshots at the interval, the
 * profile of bytes by traceback; exit codes and exceptions passing through; `-m module`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { detectGrowth, growthIndices, memReport, type MemData, type MemReport } from '../../src/capture/python/mem.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { aggregate } from '../../src/model/query.ts';
import { installedPythons } from '../sampler/pythons.ts';
import { exclusive } from '../helpers/exclusive.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'pylens-mem-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function pylens(args: string[], cwd = dir) {
  const r = spawnSync(NODE, [MAIN, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------
describe('growth rule', () => {
  const times = (n: number) => Array.from({ length: n }, (_, i) => i * 0.5);
  // a deterministic pseudo-random sequence
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

  test('a leak (steady growth with noise) is flagged, with its rate', () => {
    const s = Array.from({ length: 12 }, (_, i) => 1e6 + i * 200_000 + Math.round(rnd() * 20_000));
    const v = detectGrowth(s, times(12));
    assert.equal(v.growing, true, v.reason);
    assert.ok(Math.abs(v.rate - 400_000) < 50_000, `rate ${v.rate}`);
  });
  test('a leak sampled twice per step (rises every other interval) is flagged', () => {
    const s = Array.from({ length: 10 }, (_, i) => Math.floor(i / 2) * 300_000);
    assert.equal(detectGrowth(s, times(10)).growing, true);
  });
  test('an allocate-and-free loop (random live size) is rarely flagged: < 1 % at 4 intervals, never from 10', () => {
    for (const n of [4, 5, 6, 8, 10, 15, 30]) {
      let flagged = 0;
      const N = 4000;
      for (let k = 0; k < N; k++) {
        const s = Array.from({ length: n + 1 }, () => Math.round(rnd() * 2e6));
        if (detectGrowth(s, times(n + 1)).growing) flagged++;
      }
      assert.ok(flagged / N < (n >= 10 ? 1 / N : 0.01), `n=${n}: ${flagged} of ${N} flagged`);
    }
  });
  test('a perfectly rising series of 4 intervals is enough; 3 are not', () => {
    assert.equal(detectGrowth([0, 1e5, 2e5, 3e5, 4e5]).growing, true);
    assert.match(detectGrowth([0, 1e5, 2e5, 3e5]).reason, /too few/);
  });
  test('a one-off allocation (a cache filled once) is not flagged', () => {
    const v = detectGrowth([0, 0, 0, 5e6, 5e6, 5e6, 5.01e6], times(7));
    assert.equal(v.growing, false);
    assert.match(v.reason, /one step/);
  });
  test('small growth, too few snapshots and shrinking are not flagged', () => {
    assert.match(detectGrowth([0, 1000, 2000, 3000, 4000, 5000]).reason, /under/);
    assert.match(detectGrowth([0, 1e6, 2e6, 3e6]).reason, /too few/);
    assert.equal(detectGrowth([4e6, 3e6, 2e6, 1e6]).growing, false);
    assert.equal(detectGrowth([0, 1e6, 2e6, 3e6, 4e6], [], { minBytes: 5e6 }).growing, false);
    assert.equal(detectGrowth([0, 1e6, 2e6, 3e6, 4e6], [], { minBytes: 3e6 }).growing, true);
  });
  test('the exit snapshot is left out once there are four interval snapshots', () => {
    const snap = (kind: 'interval' | 'exit') => ({ t: 0, kind, traced: 0, blocks: 0, rss: null, peak: 0 });
    assert.deepEqual(growthIndices([snap('interval'), snap('interval'), snap('exit')]), [0, 1, 2]);
    assert.deepEqual(growthIndices([snap('interval'), snap('interval'), snap('interval'), snap('interval'), snap('exit')]), [0, 1, 2, 3]);
  });
});

// ---------------------------------------------------------------------------------------
const WORKLOAD = `import sys, time
def transient():
    b = bytearray(60_000_000)  # line 3: the peak
    time.sleep(0.15); del b
transient()
keep = bytearray(30_000_000)  # line 6: alive at exit
leaked = []
def leak():
    leaked.append(bytes(40_000))  # line 9: grows
def churn():
    tmp = [bytes(1000) for _ in range(400)]  # line 11: allocate and free
    time.sleep(0.003)
    del tmp
end = time.time() + float(sys.argv[1])
while time.time() < end:
    leak()
    churn()
    time.sleep(0.01)
`;
const workload = join(dir, 'workload.py');
writeFileSync(workload, WORKLOAD);

const pythons = installedPythons().filter((p) => p.minor >= 8 && p.label.startsWith('pyenv'));

describe('pylens mem on real CPythons', () => {
  for (const py of pythons) {
    // the snapshot schedule is timed: not beside the suite's CPU-heavy timing tests
    test(`${py.label}: sizes at the right lines, peak, growth, snapshots, profile`, () =>
      exclusive('timing', async () => {
      const out = join(dir, `w-${py.minor}.pylens`);
      const r = pylens(['mem', '--json', '--interval', '0.2', '-o', out, '--', py.exe, workload, '1.6']);
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as MemReport & { flamegraph: string; overhead: { fraction: number | null; method: string } };
      const line = (n: number) => rep.topLines.find((l) => l.file === workload && l.line === n);
      // the kept 30 MB at line 6, ±5 %
      const kept = line(6);
      assert.ok(kept, `line 6 missing: ${JSON.stringify(rep.topLines.slice(0, 3))}`);
      assert.ok(Math.abs(kept.bytes - 30e6) < 0.05 * 30e6, `line 6: ${kept.bytes}`);
      assert.equal(rep.topLines[0]!.line, 6);
      assert.equal(kept.function, '<module>');
      // the 60 MB peak (freed before exit), ±5 %
      assert.ok(Math.abs(rep.peak - 60e6) < 0.05 * 60e6, `peak ${rep.peak}`);
      // the largest snapshot seen while running (polled every 50 ms) caught it, at line 3
      assert.ok(rep.peakSnapshot, 'no snapshot near the peak');
      assert.equal(rep.peakSnapshot.topLines[0]!.line, 3);
      assert.equal(rep.peakSnapshot.topLines[0]!.function, 'transient');
      assert.ok(Math.abs(rep.peakSnapshot.topLines[0]!.bytes - 60e6) < 0.05 * 60e6);
      assert.ok(rep.current !== null && rep.current > 30e6 && rep.current < 40e6, `current ${rep.current}`);
      assert.ok(rep.rss !== null && rep.rss > 30e6 && rep.rssPeak !== null && rep.rssPeak >= 60e6, `rss ${rep.rss} ${rep.rssPeak}`);
      // the leak is flagged, the churn is not
      const flagged = rep.growth.lines.map((l) => `${l.function}:${l.line}`);
      assert.ok(flagged.includes('leak:9'), `flagged: ${flagged.join(', ')}`);
      assert.ok(!flagged.some((f) => f.endsWith(':11')), `churn flagged: ${flagged.join(', ')}`);
      assert.equal(flagged.length, 1, `only the leak: ${flagged.join(', ')}`);
      // snapshots on a 0.2 s schedule (one delayed by the program holding the GIL makes
      // the next gap shorter): the mean gap is the interval, the first comes at ~0.2 s —
      // up to 0.3 s later on a loaded machine (seen: 0.46–0.63 s with the whole suite
      // running), where the snapshot thread waits for a CPU and then for the GIL
      const iv = rep.snapshots.filter((s) => s.kind === 'interval');
      assert.ok(iv.length >= 5, `${iv.length} interval snapshots`);
      assert.ok(iv[0]!.t > 0.15 && iv[0]!.t < 0.7, `first at ${iv[0]!.t}`);
      const mean = (iv[iv.length - 1]!.t - iv[0]!.t) / (iv.length - 1);
      assert.ok(mean > 0.17 && mean < 0.4, `mean gap ${mean}`);
      for (let i = 1; i < iv.length; i++) {
        assert.ok(iv[i]!.t - iv[i - 1]!.t > 0.05, `gap ${iv[i]!.t - iv[i - 1]!.t}`);
        assert.ok(iv[i]!.rss !== null);
      }
      // the diff of a snapshot names the leak's line among its changes
      assert.ok(rep.snapshots.slice(1).some((s) => s.changes.some((c) => c.line === 9 && c.delta > 0)));
      // overhead is reported with its method
      assert.ok(rep.overhead && /small-object allocation loop/.test(rep.overhead.method), JSON.stringify(rep.overhead));
      // the profile: bytes by traceback, the script's frames at the root (no pylens frames)
      const p = decodePylens(readFileSync(out));
      assert.equal(p.meta.lens, 'interpreter');
      assert.equal(p.meta.backend, 'tracemalloc');
      assert.equal(p.meta.mode, 'allocations');
      assert.deepEqual(p.valueTypes.map((v) => v.unit), ['bytes', 'calls']);
      const rows = aggregate(p, { by: 'line' }).rows;
      const top = rows[0]!;
      assert.equal(top.line, 6);
      assert.ok(Math.abs(top.self - 30e6) < 0.05 * 30e6);
      const files = new Set<string>();
      for (let f = 0; f < p.frames.length; f++) if (p.frames.file[f]! >= 0) files.add(p.strings[p.frames.file[f]!]!);
      assert.ok(![...files].some((f) => /pylens_boot\.py|_runner\.py|_lens_mem\.py/.test(f)), [...files].join(', '));
      // leak() is called from <module> (line 16): root→leaf order
      const leakRow = rows.find((x) => x.line === 9)!;
      assert.ok(leakRow && leakRow.self > 0.5e6, 'leak line in the profile');
    }));
  }
});

describe('pass-through and -m', () => {
  const py = pythons.find((p) => p.minor === 12) ?? pythons[pythons.length - 1];
  test('exit code and uncaught exception pass through; the report is still written', { skip: !py }, () => {
    const s = join(dir, 'fail.py');
    writeFileSync(s, 'import sys\nx = bytearray(5_000_000)\nif len(sys.argv) > 1:\n    sys.exit(int(sys.argv[1]))\nraise ValueError("boom here")\n');
    const r1 = pylens(['mem', '--json', '--interval', '0', '-o', join(dir, 'f.pylens'), '--', py!.exe, s, '7']);
    assert.equal(r1.code, 7, r1.stderr);
    const rep1 = JSON.parse(r1.stdout) as MemReport;
    assert.equal(rep1.topLines[0]!.line, 2);
    const r2 = pylens(['mem', '-q', '-o', join(dir, 'f2.pylens'), '--', py!.exe, s]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /Traceback[\s\S]*fail\.py", line 5[\s\S]*ValueError: boom here/);
    assert.doesNotMatch(r2.stderr, /_runner\.py/);
    assert.match(r2.stderr, /pylens mem: the program raised ValueError: boom here/);
  });
  test('-m module runs as __main__ and its lines are found, runpy frames dropped', { skip: !py }, () => {
    writeFileSync(join(dir, 'memmod.py'), 'import sys\nassert __name__ == "__main__"\nbig = [0] * 2_000_000  # line 3\nprint("ok", sys.argv[1:])\n');
    const out = join(dir, 'm.pylens');
    const r = pylens(['mem', '--json', '--interval', '0', '-o', out, '--', py!.exe, '-m', 'memmod', 'a1'], dir);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as MemReport;
    assert.match(r.stdout, /^ok \['a1'\]/);
    const top = rep.topLines[0]!;
    assert.equal(top.line, 3);
    assert.ok(top.file.endsWith('memmod.py'));
    assert.ok(Math.abs(top.bytes - 16e6) < 0.05 * 16e6, `${top.bytes}`);
    const p = decodePylens(readFileSync(out));
    for (let f = 0; f < p.frames.length; f++) {
      const file = p.frames.file[f]! >= 0 ? p.strings[p.frames.file[f]!]! : '';
      assert.doesNotMatch(file, /runpy|pylens_boot|_runner/);
    }
  });
  test('bad options are usage errors', () => {
    const r = pylens(['mem', '--interval', '-1', '--', 'python3', 'x.py']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--interval/);
  });
});

// memReport on a hand-made result: the churn line's snapshot diffs do not make it "growing"
test('memReport: verdicts and top lines from a made-up result', () => {
  const data: MemData = {
    options: { interval: 1, frames: 4, top: 5 },
    current: 3e6, current_blocks: 10, peak: 5e6, peak_raw: 5e6, peak_exact: true, traced_raw: 3e6, tracemalloc_bytes: 1000, rss: 2e7, rss_peak: 3e7,
    snapshots: [0, 1, 2, 3, 4].map((i) => ({ t: i + 1, kind: 'interval' as const, traced: 1e6 + i * 5e5, blocks: 1, rss: 2e7, peak: 0 })).concat([{ t: 5.5, kind: 'exit' as never, traced: 3e6, blocks: 1, rss: 2e7, peak: 0 }]),
    lines: [
      { file: 'a.py', line: 1, function: 'f', sizes: [0, 5e5, 1e6, 1.5e6, 2e6, 2e6], counts: [0, 1, 2, 3, 4, 4] },
      { file: 'a.py', line: 2, function: 'g', sizes: [1e6, 0, 1e6, 0, 1e6, 1e6], counts: [1, 0, 1, 0, 1, 1] },
    ],
    frames: [['a.py', 1, 'f']],
    stacks: { exit: [[[0], 3e6, 10]], peak: null },
    peak_snapshot: null,
    timing: { calibration_ns: 0, snapshot_ns: 0, snapshots_taken: 5, final_ns: 0, slowdown: 1 },
  };
  const r = memReport(data);
  assert.deepEqual(r.growth.lines.map((l) => l.line), [1]);
  assert.equal(r.topLines[0]!.line, 1);
  assert.equal(r.snapshots[1]!.changes[0]!.line, 2);
  assert.equal(r.snapshots[1]!.deltaTraced, 5e5);
});
