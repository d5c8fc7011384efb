import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonOffset, lineAt, parseThreadName, speedscopeExporter, speedscopeImporter, SPEEDSCOPE_SCHEMA } from '../../src/formats/speedscope.ts';
import { foldedImporter } from '../../src/formats/folded.ts';
import { pyspyRawImporter } from '../../src/formats/pyspy-raw.ts';
import { tachyonImporter } from '../../src/formats/tachyon.ts';
import { austinImporter } from '../../src/formats/austin.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { frameInfo, stackFrames, threadLabel, type Profile } from '../../src/model/profile.ts';
import { foldedStacks, validateProfile, withThreadRoots } from '../../src/model/query.ts';
import { PYLENS_VERSION } from '../../src/version.ts';
import { detectsWithoutName, fixture, goldenSummary, rejectsGarbage, roundTrip } from '../helpers/format-checks.ts';

function parse(doc: unknown, name = 'x.speedscope.json'): Profile {
  const r = speedscopeImporter.parse(InputFile.fromText(typeof doc === 'string' ? doc : JSON.stringify(doc, null, 1), name));
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}

function parseError(doc: unknown, name = 'bad.speedscope.json'): ParseError {
  try {
    speedscopeImporter.parse(InputFile.fromText(typeof doc === 'string' ? doc : JSON.stringify(doc, null, 1), name));
  } catch (e) {
    assert.ok(e instanceof ParseError, `expected ParseError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    return e;
  }
  assert.fail('expected a ParseError');
}

const threads = (p: Profile) => Array.from({ length: p.threads.length }, (_, t) => threadLabel(p, t));
const rooted = (p: Profile) => foldedStacks(withThreadRoots(p, { processes: true, threads: true }));
const evented = (events: Array<[string, number, number]>, unit = 'milliseconds') => ({
  $schema: SPEEDSCOPE_SCHEMA,
  shared: { frames: [{ name: 'a', file: 'a.py', line: 1 }, { name: 'b', file: 'a.py', line: 2 }, { name: 'c' }] },
  profiles: [{ type: 'evented', name: 'T', unit, startValue: 0, endValue: 10, events: events.map(([type, frame, at]) => ({ type, frame, at })) }],
});

for (const name of ['sampled', 'evented']) {
  test(`golden: speedscope/${name}.speedscope.json`, () => {
    const p = detectsWithoutName(fixture(`speedscope/${name}.speedscope.json`), 'speedscope');
    goldenSummary(`speedscope-${name}`, p);
  });
}

test('sampled (py-spy style): profiles → threads, seconds → ns, times from cumulative weights', () => {
  const p = speedscopeImporter.parse(fixture('speedscope/sampled.speedscope.json')) as Profile;
  assert.deepEqual(threads(p), ['MainThread (0/48213)', 'worker-alpha (0/48215)']);
  assert.deepEqual(p.valueTypes, [{ name: 'time', unit: 'nanoseconds' }]);
  assert.equal(p.meta.name, 'mixed.py');
  assert.equal(p.samples.length, 12);
  assert.deepEqual(Array.from(p.samples.time!.slice(0, 3)), [0, 10_000_000, 20_000_000]);
  assert.equal(p.samples.time![9], 0, 'second thread starts at its startValue');
  assert.equal(p.samples.stack[11], -1, 'the empty sample');
  const fr = stackFrames(p, p.samples.stack[7]!).map((f) => frameInfo(p, f));
  assert.deepEqual(fr.at(-1), { name: 'compress_blob', qualname: 'compress_blob', file: 'native_c.py', line: 13, kind: 'python', lib: null });
  assert.equal(new Map(foldedStacks(p)).get('<module> (mixed.py:45);main (mixed.py:39);phase_loop (mixed.py:23);outer_work (callchain.py:31);inner_hot (callchain.py:12)'), 40_000_000);
});

test('evented: self time per interval, recursion, zero-length frames, an empty profile', () => {
  const p = speedscopeImporter.parse(fixture('speedscope/evented.speedscope.json')) as Profile;
  const m = new Map(foldedStacks(p));
  assert.equal(m.get('main (callchain.py:37)'), 1_000_000); // [0,0.5) + [19.5,20)
  assert.equal(m.get('main (callchain.py:37);outer_work (callchain.py:28)'), 2_500_000); // [0.5,1) + [10,12)
  assert.equal(m.get('main (callchain.py:37);outer_work (callchain.py:28);inner_hot (callchain.py:8)'), 6_000_000);
  assert.equal(m.get('main (callchain.py:37);outer_work (callchain.py:28);fib (callchain.py:24)'), 1_250_000); // [8.25,8.5) + [9,10)
  assert.equal(m.get('main (callchain.py:37);outer_work (callchain.py:28);fib (callchain.py:24);fib (callchain.py:24);fib (callchain.py:24)'), 250_000);
  assert.equal(m.get('main (callchain.py:37);berechne_größe (unicode_names.py:8)'), 7_500_000);
  assert.equal([...m.values()].reduce((a, b) => a + b, 0), 20_000_000);
  assert.ok(![...m.keys()].some((k) => k.includes('zlib')), 'zero-length frames carry no time');
  assert.deepEqual(threads(p), ['callchain.py main thread (0/1)', 'empty thread (0/2)']);
  assert.equal(p.meta.durationNs, 20_000_000);
  // A frame without a file is native.
  const z = [...Array(p.frames.length).keys()].map((f) => frameInfo(p, f)).find((f) => f.name.startsWith('<built-in'));
  assert.deepEqual(z, { name: '<built-in method zlib.compress>', qualname: '<built-in method zlib.compress>', file: null, line: 0, kind: 'native', lib: null });
});

test('evented validation: "at" going backwards, a C that closes the wrong frame, unclosed frames', () => {
  let e = parseError(evented([['O', 0, 0], ['O', 1, 2], ['C', 1, 1], ['C', 0, 3]]));
  assert.match(e.message, /^bad\.speedscope\.json:\d+: profiles\[0\]\.events\[2\]\.at: expected "at" ≥ 2 \(events in time order\) but got 1 \(reading it as speedscope\)$/);
  e = parseError(evented([['O', 0, 0], ['O', 1, 2], ['C', 0, 3], ['C', 1, 3]]));
  assert.match(e.message, /profiles\[0\]\.events\[2\]\.frame: expected "C" to close frame 1 \(the innermost open frame\) but it closes 0/);
  e = parseError(evented([['O', 0, 0], ['O', 1, 2], ['C', 1, 3]]));
  assert.match(e.message, /profiles\[0\]\.events: expected every "O" to be closed but 1 frame\(s\) are still open at the end \(innermost: 0\)/);
  e = parseError(evented([['C', 0, 0]]));
  assert.match(e.message, /profiles\[0\]\.events\[0\]: expected an "O" event before this "C"/);
  e = parseError(evented([['O', 7, 0], ['C', 7, 1]]));
  assert.match(e.message, /profiles\[0\]\.events\[0\]\.frame: expected a frame index 0…2 but got 7/);
  e = parseError(evented([['X', 0, 0]]));
  assert.match(e.message, /events\[0\]\.type: expected "O" or "C" but got "X"/);
});

test('error lines point at the offending event', () => {
  const doc = evented([['O', 0, 0], ['O', 1, 2], ['C', 1, 1], ['C', 0, 3]]);
  const text = JSON.stringify(doc, null, 2);
  const e = parseError(text);
  const expected = text.split('\n').findIndex((l, i, all) => l.includes('"at": 1') && all[i - 2]!.includes('"C"')) + 1;
  assert.equal(e.position.line, expected);
  assert.equal(lineAt(text, jsonOffset(text, ['profiles', 0, 'events', 2, 'at'])), expected);
});

test('sampled validation: weights length, bad weights, bad frame index, unknown unit and type', () => {
  const base = (pr: Record<string, unknown>) => ({ $schema: SPEEDSCOPE_SCHEMA, shared: { frames: [{ name: 'a' }] }, profiles: [{ type: 'sampled', name: 'x', unit: 'none', startValue: 0, endValue: 1, samples: [[0]], weights: [1], ...pr }] });
  assert.match(parseError(base({ weights: [1, 2] })).message, /profiles\[0\]\.weights: expected 1 weights \(one per sample\) but got 2/);
  assert.match(parseError(base({ weights: ['x'] })).message, /profiles\[0\]\.weights\[0\]: expected a number but got "x"/);
  assert.match(parseError(base({ samples: [[0, 3]] })).message, /profiles\[0\]\.samples\[0\]\[1\]: expected a frame index 0…0 but got 3/);
  assert.match(parseError(base({ unit: 'furlongs' })).message, /profiles\[0\]\.unit: expected a unit \(none, nanoseconds, microseconds, milliseconds, seconds, bytes\) but got "furlongs"/);
  assert.match(parseError(base({ type: 'weird' })).message, /profiles\[0\]\.type: expected "sampled" or "evented" but got "weird"/);
  assert.match(parseError(base({ samples: 3 })).message, /profiles\[0\]\.samples: expected an array of stacks/);
});

test('units: none → samples, bytes → bytes, time units → ns; mixed kinds get separate columns', () => {
  const doc = {
    $schema: SPEEDSCOPE_SCHEMA,
    shared: { frames: [{ name: 'a' }] },
    profiles: [
      { type: 'sampled', name: 'one', unit: 'none', startValue: 0, endValue: 2, samples: [[0], [0]], weights: [1, 2] },
      { type: 'sampled', name: 'two', unit: 'bytes', startValue: 0, endValue: 5, samples: [[0]], weights: [5] },
      { type: 'sampled', name: 'three', unit: 'microseconds', startValue: 0, endValue: 5, samples: [[0]], weights: [5] },
    ],
  };
  const p = parse(doc);
  assert.deepEqual(p.valueTypes, [{ name: 'samples', unit: 'samples' }, { name: 'bytes', unit: 'bytes' }, { name: 'time', unit: 'nanoseconds' }]);
  assert.equal(p.samples.time, null, 'not every unit is time');
  assert.deepEqual(p.samples.values.map((c) => Array.from(c)), [[1, 2, 0, 0], [0, 0, 5, 0], [0, 0, 0, 5000]]);
});

test('profile names: py-spy, "name (tid)", plain; sequential tids without numbers', () => {
  assert.deepEqual(parseThreadName('Process 123 Thread 456'), { pid: 123, tid: 456 });
  assert.deepEqual(parseThreadName('Process 123 Thread 456 "MainThread"'), { pid: 123, tid: 456, name: 'MainThread' });
  assert.deepEqual(parseThreadName('Process 1 Thread 2 "say "hi""'), { pid: 1, tid: 2, name: 'say "hi"' });
  assert.deepEqual(parseThreadName('worker (77)'), { tid: 77, name: 'worker' });
  assert.deepEqual(parseThreadName('MainThread'), { name: 'MainThread' });
  const doc = { $schema: SPEEDSCOPE_SCHEMA, shared: { frames: [{ name: 'a' }] }, profiles: ['A', 'B', 'Process 5 Thread 1', 'A'].map((name) => ({ type: 'sampled', name, unit: 'none', startValue: 0, endValue: 1, samples: [[0]], weights: [1] })) };
  assert.deepEqual(threads(parse(doc)), ['A (0/1)', 'B (0/2)', '5/1', 'A (0/3)']);
  doc.profiles[2]!.name = 'Process 0 Thread 1';
  assert.deepEqual(threads(parse(doc)), ['A (0/2)', 'B (0/3)', '0/1', 'A (0/4)'], 'numbered threads keep their ids');
});

test('not speedscope: other JSON, chrome traces, text → NOT_MINE; truncated speedscope → ParseError with a line', () => {
  for (const t of ['{"traceEvents": []}', '[{"ph":"B"}]', '{"name": "package", "version": "1.0.0"}', 'hello', '']) {
    assert.equal(speedscopeImporter.parse(InputFile.fromText(t, 'x.json')), NOT_MINE, t);
  }
  assert.ok(!speedscopeImporter.detect(InputFile.fromText('{"traceEvents": []}')));
  const text = new TextDecoder().decode(fixture('speedscope/sampled.speedscope.json').bytes);
  const cut = text.slice(0, 700);
  const e = parseError(cut, 'cut.speedscope.json');
  assert.match(e.message, /^cut\.speedscope\.json:(\d+): expected a complete JSON document but /);
  assert.equal(e.position.line, cut.split('\n').length);
  // Valid JSON with the schema but the wrong shape is an error, not NOT_MINE.
  assert.match(parseError({ $schema: SPEEDSCOPE_SCHEMA, shared: {}, profiles: [] }).message, /shared: expected an object with a "frames" array/);
});

test('fuzz: damaged speedscope files give ParseError or NOT_MINE', () => {
  rejectsGarbage(speedscopeImporter, fixture('speedscope/sampled.speedscope.json').bytes, 150);
  rejectsGarbage(speedscopeImporter, fixture('speedscope/evented.speedscope.json').bytes, 150);
});

function mixedProfile(timed: boolean): Profile {
  const b = new ProfileBuilder({ meta: { backend: 'test', name: 'demo' }, timed });
  const main = b.frame({ name: 'main', file: '/srv/app/main.py', line: 3 });
  const work = b.frame({ name: 'work', qualname: 'C.work', file: '/srv/app/main.py', line: 10 });
  const z = b.frame({ name: 'deflate', kind: 'native', lib: 'libz.so.1' });
  const k = b.frame({ name: 'do_syscall_64', kind: 'kernel' });
  const gc = b.frame({ name: '<GC>', kind: 'marker' });
  const c = b.frame({ name: 'ceval', kind: 'native', file: 'ceval.c', line: 99 });
  const t1 = b.thread(100, 100, 'MainThread');
  const t2 = b.thread(100, 101);
  const t3 = b.thread(200, 100, 'other "quoted" name');
  b.thread(300, 1, 'idle thread');
  b.sample(b.stackOf([main, work]), 2, t1, 'on-cpu', 1e6);
  b.sample(b.stackOf([main, work, z, k]), 1, t2, 'on-cpu', 2e6);
  b.sample(b.stackOf([main, gc]), 3, t3, 'on-cpu', 3e6);
  b.sample(-1, 1, t1, 'idle', 4e6);
  b.sample(b.stackOf([main, c]), 1, t1, 'on-cpu', 5e6);
  return b.build();
}

test('export: one sampled profile per thread, shared frames, exporter and name', () => {
  const p = mixedProfile(true);
  const doc = JSON.parse(speedscopeExporter.write(p) as string);
  assert.equal(doc.$schema, SPEEDSCOPE_SCHEMA);
  assert.equal(doc.exporter, `pylens@${PYLENS_VERSION}`);
  assert.equal(doc.name, 'demo');
  assert.deepEqual(doc.profiles.map((x: { name: string }) => x.name), ['Process 100 Thread 100 "MainThread"', 'Process 100 Thread 101', 'Process 200 Thread 100 "other "quoted" name"', 'Process 300 Thread 1 "idle thread"']);
  assert.deepEqual(doc.profiles[0].samples, [[0, 1], [], [0, 5]]);
  assert.deepEqual(doc.profiles[0].weights, [2, 1, 1]);
  assert.equal(doc.profiles[0].unit, 'none');
  assert.deepEqual(doc.shared.frames, [
    { name: 'main', file: '/srv/app/main.py', line: 3 },
    { name: 'C.work', file: '/srv/app/main.py', line: 10 },
    { name: 'deflate' },
    { name: 'do_syscall_64_[k]' },
    { name: '<GC>' },
    { name: 'ceval', file: 'ceval.c', line: 99 },
  ]);
  assert.deepEqual(doc.profiles[3].samples, []);
});

test('round trip keeps stacks, threads and weights (untimed and timed, nanoseconds)', () => {
  for (const timed of [false, true]) {
    const p = mixedProfile(timed);
    const back = roundTrip(p, (q) => speedscopeExporter.write(q), speedscopeImporter, 'x.speedscope.json');
    assert.deepEqual(rooted(back), rooted(p));
    assert.deepEqual(threads(back), threads(p), 'thread set, names included');
    const k = [...Array(back.frames.length).keys()].map((f) => frameInfo(back, f)).find((f) => f.name === 'do_syscall_64')!;
    assert.equal(k.kind, 'kernel');
    const w = [...Array(back.frames.length).keys()].map((f) => frameInfo(back, f)).find((f) => f.qualname === 'C.work')!;
    assert.deepEqual([w.name, w.file, w.line, w.kind], ['work', '/srv/app/main.py', 10, 'python']);
  }
  // A time column exports as nanoseconds and comes back as time.
  const b = new ProfileBuilder({ valueTypes: [{ name: 'cpu', unit: 'nanoseconds' }] });
  const f = b.frame({ name: 'f', file: 'f.py', line: 1 });
  const t = b.thread(1, 2, 'T');
  b.sample(b.stackOf([f]), 1e6, t, 'on-cpu', 5e6);
  b.sample(b.stackOf([f, f]), 2e6, t, 'on-cpu', 6e6);
  const p = b.build();
  const doc = JSON.parse(speedscopeExporter.write(p) as string);
  assert.equal(doc.profiles[0].unit, 'nanoseconds');
  assert.equal(doc.profiles[0].startValue, 5e6);
  const back = roundTrip(p, (q) => speedscopeExporter.write(q), speedscopeImporter);
  assert.deepEqual(back.valueTypes, [{ name: 'time', unit: 'nanoseconds' }]);
  assert.deepEqual(Array.from(back.samples.time!), [0, 1e6]);
});

test('round trip of the other importers\' fixtures keeps threads and stacks', () => {
  const cases: Array<[typeof foldedImporter, string]> = [
    [pyspyRawImporter, 'pyspy/raw/subprocesses.txt'],
    [tachyonImporter, 'tachyon/3.15/collapsed-native.txt'],
    [austinImporter, 'austin/3.8/mixed.austin.txt'],
    [foldedImporter, 'folded/gregg/kernel-inline-jit-suffixes.folded'],
    [speedscopeImporter, 'speedscope/evented.speedscope.json'],
  ];
  for (const [imp, rel] of cases) {
    const p = imp.parse(fixture(rel)) as Profile;
    const back = roundTrip(p, (q) => speedscopeExporter.write(q), speedscopeImporter);
    assert.deepEqual(rooted(back), rooted(p), rel);
    assert.deepEqual(threads(back).sort(), threads(p).sort(), rel);
  }
});
