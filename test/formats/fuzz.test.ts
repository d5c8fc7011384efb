/**
 * Fuzz: mutated real inputs (every fixture) go to every importer and to the dispatcher.
 * Allowed outcomes: a valid profile, NOT_MINE, ParseError / UnknownFormatError naming the
 * input. Anything else (TypeError, RangeError, a hang) fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { IMPORTERS, importProfile } from '../../src/formats/index.ts';
import { InputFile, NOT_MINE, ParseError, UnknownFormatError } from '../../src/formats/types.ts';
import { FormatVersionError } from '../../src/model/versioning.ts';
import { validateProfile } from '../../src/model/query.ts';
import { FIXTURES, mutations } from '../helpers/format-checks.ts';

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const inputs = walk(FIXTURES).filter((p) => !/\.(py|sh|go|mod|md|json\.expected)$/.test(p) && !p.endsWith('.expected.json'));
const PER_FILE = Number(process.env.PYLENS_FUZZ_PER_FILE ?? 30);

test('fixtures exist to fuzz', () => {
  assert.ok(inputs.length >= 10, `only ${inputs.length} fixture inputs found`);
});

for (const path of inputs) {
  const rel = relative(FIXTURES, path);
  test(`fuzz ${rel}`, () => {
    const bytes = readFileSync(path);
    let n = 0;
    for (const m of mutations(bytes, PER_FILE, rel.length)) {
      n++;
      const label = `fuzz-${n}`;
      for (const imp of IMPORTERS) {
        try {
          const r = imp.parse(new InputFile(m, label));
          if (r !== NOT_MINE) validateProfile(r);
        } catch (e) {
          if (e instanceof ParseError || e instanceof FormatVersionError) {
            assert.ok(e.message.includes(label), `${imp.id}: error must name the input: ${e.message}`);
            continue;
          }
          assert.fail(`${imp.id} on a mutation of ${rel}: ${(e as Error).name}: ${(e as Error).message}\n${(e as Error).stack}`);
        }
      }
      try {
        const r = importProfile(new InputFile(m, label));
        validateProfile(r.profile);
      } catch (e) {
        if (e instanceof ParseError || e instanceof UnknownFormatError || e instanceof FormatVersionError) continue;
        assert.fail(`dispatcher on a mutation of ${rel}: ${(e as Error).name}: ${(e as Error).message}`);
      }
    }
  });
}
