import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromeTraceExporter, chromeTraceImporter } from '../../src/formats/chrome-trace.ts';
import { pyspyRawImporter } from '../../src/formats/pyspy-raw.ts';
import { austinImporter } from '../../src/formats/austin.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { frameInfo, threadLabel, type Profile } from '../../src/model/profile.ts';
import { foldedStacks, validateProfile, withThreadRoots } from '../../src/model/query.ts';
import { PYLENS_VERSION } from '../../src/version.ts';
import { detectsWithoutName, fixture, goldenSummary, rejectsGarbage, roundTrip } from '../helpers/format-checks.ts';

type Ev = Record<string, unknown>;

function parse(events: unknown, name = 'x.trace.json'): Profile {
  const r = chromeTraceImporter.parse(InputFile.fromText(typeof events === 'string' ? events : JSON.stringify(events), name));
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}

function parseError(events: unknown, name = 'bad.json'): ParseError {
  try {
    chromeTraceImporter.parse(InputFile.fromText(typeof events === 'string' ? events : JSON.stringify(events), name));
  } catch (e) {
    assert.ok(e instanceof ParseError, `expected ParseError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    return e;
  }
  assert.fail('expected a ParseError');
}

const threads = (p: Profile) => Array.from({ length: p.threads.length }, (_, t) => threadLabel(p, t));
const rooted = (p: Profile) => foldedStacks(withThreadRoots(p, { processes: true, threads: true }));
const B = (name: string, ts: number, tid = 1): Ev => ({ name, ph: 'B', ts, pid: 1, tid });
const E = (ts: number, tid = 1, name?: string): Ev => ({ ...(name ? { name } : {}), ph: 'E', ts, pid: 1, tid });

const GOLDEN: Array<[string, string]> = [
  ['chrome/pyspy-array.json', 'chrome-pyspy-array'],
  ['chrome/object-x-events.json', 'chrome-object-x-events'],
  ['chrome/truncated-array.json', 'chrome-truncated-array'],
  ['chrome/truncated-array-trailing-comma.json', 'chrome-truncated-array-trailing-comma'],
];
for (const [rel, name] of GOLDEN) {
  test(`golden: ${rel}`, () => {
    const p = detectsWithoutName(fixture(rel), 'chrome-trace');
    goldenSummary(name, p);
  });
}

test('py-spy array: B/E nest per thread, durations in ns, frames from args.filename/line', () => {
  const p = chromeTraceImporter.parse(fixture('chrome/pyspy-array.json')) as Profile;
  assert.equal(p.meta.backend, 'py-spy');
  assert.deepEqual(p.valueTypes, [{ name: 'time', unit: 'nanoseconds' }]);
  assert.deepEqual(threads(p), ['48213/0', '48213/1']);
  const m = new Map(foldedStacks(p));
  assert.equal(m.get('<module> (mixed.py:45);main (mixed.py:39);phase_loop (mixed.py:23);outer_work (callchain.py:31);inner_hot (callchain.py:12)'), (31077 - 1042) * 1000);
  assert.equal(p.samples.time![0], 0, 'times start at the earliest event');
  assert.equal(p.meta.durationNs, (61120 - 1042) * 1000);
  const f = [...Array(p.frames.length).keys()].map((i) => frameInfo(p, i)).find((x) => x.name === 'inner_hot')!;
  assert.deepEqual(f, { name: 'inner_hot', qualname: 'inner_hot', file: '/work/main/fixtures/workloads/callchain.py', line: 12, kind: 'python', lib: null });
});

test('object form: X events nest by time, M thread_name/process_name, other phases ignored', () => {
  const p = chromeTraceImporter.parse(fixture('chrome/object-x-events.json')) as Profile;
  assert.deepEqual(threads(p), ['MainThread (48213/48213)', 'worker alpha (48213/48215)']);
  assert.equal(p.meta.name, 'python3.12 mixed.py');
  const m = new Map(foldedStacks(p));
  assert.equal(m.get('main (mixed.py:31)'), 20_000); // [1000,1010.5) + [60990.5,61000)
  assert.equal(m.get('main (mixed.py:31);phase_loop (mixed.py:18)'), 9_750);
  assert.equal(m.get('main (mixed.py:31);phase_loop (mixed.py:18);outer_work (callchain.py:28);inner_hot'), 30_000_000);
  assert.equal(m.get('main (mixed.py:31);phase_loop (mixed.py:18);berechne_größe'), 19_970_250);
  assert.equal(m.get('alpha_spin'), 58_000_000);
  assert.ok(![...m.keys()].some((k) => k.includes('gc') || k.includes('rss') || k.includes('zero-length')));
  // cat "python" makes file-less frames python frames.
  const f = [...Array(p.frames.length).keys()].map((i) => frameInfo(p, i)).find((x) => x.name === 'inner_hot')!;
  assert.equal(f.kind, 'python');
});

test('a closing "]" that is missing (with or without a trailing comma): open B events end at the last timestamp', () => {
  for (const rel of ['chrome/truncated-array.json', 'chrome/truncated-array-trailing-comma.json']) {
    const p = chromeTraceImporter.parse(fixture(rel)) as Profile;
    assert.deepEqual(foldedStacks(p), [
      ['main', 5000],
      ['main;outer_work', 5000],
      ['main;outer_work;cold_path', 10000],
      ['main;outer_work;fib', 1000],
      ['main;outer_work;inner_hot', 30000],
    ], rel);
  }
});

test('B/E errors name the event index and its line', () => {
  let e = parseError([B('a', 0), E(1), E(2)], 'e.json');
  assert.equal(e.message, 'e.json:1: event 2: expected a "B" event before this "E" on pid 1 tid 1 but nothing is open there (reading it as chrome-trace)');
  e = parseError({ traceEvents: [B('a', 0), B('b', 1), E(2, 1, 'a')] }, 'e.json');
  assert.match(e.message, /^e\.json:1: traceEvents\[2\]: expected an "E" for "b" \(the innermost open "B", event 1\) on pid 1 tid 1 but it ends "a"/);
  e = parseError([B('a', 5), E(2)]);
  assert.match(e.message, /event 1: expected the "E" at or after its "B" \(event 0, ts 5\) but it is at ts 2/);
  e = parseError([B('a', 0), { name: 'x', ph: 'X', ts: 1, pid: 1, tid: 1, dur: -3 }]);
  assert.match(e.message, /event 1: expected a "dur" ≥ 0 \(µs\) on an "X" event but got -3/);
  e = parseError([B('a', 0), { name: 'x', ph: 'B', pid: 1, tid: 1 }]);
  assert.match(e.message, /event 1: expected a numeric "ts" \(µs\) on a "B" event but got undefined/);
  // Multi-line file: the line of the event.
  const text = '[\n' + [B('a', 0), E(1), E(2)].map((x) => JSON.stringify(x)).join(',\n') + '\n]';
  assert.equal(parseError(text).position.line, 4);
});

test('E events close per thread: interleaved threads do not disturb each other', () => {
  const p = parse([B('a', 0, 1), B('x', 0, 2), B('b', 1, 1), E(2, 2), E(3, 1), E(4, 1)]);
  assert.deepEqual(rooted(p), [
    ['process 1;thread 1;a', 2000],
    ['process 1;thread 1;a;b', 2000],
    ['process 1;thread 2;x', 2000],
  ]);
});

test('X children sticking out of their parent are clipped; unsorted X events are ordered', () => {
  const X = (name: string, ts: number, dur: number): Ev => ({ name, ph: 'X', ts, dur, pid: 1, tid: 1 });
  const p = parse([X('child', 5, 10), X('parent', 0, 10), X('late', 20, 1)]);
  assert.deepEqual(foldedStacks(p), [['late', 1000], ['parent', 5000], ['parent;child', 5000]]);
});

test('truncated mid-event, not an array of events, other JSON, text', () => {
  const text = new TextDecoder().decode(fixture('chrome/object-x-events.json').bytes);
  const e = parseError(text.slice(0, 600), 'cut.json');
  assert.match(e.message, /^cut\.json:\d+: expected a complete JSON object but /);
  assert.match(parseError('[{"ph":"B","name":"a","ts":1,"pid":1,"tid":1},{"ph":"E","ts', 'cut2.json').message, /^cut2\.json:1: expected a JSON array of trace events \(its closing "\]" may be missing\) but /);
  for (const t of ['[1,2,3]', '[]', '{"a":1}', '{"$schema":"https://www.speedscope.app/file-format-schema.json","shared":{"frames":[]},"profiles":[]}', 'hello', '']) {
    assert.equal(chromeTraceImporter.parse(InputFile.fromText(t, 'x.json')), NOT_MINE, t);
  }
  assert.ok(!chromeTraceImporter.detect(InputFile.fromText('[1,2]')));
});

test('py-spy M thread_name "tid: name" gives the real tid and name', () => {
  const p = parse([
    { args: { filename: '', line: null, name: '139888: MainThread' }, cat: 'py-spy', name: 'thread_name', ph: 'M', pid: 7, tid: 0, ts: 0 },
    { args: { filename: 'a.py', line: 3 }, cat: 'py-spy', name: 'f', ph: 'B', pid: 7, tid: 0, ts: 10 },
    { args: { filename: 'a.py', line: 3 }, cat: 'py-spy', name: 'f', ph: 'E', pid: 7, tid: 0, ts: 20 },
  ]);
  assert.deepEqual(threads(p), ['MainThread (7/139888)']);
});

test('fuzz: damaged traces give ParseError or NOT_MINE', () => {
  for (const [rel] of GOLDEN) rejectsGarbage(chromeTraceImporter, fixture(rel).bytes, 120);
});

function timedProfile(): Profile {
  const b = new ProfileBuilder({ meta: { backend: 'test', name: 'demo', rateHz: 1000 } });
  const main = b.frame({ name: 'main', file: '/srv/main.py', line: 3 });
  const work = b.frame({ name: 'work', qualname: 'C.work', file: '/srv/main.py', line: 10 });
  const k = b.frame({ name: 'read', kind: 'kernel' });
  const t1 = b.thread(10, 11, 'MainThread');
  const t2 = b.thread(10, 12);
  // Thread 11 at 0, 1, 2, 4 ms; thread 12 once at 1 ms.
  b.sample(b.stackOf([main, work]), 1, t1, 'on-cpu', 0);
  b.sample(b.stackOf([main, work]), 1, t1, 'on-cpu', 1e6);
  b.sample(b.stackOf([main]), 1, t1, 'on-cpu', 2e6);
  b.sample(b.stackOf([main, k]), 1, t2, 'on-cpu', 1e6);
  b.sample(b.stackOf([main, work, k]), 1, t1, 'on-cpu', 4e6);
  return b.build();
}

test('export of a timed profile: B/E from consecutive stacks, M thread names, µs timestamps', () => {
  const p = timedProfile();
  const doc = JSON.parse(chromeTraceExporter.write(p) as string);
  assert.equal(doc.displayTimeUnit, 'ms');
  assert.equal(doc.otherData.generator, `pylens@${PYLENS_VERSION}`);
  const t11 = doc.traceEvents.filter((e: Ev) => e['tid'] === 11).map((e: Ev) => `${e['ph']} ${e['name']} ${e['ts']}`);
  assert.deepEqual(t11, [
    'M thread_name 0',
    'B main 0',
    'B C.work 0',
    'E C.work 2000',
    'B C.work 4000',
    'B read_[k] 4000',
    'E read_[k] 5000', // the last sample lasts the median interval (1 ms)
    'E C.work 5000',
    'E main 5000',
  ]);
  const t12 = doc.traceEvents.filter((e: Ev) => e['tid'] === 12).map((e: Ev) => `${e['ph']} ${e['name']} ${e['ts']}`);
  assert.deepEqual(t12, ['B main 1000', 'B read_[k] 1000', 'E read_[k] 2000', 'E main 2000'], 'one sample: lasts 1/rateHz');
  const work = doc.traceEvents.find((e: Ev) => e['name'] === 'C.work');
  assert.deepEqual([work.cat, work.args], ['python', { filename: '/srv/main.py', line: 10 }]);
  assert.ok(doc.traceEvents.some((e: Ev) => e['ph'] === 'M' && e['name'] === 'process_name' && (e['args'] as Ev)['name'] === 'demo'));
  // Re-import: same stacks and threads, durations as values.
  const back = chromeTraceImporter.parse(InputFile.fromText(chromeTraceExporter.write(p) as string, 'x.trace.json')) as Profile;
  validateProfile(back);
  assert.deepEqual(rooted(back), [
    ['process 10;thread 11 (MainThread);main (main.py:3)', 2e6],
    ['process 10;thread 11 (MainThread);main (main.py:3);C.work (main.py:10)', 2e6],
    ['process 10;thread 11 (MainThread);main (main.py:3);C.work (main.py:10);read_[k]', 1e6],
    ['process 10;thread 12;main (main.py:3);read_[k]', 1e6],
  ]);
});

test('export of an untimed profile: merged call tree per thread, left-heavy X events', () => {
  const b = new ProfileBuilder({ timed: false, meta: { rateHz: 100 } });
  const a = b.frame({ name: 'a', file: 'a.py', line: 1 });
  const c = b.frame({ name: 'c', file: 'a.py', line: 2 });
  const d = b.frame({ name: 'd', file: 'a.py', line: 3 });
  const t = b.thread(1, 1);
  b.sample(b.stackOf([a, c]), 1, t);
  b.sample(b.stackOf([a, d]), 3, t);
  b.sample(b.stackOf([a]), 1, t);
  const p = b.build();
  const doc = JSON.parse(chromeTraceExporter.write(p) as string);
  // 1 sample at 100 Hz = 10 ms = 10000 µs; heaviest child first, self time at the end.
  assert.deepEqual(doc.traceEvents.map((e: Ev) => `${e['ph']} ${e['name']} ${e['ts']} ${e['dur']}`), ['X a 0 50000', 'X d 0 30000', 'X c 30000 10000']);
  const back = chromeTraceImporter.parse(InputFile.fromText(chromeTraceExporter.write(p) as string)) as Profile;
  assert.deepEqual(foldedStacks(back), foldedStacks(p).map(([s, v]) => [s, v * 1e7]));
});

test('round trips: nanosecond values survive exactly (untimed trees, timed samples with gaps)', () => {
  // Untimed, nanoseconds: the tree layout gives back every stack's value.
  const b = new ProfileBuilder({ timed: false, valueTypes: [{ name: 'time', unit: 'nanoseconds' }] });
  const a = b.frame({ name: 'a', file: 'a.py', line: 1 });
  const c = b.frame({ name: 'c', kind: 'native' });
  const k = b.frame({ name: 'k', kind: 'kernel' });
  b.sample(b.stackOf([a, c, k]), 1500, b.thread(1, 1, 'T'));
  b.sample(b.stackOf([a]), 2500, b.thread(1, 2));
  const p = b.build();
  const back = roundTrip(p, (q) => chromeTraceExporter.write(q), chromeTraceImporter, 'x.trace.json');
  assert.deepEqual(rooted(back), rooted(p));
  assert.equal(frameInfo(back, back.frames.name.findIndex((n) => back.strings[n] === 'k')).kind, 'kernel');
  // The fixtures and Austin (timed, nanoseconds): every segment and gap survives.
  for (const rel of ['chrome/object-x-events.json', 'chrome/pyspy-array.json', 'chrome/truncated-array.json']) {
    const q = chromeTraceImporter.parse(fixture(rel)) as Profile;
    const again = roundTrip(q, (x) => chromeTraceExporter.write(x), chromeTraceImporter);
    assert.deepEqual(rooted(again), rooted(q), rel);
    assert.deepEqual(Array.from(again.samples.time!), Array.from(q.samples.time!), rel);
  }
  // Austin's empty-stack samples (a thread with no Python frame) become gaps: chrome has no
  // event for "nothing open"; everything else comes back.
  const au = austinImporter.parse(fixture('austin/3.8/callchain-alt-format.austin.txt')) as Profile;
  const au2 = chromeTraceImporter.parse(InputFile.fromText(chromeTraceExporter.write(au) as string)) as Profile;
  assert.deepEqual(foldedStacks(au2), foldedStacks(au).filter(([s]) => s !== ''));
  // py-spy raw (untimed samples): same stacks, values scaled to durations.
  const raw = pyspyRawImporter.parse(fixture('pyspy/raw/threads-tid.txt')) as Profile;
  const r2 = chromeTraceImporter.parse(InputFile.fromText(chromeTraceExporter.write(raw) as string)) as Profile;
  assert.deepEqual(rooted(r2).map(([s]) => s), rooted(raw).map(([s]) => s));
});
