import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Profile } from '../../src/model/profile.ts';
import { aggregate, foldedStacks, validateProfile } from '../../src/model/query.ts';
import { pstatsFrameSpec, pstatsImporter, readPstats, type PstatsKey } from '../../src/formats/pstats.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { FIXTURES, detectsWithoutName, fixture, goldenSummary, rejectsGarbage } from '../helpers/format-checks.ts';

/** pstats fixtures (under fixtures/) and the tool that wrote each; every one has Python's own reading as .expected.json. */
const FIXTURE_BACKENDS: Record<string, string> = {
  'cprofile/3.8/mixed': 'cProfile',
  'cprofile/3.13/mixed': 'cProfile',
  'cprofile/3.11-profile/mixed': 'profile',
  'cprofile/3.11-profile/mixed-run-string': 'profile',
  'yappi/3.11/mixed': 'yappi',
};
const FIXTURE_NAMES = Object.keys(FIXTURE_BACKENDS).filter((f) => existsSync(join(FIXTURES, `${f}.pstats`)));

const failWith = (file: string) => (offset: number, message: string): never => {
  throw new ParseError('pstats', file, { offset }, message);
};

// ---- a tiny marshal writer for hand-made inputs (tuples, dicts, str, int, float) -------

type Py = string | number | { float: number } | Py[] | Map<Py, Py>;
function marshal(v: Py): Uint8Array {
  const out: number[] = [];
  const i32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    out.push(...b);
  };
  const w = (x: Py): void => {
    if (typeof x === 'string') {
      const b = Buffer.from(x, 'utf8');
      out.push(0x75); // 'u'
      i32(b.length);
      out.push(...b);
    } else if (typeof x === 'number') {
      out.push(0x69); // 'i'
      i32(x);
    } else if (Array.isArray(x)) {
      out.push(0x29, x.length); // ')'
      x.forEach(w);
    } else if (x instanceof Map) {
      out.push(0x7b); // '{'
      for (const [k, val] of x) (w(k), w(val));
      out.push(0x30); // '0'
    } else {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(x.float);
      out.push(0x67, ...b); // 'g'
    }
  };
  w(v);
  return Uint8Array.from(out);
}
const f = (x: number) => ({ float: x });

/** main → a → b, main → b, b → len (built-in), main → fib ↺ fib (times in seconds). */
function handMade(pure = false): Uint8Array {
  const MAIN: Py = ['app.py', 1, 'main'];
  const A: Py = ['app.py', 10, 'a'];
  const B: Py = ['app.py', 20, 'b'];
  const LEN: Py = ['~', 0, '<built-in method builtins.len>'];
  const FIB: Py = ['fib.py', 3, 'fib'];
  const edge = (nc: number, cc: number, tt: number, ct: number): Py => (pure ? nc : [nc, cc, f(tt), f(ct)]);
  return marshal(
    new Map<Py, Py>([
      [MAIN, [1, 1, f(1), f(10), new Map()]],
      [A, [1, 1, f(2), f(5), new Map([[MAIN, edge(1, 1, 2, 5)]])]],
      [B, [5, 5, f(4), f(4), new Map([[MAIN, edge(2, 2, 1, 1)], [A, edge(3, 3, 3, 3)]])]],
      [LEN, [10, 10, f(0.5), f(0.5), new Map([[B, edge(10, 10, 0.5, 0.5)]])]],
      [FIB, [1, 9, f(1), f(1), new Map([[MAIN, edge(1, 1, 0.2, 1)], [FIB, edge(8, 0, 0.8, 0.8)]])]],
    ]),
  );
}

function imp(bytes: Uint8Array, name = 'x.pstats'): Profile {
  const r = pstatsImporter.parse(new InputFile(bytes, name));
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}

