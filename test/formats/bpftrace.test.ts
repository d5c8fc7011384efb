import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { frameInfo, threadLabel, totalValue, type Profile } from '../../src/model/profile.ts';
import { aggregate, foldedStacks, validateProfile } from '../../src/model/query.ts';
import { bpftraceImporter } from '../../src/formats/bpftrace.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { FIXTURES, detectsWithoutName, fixture, goldenSummary, rejectsGarbage } from '../helpers/format-checks.ts';

const FIXTURE_FILES = ['ustack.txt', 'ustack-comm.txt', 'ustack-comm.json', 'kstack-ustack-comm.txt', 'ustack-perf-mode.txt'].filter((f) => existsSync(join(FIXTURES, 'bpftrace', f)));

function imp(text: string, name = 'x.bt.txt'): Profile {
  const r = bpftraceImporter.parse(InputFile.fromText(text, name));
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}
const threads = (p: Profile) => Array.from({ length: p.threads.length }, (_, t) => threadLabel(p, t));
const frames = (p: Profile) => Array.from({ length: p.frames.length }, (_, f) => frameInfo(p, f));

function parseError(text: string, name = 'bad.bt.txt'): ParseError {
  try {
    bpftraceImporter.parse(InputFile.fromText(text, name));
  } catch (e) {
    assert.ok(e instanceof ParseError, `${(e as Error).name}: ${(e as Error).message}`);
    assert.ok(e.message.startsWith(`${name}:`), e.message);
    return e;
  }
  assert.fail('expected a ParseError');
}

test('@[ustack]: leaf-first frames become root-first stacks; offsets dropped; 0x… kept', () => {
  const p = imp(`Attaching 2 probes...


@[
    _PyObject_Malloc+17
    0x7f145d09c2d0
]: 1
@[
    PyObject_Malloc+22
    0x7f145dbe5343
    _start+4
]: 3
@[
    _PyObject_Malloc+99
    0x7f145d09c2d0
]: 10
`);
  assert.deepEqual(foldedStacks(p), [
    ['0x7f145d09c2d0;_PyObject_Malloc', 11],
    ['_start;0x7f145dbe5343;PyObject_Malloc', 3],
  ]);
  assert.ok(frames(p).every((f) => f.kind === 'native' && f.lib === null));
  assert.deepEqual(p.valueTypes, [{ name: '@', unit: 'samples' }]);
  assert.equal(p.meta.lens, 'ebpf');
  assert.equal(p.meta.backend, 'bpftrace');
  assert.equal(p.meta.sampleCount, 14);
  assert.deepEqual(p.meta.extra, { map: '@', probes: 2 });
  assert.deepEqual(threads(p), ['0/0']);
});

test('@[kstack, ustack, comm]: kernel frames above user frames, empty kstack, comm names the thread', () => {
  const p = imp(`Attaching 2 probes...
@[, 
    _PyObject_Free+165
, python3.12]: 4
@[
    fdget_pos+209
    ksys_write+40
    do_syscall_64+113
    entry_SYSCALL_64_after_hwframe+118
, 
    __GI___write+79
    0x7f00deadbeef
, worker alpha]: 2
@[
    0xffffffff81000123
    do_syscall_64+113
    entry_SYSCALL_64_after_hwframe+118
, 
    fstatat+10
, python3.12]: 1
`);
  assert.deepEqual(foldedStacks(p), [
    ['0x7f00deadbeef;__GI___write;entry_SYSCALL_64_after_hwframe_[k];do_syscall_64_[k];ksys_write_[k];fdget_pos_[k]', 2],
    ['_PyObject_Free', 4],
    ['fstatat;entry_SYSCALL_64_after_hwframe_[k];do_syscall_64_[k];0xffffffff81000123_[k]', 1],
  ]);
  const kinds = new Map(frames(p).map((f) => [f.name, f.kind]));
  assert.equal(kinds.get('fdget_pos'), 'kernel');
  assert.equal(kinds.get('0xffffffff81000123'), 'kernel');
  assert.equal(kinds.get('__GI___write'), 'native');
  assert.deepEqual(threads(p), ['python3.12 (0/1)', 'worker alpha (0/2)']);
  assert.equal(p.meta.extra?.threadIds, 'synthetic, one per comm');
});

test('ustack(perf): tab-indented "addr sym+off (module)" gives libs; [unknown] gives none; py:: perf-map names are Python', () => {
  const p = imp(`@[
\t7f931d3cfe10 _PyObject_Malloc+96 (/usr/lib/libpython3.12.so.1.0)
\t7f931d8d41a8 py::inner_hot:/srv/app/callchain.py+12 (/tmp/perf-4242.map)
\t7f931d8d4000 py::Worker.run:/srv/app/w.py (/tmp/perf-4242.map)
\t7f931d30a8a0 0x7f931d30a8a0 ([unknown])
]: 5
`);
  assert.deepEqual(foldedStacks(p), [['0x7f931d30a8a0;Worker.run (w.py);inner_hot (callchain.py);_PyObject_Malloc', 5]]);
  assert.deepEqual(
    frames(p).map((f) => [f.name, f.qualname, f.kind, f.file, f.lib]),
    [
      ['0x7f931d30a8a0', '0x7f931d30a8a0', 'native', null, null],
      ['run', 'Worker.run', 'python', '/srv/app/w.py', null],
      ['inner_hot', 'inner_hot', 'python', '/srv/app/callchain.py', null],
      ['_PyObject_Malloc', '_PyObject_Malloc', 'native', null, '/usr/lib/libpython3.12.so.1.0'],
    ],
  );
});

