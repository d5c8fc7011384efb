import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pyspyRawImporter, pyspyRoots } from '../../src/formats/pyspy-raw.ts';
import { foldedExporter, foldedImporter } from '../../src/formats/folded.ts';
import { importProfile } from '../../src/formats/index.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { frameInfo, stackFrames, threadLabel, type Profile } from '../../src/model/profile.ts';
import { foldedStacks, validateProfile, withThreadRoots } from '../../src/model/query.ts';
import { detectsWithoutName, fixture, goldenSummary, rejectsGarbage } from '../helpers/format-checks.ts';

function parse(text: string, name = 'raw.txt'): Profile {
  const r = pyspyRawImporter.parse(InputFile.fromText(text, name));
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}

const threads = (p: Profile) => Array.from({ length: p.threads.length }, (_, t) => threadLabel(p, t));

const FIXTURES = ['record-lineno', 'record-nolineno', 'record-full-filenames', 'threads-hex', 'threads-tid', 'subprocesses'];

for (const name of FIXTURES) {
  test(`golden: pyspy/raw/${name}.txt`, () => {
    const p = detectsWithoutName(fixture(`pyspy/raw/${name}.txt`), 'pyspy-raw');
    assert.equal(p.meta.backend, 'py-spy');
    goldenSummary(`pyspy-raw-${name}`, p);
  });
}

test('frames: name (file:line) and name (file) are python frames with file and line', () => {
  const p = parse('<module> (/srv/app.py:45);main (app.py);<genexpr> (<string>:1) 3\n');
  const fr = stackFrames(p, p.samples.stack[0]!).map((f) => frameInfo(p, f));
  assert.deepEqual(fr, [
    { name: '<module>', qualname: '<module>', file: '/srv/app.py', line: 45, kind: 'python', lib: null },
    { name: 'main', qualname: 'main', file: 'app.py', line: 0, kind: 'python', lib: null },
    { name: '<genexpr>', qualname: '<genexpr>', file: '<string>', line: 1, kind: 'python', lib: null },
  ]);
  assert.equal(p.samples.values[0]![0], 3);
});

test('--native frames: C files and shared objects are native', () => {
  const p = parse('main (app.py:3);_PyEval_EvalFrameDefault (ceval.c:1234);deflate (libz.so.1) 1\n');
  const fr = stackFrames(p, p.samples.stack[0]!).map((f) => frameInfo(p, f));
  assert.equal(fr[1]!.kind, 'native');
  assert.equal(fr[1]!.line, 1234);
  assert.deepEqual(fr[2], { name: 'deflate', qualname: 'deflate', file: 'libz.so.1', line: 0, kind: 'native', lib: 'libz.so.1' });
});

test('thread roots become threads: hex and decimal ids, with and without names', () => {
  const p = detectsWithoutName(fixture('pyspy/raw/threads-hex.txt'), 'pyspy-raw');
  assert.deepEqual(threads(p), [
    `MainThread (0/${0x7f3a9ca1c740})`,
    `worker-alpha (0/${0x7f3a9b9ff6c0})`,
    `worker-beta (0/${0x7f3a9b1fe6c0})`,
    `0/${0x7f3a9a9fd6c0}`,
  ]);
  // The roots are not frames.
  assert.ok(foldedStacks(p).every(([s]) => !s.startsWith('thread')));
  const q = detectsWithoutName(fixture('pyspy/raw/threads-tid.txt'), 'pyspy-raw');
  assert.deepEqual(threads(q), ['MainThread (0/48213)', 'worker-alpha (0/48215)', 'worker-beta (0/48216)', '0/48217']);
  // Per-thread values.
  const t = q.threads.tid.indexOf(48215);
  let sum = 0;
  for (let i = 0; i < q.samples.length; i++) if (q.samples.thread[i] === t) sum += q.samples.values[0]![i]!;
  assert.equal(sum, 66);
});

test('process roots: pid of the innermost process, command lines with ";" and quotes kept', () => {
  const p = detectsWithoutName(fixture('pyspy/raw/subprocesses.txt'), 'pyspy-raw');
  assert.deepEqual(threads(p), [`MainThread (1234/${0x7f1c2e5b4740})`, `MainThread (1240/${0x7f8e11d2a740})`, `MainThread (1241/${0x7f5d0a1e3740})`]);
  assert.equal(p.meta.pid, 1234);
  assert.equal(p.meta.extra?.['cmdline.1234'], 'python app.py');
  assert.equal(p.meta.extra?.['cmdline.1240'], '/usr/bin/python3.12 -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7) --multiprocessing-fork');
  assert.equal(p.meta.extra?.['cmdline.1241'], 'python worker.py --label say "hi" --n 3');
  assert.equal(p.meta.extra?.['parent.1241'], 1234);
  // withThreadRoots puts the roots back in pylens' own form.
  const rooted = new Map(foldedStacks(withThreadRoots(p)));
  assert.equal(rooted.get(`process 1241;thread ${0x7f5d0a1e3740} (MainThread);<module> (worker.py:22);loop (worker.py:15);step (worker.py:9)`), 47);
});

