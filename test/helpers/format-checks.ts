/**
 * Checks every format test uses (after speedscope's test-utils):
 *   goldenSummary   — a small reviewable summary (totals + top stacks as folded lines),
 *                     compared with test/formats/golden/<name>.txt; regenerate with
 *                     UPDATE_GOLDEN=1 npm test.
 *   detectsWithoutName — the dispatcher picks the same importer with no file name and the
 *                     result equals the named import.
 *   roundTrip       — export → import gives the same folded stacks (and more, for lossless formats).
 *   rejectsGarbage  — truncated / corrupted / wrong-type inputs give ParseError or
 *                     "not mine", never another exception, never a hang.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Profile } from '../../src/model/profile.ts';
import { foldedStacks, validateProfile } from '../../src/model/query.ts';
import { importProfile } from '../../src/formats/index.ts';
import { seededRandom } from '../../src/analysis/random.ts';
import { InputFile, NOT_MINE, ParseError, type Importer } from '../../src/formats/types.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(ROOT, 'fixtures');
const GOLDEN = join(ROOT, 'test', 'formats', 'golden');

export function fixture(rel: string): InputFile {
  return new InputFile(readFileSync(join(FIXTURES, rel)), rel);
}

/** Totals plus the heaviest `top` stacks as folded lines (`value stack`). */
export function summary(p: Profile, top = 12): string {
  const lines = foldedStacks(p);
  const total = lines.reduce((s, [, v]) => s + v, 0);
  const heaviest = [...lines].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, top);
  const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(6).replace(/0+$/, ''));
  const vt = p.valueTypes[p.defaultValue]!;
  return [
    `# ${p.meta.backend} ${p.meta.mode} value=${vt.name}/${vt.unit} samples=${p.samples.length} stacks=${lines.length} threads=${p.threads.length} total=${fmt(total)}`,
    ...heaviest.map(([s, v]) => `${fmt(v)} ${s}`),
  ].join('\n') + '\n';
}

export function goldenSummary(name: string, p: Profile, top = 12): void {
  validateProfile(p);
  const got = summary(p, top);
  const path = join(GOLDEN, `${name}.txt`);
  if (process.env.UPDATE_GOLDEN || !existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, got);
    if (!process.env.UPDATE_GOLDEN) throw new Error(`golden ${path} did not exist; wrote it — review and commit it, then rerun`);
    return;
  }
  assert.equal(got, readFileSync(path, 'utf8'), `golden ${name} differs (UPDATE_GOLDEN=1 to regenerate after review)`);
}

export function detectsWithoutName(input: InputFile, expectedId: string): Profile {
  const named = importProfile(input);
  assert.equal(named.detection.importer.id, expectedId, `with name ${input.name}`);
  const anon = importProfile(new InputFile(input.bytes));
  assert.equal(anon.detection.importer.id, expectedId, 'without a file name');
  assert.deepEqual(foldedStacks(anon.profile), foldedStacks(named.profile));
  return named.profile;
}

/** Export then re-import; returns the re-imported profile after checking folded equality. */
export function roundTrip(p: Profile, write: (p: Profile) => Uint8Array | string, importer: Importer, name?: string): Profile {
  const out = write(p);
  const input = typeof out === 'string' ? InputFile.fromText(out, name) : new InputFile(out, name);
  const q = importer.parse(input);
  assert.notEqual(q, NOT_MINE, `${importer.id} did not recognise its own export`);
  const back = q as Profile;
  validateProfile(back);
  assert.deepEqual(foldedStacks(back), foldedStacks(p));
  return back;
}

export const rng = seededRandom;

/** Mutations of a valid input: truncations, flipped bytes, inserted junk, spliced halves. */
export function mutations(bytes: Uint8Array, count: number, seed = 1): Uint8Array[] {
  const r = seededRandom(seed);
  const out: Uint8Array[] = [];
  const n = bytes.length;
  for (let k = 0; k < count; k++) {
    const b = Uint8Array.from(bytes.subarray(0, Math.min(n, 1 << 16)));
    const m = Math.floor(r() * 5);
    if (m === 0) out.push(b.subarray(0, Math.floor(r() * b.length)));
    else if (m === 1) {
      for (let j = 0; j < 1 + Math.floor(r() * 8); j++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      out.push(b);
    } else if (m === 2) {
      const at = Math.floor(r() * b.length);
      const junk = Uint8Array.from({ length: 1 + Math.floor(r() * 16) }, () => Math.floor(r() * 256));
      const c = new Uint8Array(b.length + junk.length);
      c.set(b.subarray(0, at));
      c.set(junk, at);
      c.set(b.subarray(at), at + junk.length);
      out.push(c);
    } else if (m === 3) {
      const a = Math.floor(r() * b.length);
      out.push(Uint8Array.from([...b.subarray(a), ...b.subarray(0, a)]));
    } else {
      const at = Math.floor(r() * b.length);
      const c = Uint8Array.from(b);
      c.fill(0x0a, at, Math.min(c.length, at + 4));
      out.push(c);
    }
  }
  return out;
}

/**
 * Feed an importer garbage: it may accept (a mutation can stay valid), answer NOT_MINE,
 * or throw ParseError; any other exception fails. Results that come back must validate.
 */
export function rejectsGarbage(importer: Importer, valid: Uint8Array, count = 200, seed = 7): { accepted: number; notMine: number; parseErrors: number } {
  const stats = { accepted: 0, notMine: 0, parseErrors: 0 };
  const inputs = [new Uint8Array(0), new TextEncoder().encode('hello world\n'), Uint8Array.from([0x1f, 0x8b, 8, 0, 1, 2]), ...mutations(valid, count, seed)];
  for (const bytes of inputs) {
    let r: Profile | typeof NOT_MINE;
    try {
      r = importer.parse(new InputFile(bytes, 'fuzz.input'));
    } catch (e) {
      if (e instanceof ParseError) {
        assert.match(e.message, /fuzz\.input/, 'ParseError must name the file');
        stats.parseErrors++;
        continue;
      }
      throw new Error(`${importer.id} threw ${(e as Error)?.name}: ${(e as Error)?.message} on a mutated input (${bytes.length} bytes)`);
    }
    if (r === NOT_MINE) stats.notMine++;
    else {
      validateProfile(r);
      stats.accepted++;
    }
  }
  return stats;
}
