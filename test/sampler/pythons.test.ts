/**
 * The sampler tests run against every CPython 3.8–3.13 and skip what is missing; this test
 * makes a missing one an error, so CI cannot pass with versions silently skipped. Set
 * PYLENS_ALLOW_MISSING_PYTHONS=1 on a machine that lacks some on purpose.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installedPythons, pyenvRoot } from './pythons.ts';

test('every CPython 3.8–3.13 the sampler is tested on is installed', { skip: process.env.PYLENS_ALLOW_MISSING_PYTHONS === '1' && 'PYLENS_ALLOW_MISSING_PYTHONS=1' }, () => {
  const have = new Set(installedPythons().map((p) => p.minor));
  const missing = [8, 9, 10, 11, 12, 13].filter((m) => !have.has(m));
  assert.deepEqual(
    missing.map((m) => `3.${m}`),
    [],
    `missing CPython versions (pyenv root: ${pyenvRoot() ?? 'no pyenv'}): install them with pyenv, or set PYLENS_ALLOW_MISSING_PYTHONS=1`,
  );
});
