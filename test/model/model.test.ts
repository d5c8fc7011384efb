import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { aggregate, callTree, filterSamples, focus, foldedStacks, mergeThreads, validateProfile, withThreadRoots } from '../../src/model/query.ts';
import { decodePylens, encodePylens } from '../../src/formats/pylens.ts';
import { upgradeDocument, FormatVersionError } from '../../src/model/versioning.ts';
import { readFileSync } from 'node:fs';
import { PYLENS_VERSION } from '../../src/version.ts';

function small() {
  const b = new ProfileBuilder({ meta: { backend: 'test' } });
  const main = b.frame({ name: 'main', file: '/app/m.py', line: 3 });
  const work = b.frame({ name: 'work', qualname: 'C.work', file: '/app/m.py', line: 10 });
  const work2 = b.frame({ name: 'work', qualname: 'C.work', file: '/app/m.py', line: 12 });
  const zlib = b.frame({ name: 'deflate', kind: 'native', lib: 'libz.so.1' });
  const t1 = b.thread(100, 100, 'MainThread');
  const t2 = b.thread(100, 101, 'worker');
  b.sample(b.stackOf([main, work]), 1, t1, 'on-cpu', 10);
  b.sample(b.stackOf([main, work]), 1, t1, 'on-cpu', 20);
  b.sample(b.stackOf([main, work2, zlib]), 1, t2, 'on-cpu', 30);
  b.sample(b.stackOf([main]), 1, t2, 'idle', 40);
  b.sample(b.stackOf([main, work, work]), 1, t1, 'gil', 50);
  return b.build();
}

test('builder interns frames and stacks; profile validates', () => {
  const p = small();
  validateProfile(p);
  assert.equal(p.frames.length, 4);
  assert.equal(p.stacks.length, 5);
  assert.equal(p.samples.length, 5);
  assert.equal(p.meta.sampleCount, 5);
  assert.equal(p.threads.length, 2);
});

test('folded stacks and aggregate by function and line', () => {
  const p = small();
  assert.deepEqual(foldedStacks(p), [
    ['main (m.py:3)', 1],
    ['main (m.py:3);C.work (m.py:10)', 2],
    ['main (m.py:3);C.work (m.py:10);C.work (m.py:10)', 1],
    ['main (m.py:3);C.work (m.py:12);deflate', 1],
  ]);
  const byFn = aggregate(p);
  const w = byFn.rows.find((r) => r.name === 'C.work')!;
  assert.equal(w.self, 3); // two samples end in work, plus the recursive leaf
  assert.equal(w.total, 4); // recursion counted once
  assert.equal(byFn.grandTotal, 5);
  const byLine = aggregate(p, { by: 'line' });
  assert.equal(byLine.rows.filter((r) => r.name === 'C.work').length, 2);
});

test('filter, focus, merge threads, thread roots, call tree', () => {
  const p = small();
  assert.equal(filterSamples(p, { tids: [101] }).samples.length, 2);
  assert.equal(filterSamples(p, { states: ['idle'] }).samples.length, 1);
  const f = focus(p, 'C.work');
  assert.equal(f.samples.length, 4);
  assert.ok(foldedStacks(f).every(([l]) => l.startsWith('C.work')));
  const m = mergeThreads(p);
  assert.equal(m.threads.length, 1);
  const r = withThreadRoots(p);
  assert.ok(foldedStacks(r).some(([l]) => l.startsWith('process 100;thread 101 (worker);main')));
  const tree = callTree(p);
  assert.equal(tree.total, 5);
  assert.equal(tree.children[0]!.total, 5);
  assert.equal(tree.children[0]!.self, 1);
});

test('.pylens round trip keeps everything', () => {
  const p = small();
  p.meta.environment = { cpuCores: 2, python: { version: '3.12.1' } };
  const q = decodePylens(encodePylens(p), 'x.pylens');
  assert.deepEqual(q, p);
});

test('.pylens rejects truncation and newer versions with clear errors', () => {
  const bytes = encodePylens(small());
  assert.throws(() => decodePylens(bytes.subarray(0, bytes.length - 10), 'cut.pylens'), /cut\.pylens at byte 12: compressed body is corrupt or truncated/);
  const newer = Buffer.from(bytes);
  newer.writeUInt32LE(7, 8);
  assert.throws(() => decodePylens(newer, 'new.pylens'), /newer pylens \(format version 7/);
});

test('step upgraders run in order and check each step', () => {
  const ups = { 1: (d: any) => ({ ...d, formatVersion: 2, a: 1 }), 2: (d: any) => ({ ...d, formatVersion: 3, b: d.a + 1 }) };
  assert.deepEqual(upgradeDocument({ formatVersion: 1 }, ups, 3), { formatVersion: 3, a: 1, b: 2 });
  assert.throws(() => upgradeDocument({ formatVersion: 1 }, { 1: (d: any) => ({ ...d, formatVersion: 5 }) }, 3), FormatVersionError);
  assert.throws(() => upgradeDocument({ formatVersion: 4 }, ups, 3), /newer pylens/);
});

test('version constant agrees with package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  assert.equal(PYLENS_VERSION, pkg.version);
});

test('ProfileBuilder unitValues: no value column while sampling, a column of ones after build; other values refused', () => {
  const b = new ProfileBuilder({ unitValues: true });
  const f = b.frame({ kind: 'python', name: 'f', file: 'a.py', line: 1 });
  const s = b.stack(-1, f);
  for (let i = 0; i < 3000; i++) b.sample(s, 1, b.thread(1, 1), 'on-cpu', i); // past two growths
  assert.throws(() => b.sample(s, 2), /only the value 1/);
  const p = b.build();
  assert.equal(p.samples.length, 3000);
  assert.equal(p.samples.values.length, 1);
  assert.equal(p.samples.values[0]!.length, 3000);
  assert.ok(p.samples.values[0]!.every((v) => v === 1));
  assert.equal(p.meta.sampleCount, 3000);
  assert.equal(p.samples.time![2999], 2999);
  assert.throws(() => new ProfileBuilder({ unitValues: true, valueTypes: [{ name: 'a', unit: 'samples' }, { name: 'b', unit: 'nanoseconds' }] }), /exactly one value type/);
});
