import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCount } from '../../src/formats/collapsed.ts';
import { foldedExporter, foldedImporter, integerScale, writeFolded } from '../../src/formats/folded.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { frameInfo, stackFrames, type Profile } from '../../src/model/profile.ts';
import { foldedStacks, validateProfile, withThreadRoots } from '../../src/model/query.ts';
import { detectsWithoutName, fixture, goldenSummary, rejectsGarbage, rng, roundTrip } from '../helpers/format-checks.ts';

function parse(text: string, name = 'prof.folded'): Profile {
  const r = foldedImporter.parse(InputFile.fromText(text, name));
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}

function parseError(text: string, name = 'prof.folded'): ParseError {
  try {
    foldedImporter.parse(InputFile.fromText(text, name));
  } catch (e) {
    assert.ok(e instanceof ParseError, `expected a ParseError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    return e;
  }
  assert.fail('expected a ParseError');
}

/** Frames of the first sample whose frame names, joined with ";", are `label`. */
function framesOf(p: Profile, label: string) {
  for (let i = 0; i < p.samples.length; i++) {
    const fr = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f));
    if (fr.map((x) => x.name).join(';') === label) return fr;
  }
  return undefined;
}

const GOLDEN: Array<[string, string]> = [
  ['folded/gregg/kernel-inline-jit-suffixes.folded', 'folded-gregg-kernel-inline-jit-suffixes'],
  ['folded/gregg/spaces-and-decimal-counts.folded', 'folded-gregg-spaces-and-decimal-counts'],
  ['folded/gregg/differential.folded', 'folded-gregg-differential'],
  ['folded/perf-stackcollapse/3.12-kernel-tid.folded', 'folded-perf-stackcollapse-3.12-kernel-tid'],
  ['folded/perf-stackcollapse/3.13-jit.folded', 'folded-perf-stackcollapse-3.13-jit'],
];

for (const [rel, name] of GOLDEN) {
  test(`golden: ${rel}`, () => {
    const p = detectsWithoutName(fixture(rel), 'folded');
    goldenSummary(name, p);
  });
}

test('count is the last whitespace token; frames keep their spaces; decimals add up', () => {
  const p = parse('render loop;std::vector<int, std::allocator<int> >::push_back(int const&) 1.75\nmain;outer work 7.\nmain;outer work 0.5\nmain .25\n');
  assert.deepEqual(foldedStacks(p), [
    ['main', 0.25],
    ['main;outer work', 7.5],
    ['render loop;std::vector<int, std::allocator<int> >::push_back(int const&)', 1.75],
  ]);
  assert.equal(p.valueTypes.length, 1);
  assert.deepEqual(p.valueTypes[0], { name: 'samples', unit: 'samples' });
  assert.equal(p.samples.time, null, 'folded is untimed');
  assert.equal(p.meta.sampleCount, 10);
});

test('identical stack lines aggregate into one sample row', () => {
  const p = parse('a;b 1\na;c 2\na;b 3\n\na;b 4\n');
  assert.equal(p.samples.length, 2);
  assert.deepEqual(foldedStacks(p), [['a;b', 8], ['a;c', 2]]);
});

test('tolerates blank lines, comments, tabs, CRLF and trailing spaces', () => {
  const p = parse('# comment\r\n\r\nmain;a\t7\r\nmain;a 3   \r\n  \nmain;  spaced frame 2\n');
  assert.deepEqual(foldedStacks(p), [['main;  spaced frame', 2], ['main;a', 10]]);
});

test('the tolerance fixture: its "no_count_here" line is a ParseError naming file:8', () => {
  assert.throws(
    () => foldedImporter.parse(fixture('folded/gregg/tolerance.folded')),
    (e: unknown) => {
      assert.ok(e instanceof ParseError);
      assert.equal(e.message, 'folded/gregg/tolerance.folded:8: expected "stack count" but the line has no count (reading it as folded)');
      assert.deepEqual(e.position, { line: 8 });
      return true;
    },
  );
});

test('frame suffixes set the kind and are stripped; py:: and py-spy labels become python frames', () => {
  const p = parse('python3.13;_start;py::phase_loop:/w/mixed.py_[j];os_stat_impl_[i];vfs_statx_[k];waker_[w] 37\nmain (app.py:12);work (lib.py) 2\n');
  const frames = new Map<string, ReturnType<typeof frameInfo>>();
  for (let f = 0; f < p.frames.length; f++) frames.set(p.strings[p.frames.qualname[f]!]!, frameInfo(p, f));
  assert.deepEqual(frames.get('vfs_statx'), { name: 'vfs_statx', qualname: 'vfs_statx', file: null, line: 0, kind: 'kernel', lib: null });
  assert.equal(frames.get('os_stat_impl')!.kind, 'native');
  assert.equal(frames.get('waker')!.kind, 'native');
  assert.equal(frames.get('_start')!.kind, 'native');
  assert.deepEqual(frames.get('phase_loop'), { name: 'phase_loop', qualname: 'phase_loop', file: '/w/mixed.py', line: 0, kind: 'python', lib: null });
  assert.deepEqual(frames.get('main'), { name: 'main', qualname: 'main', file: 'app.py', line: 12, kind: 'python', lib: null });
  assert.deepEqual(frames.get('work'), { name: 'work', qualname: 'work', file: 'lib.py', line: 0, kind: 'python', lib: null });
  // Labels come back as frameLabel writes them: kernel keeps its _[k], the others lose theirs.
  assert.deepEqual(foldedStacks(p).map(([s]) => s), [
    'main (app.py:12);work (lib.py)',
    'python3.13;_start;phase_loop (mixed.py);os_stat_impl;vfs_statx_[k];waker',
  ]);
});

test('non-Python "name (x)" frames stay native names', () => {
  const p = parse('a;foo (deleted);bar (inlined) 1\n');
  assert.deepEqual(foldedStacks(p), [['a;foo (deleted);bar (inlined)', 1]]);
  assert.ok([...Array(p.frames.length).keys()].every((f) => p.frames.kind[f] === 'native'));
});

test('differential files: before and after columns, after by default', () => {
  const p = detectsWithoutName(fixture('folded/gregg/differential.folded'), 'folded');
  assert.deepEqual(p.valueTypes, [{ name: 'before', unit: 'samples' }, { name: 'after', unit: 'samples' }]);
  assert.equal(p.defaultValue, 1);
  const before = new Map(foldedStacks(p, { valueIndex: 0 }));
  const after = new Map(foldedStacks(p));
  assert.equal(before.get('main;outer_work;inner_hot'), 412);
  assert.equal(after.get('main;outer_work;inner_hot'), 380);
  assert.equal(before.get('main;outer_work;new_fast_path'), undefined, 'zero before');
  assert.equal(after.get('main;outer_work;new_fast_path'), 45);
  assert.equal(before.get('main;outer_work;fib;fib'), 20);
  assert.equal(after.get('main;phase_loop;syscall_work;stat_files'), 12.5);
  assert.equal(p.meta.sampleCount, 809, 'sample count from the default (after) column, rounded');
});

test('a one-count line in a differential file is a ParseError', () => {
  const e = parseError('a;b 1 2\na;c 3 4\na;d 5\n', 'diff.folded');
  assert.equal(e.message, 'diff.folded:3: expected "stack before after" (a differential file) but the line has only one count (reading it as folded)');
});

test('a line without a count after the first is a ParseError with its line number', () => {
  const e = parseError('a;b 1\n\n# x\na;c\n', 'p.folded');
  assert.equal(e.message, 'p.folded:4: expected "stack count" but the line has no count (reading it as folded)');
});

test('not folded: first line without a count, JSON, binary, empty', () => {
  for (const text of ['hello world\n', '{"a": 1}\n', '', '\n\n# only comments\n']) {
    assert.equal(foldedImporter.parse(InputFile.fromText(text, 'x.txt')), NOT_MINE, JSON.stringify(text));
  }
  assert.equal(foldedImporter.parse(new InputFile(Uint8Array.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 10, 49, 32, 49]), 'x.gz')), NOT_MINE);
  assert.equal(foldedImporter.detect(InputFile.fromText('{"traceEvents": []}')), false);
  assert.equal(foldedImporter.detect(InputFile.fromText('a;b 12\nc;d 3\n')), true);
});

test('BOM, a last line without a newline, an empty stack and an empty frame', () => {
  const p = parse('\uFEFFa;;b 2\n 5\nc 1');
  assert.deepEqual(foldedStacks(p), [['', 5], ['a;;b', 2], ['c', 1]]);
});

test('parseCount accepts integers, decimals and exponents only', () => {
  const n = (s: string) => parseCount(s, 0, s.length);
  assert.equal(n('12'), 12);
  assert.equal(n('12.5'), 12.5);
  assert.equal(n('7.'), 7);
  assert.equal(n('.5'), 0.5);
  assert.equal(n('1e3'), 1000);
  assert.equal(n('-3'), -3);
  for (const bad of ['', '-', 'x', '1x', '1.2.3', '0x10', 'NaN', 'Infinity']) assert.ok(Number.isNaN(n(bad)), bad);
});

test('export: integer counts, single space, frameLabel labels, no thread roots by default', () => {
  const b = new ProfileBuilder({ timed: false });
  const main = b.frame({ name: 'main', file: '/srv/app/main.py', line: 3 });
  const work = b.frame({ name: 'work', qualname: 'C.work', file: '/srv/app/main.py', line: 10 });
  const k = b.frame({ name: 'do_syscall_64', kind: 'kernel' });
  const z = b.frame({ name: 'deflate', kind: 'native', lib: 'libz.so.1' });
  const t1 = b.thread(1, 1, 'MainThread');
  const t2 = b.thread(1, 2);
  b.sample(b.stackOf([main, work]), 3, t1);
  b.sample(b.stackOf([main, work]), 2, t2);
  b.sample(b.stackOf([main, work, z, k]), 1, t2);
  const p = b.build();
  assert.equal(writeFolded(p), 'main (main.py:3);C.work (main.py:10) 5\nmain (main.py:3);C.work (main.py:10);deflate;do_syscall_64_[k] 1\n');
  assert.equal(writeFolded(p, { lineno: false, fullFilenames: true }), 'main (/srv/app/main.py);C.work (/srv/app/main.py) 5\nmain (/srv/app/main.py);C.work (/srv/app/main.py);deflate;do_syscall_64_[k] 1\n');
  assert.match(writeFolded(withThreadRoots(p)), /^process 1;thread 1 \(MainThread\);main \(main\.py:3\);C\.work \(main\.py:10\) 3$/m);
  // Re-import: same stacks and weights; file and line come back from the labels.
  const back = roundTrip(p, (q) => foldedExporter.write(q), foldedImporter, 'x.folded');
  const w = [...Array(back.frames.length).keys()].map((f) => frameInfo(back, f)).find((f) => f.qualname === 'C.work')!;
  assert.equal(w.file, 'main.py');
  assert.equal(w.line, 10);
});

test('export scales fractional weights to integers by the smallest power of ten', () => {
  assert.equal(integerScale([1, 2, 3]), 1);
  assert.equal(integerScale([0.5, 2]), 10);
  assert.equal(integerScale([0.01, 0.02, 0.09]), 100);
  assert.equal(integerScale([1 / 3]), 1e6);
  const b = new ProfileBuilder({ valueTypes: [{ name: 'time', unit: 'nanoseconds' }], timed: false });
  const a = b.frame({ name: 'a' });
  const c = b.frame({ name: 'c' });
  b.sample(b.stackOf([a]), 0.25);
  b.sample(b.stackOf([a, c]), 1.5);
  const out = writeFolded(b.build());
  assert.equal(out, 'a 25\na;c 150\n');
  for (const line of out.trim().split('\n')) assert.match(line, /^(.*) (\d+)$/, 'speedscope/flamegraph.pl line shape');
});

test('round trip of every fixture through the exporter keeps stacks and weights', () => {
  for (const [rel] of GOLDEN) {
    const p = foldedImporter.parse(fixture(rel)) as Profile;
    if (p.valueTypes.length === 2) continue; // differential: weights may be decimal (12.5)
    const names = foldedStacks(p).map(([s]) => s);
    const back = foldedImporter.parse(InputFile.fromText(writeFolded(p, { fullFilenames: true }), 'x.folded')) as Profile;
    const scale = integerScale(foldedStacks(p).map(([, v]) => v));
    assert.deepEqual(foldedStacks(back).map(([s]) => s), names, rel);
    assert.deepEqual(foldedStacks(back).map(([, v]) => v), foldedStacks(p).map(([, v]) => Math.round(v * scale)), rel);
  }
});

test('damaged input gives ParseError or NOT_MINE, never another exception', () => {
  for (const [rel] of GOLDEN) {
    const stats = rejectsGarbage(foldedImporter, fixture(rel).bytes, 150);
    assert.ok(stats.notMine + stats.parseErrors + stats.accepted >= 150);
  }
  // Truncated in the middle of a line: the cut line has no count.
  const text = 'a;b 10\na;c 20\n';
  const e = parseError(text.slice(0, 10), 'cut.folded');
  assert.equal(e.message, 'cut.folded:2: expected "stack count" but the line has no count (reading it as folded)');
});

test('large input: many repeats of few stacks, distinct stacks, long lines', () => {
  const lines: string[] = [];
  for (let i = 0; i < 20000; i++) lines.push(`root;mid${i % 7};leaf${i % 13} ${1 + (i % 3)}`);
  for (let i = 0; i < 3000; i++) lines.push(`root;unique${i};x 1`);
  lines.push(`${Array.from({ length: 500 }, (_, i) => `f${i}`).join(';')} 9`);
  const p = parse(lines.join('\n'));
  const m = new Map(foldedStacks(p));
  let expect = 0;
  let sum = 0;
  for (let i = 0; i < 20000; i++) {
    sum += 1 + (i % 3);
    if (i % 7 === 3 && i % 13 === 5) expect += 1 + (i % 3);
  }
  assert.equal(m.get('root;mid3;leaf5'), expect);
  assert.equal(m.get('root;unique2999;x'), 1);
  assert.equal(m.get(Array.from({ length: 500 }, (_, i) => `f${i}`).join(';')), 9);
  assert.equal(p.samples.length, 7 * 13 + 3000 + 1);
  assert.equal(p.meta.sampleCount, sum + 3000 + 9);
  assert.ok(framesOf(p, 'root;mid3;leaf5'));
});

test('unicode frames survive byte-level parsing', () => {
  const p = parse('größe;計算 (ünï.py:3) 2\nгрöße 1\n');
  assert.deepEqual(foldedStacks(p), [['größe;計算 (ünï.py:3)', 2], ['грöße', 1]]);
});

test('stacks are matched byte for byte (also bytes that look like NaN or ±0 as float64)', () => {
  const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  const pad = 'root;warm_up_frame_with_a_long_name 1\n'.repeat(20); // keeps NUL bytes out of the sniffed head
  const text =
    pad +
    'abcdef\xF8\x7Fxxxxxxxxxxxx;tail 1\n' +
    'abcdeg\xF8\x7Fxxxxxxxxxxxx;tail 2\n' +
    'abcdef\xF8\x7Fxxxxxxxxxxxx;tail 4\n' +
    '\x00\x00\x00\x00\x00\x00\x00\x00yyyyyyyyyy;z 8\n' +
    '\x00\x00\x00\x00\x00\x00\x00\x80yyyyyyyyyy;z 16\n' +
    '\x00\x00\x00\x00\x00\x00\x00\x00yyyyyyyyyy;z 32\n';
  const p = foldedImporter.parse(new InputFile(enc(text), 'odd.folded')) as Profile;
  validateProfile(p);
  assert.equal(p.samples.length, 5);
  assert.deepEqual(
    Array.from(p.samples.values[0]!),
    [20, 1 + 4, 2, 8 + 32, 16],
  );
});

test('agrees with a naive split-and-sum reference on random files (lengths, near-identical stacks)', () => {
  for (let seed = 1; seed <= 5; seed++) {
    const r = rng(seed);
    const pick = (n: number) => Math.floor(r() * n);
    const names = Array.from({ length: 50 }, (_, i) => `f${i}${'x'.repeat(pick(9))}`);
    const stacks: string[] = [];
    for (let i = 0; i < 1500; i++) {
      const depth = 1 + pick(12);
      stacks.push(Array.from({ length: depth }, () => names[pick(names.length)]).join(';'));
      // A near twin: same length, one byte changed in the middle (fingerprints often agree).
      const last = stacks[stacks.length - 1]!;
      if (last.length > 20) {
        const at = 5 + pick(last.length - 10);
        stacks.push(last.slice(0, at) + (last[at] === 'x' ? 'y' : 'x') + last.slice(at + 1));
      }
    }
    const expect = new Map<string, number>();
    const lines: string[] = [];
    for (let i = 0; i < 30000; i++) {
      const s = stacks[Math.floor(Math.pow(r(), 3) * stacks.length)]!;
      const v = 1 + pick(9);
      expect.set(s, (expect.get(s) ?? 0) + v);
      lines.push(`${s} ${v}`);
    }
    const p = parse(lines.join('\n') + '\n');
    assert.deepEqual(foldedStacks(p), [...expect.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)), `seed ${seed}`);
  }
});