test('hand-made cProfile stats: stacks from edges, self split by edge, recursion folded, built-ins native', () => {
  const p = imp(handMade(), 'hand.pstats');
  assert.equal(p.meta.backend, 'cProfile');
  assert.equal(p.meta.lens, 'interpreter');
  assert.equal(p.meta.mode, 'calls');
  assert.deepEqual(p.valueTypes, [{ name: 'calls', unit: 'calls' }, { name: 'self', unit: 'nanoseconds' }, { name: 'total', unit: 'nanoseconds' }]);
  assert.equal(p.defaultValue, 1);
  assert.equal(p.samples.time, null);
  assert.deepEqual(foldedStacks(p), [
    ['main (app.py:1)', 1e9],
    ['main (app.py:1);a (app.py:10)', 2e9],
    ['main (app.py:1);a (app.py:10);b (app.py:20)', 3e9],
    // len's 0.5 s is spread over b's callers by b's cumulative time per edge: a 3 s, main 1 s.
    ['main (app.py:1);a (app.py:10);b (app.py:20);<built-in method builtins.len>', 0.375e9],
    ['main (app.py:1);b (app.py:20)', 1e9],
    ['main (app.py:1);b (app.py:20);<built-in method builtins.len>', 0.125e9],
    // fib's recursive self-edge is folded into its only outer caller.
    ['main (app.py:1);fib (fib.py:3)', 1e9],
  ]);
  assert.deepEqual(foldedStacks(p, { valueIndex: 0 }).find(([s]) => s === 'main (app.py:1);a (app.py:10);b (app.py:20)'), ['main (app.py:1);a (app.py:10);b (app.py:20)', 3]);
  const len = aggregate(p).rows.find((r) => r.name.includes('builtins.len'))!;
  assert.equal(len.kind, 'native');
  assert.equal(len.file, null);
  assert.equal(p.meta.extra?.totalCalls, 26);
  assert.equal(p.meta.durationNs, 8.5e9);
});

test('pure-Python `profile` stats (int caller counts) split by counts; the sampled marker key is skipped', () => {
  const p = imp(handMade(true), 'pure.pstats');
  assert.equal(p.meta.backend, 'profile');
  const folded = new Map(foldedStacks(p));
  // b's 4 s self: 2 calls from main, 3 from a.
  assert.equal(folded.get('main (app.py:1);b (app.py:20)'), 1.6e9);
  assert.equal(folded.get('main (app.py:1);a (app.py:10);b (app.py:20)'), 2.4e9);
  const sampled = new Uint8Array([...marshal(new Map<Py, Py>([[['__sampled__'], 1]])).subarray(0, -1), ...handMade().subarray(1)]);
  const q = imp(sampled, 'sampled.pstats');
  assert.equal(q.meta.extra?.sampled, 1);
  assert.deepEqual(foldedStacks(q), foldedStacks(imp(handMade())));
});

/** Python's own reading (pstats_to_json.py) in the fixture's shape. */
function jsonKey(k: PstatsKey): unknown {
  const [file, line, name] = k;
  return [file, line, typeof name === 'string' ? name : { $code: { co_name: name.name, co_filename: name.filename, co_firstlineno: name.firstlineno } }];
}

for (const name of FIXTURE_NAMES) {
  test(`pstats ${name}: the TypeScript reading equals Python's, entry by entry`, () => {
    const bytes = readFileSync(join(FIXTURES, `${name}.pstats`));
    const expected = JSON.parse(readFileSync(join(FIXTURES, `${name}.expected.json`), 'utf8'));
    const data = readPstats(bytes, failWith(name));
    assert.equal(data.entries.length, expected.entries.length);
    const byKey = new Map<string, any>(expected.entries.map((e: any) => [JSON.stringify(e.key), e]));
    let totalCalls = 0;
    let primCalls = 0;
    let totalTt = 0;
    for (const e of data.entries) {
      const k = JSON.stringify(jsonKey(e.key));
      const x = byKey.get(k);
      assert.ok(x, `entry ${k} is in Python's reading`);
      byKey.delete(k);
      assert.deepEqual([e.cc, e.nc, e.tt, e.ct], [x.cc, x.nc, x.tt, x.ct], k);
      const callers = new Map(e.callers.map((c) => [JSON.stringify(jsonKey(c.key)), c.value]));
      assert.deepEqual(callers, new Map(x.callers.map((c: any) => [JSON.stringify(c.key), c.value])), `callers of ${k}`);
      totalCalls += e.nc;
      primCalls += e.cc;
      totalTt += e.tt;
    }
    assert.equal(byKey.size, 0);
    // Same sums in the same (file) order as pstats.Stats.load_stats: bit-identical.
    assert.deepEqual([totalCalls, primCalls, totalTt], [expected.total_calls, expected.prim_calls, expected.total_tt]);
  });

  test(`pstats ${name}: model rows sum back to tottime, cumtime and ncalls per function; golden`, () => {
    const input = fixture(`${name}.pstats`);
    const p = detectsWithoutName(input, 'pstats');
    goldenSummary(`pstats-${name.replace(/^cprofile\//, '').replace(/\//g, '-')}`, p);
    const data = readPstats(input.bytes, failWith(name));
    assert.equal(p.meta.backend, FIXTURE_BACKENDS[name]);
    const rowKey = (qual: string, file: string | null, line: number) => `${qual}\u0000${file}\u0000${line}`;
    for (const [vi, pick] of [[0, (e: { cc: number; nc: number }) => Math.max(e.cc, e.nc)], [1, (e: { tt: number }) => Math.round(e.tt * 1e9)], [2, (e: { ct: number }) => Math.round(e.ct * 1e9)]] as const) {
      const rows = new Map(aggregate(p, { by: 'line', valueIndex: vi }).rows.map((r) => [rowKey(r.name, r.file, r.line), r.self]));
      for (const e of data.entries) {
        const s = pstatsFrameSpec(e.key);
        const got = rows.get(rowKey(s.qualname ?? s.name, s.file ?? null, s.line ?? 0)) ?? 0;
        assert.equal(got, pick(e as never), `${p.valueTypes[vi]!.name} of ${JSON.stringify(jsonKey(e.key))}`);
      }
    }
    assert.equal(p.meta.extra?.totalCalls, data.entries.reduce((s, e) => s + Math.max(e.cc, e.nc), 0));
    if (FIXTURE_BACKENDS[name] !== 'yappi') assert.equal(p.meta.extra?.totalCalls, data.entries.reduce((s, e) => s + e.nc, 0), 'pstats\' "function calls"');
  });
}

