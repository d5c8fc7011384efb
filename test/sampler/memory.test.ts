import { chmodSync, copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BadReadError, ImageMemory, PermissionError, ProcMemory, ProcessGoneError, WordList, mapOsError } from '../../src/capture/sampler/memory.ts';
import { readMaps } from '../../src/capture/sampler/maps.ts';
import { syscalls } from '../../src/capture/sampler/syscalls.ts';

function bytes(...b: number[]): Uint8Array {
  return Uint8Array.from(b);
}

test('ImageMemory reads inside regions and decodes little-endian words', () => {
  const mem = new ImageMemory([
    [0x1000, bytes(0x78, 0x56, 0x34, 0x12, 0xff, 0xff, 0xff, 0xff)],
    [0x7f00_0000_0000, bytes(0x00, 0x10, 0x00, 0x00, 0x00, 0x7f, 0x00, 0x00)],
  ]);
  assert.deepEqual(mem.read(0x1001, 2), bytes(0x56, 0x34));
  assert.equal(mem.readU32(0x1000), 0x12345678);
  assert.equal(mem.readI32(0x1004), -1);
  assert.equal(mem.readU64(0x1000), 0xffffffff12345678n);
  assert.equal(mem.readPtr(0x7f00_0000_0000), 0x7f00_0000_1000);
  // 0xffffffff12345678 is not a user-space pointer
  assert.throws(() => mem.readPtr(0x1000), BadReadError);
});

test('ImageMemory: a read outside every region (or across a region end) is a BadReadError with the address', () => {
  const mem = new ImageMemory([[0x1000, new Uint8Array(16)]]);
  assert.throws(() => mem.read(0x2000, 1), (e: unknown) => e instanceof BadReadError && e.address === 0x2000 && /0x2000/.test(e.message));
  assert.throws(() => mem.read(0x100c, 8), (e: unknown) => e instanceof BadReadError && e.address === 0x100c);
});

test('ProcMemory on a dead PID is a ProcessGoneError naming the PID', () => {
  const r = spawnSync('true');
  const pid = r.pid!;
  assert.throws(() => ProcMemory.open(pid), (e: unknown) => e instanceof ProcessGoneError && e.pid === pid && e.message.includes(String(pid)));
});

test('ProcMemory on a live process: unmapped address is a BadReadError', () => {
  const mem = ProcMemory.open(process.pid);
  try {
    assert.throws(() => mem.read(0x10, 8), BadReadError);
  } finally {
    mem.close();
  }
});

test('readWordList: hundreds of words (more than one call holds) read in calls of 64, each equal to a read of its own; an unreadable word is NaN and the rest still read', () => {
  const mem = ProcMemory.open(process.pid);
  try {
    // words of our own first writable mapping (its content is what it is: each word is compared with a single read of it)
    const m = readMaps(process.pid).find((r) => r.perms.startsWith('rw') && r.end - r.start >= 4096)!;
    const list = new WordList();
    for (let k = 0; k < 300; k++) {
      if (k === 100 || k === 170) list.push(0x10, 8, 0, false, k); // unmapped
      else list.push(m.start + 8 * k, k % 3 === 0 ? 4 : 8, 0, false, k);
    }
    // the system calls it makes: a few (5 calls of up to 64, the unreadable words alone and
    // the call after each), not one a word
    const sys = syscalls() as unknown as { vm: (pid: number, n: number) => number } | undefined;
    let calls = 0;
    const vm = sys?.vm;
    if (sys && vm) sys.vm = (pid, n) => (calls++, vm.call(sys, pid, n));
    try {
      mem.readWordList(list);
    } finally {
      if (sys && vm) sys.vm = vm;
    }
    if (sys) assert.ok(calls <= 12, `${calls} system calls for 300 words`);
    for (let k = 0; k < 300; k++) {
      if (k === 100 || k === 170) {
        assert.ok(Number.isNaN(list.value[k]), `word ${k}`);
        continue;
      }
      const b = mem.read(list.addr[k]!, list.bytes[k]!);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      if (list.bytes[k] === 4) assert.equal(list.value[k], dv.getUint32(0, true), `word ${k}`);
      else if (dv.getBigUint64(0, true) < 2n ** 53n) assert.equal(list.value[k], Number(dv.getBigUint64(0, true)), `word ${k}`);
      else assert.ok(Number.isFinite(list.value[k]), `word ${k}`); // words are read as numbers below 2^53
    }
  } finally {
    mem.close();
  }
});

test('EACCES/EPERM on a live PID map to a PermissionError that explains the fix', () => {
  const err = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  const e = mapOsError(process.pid, err);
  assert.ok(e instanceof PermissionError);
  assert.match(e.message, new RegExp(`process ${process.pid}`));
  assert.match(e.message, /ptrace_scope/);
  assert.match(e.message, /CAP_SYS_PTRACE/);
  assert.match(e.message, /--cap-add SYS_PTRACE/);
  const gone = mapOsError(process.pid, Object.assign(new Error('ESRCH'), { code: 'ESRCH' }));
  assert.ok(gone instanceof ProcessGoneError);
});

test('a target that dies while its memory is open gives ProcessGoneError on the next read', async () => {
  const { spawn } = await import('node:child_process');
  const { readMaps } = await import('../../src/capture/sampler/maps.ts');
  const child = spawn('sleep', ['30']);
  await new Promise((r) => setTimeout(r, 50));
  const pid = child.pid!;
  const mem = ProcMemory.open(pid);
  try {
    const m = readMaps(pid).find((x) => x.perms.startsWith('r') && x.offset === 0 && x.path.startsWith('/'))!;
    assert.deepEqual(mem.read(m.start, 4), bytes(0x7f, 0x45, 0x4c, 0x46));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.throws(() => mem.read(m.start, 4), (e: unknown) => e instanceof ProcessGoneError && e.pid === pid);
  } finally {
    mem.close();
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

const canDropPrivileges = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;

test('a non-root reader of a root process gets a PermissionError with the fix', { skip: !canDropPrivileges && 'needs root and setpriv' }, async () => {
  const { spawn } = await import('node:child_process');
  const target = spawn('sleep', ['30']);
  try {
    // The checkout may sit under a directory the unprivileged user cannot enter (mktemp -d
    // makes 0700 ones), so the module (it imports node:fs and syscalls.ts, which loads koffi
    // only when called) is copied somewhere readable.
    const dir = mkdtempSync(join(tmpdir(), 'pylens-perm-'));
    chmodSync(dir, 0o755);
    const copy = join(dir, 'memory.ts');
    for (const f of ['memory.ts', 'syscalls.ts']) {
      copyFileSync(fileURLToPath(new URL(`../../src/capture/sampler/${f}`, import.meta.url)), join(dir, f));
      chmodSync(join(dir, f), 0o644);
    }
    const url = pathToFileURL(copy).href;
    const code = `import { ProcMemory } from ${JSON.stringify(url)};
try { ProcMemory.open(${target.pid}); console.log(JSON.stringify({ name: 'none' })); }
catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message, pid: e.pid })); }`;
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { name: string; message: string; pid: number };
    assert.equal(out.name, 'PermissionError');
    assert.equal(out.pid, target.pid);
    assert.match(out.message, /we run as uid 65534, the target as uid 0/);
    assert.match(out.message, /ptrace_scope/);
    assert.match(out.message, /CAP_SYS_PTRACE/);
  } finally {
    target.kill('SIGKILL');
  }
});
