/**
 * `pylens record -p PID` end to end: the real CLI samples a real Python, writes the file,
 * and Ctrl-C (SIGINT) still writes what was collected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { firstLine, installedPythons } from '../sampler/pythons.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { aggregate } from '../../src/model/query.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const HOT = `import time, sys
def hot():
    t = time.time()
    while time.time() - t < 0.08: pass
def cold(): time.sleep(0.02)
print("ready", flush=True)
while True:
    hot(); cold()
`;

const py = installedPythons().find((p) => p.minor === 12) ?? installedPythons()[0];

/** resolves once process `pid` has /proc/`target`/mem open (the sampler attached) */
export async function attached(pid: number, target: number, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `/proc/${target}/mem`) return;
        } catch {
          /* closed meanwhile */
        }
      }
    } catch {
      throw new Error(`process ${pid} exited before attaching to ${target}`);
    }
    if (Date.now() > until) throw new Error(`process ${pid} did not attach to ${target} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startHot(dir: string): Promise<ChildProcess> {
  const script = join(dir, 'hot.py');
  writeFileSync(script, HOT);
  const child = spawn(py!.exe, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await firstLine(child, py!.exe);
  return child;
}

test('record -p PID -d 1 writes a profile where hot() dominates', { skip: !py && 'no pyenv Python installed' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-record-'));
  const child = await startHot(dir);
  try {
    const out = join(dir, 'r.pylens');
    // wall-clock mode (-i): a sample a tick, however much CPU a loaded machine leaves the target
    const r = spawnSync(process.execPath, [MAIN, 'record', '-i', '-p', String(child.pid), '-d', '1', '-o', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), out);
    assert.match(r.stderr, /pylens record: \d+ samples, 0 errors/);
    const p = decodePylens(readFileSync(out), out);
    assert.equal(p.meta.lens, 'sampling');
    assert.equal(p.meta.pid, child.pid);
    assert.ok(p.samples.length >= 50, `${p.samples.length} samples`);
    const hot = aggregate(p).rows.find((row) => row.name === 'hot');
    assert.ok(hot && hot.selfPct > 60, `hot self ${hot?.selfPct}%`);
  } finally {
    child.kill('SIGKILL');
  }
});

test('record stops on SIGINT and still writes what it collected', { skip: !py && 'no pyenv Python installed' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-record-'));
  const child = await startHot(dir);
  try {
    const out = join(dir, 'r.html');
    const rec = spawn(process.execPath, [MAIN, 'record', '-p', String(child.pid), '-o', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    // SIGINT before pylens has started (module loading can take a second on a loaded
    // machine) would kill it the default way: wait until it holds the target's memory open
    await attached(rec.pid!, child.pid!);
    await new Promise((r) => setTimeout(r, 500));
    rec.kill('SIGINT');
    const code = await new Promise<number | null>((r) => rec.once('exit', r));
    assert.equal(code, 0);
    assert.ok(existsSync(out));
    assert.match(readFileSync(out, 'utf8'), /<canvas/);
  } finally {
    child.kill('SIGKILL');
  }
});

test('record errors: missing -p is usage (2); a dead PID is a failure naming it (1)', () => {
  const usage = spawnSync(process.execPath, [MAIN, 'record'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /missing -p PID/);
  const gone = spawnSync('true');
  const dead = spawnSync(process.execPath, [MAIN, 'record', '-p', String(gone.pid), '-d', '1', '-o', join(tmpdir(), 'never.pylens')], { encoding: 'utf8' });
  assert.equal(dead.status, 1);
  assert.match(dead.stderr, new RegExp(`process ${gone.pid} does not exist`));
  assert.match(dead.stderr, /fix: check the PID with ps/);
});
