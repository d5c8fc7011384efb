import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dumpProcess, type DumpResult, type DumpThread } from '../../src/capture/sampler/dump.ts';
import { findPthreadTidOffset, parseNsPid, statProcessor, statStateLetter, TaskIds } from '../../src/capture/sampler/threads.ts';
import { readFileSync } from 'node:fs';
import { ImageMemory } from '../../src/capture/sampler/memory.ts';
import { parseArgs, UsageError } from '../../src/cli/args.ts';
import { displayFile, dumpSpec, renderDump, runDump } from '../../src/cli/dump.ts';
import { CliError } from '../../src/cli/errors.ts';
import { firstLine, installedPythons, pyenvRoot, startSleepingPython, stop } from './pythons.ts';
import { captureStdout } from '../helpers/stdout.ts';

// ---- pure -----------------------------------------------------------------------------

test('statProcessor: field 39 of a stat line (the CPU the task last ran on), after the last ")"; our own agrees with the kernel\'s', () => {
  const fields = Array.from({ length: 50 }, (_, k) => String(k + 3)); // field numbers 3…52
  fields[0] = 'R';
  fields[39 - 3] = '7';
  assert.equal(statProcessor(Buffer.from(`42 (a) b) (c) ${fields.join(' ')}`, 'latin1')), 7);
  assert.equal(statProcessor(Buffer.from('42 (short) R 1 2 3', 'latin1')), undefined);
  const own = readFileSync('/proc/self/stat');
  assert.equal(statProcessor(own), Number(own.toString('latin1').slice(own.lastIndexOf(0x29) + 2).split(' ')[36]));
});

test('statStateLetter: the letter after the last ")" even when comm contains ") R ("', () => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  assert.equal(statStateLetter(b('1234 (python3) S 1 1234 1234 0 -1')), 'S');
  assert.equal(statStateLetter(b('1234 (evil) R (x) R 1 1234')), 'R');
  assert.equal(statStateLetter(b('garbage')), undefined);
  // only the first n bytes count (a reused read buffer holds an older, longer line after them)
  assert.equal(statStateLetter(b('1 (a) S 1 (zzz) R'), 9), 'S');
});

test('findPthreadTidOffset: the one offset holding distinct task TIDs, including the PID', () => {
  const mk = (tid: number, decoyAt100: number) => {
    const b = new Uint8Array(2048);
    const d = new DataView(b.buffer);
    d.setInt32(100, decoyAt100, true); // the same value in every struct: not distinct
    d.setInt32(720, tid, true);
    return b;
  };
  const mem = new ImageMemory([
    [0x10000, mk(500, 500)],
    [0x20000, mk(501, 500)],
  ]);
  assert.equal(findPthreadTidOffset(mem, [0x10000n, 0x20000n], [500, 501], 500), 720);
  assert.equal(findPthreadTidOffset(mem, [0x10000n, 0x20000n], [600, 601], 600), undefined);
  assert.equal(findPthreadTidOffset(mem, [0x30000n], [500], 500), undefined, 'unreadable struct');
});

test('parseNsPid: a task\'s ID in each PID namespace, /proc\'s first', () => {
  assert.deepEqual(parseNsPid('Name:\tpython3\nTgid:\t700\nPid:\t702\nNSpid:\t702\t7\nNSpgid:\t1\n'), [702, 7]);
  assert.deepEqual(parseNsPid('Pid:\t5\nNSpid:\t5\n'), [5]);
  assert.equal(parseNsPid('Pid:\t5\n'), undefined, 'kernel before 4.1: no NSpid line');
});