test('pstats from `python -m profile` keeps the code-object key as a marker frame', { skip: !FIXTURE_NAMES.includes('cprofile/3.11-profile/mixed') }, () => {
  const p = imp(readFileSync(join(FIXTURES, 'cprofile/3.11-profile/mixed.pstats')));
  const labels = foldedStacks(p).map(([s]) => s);
  assert.ok(labels.some((s) => s.startsWith('profile:0(profiler);profile:0(<code object <module>, file "mixed.py", line 1>)')));
  const stat = aggregate(p).rows.find((r) => r.name === 'stat')!;
  assert.equal(stat.kind, 'native', "('', 0, 'stat') is a C function");
});

test('corrupt and wrong-type input: ParseError with file and offset, or not mine', () => {
  const good = handMade();
  const err = (bytes: Uint8Array, name: string): ParseError => {
    try {
      pstatsImporter.parse(new InputFile(bytes, name));
    } catch (e) {
      assert.ok(e instanceof ParseError, `${(e as Error).name}: ${(e as Error).message}`);
      assert.ok(e.message.startsWith(`${name} at byte `), e.message);
      return e;
    }
    assert.fail('expected ParseError');
  };
  assert.match(err(good.subarray(0, good.length - 9), 'cut.pstats').message, /file ends inside/);
  // Key tuple with a non-int line number: ('app.py', 'x', 'main').
  const badKey = marshal(new Map<Py, Py>([[['app.py', 'one', 'main'], [1, 1, f(1), f(1), new Map()]]]));
  assert.match(err(badKey, 'key.pstats').message, /key\.pstats at byte 1: a stats key is not a \(str, int, str\) tuple/);
  // Value with four fields.
  const badValue = marshal(new Map<Py, Py>([[['app.py', 1, 'main'], [1, 1, f(1), f(1)]]]));
  assert.match(err(badValue, 'value.pstats').message, /value\.pstats at byte 28: a stats value is not a \(cc, nc, tt, ct, callers\) tuple/);
  // Caller value that is a string.
  const badCaller = marshal(new Map<Py, Py>([[['a.py', 1, 'f'], [1, 1, f(1), f(1), new Map<Py, Py>([[['a.py', 2, 'g'], 'x']])]]]));
  assert.match(err(badCaller, 'caller.pstats').message, /neither a tuple nor a call count/);
  // An unknown type byte inside.
  const bad = Uint8Array.from(good);
  bad[good.indexOf(0x67)] = 0x57;
  assert.match(err(bad, 'type.pstats').message, /unknown marshal type byte 0x57/);
  // Other files are not mine: a marshalled list, text, pprof.
  assert.equal(pstatsImporter.parse(new InputFile(marshal([1, 2]))), NOT_MINE);
  assert.equal(pstatsImporter.parse(InputFile.fromText('{"traceEvents": []}')), NOT_MINE);
  assert.equal(pstatsImporter.parse(InputFile.fromText('main;a 1\n')), NOT_MINE);
});

test('fuzz: mutated pstats never throws anything but ParseError', () => {
  const inputs = [handMade(), handMade(true), ...FIXTURE_NAMES.map((n) => readFileSync(join(FIXTURES, `${n}.pstats`)))];
  let parseErrors = 0;
  inputs.forEach((b, i) => (parseErrors += rejectsGarbage(pstatsImporter, b, 150, 21 + i).parseErrors));
  assert.ok(parseErrors > 100, `${parseErrors}`);
});