test('several maps: each stack map is a value column; count maps and histograms are skipped and named', () => {
  const p = imp(`Attaching 3 probes...
@calls[python3.12]: 17
@hist:
[0, 1)                 3 |@@@@@@@@@@                                          |
[1, 2)                15 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|

@oncpu[
    a+1
    main+2
, 1234, python3.12]: 7
@offcpu[
    b+1
    main+2
, 1234, python3.12]: 9
@total: 42
`);
  assert.deepEqual(p.valueTypes, [{ name: '@oncpu', unit: 'samples' }, { name: '@offcpu', unit: 'samples' }]);
  assert.deepEqual(p.meta.extra, { map: '@oncpu', maps: '@oncpu, @offcpu', skippedMaps: '@calls, @hist, @total', probes: 3 });
  assert.deepEqual(foldedStacks(p), [['main;a', 7]]);
  assert.deepEqual(foldedStacks(p, { valueIndex: 1 }), [['main;b', 9]]);
  assert.deepEqual(threads(p), ['python3.12 (0/1234)'], 'a numeric key is the thread id');
});

test('-f json: the same key text joined by ","', () => {
  const p = imp(
    [
      '{"type": "attached_probes", "data": {"probes": 2}}',
      '',
      '{"type": "map", "data": {"@": {"\\n    _PyObject_Free+165\\n    0x7fe0074d71a8\\n,python3.12": 3, "\\n    l_mod+830\\n,worker-beta": 1}}}',
      '{"type": "map", "data": {"@n": 5}}',
    ].join('\n'),
    'x.json',
  );
  assert.deepEqual(foldedStacks(p), [['0x7fe0074d71a8;_PyObject_Free', 3], ['l_mod', 1]]);
  assert.deepEqual(threads(p), ['python3.12 (0/1)', 'worker-beta (0/2)']);
  assert.deepEqual(p.meta.extra, { map: '@', skippedMaps: '@n', probes: 2, threadIds: 'synthetic, one per comm' });
});

for (const file of FIXTURE_FILES) {
  test(`fixture bpftrace/${file}: detected, golden, every count imported`, () => {
    const input = fixture(`bpftrace/${file}`);
    const p = detectsWithoutName(input, 'bpftrace');
    goldenSummary(`bpftrace-${file.replace(/\./g, '-')}`, p);
    const text = input.text();
    // Independent count: the sum of every entry's value.
    const expected = file.endsWith('.json')
      ? text.split('\n').filter((l) => l.includes('"type": "map"')).reduce((s, l) => s + Object.values(JSON.parse(l).data['@'] as Record<string, number>).reduce((a, b) => a + b, 0), 0)
      : [...text.matchAll(/\]: (\d+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
    assert.equal(totalValue(p), expected);
    assert.equal(p.meta.sampleCount, expected);
    const entries = file.endsWith('.json') ? Object.keys(JSON.parse(text.split('\n').find((l) => l.includes('"type": "map"'))!).data['@']).length : (text.match(/^@/gm) ?? []).length;
    assert.equal(p.samples.length, entries);
    if (file.includes('comm')) assert.deepEqual(threads(p).map((t) => t.replace(/ \(.*/, '')).sort(), ['python3.12', 'worker alpha', 'worker-beta']);
    if (file.startsWith('kstack')) {
      const k = aggregate(p).rows.filter((r) => r.kind === 'kernel');
      assert.ok(k.some((r) => r.name === 'entry_SYSCALL_64_after_hwframe'));
      assert.ok(foldedStacks(p).every(([s]) => !/_\[k\];[^;]*(?<!_\[k\])(;|$)/.test(s)), 'no user frame below a kernel frame');
    }
    if (file.includes('perf')) assert.ok(p.frames.lib.some((l) => l >= 0 && p.strings[l]!.endsWith('libc.so.6')));
  });
}

test('errors: unclosed entries, a map inside a key, bad JSON lines, no stack maps; other text is not mine', () => {
  assert.match(parseError('Attaching 1 probe...\n@[\n    a+1\n    b+2\n').message, /bad\.bt\.txt:2: map entry @\[ is not closed/);
  assert.match(parseError('@[\n    a+1\n@x[\n    b+1\n]: 3\n').message, /bad\.bt\.txt:3: a new map entry starts inside the key of @\[ begun on line 1/);
  assert.match(parseError('{"type": "attached_probes", "data": {"probes": 1}}\n{"type": "map", "data": {"@": {"\\n    a+1\\n": 1}\n', 'bad.json').message, /bad\.json:2: not a JSON record/);
  assert.match(parseError('Attaching 1 probe...\n@[python3.12]: 5\n@h:\n[1, 2) 3 |@@@|\n').message, /bad\.bt\.txt:1: no stack-count map to import \(maps @, @h hold no stacks\)/);
  for (const text of ['main;a 3\n', 'python3 1234 5.0: cycles:\n\t7f00 foo (/lib.so)\n', '{"traceEvents": []}', '']) {
    assert.equal(bpftraceImporter.detect(InputFile.fromText(text)), false, text);
    assert.equal(bpftraceImporter.parse(InputFile.fromText(text)), NOT_MINE, text);
  }
});

test('fuzz: mutated bpftrace output never throws anything but ParseError', () => {
  let parseErrors = 0;
  FIXTURE_FILES.forEach((f, i) => (parseErrors += rejectsGarbage(bpftraceImporter, readFileSync(join(FIXTURES, 'bpftrace', f)), 200, 31 + i).parseErrors));
  assert.ok(parseErrors >= 0);
});
