/**
 * 3.14's `_Py_AsyncioModuleDebugOffsets` found in a live process (no 3.14 is installed here):
 * a shared object named like 3.14's `_asyncio` extension, built with gcc with an
 * `.AsyncioDebug` section as CPython declares it, loaded into a real CPython with ctypes; the
 * table is found through /proc/PID/maps and the file's section headers, and a table that does
 * not hold together is refused naming the file. Reading tasks from it: debug-offsets.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsyncioDebugError, findAsyncioDebugOffsets } from '../../src/capture/sampler/asyncio-debug.ts';
import { firstLine, installedPythons } from './pythons.ts';

const gccOk = spawnSync('gcc', ['--version']).status === 0;
const py = installedPythons().find((p) => p.minor >= 8);

/** a shared object whose .AsyncioDebug section holds these 13 words */
function build(dir: string, name: string, words: number[]): string {
  const src = join(dir, `${name}.c`);
  writeFileSync(src, `#include <stdint.h>\n__attribute__((section(".AsyncioDebug"), used)) const uint64_t _AsyncioDebug[13] = {${words.join(', ')}};\nint pylens_marker(void) { return 1; }\n`);
  const out = join(dir, `${name}.cpython-314-x86_64-linux-gnu.so`);
  const r = spawnSync('gcc', ['-shared', '-fPIC', '-O0', src, '-o', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return out;
}

const GOOD = [168, 136, 96, 108, 109, 128, 152, 8192, 8128, 1200, 1000, 1008, 1016];

test('3.14 AsyncioDebug table: found in the mapped _asyncio module of a live process, refused when it does not hold together, absent before it is loaded', { skip: !gccOk ? 'gcc is not installed' : !py ? 'no CPython' : false, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-asyncio-debug-'));
  const good = build(dir, '_asyncio', GOOD);
  const badDir = join(dir, 'bad');
  mkdirSync(badDir);
  const bad = build(badDir, '_asyncio', [168, 136, 96, 108, 109, 128, 400, ...GOOD.slice(7)]);
  const run = (lib: string | null) =>
    spawn(py!.exe, ['-c', `import ctypes, sys, time\n${lib ? `ctypes.CDLL(${JSON.stringify(lib)})\n` : ''}print("ready", flush=True)\ntime.sleep(60)`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const children = [run(good), run(bad), run(null)];
  try {
    for (const c of children) await firstLine(c, 'loader');
    const found = findAsyncioDebugOffsets(children[0]!.pid!);
    assert.ok(found, 'the table of the loaded module');
    assert.equal(found.file, good);
    assert.deepEqual(found.offsets, {
      task: { size: 168, name: 136, awaitedBy: 96, isTask: 108, awaitedByIsSet: 109, coro: 128, node: 152 },
      interp: { size: 8192, tasksHead: 8128 },
      tstate: { size: 1200, runningLoop: 1000, runningTask: 1008, tasksHead: 1016 },
    });
    assert.throws(() => findAsyncioDebugOffsets(children[1]!.pid!), (e: unknown) => e instanceof AsyncioDebugError && e.message.includes(bad) && /task node at 400/.test(e.message));
    assert.equal(findAsyncioDebugOffsets(children[2]!.pid!), null);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
