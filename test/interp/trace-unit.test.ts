/**
 * Pure TS parts of `pylens trace`: the marshal writer (round trip through the decoder and
 * through a real Python's marshal), the pstats exporter's per-function numbers, and the
 * frame removal that --include/--exclude use on cProfile data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { decodeMarshal, encodeMarshal, type MarshalWritable } from '../../src/formats/marshal.ts';
import { functionStats, readPstats, writePstats } from '../../src/formats/pstats.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { removeFrames } from '../../src/capture/python/trace.ts';
import { CALL_VALUE_TYPES } from '../../src/formats/pstats.ts';
import { aggregate } from '../../src/model/query.ts';
import { installedPythons } from '../sampler/pythons.ts';

const fail = (o: number, m: string): never => {
  throw new Error(`${o}: ${m}`);
};

const sample: MarshalWritable = {
  type: 'dict',
  entries: [
    [{ type: 'tuple', items: ['a.py', 3, 'f'] }, { type: 'tuple', items: [1, 2 ** 40, { type: 'float', value: 2 }, 0.5, null, true, false, 'é😀', -5, 123456789012345678901234567890n] }],
    ['list', { type: 'list', items: [new Uint8Array([1, 2, 3]), -(2 ** 31), 2 ** 31] }],
  ],
};

test('encodeMarshal round-trips through decodeMarshal', () => {
  const { value } = decodeMarshal(encodeMarshal(sample), fail);
  assert.deepEqual(value, {
    type: 'dict',
    entries: [
      [{ type: 'tuple', items: ['a.py', 3, 'f'] }, { type: 'tuple', items: [1, 2 ** 40, 2, 0.5, null, true, false, 'é😀', -5, 123456789012345678901234567890n] }],
      ['list', { type: 'list', items: [new Uint8Array([1, 2, 3]), -(2 ** 31), 2 ** 31] }],
    ],
  });
});

test('a real Python reads what encodeMarshal writes', () => {
  const py = installedPythons().find((p) => p.minor >= 8);
  if (!py) return;
  const r = spawnSync(py.exe, ['-c', 'import marshal,sys; print(repr(marshal.loads(sys.stdin.buffer.read())))'], { input: encodeMarshal(sample), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "{('a.py', 3, 'f'): (1, 1099511627776, 2.0, 0.5, None, True, False, 'é😀', -5, 123456789012345678901234567890), 'list': [b'\\x01\\x02\\x03', -2147483648, 2147483648]}");
});

function tree() {
  // main → fib → fib → fib (recursion), main → g; values [calls, self ns, total ns]
  const b = new ProfileBuilder({ meta: { lens: 'interpreter', backend: 'test', mode: 'calls' }, valueTypes: CALL_VALUE_TYPES.map((v) => ({ ...v })), defaultValue: 1, timed: false });
  const main = b.frame({ name: 'main', file: 'm.py', line: 1 });
  const fib = b.frame({ name: 'fib', file: 'm.py', line: 5 });
  const g = b.frame({ name: 'g', file: 'lib.py', line: 9 });
  b.sample(b.stackOf([main]), [1, 100, 1000], 0);
  b.sample(b.stackOf([main, fib]), [2, 200, 700], 0);
  b.sample(b.stackOf([main, fib, fib]), [4, 300, 500], 0);
  b.sample(b.stackOf([main, fib, fib, fib]), [8, 200, 200], 0);
  b.sample(b.stackOf([main, g]), [3, 200, 200], 0);
  return b.build();
}

test('functionStats: calls, primitive calls, self and cumulative with recursion counted once', () => {
  const st = functionStats(tree());
  const fib = st.find((s) => s.key[2] === 'fib')!;
  assert.deepEqual([fib.nc, fib.cc, Math.round(fib.tt * 1e9), Math.round(fib.ct * 1e9)], [14, 2, 700, 700]);
  const main = st.find((s) => s.key[2] === 'main')!;
  assert.deepEqual([main.nc, main.cc, Math.round(main.ct * 1e9)], [1, 1, 1000]);
  const fromMain = fib.callers.get(JSON.stringify(['m.py', 1, 'main']))!;
  assert.equal(fromMain.nc, 2);
  const fromFib = fib.callers.get(JSON.stringify(['m.py', 5, 'fib']))!;
  assert.deepEqual([fromFib.nc, fromFib.cc], [12, 0]);
  // and the dump reads back with the importer
  const back = readPstats(writePstats(tree()), fail);
  const e = back.entries.find((x) => x.key[2] === 'fib')!;
  assert.deepEqual([e.cc, e.nc], [2, 14]);
  assert.ok(Math.abs(e.ct - 700e-9) < 1e-15);
});

test('removeFrames gives a removed leaf’s self time to its caller, not its calls', () => {
  const p = removeFrames(tree(), (fi) => fi.file === 'lib.py');
  const rows = aggregate(p, { valueIndex: 1 }).rows;
  const main = rows.find((r) => r.name === 'main')!;
  assert.equal(main.self, 300); // its own 100 + g's 200
  assert.ok(!rows.some((r) => r.name === 'g'));
  const calls = aggregate(p, { valueIndex: 0 }).rows.find((r) => r.name === 'main')!;
  assert.equal(calls.self, 1);
});
