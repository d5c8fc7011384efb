import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tachyonFrame, tachyonImporter } from '../../src/formats/tachyon.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { frameInfo, stackFrames, threadLabel, type Profile } from '../../src/model/profile.ts';
import { foldedStacks, validateProfile, withThreadRoots } from '../../src/model/query.ts';
import { detectsWithoutName, fixture, goldenSummary, rejectsGarbage } from '../helpers/format-checks.ts';

function parse(text: string, name = 'collapsed.txt'): Profile {
  const r = tachyonImporter.parse(InputFile.fromText(text, name));
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}

for (const name of ['collapsed-all-threads', 'collapsed-native']) {
  test(`golden: tachyon/3.15/${name}.txt`, () => {
    const p = detectsWithoutName(fixture(`tachyon/3.15/${name}.txt`), 'tachyon-collapsed');
    assert.equal(p.meta.backend, 'tachyon');
    goldenSummary(`tachyon-${name}`, p);
  });
}

test('tid roots become threads (pid 0); frames are file:func:line with qualified names', () => {
  const p = detectsWithoutName(fixture('tachyon/3.15/collapsed-all-threads.txt'), 'tachyon-collapsed');
  assert.deepEqual(Array.from({ length: p.threads.length }, (_, t) => threadLabel(p, t)).sort(), ['0/48213', '0/48215', '0/48216']);
  const rooted = new Map(foldedStacks(withThreadRoots(p, { threads: true })));
  assert.equal(rooted.get('thread 48215;Thread._bootstrap (threading.py:1012);Thread._bootstrap_inner (threading.py:1041);Thread.run (threading.py:992);alpha_thread (threads.py:34);alpha_spin (threads.py:17)'), 64);
  const i = [...Array(p.frames.length).keys()].map((f) => frameInfo(p, f)).find((f) => f.qualname === 'beta_spin.<locals>.<genexpr>')!;
  assert.deepEqual(i, { name: '<genexpr>', qualname: 'beta_spin.<locals>.<genexpr>', file: 'threads.py', line: 26, kind: 'python', lib: null });
});

test('synthetic <GC> and <native> frames are markers', () => {
  const p = detectsWithoutName(fixture('tachyon/3.15/collapsed-native.txt'), 'tachyon-collapsed');
  const gcStack = [...Array(p.samples.length).keys()].map((s) => stackFrames(p, p.samples.stack[s]!).map((f) => frameInfo(p, f))).find((fr) => fr.at(-1)!.name === '<GC>')!;
  assert.equal(gcStack.at(-1)!.kind, 'marker');
  assert.equal(gcStack.at(-3)!.name, '<native>');
  assert.equal(gcStack.at(-3)!.kind, 'marker');
  assert.equal(gcStack.length, 8);
});

test('tachyonFrame: func and line are the last two ":" fields', () => {
  assert.deepEqual(tachyonFrame('C:\\app\\x.py:main:12'), { name: 'main', qualname: 'main', file: 'C:\\app\\x.py', line: 12, kind: 'python' });
  assert.deepEqual(tachyonFrame('weird:name.py:Cls.meth:7'), { name: 'meth', qualname: 'Cls.meth', file: 'weird:name.py', line: 7, kind: 'python' });
  assert.deepEqual(tachyonFrame('<native>'), { name: '<native>', kind: 'marker' });
  assert.deepEqual(tachyonFrame("<method 'join' of 'str' objects>"), { name: "<method 'join' of 'str' objects>", kind: 'marker' });
  assert.deepEqual(tachyonFrame('x.py:f:notanumber'), { name: 'x.py:f:notanumber', kind: 'native' });
});

test('counts add per (thread, stack); a thread-only line is an empty stack', () => {
  const p = parse('tid:1;a.py:f:1 2\ntid:2;a.py:f:1 3\ntid:1;a.py:f:1 4\ntid:3 1\n');
  assert.equal(p.samples.length, 3);
  assert.deepEqual(foldedStacks(withThreadRoots(p, { threads: true })), [
    ['thread 1;f (a.py:1)', 6],
    ['thread 2;f (a.py:1)', 3],
    ['thread 3', 1],
  ]);
});

test('errors: later line without count or without tid root names the line; not-tachyon is NOT_MINE', () => {
  assert.throws(() => tachyonImporter.parse(InputFile.fromText('tid:1;a.py:f:1 2\ntid:1;a.py:f:1\n', 'c.txt')), (e: unknown) => {
    assert.ok(e instanceof ParseError);
    assert.equal(e.message, 'c.txt:2: expected "tid:<tid>;<frames> <count>" but the line has no count (reading it as tachyon-collapsed)');
    return true;
  });
  assert.throws(() => tachyonImporter.parse(InputFile.fromText('tid:1;a.py:f:1 2\nmain;x 3\n', 'c.txt')), /c\.txt:2: expected the stack to start with "tid:<tid>;" but it starts with "main;x"/);
  for (const t of ['main;x 3\n', 'hello\n', '', 'P1;T2;a 3\n']) assert.equal(tachyonImporter.parse(InputFile.fromText(t, 'x')), NOT_MINE, t);
  assert.ok(!tachyonImporter.detect(InputFile.fromText('main (a.py:1) 3\n')));
  assert.ok(tachyonImporter.detect(InputFile.fromText('tid:5;a.py:f:1 3\n')));
});

test('fuzz: damaged tachyon output gives ParseError or NOT_MINE', () => {
  rejectsGarbage(tachyonImporter, fixture('tachyon/3.15/collapsed-all-threads.txt').bytes, 150);
  rejectsGarbage(tachyonImporter, fixture('tachyon/3.15/collapsed-native.txt').bytes, 150);
});
