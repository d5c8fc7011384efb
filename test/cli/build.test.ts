/**
 * The published package is compiled JavaScript: build it into a temporary folder and run
 * the compiled CLI (the page code of the HTML flamegraph must come along).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';

test('tsc build runs as plain JavaScript', () => {
  const out = mkdtempSync(join(tmpdir(), 'pylens-build-'));
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], { encoding: 'utf8' });
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  // as installed: the dependencies (koffi, smol-toml) beside the compiled code
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'));
  const main = join(out, 'src/cli/main.js');
  const v = spawnSync(process.execPath, [main, '--version'], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /^pylens \d+\.\d+\.\d+/);
  const html = join(out, 'demo.html');
  const view = spawnSync(process.execPath, [main, 'view', join(ROOT, 'fixtures/perf/3.12/perf-script.txt'), '-o', html], { encoding: 'utf8' });
  assert.equal(view.status, 0, view.stderr);
  assert.match(readFileSync(html, 'utf8'), /<canvas/);
});