test('TaskIds: the target\'s own TIDs (a container\'s) to /proc\'s, identity in the same namespace', () => {
  const root = mkdtempSync(join(tmpdir(), 'pylens-nspid-'));
  try {
    const proc = (pid: number, tasks: [number, number[]][]) => {
      mkdirSync(join(root, String(pid), 'task'), { recursive: true });
      writeFileSync(join(root, String(pid), 'status'), `Pid:\t${pid}\nNSpid:\t${tasks[0]![1].join('\t')}\n`);
      for (const [tid, ns] of tasks) {
        mkdirSync(join(root, String(pid), 'task', String(tid)));
        writeFileSync(join(root, String(pid), 'task', String(tid), 'status'), `Pid:\t${tid}\nNSpid:\t${ns.join('\t')}\n`);
      }
    };
    proc(700, [[700, [700, 1]], [702, [702, 7]]]);
    const nested = new TaskIds(700, root);
    assert.equal(nested.nested, true);
    assert.equal(nested.ownPid, 1);
    assert.equal(nested.ours(1), 700);
    assert.equal(nested.ours(7), 702);
    assert.equal(nested.ours(8), undefined, 'no such thread');
    assert.deepEqual(nested.own().sort((a, b) => a - b), [1, 7]);
    proc(800, [[800, [800]], [801, [801]]]);
    const flat = new TaskIds(800, root);
    assert.equal(flat.nested, false);
    assert.equal(flat.ownPid, 800);
    assert.equal(flat.ours(801), 801);
    assert.deepEqual(flat.own().sort((a, b) => a - b), [800, 801]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('renderDump: py-spy-like text, pthread ids in hex when no OS TID, files relative to cwd', () => {
  const frame = (qualname: string, file: string, line: number | null) => ({ name: qualname, qualname, file, line, firstLine: 1 });
  const d: DumpResult = {
    pid: 42,
    python: { version: '3.12.1', library: '/usr/lib/libpython3.12.so.1.0' },
    threads: [
      { tid: 43, pthreadId: '140000', tidIsOs: true, name: 'MainThread', state: 'running', holdsGil: true, frames: [frame('spin', '/srv/app/app.py', 3), frame('<module>', '/srv/app/app.py', 9)] },
      { tid: 255, pthreadId: '255', tidIsOs: false, state: 'unknown', holdsGil: false, frames: [frame('nap', '/usr/lib/python3.12/x.py', null)] },
      { tid: 44, pthreadId: '140001', tidIsOs: true, name: 'wörker "1"\nThread 7 (active)', state: 'idle', holdsGil: false, frames: [] },
    ],
  };
  assert.equal(
    renderDump(d, { cmdline: 'python3.12 app.py', cwd: '/srv' }),
    [
      'Process 42: python3.12 app.py',
      'Python v3.12.1 (/usr/lib/libpython3.12.so.1.0)',
      '',
      'Thread 43 (active) "MainThread" [holds the GIL]',
      '    spin (app/app.py:3)',
      '    <module> (app/app.py:9)',
      'Thread 0xFF (unknown)',
      '    nap (x.py)',
      'Thread 44 (idle) "wörker \\"1\\"\\nThread 7 (active)"',
      '',
    ].join('\n'),
  );
  assert.equal(displayFile('/elsewhere/m.py', '/srv'), 'm.py');
  assert.equal(displayFile('<frozen os>', '/srv'), '<frozen os>');
});

test('runDump: missing -p is a usage error', () => {
  assert.throws(() => runDump(parseArgs(dumpSpec, [])), (e) => e instanceof UsageError && /missing -p PID/.test(e.message));
  assert.throws(() => parseArgs(dumpSpec, ['-p', 'x']), UsageError);
});

// ---- live processes -------------------------------------------------------------------

const SCRIPT = `import threading, time
def spin():
    while True:
        pass
def nap():
    while True:
        time.sleep(30)
s = threading.Thread(target=spin, daemon=True); s.start()
n = threading.Thread(target=nap, daemon=True); n.start()
print("ready", s.ident, n.ident, flush=True)
s.join()
`;

const dir = mkdtempSync(join(tmpdir(), 'pylens-dump-'));
const scriptPath = join(dir, 'dump_script.py');
writeFileSync(scriptPath, SCRIPT);
test.after(() => rmSync(dir, { recursive: true, force: true }));



const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const pythons = installedPythons().filter((p) => p.minor >= 8 && p.minor <= 13);

for (const py of pythons) {
  test(`dumpProcess on live ${py.label}: spin running, nap idle, one GIL holder`, async (t) => {
    const child = spawn(py.exe, [scriptPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [, spinIdent, napIdent] = (await firstLine(child, py.exe)).split(' ');
      await sleep(200);
      const pid = child.pid!;
      const byIdent = (d: DumpResult, ident: string) => d.threads.find((x) => x.pthreadId === ident)!;
      let spinRunning = 0;
      let spinHolds = 0;
      let last: DumpResult | undefined;
      const TRIES = 20;
      for (let i = 0; i < TRIES; i++) {
        const d = dumpProcess(pid);
        last = d;
        assert.equal(d.pid, pid);
        assert.match(d.python.version, new RegExp(`^3\\.${py.minor}\\.`));
        assert.equal(d.threads.length, 3);
        for (const th of d.threads) {
          assert.equal(th.error, undefined);
          assert.equal(th.tidIsOs, true, `TID of ${th.pthreadId} mapped`);
          assert.notEqual(th.state, 'unknown');
          assert.notEqual(th.holdsGil, null, 'GIL readable');
        }
        assert.ok(d.threads.filter((x) => x.holdsGil).length <= 1, 'at most one GIL holder');
        const main = d.threads.find((x) => x.tid === pid);
        assert.ok(main, 'main thread has TID = PID');
        assert.equal(main.frames.at(-1)!.name, '<module>');
        const spin = byIdent(d, spinIdent!);
        const nap = byIdent(d, napIdent!);
        // names from threading._active: unnamed threads are "Thread-N" ("Thread-N (target)" on 3.10+)
        assert.equal(main.name, 'MainThread');
        assert.match(spin.name ?? '', py.minor >= 10 ? /^Thread-\d+ \(spin\)$/ : /^Thread-\d+$/);
        assert.match(nap.name ?? '', py.minor >= 10 ? /^Thread-\d+ \(nap\)$/ : /^Thread-\d+$/);
        assert.equal(spin.frames[0]!.name, 'spin');
        assert.equal(nap.frames[0]!.name, 'nap');
        assert.equal(nap.state, 'idle');
        if (spin.state === 'running') spinRunning++;
        if (spin.holdsGil) spinHolds++;
        if (spinRunning >= 3 && spinHolds >= 3) break;
        await sleep(20);
      }
      t.diagnostic(`${py.label}: spin running in ${spinRunning}, holding the GIL in ${spinHolds} of ≤${TRIES} dumps`);
      assert.ok(spinRunning >= 1, 'spin seen running at least once');
      assert.ok(spinHolds >= 1, 'spin seen holding the GIL at least once');

      // the CLI: --json is the dumpProcess object; text has the header and thread lines
      const json = captureStdout(() => runDump(parseArgs(dumpSpec, ['-p', String(pid), '--json'])));
      assert.equal(json.code, 0);
      const doc = JSON.parse(json.out) as DumpResult;
      assert.equal(doc.pid, pid);
      assert.deepEqual(
        doc.threads.map((x: DumpThread) => x.pthreadId).sort(),
        last!.threads.map((x) => x.pthreadId).sort(),
      );
      const text = captureStdout(() => runDump(parseArgs(dumpSpec, ['-p', String(pid)])));
      assert.match(text.out, new RegExp(`^Process ${pid}: python3\\.${py.minor} .*dump_script\\.py\\nPython v3\\.${py.minor}\\.`));
      assert.match(text.out, /\n {4}spin \(.*dump_script\.py:\d+\)\n/);
      assert.match(text.out, /\n {4}nap \(.*dump_script\.py:\d+\)\n/);
      assert.equal(text.out.match(/^Thread \d+ \((active|idle)\)/gm)?.length, 3);
      assert.match(text.out, new RegExp(`^Thread ${pid} \\((active|idle)\\) "MainThread"`, 'm'));
    } finally {
      child.kill('SIGKILL');
    }
  });
}

test('runDump: a PID that has exited is a CliError naming it, with the ps fix', async () => {
  const child = spawn('true', [], { stdio: 'ignore' });
  const pid = child.pid!;
  await new Promise((r) => child.once('exit', r));
  assert.throws(
    () => runDump(parseArgs(dumpSpec, ['-p', String(pid)])),
    (e) => e instanceof CliError && e.message.includes(String(pid)) && /check the PID with ps/.test(e.fix),
  );
});

test('runDump: a process that is not Python is a CliError saying so', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await sleep(100);
    const pid = child.pid!;
    assert.throws(
      () => runDump(parseArgs(dumpSpec, ['-p', String(pid)])),
      (e) => e instanceof CliError && e.message.startsWith(`PID ${pid} does not look like a CPython process (no _PyRuntime found in its maps)`) && e.fix.length > 0,
    );
  } finally {
    child.kill('SIGKILL');
  }
});

test('runDump: an unsupported Python version is named in the CliError', async (t) => {
  const root = pyenvRoot();
  const v37 = root && existsSync(`${root}/versions`) ? readdirSync(`${root}/versions`).find((v) => /^3\.7\.\d+$/.test(v)) : undefined;
  if (!root || !v37) {
    t.skip('no pyenv 3.7 installed');
    return;
  }
  const py = await startSleepingPython(`${root}/versions/${v37}/bin/python3.7`);
  try {
    assert.throws(
      () => runDump(parseArgs(dumpSpec, ['-p', String(py.pid)])),
      (e) => e instanceof CliError && e.message.includes(`Python ${v37}`) && /3\.8 to 3\.14/.test(e.fix),
    );
  } finally {
    stop(py);
  }
});
