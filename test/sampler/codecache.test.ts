/**
 * The code-object cache must not outlive the code object: a target that frees code objects
 * and allocates new ones at the same addresses (here: functions compiled in a loop, each in
 * its own globals, as happens while modules are imported) must be sampled under the right
 * names. The walker keys a cached code object by the globals of the frame it was seen in.
 * (Two code objects of the SAME globals at one address within the cache's lifetime — 10 s,
 * or 3.14's generation counter — are not told apart.) A stale cache shows one or two
 * names for the whole run; a correct one shows a new name every few samples, and each
 * name with its own file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { ProcessSampler } from '../../src/capture/sampler/session.ts';
import { firstLine, installedPythons } from './pythons.ts';

const SCRIPT = join(ROOT, 'test', 'sampler', 'scripts', 'code_reuse.py');

for (const py of installedPythons().filter((p) => p.minor >= 8)) {
  test(`a freed code object's address reused by a new one is decoded again on ${py.label}`, async () => {
    const child = spawn(py.exe, [SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await firstLine(child, py.exe);
      const s = ProcessSampler.attach(child.pid!);
      const names = new Set<string>();
      const codeAddressesSeen = new Set<string>();
      let mismatched = 0;
      let samples = 0;
      try {
        const until = Date.now() + 1500;
        while (Date.now() < until) {
          for (const t of s.tick().threads) {
            const f = t.frames.find((fr) => fr.name.startsWith('gen_'));
            if (!f) continue;
            samples++;
            names.add(f.name);
            codeAddressesSeen.add(f.file);
            if (f.file !== `<${f.name}>`) mismatched++;
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      } finally {
        s.close();
      }
      assert.ok(samples >= 50, `${samples} samples inside gen_* functions`);
      // a code object read while CPython is building or freeing it can be torn (name of one,
      // file of another): rare, never the rule
      assert.ok(mismatched <= samples * 0.02, `${mismatched} of ${samples} gen_N frames carry another function's file`);
      // ~10 ms per function and a sample every ~5 ms: most samples see a new function
      assert.ok(names.size >= samples / 4, `${names.size} distinct gen_* names in ${samples} samples: the cache is stale`);
    } finally {
      child.kill('SIGKILL');
    }
  });
}
