import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMarshal, isCode, isDict, isTuple, marshalKey, type MarshalValue } from '../../src/formats/marshal.ts';
import { ParseError } from '../../src/formats/types.ts';
import { mutations } from '../helpers/format-checks.ts';

const fail = (file: string) => (offset: number, message: string): never => {
  throw new ParseError('marshal', file, { offset }, message);
};
const hex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));
const load = (h: string | Uint8Array, file = 'x.marshal'): MarshalValue => decodeMarshal(typeof h === 'string' ? hex(h) : h, fail(file)).value;
const items = (v: MarshalValue) => {
  assert.ok(isTuple(v));
  return v.items;
};
function errorOf(h: string | Uint8Array, file = 'bad.marshal'): ParseError {
  try {
    load(h, file);
  } catch (e) {
    assert.ok(e instanceof ParseError, `expected ParseError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match(e.message, /bad\.marshal at byte \d+: /);
    return e;
  }
  assert.fail('expected a ParseError');
}

// Bytes below are `marshal.dumps(...)` from CPython 3.8, 3.11 and 3.13 (identical for these values).

test('ints and longs: int32, FLAG_REF, base-2^15 digits with a signed count', () => {
  // (0, -1, 2**31-1, -2**31, 2**31, -2**40, 2**70, -(2**70))
  const v = items(load('a908e900000000e9ffffffffe9ffffff7fe900000080ec03000000000000000200ecfdffffff0000000000046c05000000000000000000000000046cfbffffff00000000000000000004'));
  assert.deepEqual(v, [0, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, -(2 ** 40), 2n ** 70n, -(2n ** 70n)]);
});

test('floats: binary float64 and text floats', () => {
  // (1.5, -0.0, float('inf'), 1e-300)
  const v = items(load('a904e7000000000000f83fe7000000000000008067000000000000f07fe759f3f8c21f6ea501'));
  assert.deepEqual(v, [1.5, -0, Infinity, 1e-300]);
  assert.ok(Object.is(v[1], -0));
  // 'f' text float and 'x' text complex (marshal version 0/1)
  assert.equal(load('6604312e3235'), 1.25);
  assert.deepEqual(load('7803312e3503322e35'), { type: 'complex', real: 1.5, imag: 2.5 });
});

test('strings: short ASCII, UTF-8, lone surrogates (surrogatepass), bytes', () => {
  // ('', 'abc', 'größe', '計算', '\udcff', b'\x00\xff')
  const v = items(load('a906da00da03616263f5070000006772c3b6c39f65f506000000e8a888e7ae97f503000000edb3bff30200000000ff'));
  assert.deepEqual(v.slice(0, 5), ['', 'abc', 'größe', '計算', '\udcff']);
  assert.deepEqual(v[5], Uint8Array.from([0, 0xff]));
});

test('containers, singletons and complex; refs point at containers reserved before their children', () => {
  // (None, True, False, StopIteration, ..., 1+2j, [1, [2]], {1, 2}, frozenset({3}), {'a': (1, 2), ('k', 1): None})
  const v = items(load('a90a4e5446532ef9000000000000f03f00000000000000405b02000000e9010000005b01000000e9020000003c02000000720200000072030000003e01000000e9030000007bda0161a90272020000007203000000a902da016b72020000004e30'));
  assert.deepEqual(v.slice(0, 6), [null, true, false, { type: 'StopIteration' }, { type: 'Ellipsis' }, { type: 'complex', real: 1, imag: 2 }]);
  assert.deepEqual(v[6], { type: 'list', items: [1, { type: 'list', items: [2] }] });
  assert.deepEqual(v[7], { type: 'set', items: [1, 2] });
  assert.deepEqual(v[8], { type: 'frozenset', items: [3] });
  const d = v[9]!;
  assert.ok(isDict(d));
  assert.deepEqual(d.entries, [
    ['a', { type: 'tuple', items: [1, 2] }],
    [{ type: 'tuple', items: ['k', 1] }, null],
  ]);
  // s = 'shared-1'; (s, s, [s]): the tuple is ref 0, so the string is ref 1.
  const shared = items(load('a903fa087368617265642d3172010000005b010000007201000000'));
  assert.deepEqual(shared, ['shared-1', 'shared-1', { type: 'list', items: ['shared-1'] }]);
  assert.equal(marshalKey({ type: 'tuple', items: ['a', 1] }), marshalKey({ type: 'tuple', items: ['a', true] }));
});

// compile("x = 1\n\ndef f(a):\n    return a\n", "t.py", "exec"), marshal.dumps(...).hex(), per CPython version.
const CODE: Record<string, string> = {
  '3.7': 'e30000000000000000000000000200000040000000731000000064005a006401640284005a01640353002904e90100000063010000000000000001000000010000004300000073040000007c00530029014ea9002901da016172020000007202000000fa04742e7079da0166030000007302000000000172050000004e2902da017872050000007202000000720200000072020000007204000000da083c6d6f64756c653e0100000073020000000402',
  '3.8': 'e3000000000000000000000000000000000200000040000000731000000064005a006401640284005a01640353002904e9010000006301000000000000000000000001000000010000004300000073040000007c00530029014ea9002901da016172020000007202000000fa04742e7079da0166030000007302000000000172050000004e2902da017872050000007202000000720200000072020000007204000000da083c6d6f64756c653e0100000073020000000402',
  '3.10': 'e3000000000000000000000000000000000200000040000000731000000064005a006401640284005a01640353002904e9010000006301000000000000000000000001000000010000004300000073040000007c00530029014ea9002901da016172020000007202000000fa04742e7079da0166030000007302000000040172050000004e2902da017872050000007202000000720200000072020000007204000000da083c6d6f64756c653e01000000730400000004000c02',
  '3.11': 'e30000000000000000000000000100000000000000f310000000970064005a00640184005a01640253002903e901000000630100000000000000000000000100000003000000f30600000097007c00530029014ea9002901da0161730100000020fa04742e7079da016672070000000300000073070000008000d80b0c8048f3000000004e2902da01787207000000720400000072080000007206000000fa083c6d6f64756c653e720a000000010000007323000000f003010101d804058001f00401010df00001010df00001010df00001010df00001010d7208000000',
  '3.12': 'e30000000000000000000000000100000000000000f30e000000970064005a00640184005a0179022903e901000000630100000000000000000000000100000003000000f30600000097007c00530029014ea9002901da0161730100000020fa04742e7079da016672070000000300000073070000008000d80b0c8048f3000000004e2902da01787207000000720400000072080000007206000000fa083c6d6f64756c653e720a00000001000000730f000000f003010101d804058001f30401010d7208000000',
  '3.13': 'e30000000000000000000000000100000000000000f30e00000095005300720053011a00720167022903e901000000630100000000000000000000000100000003000000f30600000095005500240029014ea9002901da0161730100000020da04742e7079da016672070000000300000073070000008000d80b0c8048f3000000004e2902da01787207000000720400000072080000007206000000da083c6d6f64756c653e720a00000001000000730f000000f003010101d804058001f30401010d7208000000',
};

test('code objects in every layout from 3.7 to 3.13 (nested code in co_consts)', () => {
  for (const [version, h] of Object.entries(CODE)) {
    const c = load(h, `code-${version}`);
    assert.ok(isCode(c), version);
    assert.deepEqual([c.name, c.filename, c.firstlineno], ['<module>', 't.py', 1], version);
    const r = decodeMarshal(hex(h), fail(version));
    assert.equal(r.end, hex(h).length, `${version}: read to the end`);
  }
});

test('corrupt input: ParseError with the byte offset', () => {
  assert.match(errorOf('').message, /byte 0: file ends inside a type byte/);
  assert.match(errorOf('e9010000').message, /byte 1: file ends inside an int/);
  assert.match(errorOf('7a05616263').message, /byte 2: file ends inside a string/);
  assert.match(errorOf('29027201000000').message, /byte 2: reference 1 to an object not yet read/);
  assert.match(errorOf('be010000007200000000').message, /byte 5: reference 0 to an object still being read/);
  // A tuple may hold itself, as in CPython (its ref is taken before its items are read).
  const self = load('a9017200000000');
  assert.ok(isTuple(self) && self.items[0] === self);
  assert.equal(marshalKey(self), '(…)');
  assert.match(errorOf('5bffffff7f').message, /byte 1: a list of size 2147483647 runs past the end/);
  assert.match(errorOf('5bfeffffff').message, /byte 1: negative size -2 for a list/);
  assert.match(errorOf('6c010000000080').message, /byte 5: long digit 32768 out of range/);
  assert.match(errorOf('6c02000000' + '0100' + '0000').message, /byte 7: unnormalized long/);
  assert.match(errorOf('6c0200000001').message, /byte 5: file ends inside a long/);
  assert.match(errorOf('57').message, /byte 0: unknown marshal type byte 0x57 \('W'\)/);
  assert.match(errorOf('30').message, /byte 0: NULL object outside a dict/);
  assert.match(errorOf('f502000000c328').message, /byte 5: invalid UTF-8/);
  assert.match(errorOf('6603312e78').message, /byte 2: bad float text "1\.x"/);
  assert.match(errorOf('28'.repeat(1) + '01000000' + '5b01000000'.repeat(3000)).message, /nested deeper than 1000/);
});

test('fuzz: mutated marshal data only ever throws ParseError', () => {
  const valid = [
    'a90a4e5446532ef9000000000000f03f00000000000000405b02000000e9010000005b01000000e9020000003c02000000720200000072030000003e01000000e9030000007bda0161a90272020000007203000000a902da016b72020000004e30',
    ...Object.values(CODE),
  ];
  let errors = 0;
  let ok = 0;
  valid.forEach((h, i) => {
    for (const m of mutations(hex(h), 400, 100 + i)) {
      try {
        load(m, 'fuzz.marshal');
        ok++;
      } catch (e) {
        if (!(e instanceof ParseError)) throw new Error(`${(e as Error).name}: ${(e as Error).message} on a mutation of input ${i}`);
        assert.match(e.message, /fuzz\.marshal at byte \d+/);
        errors++;
      }
    }
  });
  assert.ok(errors > 500, `${errors} rejected, ${ok} accepted`);
});
