/**
 * Threads of every interpreter: a live CPython with a subinterpreter running code in a
 * second thread. The walker lists the subinterpreter's thread state (with its interpreter
 * id) and the main interpreter's threads, on every installed version 3.8–3.13.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { ProcessSampler } from '../../src/capture/sampler/session.ts';
import { firstLine, installedPythons } from './pythons.ts';

const SCRIPT = join(ROOT, 'test', 'sampler', 'scripts', 'subinterpreter.py');

for (const py of installedPythons().filter((p) => p.minor >= 8)) {
  test(`subinterpreter threads are walked on ${py.label}`, async () => {
    const child = spawn(py.exe, [SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await firstLine(child, py.exe);
      const s = ProcessSampler.attach(child.pid!);
      try {
        // the main thread may still be between print() and main_sleep(): retry briefly
        let stacks: { interp: number; names: string[] }[] = [];
        for (let i = 0; i < 50; i++) {
          stacks = s.walk().map((t) => ({ interp: t.interp ?? 0, names: (t.frames ?? []).map((f) => f.name) }));
          if (stacks.some((t) => t.interp === 0 && t.names[0] === 'main_sleep')) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        const show = JSON.stringify(stacks);
        const sub = stacks.filter((t) => t.interp > 0 && t.names.length > 0);
        assert.equal(sub.length, 1, show);
        assert.deepEqual(sub[0]!.names, ['sub_sleep', '<module>'], show);
        const main = stacks.filter((t) => t.interp === 0);
        assert.ok(main.some((t) => t.names.join('<') === 'main_sleep<<module>'), show);
        // the runner thread, in the main interpreter, is inside run_string
        assert.ok(main.some((t) => t.names.at(-1) === '_bootstrap' && t.names.includes('run')), show);
      } finally {
        s.close();
      }
    } finally {
      child.kill('SIGKILL');
    }
  });
}
