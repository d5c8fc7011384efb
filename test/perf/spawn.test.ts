// src/capture/spawn.ts: the child's end as one exit code, stderr collected, never rejects
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exitCode, spawnCollecting } from '../../src/capture/spawn.ts';

test('exitCode: the code when there is one, 128 + the signal number otherwise', () => {
  assert.equal(exitCode(0, null), 0);
  assert.equal(exitCode(3, null), 3);
  assert.equal(exitCode(null, 'SIGINT'), 130);
  assert.equal(exitCode(null, 'SIGKILL'), 137);
  assert.equal(exitCode(null, 'SIGUSR2'), 140);
  assert.equal(exitCode(null, null), 1);
});

test('spawnCollecting: stderr and the exit code of a real child; a signal; a command that does not exist', async () => {
  const a = spawnCollecting('/bin/sh', ['-c', 'echo out; echo err1 >&2; echo err2 >&2; exit 7'], { stdio: ['ignore', 'pipe'] });
  let out = '';
  a.child.stdout!.on('data', (c) => (out += c));
  assert.deepEqual(await a.done, { code: 7, stderr: 'err1\nerr2\n' });
  assert.equal(out, 'out\n');
  const b = spawnCollecting('/bin/sh', ['-c', 'kill -TERM $$'], { stdio: 'ignore' });
  assert.equal((await b.done).code, 143);
  const c = spawnCollecting('/nonexistent/pylens-tool', [], { stdio: 'ignore' });
  const r = await c.done;
  assert.equal(r.code, 127);
  assert.match(r.stderr, /ENOENT/);
});
