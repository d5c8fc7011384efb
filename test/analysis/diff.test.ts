/**
 * `pylens diff` (src/analysis/diff.ts, src/render/diff.ts, src/cli/diff.ts): the statistics
 * against known values; false positives on null pairs and power on known changes with
 * synthetic profiles (correlated samples as real recordings have); exact comparison of call
 * counts; real recordings of a program before and after a change through the CLI (text,
 * JSON, --fail-on-regression, flamegraphs); the differential page in real Chromium.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffProfiles } from '../../src/analysis/diff.ts';
import { shortestUniquePaths } from '../../src/model/labels.ts';
import { seededRandom } from '../../src/analysis/random.ts';
import { benjaminiHochberg, normalTwoSided, studentTwoSided } from '../../src/analysis/stats.ts';
import { renderDiffHtml, renderDiffSvg } from '../../src/render/diff.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { encodePylens } from '../../src/formats/pylens.ts';
import { ROOT } from '../helpers/format-checks.ts';
import { installedPythons } from '../sampler/pythons.ts';
import { launch, openFile, tempDir, writeTemp } from '../render/browser.ts';
import { synthProfile } from './synthetic-profiles.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const VARIANT = join(ROOT, 'test', 'analysis', 'scripts', 'variant.py');
const SHARES = [30, 20, 15, 10, 8, 6, 5, 3, 2, 1];

function pylens(args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('stats: normal and t tails, Benjamini–Hochberg, against published values', () => {
  assert.ok(Math.abs(normalTwoSided(1.959964) - 0.05) < 1e-6);
  assert.ok(Math.abs(normalTwoSided(5) - 5.733031e-7) < 1e-12);
  assert.ok(Math.abs(studentTwoSided(2.228139, 10) - 0.05) < 1e-6);
  assert.ok(Math.abs(studentTwoSided(12.7062, 1) - 0.05) < 1e-5);
  assert.ok(Math.abs(studentTwoSided(1, 1) - 0.5) < 1e-12);
  assert.deepEqual(benjaminiHochberg([0.01, 0.04, 0.03, 0.2]).map((q) => Number(q.toFixed(6))), [0.04, 0.053333, 0.053333, 0.2]);
});

test('shortestUniquePaths: base names when unique, one more folder where two clash', () => {
  const m = shortestUniquePaths(['/usr/lib/python3/dist-packages/pydantic/main.py', '/usr/lib/python3/dist-packages/uvicorn/main.py', '/srv/app/app.py', '/a/x/util.py', '/b/x/util.py']);
  assert.equal(m.get('/usr/lib/python3/dist-packages/pydantic/main.py'), 'pydantic/main.py');
  assert.equal(m.get('/usr/lib/python3/dist-packages/uvicorn/main.py'), 'uvicorn/main.py');
  assert.equal(m.get('/srv/app/app.py'), 'app.py');
  assert.equal(m.get('/a/x/util.py'), 'a/x/util.py');
  assert.equal(m.get('/b/x/util.py'), 'b/x/util.py');
});

test('null pairs: over 100 pairs of the same program recorded twice, at most 5 % flag anything (independent and correlated samples)', () => {
  for (const stay of [0, 0.8]) {
    let flagged = 0;
    for (let k = 0; k < 100; k++) {
      const r = seededRandom(7919 * k + 1 + stay * 1000);
      const d = diffProfiles([synthProfile({ shares: SHARES, samples: 5000, stay, random: r })], [synthProfile({ shares: SHARES, samples: 5000, stay, random: r })]);
      if (d.functions.some((f) => f.significant) || d.paths.some((p) => p.significant)) flagged++;
    }
    assert.ok(flagged <= 5, `stay ${stay}: ${flagged} of 100 null pairs flagged a change`);
  }
});

test('power: a 3-point change at 10 k samples is detected, false discoveries within the rate; a large change is found in correlated samples too', () => {
  let hit = 0;
  let other = 0;
  let found = 0;
  for (let k = 0; k < 40; k++) {
    const r = seededRandom(104729 * k + 3);
    const base = synthProfile({ shares: SHARES, samples: 10_000, stay: 0, random: r });
    const neu = synthProfile({ shares: SHARES.map((x, i) => (i === 0 ? 33 : i === 1 ? 17 : x)), samples: 10_000, stay: 0, random: r });
    const d = diffProfiles([base], [neu]);
    const f0 = d.functions.find((f) => f.name === 'f0')!;
    if (f0.significant && f0.delta > 0) hit++;
    other += d.functions.filter((f) => f.significant && !/^(f0|f1|mid_0|mid_1)$/.test(f.name)).length;
    found += d.functions.filter((f) => f.significant).length;
    assert.equal(f0.status === 'grew' || f0.status === 'same', true);
  }
  assert.ok(hit >= 36, `f0 +3 points detected in ${hit} of 40 diffs`);
  // Benjamini–Hochberg bounds the share of false discoveries among the discoveries by alpha
  assert.ok(other <= 0.1 * found, `${other} unrelated functions among ${found} flagged`);
  // a large change is found even when samples come in long runs of the same function
  const r = seededRandom(42);
  const d = diffProfiles([synthProfile({ shares: SHARES, samples: 10_000, stay: 0.8, random: r })], [synthProfile({ shares: SHARES.map((x, i) => (i === 0 ? 45 : x)), samples: 10_000, stay: 0.8, random: r })]);
  assert.equal(d.method, 'blocks');
  const f0 = d.functions[0]!;
  assert.equal(f0.name, 'f0');
  assert.ok(f0.significant && f0.delta > 5, JSON.stringify(f0));
});

test('repeated runs per side: per-run shares (method runs), pooled sizes, significant only beyond run-to-run noise', () => {
  const r = seededRandom(5);
  const runs = (shares: number[]) => [0, 1, 2, 3].map(() => synthProfile({ shares, samples: 2000, stay: 0.5, random: r }));
  const d = diffProfiles(runs(SHARES), runs(SHARES.map((x, i) => (i === 2 ? 25 : x))));
  assert.equal(d.method, 'runs');
  assert.equal(d.base.runs, 4);
  assert.equal(d.base.samples, 8000);
  const f2 = d.functions.find((f) => f.name === 'f2')!;
  assert.equal(f2.significant, true);
  assert.ok(f2.delta > 5);
  assert.ok(d.functions.slice(0, 2).includes(f2), 'f2 (or mid_2 above it, which moved as much) first');
});

test('three runs a side: null pairs with run-to-run spread flag ≤ 5 %; a function that appears at ~50 % in every run is found', () => {
  // each run's shares jitter by ±30 % (a run-level random effect) and samples come in runs
  // of the same function; before the pooled dispersion, 15–35 % of such null pairs flagged
  // something and a 0 → 50 % change was missed in 40–60 % of diffs
  for (const samples of [80, 2000]) {
    let flagged = 0;
    let found = 0;
    for (let k = 0; k < 200; k++) {
      const r = seededRandom(7919 * k + 11 + samples);
      const gauss = () => {
        let s = 0;
        for (let i = 0; i < 12; i++) s += r();
        return s - 6;
      };
      const run = (extra: number) => synthProfile({ shares: [extra, ...SHARES].map((x) => Math.max(1e-4, x * (1 + 0.3 * gauss()))), samples, stay: 0.5, random: r });
      const d = diffProfiles([run(0), run(0), run(0)], [run(0), run(0), run(0)]);
      assert.equal(d.method, 'runs');
      if (d.functions.some((f) => f.significant)) flagged++;
      if (k < 100) {
        const g = diffProfiles([run(0), run(0), run(0)], [run(100), run(100), run(100)]);
        if (g.functions.find((f) => f.name === 'f0')?.significant) found++;
      }
    }
    assert.ok(flagged <= 10, `${samples} samples a run: ${flagged} of 200 null pairs flagged a change`);
    assert.ok(found >= 90, `${samples} samples a run: 0 → 50 % found in ${found} of 100`);
  }
});

test('call counts compare exactly: every change is significant, none is invented', () => {
  const make = (calls: number[]) => {
    const b = new ProfileBuilder({ meta: { lens: 'interpreter', backend: 'cProfile', mode: 'calls' }, valueTypes: [{ name: 'calls', unit: 'calls' }] });
    const main = b.stack(-1, b.frame({ kind: 'python', name: 'main', qualname: 'main', file: '/app/m.py', line: 1 }));
    calls.forEach((c, i) => b.sample(b.stack(main, b.frame({ kind: 'python', name: `g${i}`, qualname: `g${i}`, file: '/app/m.py', line: 10 + i })), c));
    return b.build();
  };
  const d = diffProfiles([make([10, 20, 30])], [make([10, 25, 30])]);
  assert.equal(d.method, 'exact');
  const g1 = d.functions.find((f) => f.name === 'g1')!;
  assert.equal(g1.significant, true);
  assert.ok(Math.abs(g1.newShare - 25 / 65) < 1e-12 && Math.abs(g1.baseShare - 20 / 60) < 1e-12);
  assert.equal(d.functions.find((f) => f.name === 'main')!.significant, false);
});

test('paths: appeared and vanished call paths, parents before children; the SVG marks them and carries both widths', () => {
  const b1 = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: 'cpu' }, unitValues: true });
  const b2 = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: 'cpu' }, unitValues: true });
  for (const [b, leaf] of [[b1, 'old_path'], [b2, 'new_path']] as const) {
    const main = b.stack(-1, b.frame({ kind: 'python', name: 'main', qualname: 'main', file: '/app/m.py', line: 1 }));
    const keep = b.stack(main, b.frame({ kind: 'python', name: 'keep', qualname: 'keep', file: '/app/m.py', line: 5 }));
    const other = b.stack(main, b.frame({ kind: 'python', name: leaf, qualname: leaf, file: '/app/m.py', line: 9 }));
    for (let i = 0; i < 4000; i++) b.sample(i % 2 ? keep : other, 1, 0, 'on-cpu', i * 1e7);
  }
  const d = diffProfiles([b1.build()], [b2.build()]);
  const byName = (n: string) => d.paths.find((p) => d.keys[p.path.at(-1)!]!.name === n)!;
  assert.equal(byName('new_path').status, 'appeared');
  assert.equal(byName('old_path').status, 'vanished');
  assert.equal(byName('keep').status, 'same');
  for (const p of d.paths) if (p.parent >= 0) assert.ok(p.parent < d.paths.indexOf(p));
  const svg = renderDiffSvg(d);
  assert.match(svg, /<title>new_path \(m\.py\) \[new\] \(new 50\.00 %, base 0\.00 %/);
  assert.match(svg, /<title>old_path \(m\.py\) \[gone\] \(new 0\.00 %, base 50\.00 %/);
  assert.match(svg, /data-xb="[\d.]+" data-wb="0\.5"/);
  assert.match(svg, /id="widths"/);
});

const py = installedPythons().find((p) => p.minor === 12 && p.label.startsWith('pyenv')) ?? installedPythons().find((p) => p.label.startsWith('pyenv'));

test('real recordings before and after a change: render() grew, is flagged with its file; JSON fields; --fail-on-regression; flamegraphs', { skip: !py && 'no pyenv CPython', timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-diff-'));
  try {
    const rec = (name: string, variant: string) => {
      const out = join(dir, `${name}.pylens`);
      const r = pylens(['record', '-q', '-r', '200', '-o', out, '--', py!.exe, VARIANT, '6', variant]);
      assert.equal(r.code, 0, r.err);
      return out;
    };
    const before = rec('before', 'fast');
    const after = rec('after', 'slow');
    const t = pylens(['diff', before, after]);
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, /^Diff by function, shares of samples — base: 1 run, [\d,]+ samples/m);
    assert.match(t.out, /^▲\s+\+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d .* render \(variant\.py\)$/m);
    const j = pylens(['diff', before, after, '--json']);
    assert.equal(j.code, 0, j.err);
    const doc = JSON.parse(j.out) as { functions: Array<{ name: string; file: string; baseShare: number; newShare: number; delta: number; significant: boolean; pValue: number }> };
    const render = doc.functions.find((f) => f.name === 'render')!;
    assert.ok(render.significant && render.delta > 2 && render.pValue < 0.01, JSON.stringify(render));
    assert.ok(render.file.endsWith('variant.py'));
    assert.ok(Math.abs(render.delta - 100 * (render.newShare - render.baseShare)) < 1e-9);
    assert.equal(doc.functions.find((f) => f.name === 'main')!.significant, false);
    // CI: a regression over the threshold fails, a higher threshold passes
    const fail = pylens(['diff', before, after, '--fail-on-regression', '1']);
    assert.equal(fail.code, 3, fail.err);
    assert.match(fail.err, /regression.* over 1 points: .*render \+\d/);
    assert.equal(pylens(['diff', before, after, '--fail-on-regression', '60']).code, 0);
    // the reverse comparison shrinks
    const rev = JSON.parse(pylens(['diff', after, before, '--json']).out) as typeof doc;
    assert.ok(rev.functions.find((f) => f.name === 'render')!.delta < -2);
    // flamegraphs
    const html = join(dir, 'd.html');
    const svg = join(dir, 'd.svg');
    assert.equal(pylens(['diff', before, after, '-o', html]).code, 0);
    assert.equal(pylens(['diff', '--base', before, '--new', after, '-o', svg]).code, 0);
    assert.match(readFileSync(html, 'utf8'), /<svg [^>]*data-widths="new"/);
    assert.match(readFileSync(svg, 'utf8'), /^<\?xml/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('diff: bad input says which file and how to fix it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-diff-'));
  try {
    const good = join(dir, 'a.pylens');
    writeFileSync(good, encodePylens(synthProfile({ shares: SHARES, samples: 100, random: seededRandom(1) })));
    const one = pylens(['diff', good]);
    assert.equal(one.code, 2);
    assert.match(one.err, /needs two profiles/);
    const missing = pylens(['diff', good, join(dir, 'nope.pylens')]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /cannot read '.*nope\.pylens': no such file/);
    const bad = join(dir, 'bad.pylens');
    writeFileSync(bad, 'PYLENS\0garbage');
    const corrupt = pylens(['diff', good, bad]);
    assert.equal(corrupt.code, 1);
    assert.match(corrupt.err, /bad\.pylens/);
    const ext = pylens(['diff', good, good, '-o', join(dir, 'x.txt')]);
    assert.equal(ext.code, 2);
    assert.match(ext.err, /\.html or \.svg/);
    const both = pylens(['diff', good, '--base', good, '--new', good]);
    assert.equal(both.code, 2);
    assert.equal(existsSync(join(dir, 'x.txt')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the differential page in Chromium: colours, no requests, Widths switches to BASE and back, vanished frames only at BASE widths', { timeout: 60_000 }, async () => {
  const r = seededRandom(9);
  const base = synthProfile({ shares: [50, 30, 20], samples: 4000, stay: 0, random: r });
  const neu = synthProfile({ shares: [30, 30, 20, 20], samples: 4000, stay: 0, random: r });
  const d = diffProfiles([base], [neu]);
  const { dir, cleanup } = tempDir();
  const browser = await launch();
  try {
    const o = await openFile(browser, writeTemp(dir, 'diff.html', renderDiffHtml(d, { title: 'diff test' })));
    const page = o.page;
    const fills = await page.$$eval('g.f[data-significant] rect', (rs) => rs.map((x) => x.getAttribute('fill')));
    const rgb = (f: string | null) => (/^rgb\((\d+),(\d+),(\d+)\)$/.exec(f ?? '') ?? []).slice(1).map(Number);
    assert.ok(fills.some((f) => rgb(f)[0]! > rgb(f)[2]! + 60), `a red frame: ${fills.join(' ')}`);
    assert.ok(fills.some((f) => rgb(f)[2]! > rgb(f)[0]! + 60), `a blue frame: ${fills.join(' ')}`);
    const visible = async (name: string) => page.$eval(`xpath=//*[local-name()='g'][starts-with(*[local-name()='title'], '${name} ')]`, (g) => !g.classList.contains('hide') && !g.querySelector('rect')!.classList.contains('hide'));
    assert.equal(await visible('f3'), true, 'appeared f3 is drawn at NEW widths');
    const f0w = async () => Number(await page.$eval(`xpath=//*[local-name()='g'][starts-with(*[local-name()='title'], 'f0 ')]/*[local-name()='rect']`, (x) => x.getAttribute('width')));
    const wNew = await f0w();
    await page.click('#widths');
    assert.equal(await page.$eval('svg[data-total]', (s) => s.getAttribute('data-widths')), 'base');
    const wBase = await f0w();
    assert.ok(wBase > wNew * 1.4, `f0 is wider at BASE widths: ${wBase} vs ${wNew}`);
    assert.equal(await visible('f3'), false, 'f3 did not exist in BASE');
    await page.click('#widths');
    assert.equal(Math.round(await f0w()), Math.round(wNew));
    assert.deepEqual(o.errors, []);
    assert.deepEqual(o.requests.filter((u) => !u.startsWith('file:')), []);
  } finally {
    await browser.close();
    cleanup();
  }
});
