/**
 * Austin collapsed samples. The captured fixtures (Austin 1.0.1) change on every
 * regeneration, so besides the goldens these tests check structure and known functions;
 * Austin 2/3 syntax is covered by small inline inputs written from the documented grammar.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { austinImporter } from '../../src/formats/austin.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { frameInfo, stackFrames, threadLabel, type Profile } from '../../src/model/profile.ts';
import { foldedStacks, validateProfile, withThreadRoots } from '../../src/model/query.ts';
import { detectsWithoutName, fixture, goldenSummary, rejectsGarbage } from '../helpers/format-checks.ts';

function parse(text: string, name = 'x.austin'): Profile {
  const r = austinImporter.parse(InputFile.fromText(text, name));
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}

const FIXTURES = ['mixed', 'callchain-alt-format', 'callchain-full-metrics'];
const lastNumbers = (rel: string, k: number) => {
  const sums = [0, 0, 0];
  for (const l of new TextDecoder().decode(fixture(rel).bytes).split('\n')) {
    const t = l.trim().split(/\s+/);
    if (l.trim() === '') continue;
    for (let j = 0; j < k; j++) sums[j] += Number(t[t.length - k + j]);
  }
  return sums;
};
const allFrames = (p: Profile) => [...Array(p.frames.length).keys()].map((f) => frameInfo(p, f));

for (const name of FIXTURES) {
  test(`golden: austin/3.8/${name}.austin.txt`, () => {
    const p = detectsWithoutName(fixture(`austin/3.8/${name}.austin.txt`), 'austin');
    assert.equal(p.meta.backend, 'austin');
    goldenSummary(`austin-3.8-${name}`, p);
  });
}

test('default format: L<n> frames give the preceding function its line; values are µs → ns', () => {
  const rel = 'austin/3.8/mixed.austin.txt';
  const p = austinImporter.parse(fixture(rel)) as Profile;
  assert.deepEqual(p.valueTypes, [{ name: 'time', unit: 'nanoseconds' }]);
  assert.equal(p.meta.mode, 'wall');
  const [sum] = lastNumbers(rel, 1);
  assert.equal(p.samples.values[0]!.reduce((a, b) => a + b, 0), sum! * 1000);
  const lines = new TextDecoder().decode(fixture(rel).bytes).trim().split('\n');
  assert.equal(p.samples.length, lines.length, 'one sample per line');
  assert.equal(p.meta.sampleCount, lines.length);
  const fr = allFrames(p);
  // No "L12" frames survive; inner_hot carries lines of its body (callchain.py 11–12).
  assert.ok(fr.every((f) => !/^L\d+$/.test(f.name)));
  const inner = fr.filter((f) => f.name === 'inner_hot');
  assert.ok(inner.length > 0 && inner.every((f) => f.file!.endsWith('workloads/callchain.py') && [11, 12, 13].includes(f.line) && f.kind === 'python'), JSON.stringify(inner));
  // Austin 1.0.1 drops non-ASCII function names: such frames are "<unknown>" in unicode_names.py.
  assert.ok(fr.some((f) => f.name === '<unknown>' && f.file!.endsWith('unicode_names.py')));
  // Threads: hex pthread ids, pid 0; the main thread and the two workers at least.
  assert.ok(p.threads.length >= 3);
  assert.ok(p.threads.pid.every((x) => x === 0));
  const firstTid = parseInt(/^Thread ([0-9a-f]+)/.exec(lines[0]!)![1]!, 16);
  assert.ok(p.threads.tid.includes(firstTid));
  // Worker threads run alpha_spin / beta_spin under threading's _bootstrap.
  const stacks = foldedStacks(p).map(([s]) => s);
  assert.ok(stacks.some((s) => /^_bootstrap \(threading\.py:\d+\);.*alpha_spin \(threads\.py:\d+\)$/.test(s)));
});

test('times: each sample starts where the previous one of its thread ended', () => {
  const p = austinImporter.parse(fixture('austin/3.8/mixed.austin.txt')) as Profile;
  const clock = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const t = p.samples.thread[i]!;
    assert.equal(p.samples.time![i], clock.get(t) ?? 0, `sample ${i}`);
    clock.set(t, (clock.get(t) ?? 0) + p.samples.values[0]![i]!);
  }
  assert.equal(p.meta.durationNs, Math.max(...clock.values()));
});

test('alternative format -a: func (file:line) frames', () => {
  const p = austinImporter.parse(fixture('austin/3.8/callchain-alt-format.austin.txt')) as Profile;
  const fr = allFrames(p);
  assert.ok(fr.some((f) => f.name === 'outer_work' && f.line === 31 && f.file!.endsWith('callchain.py')));
  assert.ok(fr.some((f) => f.name === '_find_and_load' && f.file === '<frozen importlib._bootstrap>' && f.line > 0));
  assert.ok(foldedStacks(p).some(([s]) => s === '<module> (callchain.py:47);main (callchain.py:41);outer_work (callchain.py:31);inner_hot (callchain.py:12)'));
});

test('full metrics -f (1.x): time, memory allocated and freed', () => {
  const rel = 'austin/3.8/callchain-full-metrics.austin.txt';
  const p = austinImporter.parse(fixture(rel)) as Profile;
  assert.deepEqual(p.valueTypes, [
    { name: 'time', unit: 'nanoseconds' },
    { name: 'memory-allocated', unit: 'bytes' },
    { name: 'memory-freed', unit: 'bytes' },
  ]);
  const [t, plus, minus] = lastNumbers(rel, 3);
  const sum = (v: number) => p.samples.values[v]!.reduce((a, b) => a + b, 0);
  assert.equal(sum(0), t! * 1000);
  assert.equal(sum(1), plus);
  assert.equal(sum(2), Math.abs(minus!));
});

test('Austin 3 syntax: header, P<pid>;T<iid>:<tid>, file:func:line frames, :GC:, full metrics', () => {
  const p = parse(
    [
      '# austin: 3.6.0',
      '# interval: 100',
      '# mode: full',
      '# python: 3.11.4',
      '',
      'P4317;T0:4318;/app/main.py:<module>:10;/app/main.py:Worker.run:22 105,0,4096',
      'P4317;T0:4318;/app/main.py:<module>:10;/app/main.py:Worker.run:23;:GC: 95,1,-1024',
      'P4317;T0:4320;/usr/lib/python3.11/threading.py:_bootstrap:995 100,1,0',
      '# duration: 300',
    ].join('\n'),
  );
  assert.equal(p.meta.rateHz, 10000);
  assert.equal(p.meta.mode, 'wall');
  assert.equal(p.meta.durationNs, 300000);
  assert.equal(p.meta.environment.python?.version, '3.11.4');
  assert.equal(p.meta.extra?.['austinVersion'], '3.6.0');
  assert.deepEqual(Array.from({ length: p.threads.length }, (_, t) => threadLabel(p, t)), ['4317/4318', '4317/4320']);
  assert.deepEqual(Array.from(p.samples.values[0]!), [105000, 95000, 100000]);
  assert.deepEqual(Array.from(p.samples.values[1]!), [4096, 0, 0]);
  assert.deepEqual(Array.from(p.samples.values[2]!), [0, 1024, 0]);
  assert.deepEqual(Array.from(p.samples.state), [1, 3, 3], 'on-cpu, idle, idle');
  assert.deepEqual(Array.from(p.samples.time!), [0, 105000, 0]);
  const fr = stackFrames(p, p.samples.stack[1]!).map((f) => frameInfo(p, f));
  assert.deepEqual(fr.map((f) => [f.name, f.qualname, f.file, f.line, f.kind]), [
    ['<module>', '<module>', '/app/main.py', 10, 'python'],
    ['run', 'Worker.run', '/app/main.py', 23, 'python'],
    ['GC', 'GC', null, 0, 'marker'],
  ]);
});

test('Austin 3 alternative format: file:func then L<n>; 2.x hex T ids; Process/Thread roots of 1.x -C', () => {
  const p = parse('P12;T7ffb7f2e4740;/a/x.py:main;L5;/a/x.py:f;L9 10\nProcess 12;Thread 7ffb7f2e4741;f (x.py);L3 20\n');
  assert.deepEqual(
    foldedStacks(withThreadRoots(p, { processes: true, threads: true })),
    [
      [`process 12;thread ${0x7ffb7f2e4740};main (x.py:5);f (x.py:9)`, 10000],
      [`process 12;thread ${0x7ffb7f2e4741};f (x.py:3)`, 20000],
    ],
  );
});

test('memory mode from the header: bytes, no times', () => {
  const p = parse('# mode: memory\nP1;T0:1;/a.py:f:1 4096\nP1;T0:1;/a.py:f:1 -512\n');
  assert.deepEqual(p.valueTypes, [{ name: 'memory', unit: 'bytes' }]);
  assert.equal(p.meta.mode, 'allocations');
  assert.deepEqual(Array.from(p.samples.values[0]!), [4096, -512]);
});

test('root-only lines are samples with an empty stack', () => {
  const p = parse('Thread 5592645e31c0 1108\nThread 5592645e31c0;main (a.py);L3 1000\n');
  assert.equal(p.samples.stack[0], -1);
  assert.deepEqual(foldedStacks(p), [['', 1108000], ['main (a.py:3)', 1000000]]);
});

test('errors name the file and line and say what was expected', () => {
  const err = (text: string) => {
    try {
      austinImporter.parse(InputFile.fromText(text, 'a.austin'));
    } catch (e) {
      assert.ok(e instanceof ParseError, String(e));
      return e.message;
    }
    assert.fail('no error');
  };
  assert.equal(err('Thread 1;f (a.py);L1 10\nThread 1;L12;f (a.py) 10\n'), 'a.austin:2: expected a function frame before the line frame "L12" (reading it as austin)');
  assert.equal(err('Thread 1;f (a.py);L1 10\nThread 1;f (a.py);L2\n'), 'a.austin:2: expected "<stack> <µs>" but the line has no such metrics (reading it as austin)');
  assert.equal(err('Thread 1;f (a.py);L1 10 0 0\nThread 1;f (a.py);L2 7\n'), 'a.austin:2: expected "<stack> <µs> <+mem> <-mem>" but the line has no such metrics (reading it as austin)');
  assert.equal(err('Thread 1;f (a.py);L1 10\nmain;f 7\n'), 'a.austin:2: expected the sample to start with "Thread <id>" or "P<pid>;T<tid>" but it starts with "main;f" (reading it as austin)');
});

test('not Austin: plain folded, py-spy raw, tachyon, JSON, text', () => {
  for (const t of ['main;f 3\n', 'thread (0x7F00): MainThread;f (a.py:1) 3\n', 'tid:3;a.py:f:1 3\n', '{"x":1}', 'hello\n', '']) {
    assert.equal(austinImporter.parse(InputFile.fromText(t, 'x')), NOT_MINE, t);
    assert.equal(austinImporter.detect(InputFile.fromText(t)), false, t);
  }
});

test('fuzz: damaged Austin output gives ParseError or NOT_MINE', () => {
  for (const name of FIXTURES) rejectsGarbage(austinImporter, fixture(`austin/3.8/${name}.austin.txt`).bytes, 100);
});
