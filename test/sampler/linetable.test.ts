/**
 * The line-table decoder against CPython itself: for every installed CPython 3.8–3.13
 * (pyenv), tools/dump-linetables.py compiles a few stdlib packages and dumps, for every
 * code object, its raw line table, co_firstlineno and the line CPython gives each
 * instruction offset (co_lines() on 3.10+, dis.findlinestarts() on 3.8/3.9). Our decoder
 * must agree on every offset of every code object.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { lineForOffset, lineInRanges, lineRanges } from '../../src/capture/sampler/linetable.ts';
import { ROOT } from '../helpers/format-checks.ts';

const MIN_CODE_OBJECTS = 2000;

interface Dump {
  version: string;
  codes: { t: string; f: number; l: (number | null)[] }[];
}

function pyenvRoot(): string | null {
  if (process.env.PYENV_ROOT) return process.env.PYENV_ROOT;
  try {
    return execFileSync('pyenv', ['root'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/** Newest installed patch release of each CPython 3.8–3.13: [minor, python executable]. */
function installedPythons(): [number, string][] {
  const root = pyenvRoot();
  if (!root || !existsSync(join(root, 'versions'))) return [];
  const newest = new Map<number, [number, string]>();
  for (const name of readdirSync(join(root, 'versions'))) {
    const m = /^3\.(\d+)\.(\d+)$/.exec(name);
    if (!m) continue;
    const minor = Number(m[1]);
    const micro = Number(m[2]);
    const exe = join(root, 'versions', name, 'bin', `python3.${minor}`);
    if (minor < 8 || minor > 13 || !existsSync(exe)) continue;
    if ((newest.get(minor)?.[0] ?? -1) < micro) newest.set(minor, [micro, exe]);
  }
  return [...newest].sort((a, b) => a[0] - b[0]).map(([minor, [, exe]]) => [minor, exe]);
}

const pythons = installedPythons();
const dumps = new Map(
  pythons.map(([minor, exe]) => [
    minor,
    promisify(execFile)(exe, [join(ROOT, 'tools/dump-linetables.py'), '3000'], { encoding: 'utf8', maxBuffer: 256 << 20 }).then(
      ({ stdout }) => JSON.parse(stdout) as Dump,
    ),
  ]),
);

test('at least one CPython 3.8–3.13 is installed', { skip: pythons.length === 0 ? 'no pyenv CPython 3.8–3.13' : false }, () => {
  assert.ok(pythons.length > 0);
});

for (const [minor] of pythons) {
  test(`CPython 3.${minor}: decoded lines equal CPython's for every instruction offset`, async () => {
    const dump = await dumps.get(minor)!;
    assert.match(dump.version, new RegExp(`^3\\.${minor}\\.`));
    let offsets = 0;
    let noLine = 0;
    const mismatches: string[] = [];
    for (const [i, code] of dump.codes.entries()) {
      const table = Buffer.from(code.t, 'base64');
      const ranges = lineRanges(minor, table, code.f);
      code.l.forEach((expected, k) => {
        const offset = 2 * k;
        const direct = lineForOffset(minor, table, code.f, offset);
        const viaRanges = lineInRanges(ranges, offset);
        offsets++;
        if (expected === null) noLine++;
        if ((direct !== expected || viaRanges !== expected) && mismatches.length < 10) {
          mismatches.push(`code #${i} (firstlineno ${code.f}, table ${code.t}) offset ${offset}: expected ${expected}, got ${direct} / ${viaRanges}`);
        }
      });
    }
    console.log(`CPython ${dump.version}: ${dump.codes.length} code objects, ${offsets} instruction offsets (${noLine} without a line), ${mismatches.length === 0 ? 'all agree' : 'MISMATCHES'}`);
    assert.deepEqual(mismatches, []);
    assert.ok(dump.codes.length >= MIN_CODE_OBJECTS, `only ${dump.codes.length} code objects`);
  });
}

test('hand-made tables: start ≤ offset < end, no-line entries, signed deltas', () => {
  // 3.8/3.9 lnotab: (6, +1) (4, -2 as 0xfe)
  const lnotab = Uint8Array.of(6, 1, 4, 0xfe);
  assert.deepEqual([0, 4, 6, 8, 10, 100].map((o) => lineForOffset(9, lnotab, 10, o)), [10, 10, 11, 11, 9, 9]);
  // 3.10: [0,4) line 5+1, [4,6) no line (-128), [6,10) line 6+2 (the -128 entry keeps the running line)
  const lt310 = Uint8Array.of(4, 1, 2, 0x80, 4, 2);
  assert.deepEqual([0, 2, 4, 6, 8, 10].map((o) => lineForOffset(10, lt310, 5, o)), [6, 6, null, 8, 8, null]);
  // 3.11+: code 11 len 2 (line+1) | code 15 len 1 (none) | code 13 len 1, svarint 3 => -1 | code 0 len 1 + column byte
  const lt311 = Uint8Array.of(0x80 | (11 << 3) | 1, 0x80 | (15 << 3), 0x80 | (13 << 3), 3, 0x80, 0x05);
  assert.deepEqual([0, 2, 4, 6, 8, 10].map((o) => lineForOffset(11, lt311, 20, o)), [21, 21, null, 20, 20, null]);
  assert.equal(lineForOffset(12, lt311, 20, -2), null);
});
