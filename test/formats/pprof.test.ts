import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { frameInfo, threadLabel, type Profile } from '../../src/model/profile.ts';
import { aggregate, foldedStacks, validateProfile } from '../../src/model/query.ts';
import { encodePprof, pprofExporter, pprofImporter } from '../../src/formats/pprof.ts';
import { ProtoReader, ProtoWriter } from '../../src/formats/protobuf.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { FIXTURES, detectsWithoutName, fixture, goldenSummary, rejectsGarbage, roundTrip } from '../helpers/format-checks.ts';

const GO_PPROF = 'pprof/go/cpu.pprof';
const hasGoFixture = existsSync(join(FIXTURES, GO_PPROF));

function imp(bytes: Uint8Array, name = 'x.pb'): Profile {
  const r = pprofImporter.parse(new InputFile(bytes, name));
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}

function parseError(bytes: Uint8Array, name: string): ParseError {
  try {
    pprofImporter.parse(new InputFile(bytes, name));
  } catch (e) {
    assert.ok(e instanceof ParseError, `expected ParseError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match(e.message, new RegExp(name.replace('.', '\\.')));
    return e;
  }
  assert.fail('expected a ParseError');
}

/** A small hand-made profile: strings, values, inlined lines, a kernel mapping, thread labels. */
function handMade(o: { packed: boolean }): Uint8Array {
  const strings = ['', 'samples', 'count', 'cpu', 'nanoseconds', 'main', 'app.py', 'inner', 'helper', 'lib.py', 'memcpy', '/usr/lib/libc.so.6', 'do_sys_open', '[kernel.kallsyms]', 'thread_id', 'thread_name', 'worker', 'pid'];
  const s = (v: string) => strings.indexOf(v);
  const w = new ProtoWriter();
  const vt = (t: string, u: string) => {
    const m = new ProtoWriter();
    m.uint(1, s(t));
    m.uint(2, s(u));
    return m;
  };
  w.message(1, vt('samples', 'count'));
  w.message(1, vt('cpu', 'nanoseconds'));
  const repeated = (m: ProtoWriter, field: number, vals: number[]) => {
    if (o.packed) m.packed(field, vals);
    else for (const v of vals) m.uint(field, v, true);
  };
  const label = (key: string, str: string | null, num: number | null) => {
    const l = new ProtoWriter();
    l.uint(1, s(key));
    if (str !== null) l.uint(2, s(str));
    if (num !== null) l.uint(3, num, true);
    return l;
  };
  const sample = (locs: number[], vals: number[], labels: ProtoWriter[]) => {
    const m = new ProtoWriter();
    repeated(m, 1, locs);
    repeated(m, 2, vals);
    for (const l of labels) m.message(3, l);
    w.message(2, m);
  };
  // Leaf first: 3 (kernel) ← 2 (libc memcpy) ← 1 (main with inlined helper ← inner).
  sample([1], [2, 20000], []);
  sample([2, 1], [3, 30000], [label('thread_id', null, 7), label('thread_name', 'worker', null), label('pid', null, 42)]);
  sample([3, 2, 1], [1, 10000], [label('thread_id', null, 7), label('pid', null, 42)]);
  const mapping = (id: number, file: string) => {
    const m = new ProtoWriter();
    m.uint(1, id);
    m.uint(5, s(file));
    w.message(3, m);
  };
  mapping(1, '/usr/lib/libc.so.6');
  mapping(2, '[kernel.kallsyms]');
  const location = (id: number, mappingId: number, addr: number, lines: Array<[number, number]>) => {
    const m = new ProtoWriter();
    m.uint(1, id);
    m.uint(2, mappingId);
    m.uint(3, addr);
    for (const [fn, line] of lines) {
      const l = new ProtoWriter();
      l.uint(1, fn);
      l.uint(2, line);
      m.message(4, l);
    }
    w.message(4, m);
  };
  location(1, 0, 0, [[3, 21], [2, 11], [1, 5]]); // helper inlined into inner inlined into main
  location(2, 1, 0x7f00, [[4, 0]]);
  location(3, 2, 0xffffffff81000000, [[5, 0]]);
  const fn = (id: number, name: string, file: string, start: number) => {
    const m = new ProtoWriter();
    m.uint(1, id);
    m.uint(2, s(name));
    m.uint(3, s(name));
    m.uint(4, s(file));
    m.uint(5, start);
    w.message(5, m);
  };
  fn(1, 'main', 'app.py', 1);
  fn(2, 'inner', 'app.py', 10);
  fn(3, 'helper', 'lib.py', 20);
  fn(4, 'memcpy', '', 0);
  fn(5, 'do_sys_open', '', 0);
  for (const v of strings) w.string(6, v);
  w.uint(9, 1_700_000_000_000_000_000n);
  w.uint(10, 2_000_000_000);
  w.message(11, vt('cpu', 'nanoseconds'));
  w.uint(12, 10_000_000);
  w.uint(14, s('cpu'));
  return w.finish();
}

test('hand-made pprof: exact frames, kinds, inlining, values, threads and meta', () => {
  for (const packed of [true, false]) {
    const p = imp(handMade({ packed }), 'hand.pb');
    assert.deepEqual(p.valueTypes, [{ name: 'samples', unit: 'samples' }, { name: 'cpu', unit: 'nanoseconds' }]);
    assert.equal(p.defaultValue, 1);
    assert.deepEqual(foldedStacks(p), [
      ['main (app.py:5);inner (app.py:11);helper (lib.py:21)', 20000],
      ['main (app.py:5);inner (app.py:11);helper (lib.py:21);memcpy', 30000],
      ['main (app.py:5);inner (app.py:11);helper (lib.py:21);memcpy;do_sys_open_[k]', 10000],
    ]);
    const frames = Array.from({ length: p.frames.length }, (_, f) => frameInfo(p, f));
    assert.deepEqual(
      frames.map((f) => [f.name, f.kind, f.file, f.line, f.lib]),
      [
        ['main', 'python', 'app.py', 5, null],
        ['inner', 'python', 'app.py', 11, null],
        ['helper', 'python', 'lib.py', 21, null],
        ['memcpy', 'native', null, 0, '/usr/lib/libc.so.6'],
        ['do_sys_open', 'kernel', null, 0, '[kernel.kallsyms]'],
      ],
    );
    assert.deepEqual(Array.from({ length: p.threads.length }, (_, t) => threadLabel(p, t)), ['0/0', 'worker (42/7)']);
    assert.equal(p.meta.rateHz, 100);
    assert.equal(p.meta.mode, 'cpu');
    assert.equal(p.meta.durationNs, 2e9);
    assert.equal(p.meta.startTime, '2023-11-14T22:13:20.000Z');
    assert.equal(p.meta.sampleCount, 6);
  }
});

test('units are scaled: microseconds → nanoseconds, kilobytes → bytes, calls stay calls', () => {
  const strings = ['', 'wall', 'microseconds', 'alloc_space', 'kilobytes', 'calls', 'count', 'f', 'a.py'];
  const w = new ProtoWriter();
  const vt = (t: number, u: number) => {
    const m = new ProtoWriter();
    m.uint(1, t);
    m.uint(2, u);
    return m;
  };
  w.message(1, vt(1, 2));
  w.message(1, vt(3, 4));
  w.message(1, vt(5, 6));
  const sm = new ProtoWriter();
  sm.packed(1, [1]);
  sm.packed(2, [3, 2, 5]);
  w.message(2, sm);
  const loc = new ProtoWriter();
  loc.uint(1, 1);
  const ln = new ProtoWriter();
  ln.uint(1, 1);
  ln.uint(2, 4);
  loc.message(4, ln);
  w.message(4, loc);
  const fn = new ProtoWriter();
  fn.uint(1, 1);
  fn.uint(2, 7);
  fn.uint(4, 8);
  w.message(5, fn);
  for (const v of strings) w.string(6, v);
  const p = imp(w.finish());
  assert.deepEqual(p.valueTypes, [{ name: 'wall', unit: 'nanoseconds' }, { name: 'alloc_space', unit: 'bytes' }, { name: 'calls', unit: 'calls' }]);
  assert.equal(p.defaultValue, 2, 'no default_sample_type: the last one');
  assert.deepEqual([p.samples.values[0]![0], p.samples.values[1]![0], p.samples.values[2]![0]], [3000, 2048, 5]);
  assert.equal(p.meta.mode, 'wall');
});

test('Go runtime/pprof CPU profile: golden, and flat/cum agree with `go tool pprof -top`', { skip: !hasGoFixture && `${GO_PPROF} not captured` }, () => {
  const input = fixture(GO_PPROF);
  const p = detectsWithoutName(input, 'pprof');
  goldenSummary('pprof-go-cpu', p);
  assert.equal(p.meta.mode, 'cpu');
  assert.equal(p.meta.rateHz, 100);
  assert.deepEqual(p.valueTypes.map((v) => `${v.name}/${v.unit}`), ['samples/samples', 'cpu/nanoseconds']);
  // Every row of Go's own -top output (flat, cum, name) must come out of aggregate().
  const top = readFileSync(join(FIXTURES, 'pprof/go/cpu.top.txt'), 'utf8');
  const rows = [...top.matchAll(/^\s*(\d+(?:\.\d+)?)(ms|s)?\s+\S+%\s+\S+%\s+(\d+(?:\.\d+)?)(ms|s)?\s+\S+%\s+(.+?)(?: \(inline\))?$/gm)];
  assert.ok(rows.length >= 3, 'parsed the -top table');
  const ns = (v: string, u: string | undefined) => Math.round(Number(v) * (u === 's' ? 1e9 : u === 'ms' ? 1e6 : 1));
  const agg = new Map(aggregate(p).rows.map((r) => [r.name, r]));
  for (const m of rows) {
    const row = agg.get(m[5]!);
    assert.ok(row, `function ${m[5]} from go tool pprof -top`);
    assert.equal(row.self, ns(m[1]!, m[2]), `flat of ${m[5]}`);
    assert.equal(row.total, ns(m[3]!, m[4]), `cum of ${m[5]}`);
  }
  assert.equal(agg.size, rows.length, 'no function that go tool pprof does not show');
  // Inlined frames: main.rotateMix is inlined into main.coldLoopBeta.
  assert.ok(foldedStacks(p).some(([s]) => /main\.coldLoopBeta \(main\.go:\d+\);main\.rotateMix/.test(s)));
  assert.ok(p.frames.lib.some((l) => l >= 0 && /burn$/.test(p.strings[l]!)), 'mapping file becomes the lib');
});

function pythonProfile(): Profile {
  const b = new ProfileBuilder({
    meta: { backend: 'test', mode: 'cpu', rateHz: 100, startTime: '2026-01-02T03:04:05.678Z', durationNs: 2e9 },
    valueTypes: [{ name: 'samples', unit: 'samples' }, { name: 'cpu', unit: 'nanoseconds' }],
    defaultValue: 1,
  });
  const main = b.frame({ name: 'main', file: '/app/m.py', line: 3 });
  const work = b.frame({ name: 'work', qualname: 'C.work', file: '/app/m.py', line: 10 });
  const work2 = b.frame({ name: 'work', qualname: 'C.work', file: '/app/m.py', line: 12 });
  const zlib = b.frame({ name: 'deflate', kind: 'native', lib: '/usr/lib/libz.so.1' });
  const sys = b.frame({ name: 'do_syscall_64', kind: 'kernel' });
  const t1 = b.thread(100, 100, 'MainThread');
  const t2 = b.thread(100, 101, 'worker');
  const t3 = b.thread(100, 102);
  b.sample(b.stackOf([main, work]), [3, 30e6], t1, 'on-cpu', 1);
  b.sample(b.stackOf([main, work2, zlib]), [5, 50e6], t2, 'on-cpu', 2);
  b.sample(b.stackOf([main, work2, zlib, sys]), [1, 10e6], t2, 'on-cpu', 3);
  b.sample(b.stackOf([main]), [2, 20e6], t3, 'on-cpu', 4);
  b.sample(b.stackOf([main, work]), [1, 10e6], t1, 'on-cpu', 5);
  return b.build();
}

test('export → import keeps folded stacks, threads, rate, start and duration', () => {
  const p = pythonProfile();
  const back = roundTrip(p, (q) => pprofExporter.write(q), pprofImporter, 'out.pb.gz');
  const threads = (q: Profile) => Array.from({ length: q.threads.length }, (_, t) => threadLabel(q, t)).sort();
  assert.deepEqual(threads(back), threads(p));
  for (let v = 0; v < p.valueTypes.length; v++) assert.deepEqual(foldedStacks(back, { valueIndex: v }), foldedStacks(p, { valueIndex: v }));
  assert.deepEqual(back.valueTypes, p.valueTypes);
  assert.equal(back.defaultValue, 1);
  assert.equal(back.meta.rateHz, 100);
  assert.equal(back.meta.startTime, '2026-01-02T03:04:05.678Z');
  assert.equal(back.meta.durationNs, 2e9);
  const kinds = (q: Profile) => Array.from({ length: q.frames.length }, (_, f) => `${frameInfo(q, f).qualname}:${frameInfo(q, f).kind}`).sort();
  assert.deepEqual(kinds(back), kinds(p));
  // Samples are aggregated per (stack, thread): the two main;work samples became one.
  assert.equal(back.samples.length, 4);
  // Output is gzip, and the body starts with the sample types.
  const out = pprofExporter.write(p) as Uint8Array;
  assert.deepEqual([out[0], out[1]], [0x1f, 0x8b]);
  const body = gunzipSync(out);
  assert.deepEqual(body, Buffer.from(encodePprof(p)));
});

test('export → import of the Go profile keeps it', { skip: !hasGoFixture && `${GO_PPROF} not captured` }, () => {
  const p = imp(readFileSync(join(FIXTURES, GO_PPROF)), 'cpu.pprof');
  const back = roundTrip(p, (q) => pprofExporter.write(q), pprofImporter);
  assert.deepEqual(aggregate(back), aggregate(p));
});

test('exported file opens in `go tool pprof -top` with the right functions and flat values', (t) => {
  const which = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) {
    t.skip('`go` is not on PATH: install golang-go to check exports with go tool pprof');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'pylens-pprof-'));
  try {
    const file = join(dir, 'py.pb.gz');
    writeFileSync(file, pprofExporter.write(pythonProfile()) as Uint8Array);
    const env = { ...process.env, HOME: dir, GOCACHE: join(dir, 'gocache'), GOTOOLCHAIN: 'local', GOFLAGS: '', PPROF_TMPDIR: dir };
    const run = (...args: string[]) => {
      const r = spawnSync('go', ['tool', 'pprof', ...args, file], { encoding: 'utf8', env, timeout: 60_000 });
      assert.equal(r.status, 0, `go tool pprof ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    };
    const top = run('-top');
    const flat = (out: string) => new Map([...out.matchAll(/^\s*(\S+)\s+\S+%\s+\S+%\s+(\S+)\s+\S+%\s+(\S+)$/gm)].map((m) => [m[3]!, [m[1]!, m[2]!]]));
    assert.match(top, /Type: cpu/);
    assert.match(top, /Duration: 2s, Total samples = 120ms/);
    assert.deepEqual(
      [...flat(top)],
      [
        ['deflate', ['50ms', '60ms']],
        ['C.work', ['40ms', '100ms']],
        ['main', ['20ms', '120ms']],
        ['do_syscall_64', ['10ms', '10ms']],
      ],
    );
    const counts = run('-top', '-sample_index=samples');
    assert.deepEqual([...flat(counts)].map(([n, [f]]) => `${n}=${f}`), ['deflate=5', 'C.work=4', 'main=2', 'do_syscall_64=1']);
    const tags = run('-tags');
    assert.match(tags, /thread_id: Total 120\.0ms\s+60\.0ms \(50\.00%\): 101\s+40\.0ms \(33\.33%\): 100\s+20\.0ms \(16\.67%\): 102/);
    assert.match(tags, /thread_name: Total 100\.0ms\s+60\.0ms \(60\.00%\): worker\s+40\.0ms \(40\.00%\): MainThread/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('go tool pprof keeps Python names in angle brackets (<module>, <lambda>, <genexpr>): it does not take them for C++ templates', (t) => {
  if (spawnSync('go', ['version']).status !== 0) {
    t.skip('`go` is not on PATH');
    return;
  }
  const b = new ProfileBuilder({ meta: { backend: 'test', mode: 'cpu', rateHz: 100 }, valueTypes: [{ name: 'samples', unit: 'samples' }], defaultValue: 1 });
  const mod = b.frame({ name: '<module>', file: '/app/m.py', line: 1 });
  const lam = b.frame({ name: '<lambda>', file: '/app/m.py', line: 5 });
  const gen = b.frame({ name: '<genexpr>', qualname: 'encode.<locals>.<genexpr>', file: '/app/m.py', line: 9 });
  const th = b.thread(1, 1, 'MainThread');
  b.sample(b.stackOf([mod, lam]), 3, th, 'on-cpu', 1);
  b.sample(b.stackOf([mod, gen]), 2, th, 'on-cpu', 2);
  b.sample(b.stackOf([mod]), 1, th, 'on-cpu', 3);
  const dir = mkdtempSync(join(tmpdir(), 'pylens-pprof-'));
  try {
    const file = join(dir, 'angle.pb.gz');
    writeFileSync(file, pprofExporter.write(b.build()) as Uint8Array);
    const env = { ...process.env, HOME: dir, GOCACHE: join(dir, 'gocache'), GOTOOLCHAIN: 'local', GOFLAGS: '', PPROF_TMPDIR: dir };
    const r = spawnSync('go', ['tool', 'pprof', '-top', file], { encoding: 'utf8', env, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const names = r.stdout.split('\n').filter((l) => /%\s+\S+\s+\S+%\s+\S+$/.test(l)).map((l) => l.trim().split(/\s+/).at(-1)!).sort();
    assert.deepEqual(names, ['<lambda>', '<module>', 'encode.<locals>.<genexpr>'], r.stdout);
    // and our own reader gives the same frames back
    const back = imp(readFileSync(file), file);
    assert.deepEqual([...new Set(Array.from({ length: back.frames.length }, (_, f) => back.strings[back.frames.qualname[f]!]))].sort(), ['<lambda>', '<module>', 'encode.<locals>.<genexpr>']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('detection: gzip and plain bodies; other gzip content and text are not mine', () => {
  const body = handMade({ packed: true });
  assert.ok(pprofImporter.magic!(body.subarray(0, 64)));
  assert.ok(pprofImporter.magic!(gzipSync(body).subarray(0, 64)));
  assert.ok(pprofImporter.detect(new InputFile(gzipSync(body))));
  assert.ok(pprofImporter.detect(new InputFile(body)));
  for (const text of ['main;work 3\n', '\nZebra crossing\n', '@[\n    foo+1\n]: 3\n', '{"traceEvents": []}', '']) {
    const b = new TextEncoder().encode(text);
    assert.equal(pprofImporter.magic!(b.subarray(0, 64)), false, JSON.stringify(text));
    assert.equal(pprofImporter.parse(new InputFile(b)), NOT_MINE);
    assert.equal(pprofImporter.parse(new InputFile(gzipSync(b))), NOT_MINE, `gzip of ${JSON.stringify(text)}`);
  }
});

test('corrupt input: ParseError with file and byte offset, never another exception', () => {
  const body = handMade({ packed: true });
  // Truncated inside a field.
  const cut = parseError(body.subarray(0, body.length - 3), 'cut.pb');
  assert.equal(typeof cut.position.offset, 'number');
  assert.match(cut.message, /cut\.pb at byte \d+: /);
  // A string index outside the table: rewrite default_sample_type (last field) to 99.
  const bad = Uint8Array.from(body);
  assert.equal(bad[bad.length - 2], 14 * 8);
  bad[bad.length - 1] = 99;
  assert.match(parseError(bad, 'idx.pb').message, /default_sample_type: string index 99 is outside the string table/);
  // Wrong wire type: time_nanos (field 9) as a length-delimited field.
  const wrong = new ProtoWriter();
  wrong.message(1, new ProtoWriter());
  wrong.message(1, new ProtoWriter());
  wrong.bytes(9, new Uint8Array([1, 2]));
  assert.match(parseError(wrong.finish(), 'wire.pb').message, /wire\.pb at byte 4: field 9 has wire type 2, expected 0/);
  // Wrong wire type deep inside: Line.function_id as a length-delimited field.
  const deep = new ProtoWriter();
  deep.message(1, new ProtoWriter());
  const loc = new ProtoWriter();
  loc.uint(1, 1);
  const line = new ProtoWriter();
  line.bytes(1, new Uint8Array([7]));
  loc.message(4, line);
  deep.message(4, loc);
  deep.string(6, '');
  assert.match(parseError(deep.finish(), 'deep.pb').message, /deep\.pb at byte 8: field 1 has wire type 2, expected 0/);
  // A sample that refers to a location that does not exist.
  const r = new ProtoWriter();
  r.message(1, new ProtoWriter());
  const s = new ProtoWriter();
  s.packed(1, [5]);
  s.packed(2, [1]);
  r.message(2, s);
  r.string(6, '');
  assert.match(parseError(r.finish(), 'loc.pb').message, /loc\.pb at byte 4: sample refers to location 5/);
  // Truncated gzip.
  const gz = gzipSync(body);
  const tg = parseError(gz.subarray(0, gz.length - 5), 'cut.pb.gz');
  assert.match(tg.message, /gzip stream is corrupt or truncated/);
  // A varint of more than 10 bytes.
  assert.match(parseError(Uint8Array.from([0x0a, 0x00, 0x0a, 0x00, 0x48, ...new Array(10).fill(0xff), 0x01]), 'long.pb').message, /long\.pb at byte 5: varint longer than 10 bytes/);
  // Another format's file is not mine.
  assert.equal(pprofImporter.parse(new InputFile(readFileSync(join(FIXTURES, 'cprofile/3.8/mixed.pstats')), 'x.pstats')), NOT_MINE);
});

test('protobuf reader: int64 two\'s complement, uint64, packed and unpacked', () => {
  const w = new ProtoWriter();
  w.uint(1, -1, true);
  w.uint(2, 2 ** 40 + 5);
  w.packed(3, [1, 300, 70000]);
  w.uint(3, 9, true);
  const fail = (o: number, m: string): never => {
    throw new Error(`${o}: ${m}`);
  };
  const r = new ProtoReader(w.finish(), fail);
  assert.equal(r.tag(), 1);
  assert.equal(r.int64(), -1);
  assert.equal(r.tag(), 2);
  assert.equal(r.uint64(), 2 ** 40 + 5);
  const rep: number[] = [];
  while (!r.done()) {
    assert.equal(r.tag(), 3);
    r.repeated(3, rep, false);
  }
  assert.deepEqual(rep, [1, 300, 70000, 9]);
});

test('fuzz: mutated pprof (gzip and plain) never throws anything but ParseError', () => {
  const inputs = [gzipSync(handMade({ packed: true })), handMade({ packed: false }), pprofExporter.write(pythonProfile()) as Uint8Array];
  if (hasGoFixture) inputs.push(readFileSync(join(FIXTURES, GO_PPROF)), gunzipSync(readFileSync(join(FIXTURES, GO_PPROF))));
  let parseErrors = 0;
  inputs.forEach((b, i) => {
    const st = rejectsGarbage(pprofImporter, b, 300, 11 + i);
    parseErrors += st.parseErrors;
  });
  assert.ok(parseErrors > 50, `mutations were mostly rejected with ParseError (${parseErrors})`);
});
