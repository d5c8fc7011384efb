/**
 * What `report` adds to the top table (src/analysis/report.ts): each function's split over
 * sample states and wait classes, and the wide bottoms — on profiles built to known shapes,
 * then through the CLI (text and JSON).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stateSplits, statesPresent, wideBottoms } from '../../src/analysis/report.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { aggregate, moduleOf } from '../../src/model/query.ts';
import { encodePylens } from '../../src/formats/pylens.ts';
import type { Profile, SampleState } from '../../src/model/profile.ts';
import { ROOT } from '../helpers/format-checks.ts';

/** main → handle → {parse, query, render, log} and main → idle_loop; handle's query waits on a lock half the time */
function service(): Profile {
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'test', mode: 'wall' }, unitValues: true });
  const py = (name: string) => b.frame({ kind: 'python', name, qualname: name, file: `/srv/app/${name}.py`, line: 1 });
  const main = b.stack(-1, py('main'));
  const handle = b.stack(main, py('handle'));
  const leaf = (parent: number, name: string) => b.stack(parent, py(name));
  const lockWait = b.stack(leaf(handle, 'query'), b.frame({ kind: 'marker', name: '[wait: lock]' }));
  const add = (stack: number, n: number, state: SampleState) => {
    for (let i = 0; i < n; i++) b.sample(stack, 1, 0, state, i);
  };
  add(leaf(handle, 'parse'), 20, 'on-cpu');
  add(leaf(handle, 'query'), 10, 'on-cpu');
  add(lockWait, 10, 'off-cpu');
  add(leaf(handle, 'render'), 15, 'on-cpu');
  add(leaf(handle, 'log'), 5, 'gil');
  add(leaf(main, 'idle_loop'), 40, 'idle');
  return b.build();
}

test('state split: each function by state, off-CPU by wait class, recursion and markers counted once', () => {
  const p = service();
  assert.deepEqual(statesPresent(p), ['on-cpu', 'off-cpu', 'idle', 'gil']);
  const agg = aggregate(p);
  const splits = stateSplits(p);
  const of = (name: string) => splits.get(agg.keys[agg.rows.findIndex((r) => r.name === name)]!)!;
  assert.deepEqual(of('query'), { total: 20, states: { 'on-cpu': 10, 'off-cpu': 10 }, waits: { lock: 10 } });
  assert.deepEqual(of('handle').states, { 'on-cpu': 45, 'off-cpu': 10, gil: 5 });
  assert.equal(of('main').total, 100);
  assert.deepEqual(of('idle_loop').states, { idle: 40 });
});

test('wide bottoms: handle fans out into four callees; main (two children, one of them most of it) and leaves are not listed', () => {
  const w = wideBottoms(service());
  assert.deepEqual(w.map((x) => x.name), ['handle']);
  assert.equal(w[0]!.callees, 4);
  assert.equal(w[0]!.share, 0.6);
  assert.deepEqual(w[0]!.path, ['main', 'handle']);
  assert.ok(Math.abs(w[0]!.largestCallee - 20 / 60) < 1e-12);
  // a chain that hands all its time to one child is walked through
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'test', mode: 'cpu' }, unitValues: true });
  let s = -1;
  for (const n of ['<module>', 'main', 'run']) s = b.stack(s, b.frame({ kind: 'python', name: n, qualname: n, file: '/a.py', line: 1 }));
  for (const n of ['a', 'b', 'c', 'd']) {
    const leaf = b.stack(s, b.frame({ kind: 'python', name: n, qualname: n, file: '/a.py', line: 2 }));
    for (let i = 0; i < 25; i++) b.sample(leaf, 1);
  }
  assert.deepEqual(wideBottoms(b.build()).map((x) => x.name), ['run']);
});

test('report prints the state split column and the wide bottoms; JSON carries both', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-report-'));
  try {
    const f = join(dir, 's.pylens');
    writeFileSync(f, encodePylens(service()));
    const r = spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'report', f], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Wide bottoms \(where the time fans out; fix these first\):\n\s+60\.00%\s+handle \(handle\.py\) — 4 callees, the largest 33% of it, 0\.00% in itself$/m);
    assert.match(r.stdout, /State split/);
    assert.match(r.stdout, /cpu 50% · off-cpu 50% \(lock 50%\)\s+query \(query\.py\)/);
    const j = JSON.parse(spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'report', f, '--json'], { encoding: 'utf8' }).stdout);
    const q = j.rows.find((x: { name: string }) => x.name === 'query');
    assert.deepEqual(q.states, { 'on-cpu': 10, 'off-cpu': 10 });
    assert.deepEqual(q.waits, { lock: 10 });
    assert.equal(j.wideBottoms[0].name, 'handle');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('by file and by module: site-packages and stdlib paths become dotted modules; self and total per file', () => {
  assert.equal(moduleOf('/usr/lib/python3/dist-packages/pydantic/main.py'), 'pydantic.main');
  assert.equal(moduleOf('/root/.pyenv/versions/3.12.1/lib/python3.12/json/__init__.py'), 'json');
  assert.equal(moduleOf('/root/.pyenv/versions/3.12.1/lib/python3.12/json/decoder.py'), 'json.decoder');
  assert.equal(moduleOf('<frozen importlib._bootstrap>'), 'importlib._bootstrap');
  assert.equal(moduleOf('/srv/app/app.py'), 'app');
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'test', mode: 'cpu' }, unitValues: true });
  const fr = (name: string, file: string) => b.frame({ kind: 'python', name, qualname: name, file, line: 3 });
  const main = b.stack(-1, fr('main', '/srv/app/app.py'));
  const dec = b.stack(b.stack(main, fr('loads', '/usr/lib/python3.11/json/__init__.py')), fr('decode', '/usr/lib/python3.11/json/decoder.py'));
  const val = b.stack(main, fr('validate', '/usr/lib/python3/dist-packages/pydantic/main.py'));
  for (let i = 0; i < 30; i++) b.sample(dec, 1);
  for (let i = 0; i < 10; i++) b.sample(val, 1);
  const p = b.build();
  const mods = aggregate(p, { by: 'module' }).rows.map((r) => [r.label, r.self, r.total]);
  assert.deepEqual(mods, [['json.decoder', 30, 30], ['pydantic.main', 10, 10], ['app', 0, 40], ['json', 0, 30]]);
  const files = aggregate(p, { by: 'file' }).rows.map((r) => r.label);
  assert.deepEqual(files, ['decoder.py', 'main.py', 'app.py', '__init__.py']);
});

// ---- golden outputs: the whole text, byte for byte (PYLENS_UPDATE_GOLDEN=1 rewrites them)

const GOLDEN = join(import.meta.dirname, 'golden');

for (const [name, args] of [
  ['report-service.txt', []],
  ['report-service-by-line.txt', ['--by', 'line']],
  ['report-service-limit2.txt', ['--limit', '2', '--state', 'on-cpu']],
] as const) {
  test(`report golden output: ${name}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'pylens-report-'));
    try {
      const f = join(dir, 's.pylens');
      writeFileSync(f, encodePylens(service()));
      const r = spawnSync(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'report', f, ...args], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const path = join(GOLDEN, name);
      if (process.env.PYLENS_UPDATE_GOLDEN) {
        mkdirSync(GOLDEN, { recursive: true });
        writeFileSync(path, r.stdout);
      }
      assert.equal(r.stdout, readFileSync(path, 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