test('pyspyRoots: edge cases of the root grammar', () => {
  assert.deepEqual(pyspyRoots('thread (0x10): a b;c (x.py:1)'), { processes: [], tid: 16, threadName: 'a b', framesAt: 19 });
  assert.deepEqual(pyspyRoots('process 7:"a";b (x.py)'), { processes: [{ pid: 7, cmdline: 'a' }], framesAt: 14 });
  assert.deepEqual(pyspyRoots('process 7:"a;b"'), { processes: [{ pid: 7, cmdline: 'a;b' }], framesAt: 15 });
  assert.match(pyspyRoots('thread (zz);a (b)').error!, /thread id/);
});

test('detection: only py-spy labels; plain Gregg folded and other dialects are not claimed', () => {
  const yes = (t: string) => pyspyRawImporter.detect(InputFile.fromText(t));
  assert.ok(yes('main (a.py:1);f (b.py:2) 5\n'));
  assert.ok(yes('thread (0x7F00): MainThread;main (a.py:1) 5\n'));
  assert.ok(!yes('main;outer;inner 5\n'));
  assert.ok(!yes('tid:12;a.py:main:1 5\n'));
  assert.ok(!yes('Thread 55d1;main (a.py:1) 5\n'));
  assert.ok(!yes('{"a": 1}\n'));
  // The dispatcher sends plain folded text to the folded importer.
  assert.equal(importProfile(InputFile.fromText('main;outer;inner 5\n')).detection.importer.id, 'folded');
});

test('a later line without a count is a ParseError naming the line; a malformed root too', () => {
  assert.throws(() => pyspyRawImporter.parse(InputFile.fromText('main (a.py:1) 5\nmain (a.py:1);f (b.py:2)\n', 'r.txt')), (e: unknown) => {
    assert.ok(e instanceof ParseError);
    assert.equal(e.message, 'r.txt:2: expected "stack count" but the line has no count (reading it as pyspy-raw)');
    return true;
  });
  assert.throws(() => pyspyRawImporter.parse(InputFile.fromText('main (a.py:1) 5\nthread (0xZZ);f (b.py:2) 1\n', 'r.txt')), /r\.txt:2: expected a thread id \(hex "0x…" or decimal\) in "thread \(0xZZ\)"/);
  assert.equal(pyspyRawImporter.parse(InputFile.fromText('hello world\n', 'x')), NOT_MINE);
  assert.equal(pyspyRawImporter.parse(InputFile.fromText('a;b 1\n', 'x')), NOT_MINE, 'plain folded is not py-spy');
});

test('truncated file: the cut line has no count', () => {
  const text = new TextDecoder().decode(fixture('pyspy/raw/record-lineno.txt').bytes);
  const cut = text.slice(0, text.indexOf('\n', 300) - 10);
  assert.throws(() => pyspyRawImporter.parse(InputFile.fromText(cut, 'cut.txt')), /^ParseError: cut\.txt:\d+: expected "stack count"/);
});

test('fuzz: damaged py-spy output gives ParseError or NOT_MINE', () => {
  for (const name of FIXTURES) rejectsGarbage(pyspyRawImporter, fixture(`pyspy/raw/${name}.txt`).bytes, 100);
});

test('py-spy raw → folded export → re-import keeps stacks (threads need withThreadRoots)', () => {
  const p = pyspyRawImporter.parse(fixture('pyspy/raw/threads-tid.txt')) as Profile;
  const back = foldedImporter.parse(InputFile.fromText(foldedExporter.write(withThreadRoots(p)) as string, 'x.folded')) as Profile;
  assert.deepEqual(foldedStacks(back), foldedStacks(withThreadRoots(p)));
  const backRaw = pyspyRawImporter.parse(InputFile.fromText(foldedExporter.write(p) as string, 'x.txt')) as Profile;
  assert.deepEqual(foldedStacks(backRaw), foldedStacks(p));
});
