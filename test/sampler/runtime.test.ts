import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ElfFile } from '../../src/capture/sampler/elf.ts';
import { mappingAt, readMaps } from '../../src/capture/sampler/maps.ts';
import { ImageMemory, ProcMemory, ProcessGoneError } from '../../src/capture/sampler/memory.ts';
import {
  DebugOffsetsError,
  UnsupportedVersionError,
  decodeVersionHex,
  encodeVersionHex,
  findRuntimeInElf,
  isMappedFile,
  isSupported,
  loadBase,
  locateRuntime,
  parseVersionString,
  readDebugOffsetsHeader,
  sameMountNamespace,
  scanForRuntime,
  warmRuntimeFiles,
  type PythonVersion,
} from '../../src/capture/sampler/runtime.ts';
import { installedPythons, startSleepingPython, stop, type SleepingPython } from './pythons.ts';

const LEVELS: Record<string, number> = { alpha: 0xa, beta: 0xb, candidate: 0xc, final: 0xf };

// ---- synthetic ----------------------------------------------------------------------

test('decodeVersionHex: PY_VERSION_HEX fields and text', () => {
  assert.deepEqual(decodeVersionHex(0x030d00f0), { major: 3, minor: 13, micro: 0, level: 0xf, serial: 0, text: '3.13.0' });
  assert.equal(decodeVersionHex(0x030b07f0).text, '3.11.7');
  assert.equal(decodeVersionHex(0x030c00a2).text, '3.12.0a2');
  assert.equal(decodeVersionHex(0x030e00b3).text, '3.14.0b3');
  assert.equal(decodeVersionHex(0x030d00c1).text, '3.13.0rc1');
  // Py_Version is an 8-byte unsigned long: the high half is ignored
  assert.equal(decodeVersionHex(0x1_030b07f0n).text, '3.11.7');
  assert.equal(encodeVersionHex(decodeVersionHex(0x030d00c1)), 0x030d00c1);
});

test('parseVersionString and isSupported', () => {
  assert.deepEqual(parseVersionString('3.9.18'), decodeVersionHex(0x030912f0));
  assert.equal(parseVersionString('3.13.0rc1')!.level, 0xc);
  assert.equal(parseVersionString('3.12.0b4+')!.text, '3.12.0b4');
  assert.equal(parseVersionString('3.9'), undefined);
  assert.equal(isSupported({ major: 3, minor: 7 }), false);
  assert.equal(isSupported({ major: 3, minor: 8 }), true);
  assert.equal(isSupported({ major: 3, minor: 14 }), true);
  assert.equal(isSupported({ major: 3, minor: 15 }), false);
  const e = new UnsupportedVersionError(42, parseVersionString('3.15.0a1')!);
  assert.match(e.message, /process 42 runs Python 3\.15\.0a1/);
});

function debugHeader(cookie: string, hex: bigint, freeThreaded = 0n): Uint8Array {
  const b = new Uint8Array(24);
  b.set(Buffer.from(cookie, 'latin1').subarray(0, 8));
  const dv = new DataView(b.buffer);
  dv.setBigUint64(8, hex, true);
  dv.setBigUint64(16, freeThreaded, true);
  return b;
}

test('_Py_DebugOffsets header: valid, wrong cookie, version mismatch, bad flag', () => {
  const at = 0x7f0000001000;
  const v3130 = decodeVersionHex(0x030d00f0);
  const ok = readDebugOffsetsHeader(new ImageMemory([[at, debugHeader('xdebugpy', 0x030d00f0n)]]), at, v3130);
  assert.deepEqual(ok, { cookie: 'xdebugpy', version: v3130, versionHex: 0x030d00f0, freeThreaded: false });
  assert.equal(readDebugOffsetsHeader(new ImageMemory([[at, debugHeader('xdebugpy', 0x030d00f0n, 1n)]]), at).freeThreaded, true);

  const check = (img: Uint8Array, re: RegExp, expected?: PythonVersion) =>
    assert.throws(
      () => readDebugOffsetsHeader(new ImageMemory([[at, img]]), at, expected),
      (e: unknown) => e instanceof DebugOffsetsError && e.address === at && re.test(e.message) && e.message.includes('0x7f0000001000'),
    );
  check(debugHeader('xdebugpz', 0x030d00f0n), /cookie "xdebugpz"/);
  check(debugHeader('\0\0\0\0\0\0\0\0', 0x030d00f0n), /cookie/);
  check(debugHeader('xdebugpy', 0x030d01f0n), /3\.13\.1 disagrees with Py_Version 3\.13\.0/, v3130);
  check(debugHeader('xdebugpy', 0x030e00f0n), /3\.14\.0 disagrees/, v3130);
  check(debugHeader('xdebugpy', 0xdead_0000_0000n), /not a PY_VERSION_HEX/);
  check(debugHeader('xdebugpy', 0x030d00f0n, 7n), /free_threaded flag 7/);
});

const pythons = installedPythons();

test('findRuntimeInElf falls back to the .PyRuntime section when the symbol is gone (stripped names)', { skip: !pythons.some((p) => p.lib && p.minor >= 10) }, () => {
  const lib = pythons.find((p) => p.lib && p.minor >= 10)!.lib!;
  const bytes = readFileSync(lib);
  const orig = new ElfFile(bytes, lib);
  const sym = findRuntimeInElf(orig)!;
  assert.equal(sym.source, 'symbol');
  // Rename every "_PyRuntime\0" string so no symbol table defines it any more.
  const needle = Buffer.from('_PyRuntime\0');
  for (let i = bytes.indexOf(needle); i >= 0; i = bytes.indexOf(needle, i + 1)) bytes[i + 9] = 0x58; // 'X'
  const renamed = new ElfFile(bytes, 'renamed.so');
  assert.equal(renamed.symbol('_PyRuntime'), undefined);
  assert.deepEqual(findRuntimeInElf(renamed), { vaddr: sym.vaddr, source: 'section' });
});

// ---- real processes -----------------------------------------------------------------

test('isMappedFile: a path is the mapped file by device and inode (a container\'s python3 is not the host\'s)', () => {
  const maps = readMaps(process.pid);
  const exe = maps.find((m) => m.path === process.execPath)!;
  assert.ok(exe, 'node is mapped');
  assert.equal(isMappedFile(process.execPath, exe), true);
  assert.equal(isMappedFile(`/proc/${process.pid}/root${process.execPath}`, exe), true, 'through /proc/PID/root');
  const libc = maps.find((m) => /\/libc\.so/.test(m.path));
  if (libc) assert.equal(isMappedFile(libc.path, exe), false, 'another file');
  assert.equal(isMappedFile('/nonexistent/python3', exe), false);
  assert.equal(sameMountNamespace(process.pid), true);
});

test('locateRuntime on a dead PID is a ProcessGoneError naming the PID', () => {
  const pid = spawnSync('true').pid!;
  assert.throws(() => locateRuntime(pid), (e: unknown) => e instanceof ProcessGoneError && e.pid === pid && e.message.includes(String(pid)));
});

for (const py of pythons.filter((p) => p.minor >= 8)) {
  test(`locateRuntime on a live ${py.label}`, async (t) => {
    let p: SleepingPython | undefined;
    try {
      p = await startSleepingPython(py.exe);
      const t0 = performance.now();
      const loc = locateRuntime(p.pid);
      const ms = performance.now() - t0;

      const [major, minor, micro, level, serial] = p.versionInfo;
      assert.deepEqual(
        { major: loc.version.major, minor: loc.version.minor, micro: loc.version.micro, level: loc.version.level, serial: loc.version.serial },
        { major, minor, micro, level: LEVELS[level], serial },
      );
      assert.ok(p.version.startsWith(loc.version.text), `${p.version} starts with ${loc.version.text}`);
      assert.equal(loc.libraryPath, py.lib ?? py.exe);
      assert.equal(loc.kind, py.lib ? 'library' : 'executable');

      const maps = readMaps(p.pid);
      const own = maps.filter((m) => m.path === loc.libraryPath);
      assert.equal(loc.bias, own.find((m) => m.offset === 0)!.start);
      const elf = ElfFile.read(loc.libraryPath);
      assert.equal(loc.runtimeAddress, loc.loadBase + elf.symbol('_PyRuntime')!.value);
      assert.equal(loc.loadBase, elf.type === 2 ? 0 : loc.bias, 'ET_EXEC loads at its link addresses; ET_DYN at the bias');
      const where = mappingAt(maps, loc.runtimeAddress);
      assert.ok(where, 'the runtime is mapped');
      if (where.path === '') {
        // 3.8/3.9: _PyRuntime is in .bss, and the part of .bss past the file's last page is an
        // anonymous mapping the loader places right after the library's last mapping.
        const before = maps[maps.indexOf(where) - 1]!;
        assert.equal(before.path, loc.libraryPath, 'the anonymous mapping follows the library');
        assert.equal(before.end, where.start, 'contiguously');
        const bss = elf.section('.bss')!;
        assert.ok(loc.runtimeAddress >= loc.bias + bss.addr && loc.runtimeAddress < loc.bias + bss.addr + bss.size, 'inside the library\'s .bss');
      } else {
        assert.equal(where.path, loc.libraryPath, `_PyRuntime lies in a mapping of ${loc.libraryPath}`);
      }
      assert.ok(where.perms.startsWith('rw'), 'and that mapping is writable data');

      if (minor >= 13) {
        assert.ok(loc.debugOffsets);
        assert.equal(loc.debugOffsets.cookie, 'xdebugpy');
        assert.deepEqual(loc.debugOffsets.version, loc.version);
        assert.equal(loc.debugOffsets.freeThreaded, false);
      } else {
        assert.equal(loc.debugOffsets, undefined);
      }
      t.diagnostic(
        `${py.label}: ${ms.toFixed(1)} ms attach+locate; ${loc.version.text} via ${loc.versionSource}; ` +
          `_PyRuntime by ${loc.source} at 0x${loc.runtimeAddress.toString(16)} = load base 0x${loc.loadBase.toString(16)} + st_value 0x${(loc.runtimeAddress - loc.loadBase).toString(16)} (bias 0x${loc.bias.toString(16)}) ` +
          `in ${where.path === '' ? `the anonymous .bss tail after ${loc.libraryPath}` : loc.libraryPath} (${where.perms})`,
      );
    } finally {
      stop(p);
    }
  });
}

for (const py of pythons.filter((p) => p.minor === 6 || p.minor === 7)) {
  test(`${py.label} is refused as unsupported, naming the version`, async () => {
    let p: SleepingPython | undefined;
    try {
      p = await startSleepingPython(py.exe);
      const [major, minor, micro] = p.versionInfo;
      const pid = p.pid;
      assert.throws(
        () => locateRuntime(pid),
        (e: unknown) =>
          e instanceof UnsupportedVersionError &&
          e.pid === pid &&
          e.version.text === `${major}.${minor}.${micro}` &&
          e.message.includes(`Python ${major}.${minor}.${micro}`) &&
          e.message.includes(String(pid)),
      );
    } finally {
      stop(p);
    }
  });
}

for (const py of pythons.filter((p) => p.lib && p.minor >= 8 && p.minor <= 10)) {
  test(`the data scan finds the same _PyRuntime as the symbol on a live ${py.label}`, async (t) => {
    let p: SleepingPython | undefined;
    let mem: ProcMemory | undefined;
    try {
      p = await startSleepingPython(py.exe);
      const loc = locateRuntime(p.pid);
      const elf = ElfFile.read(loc.libraryPath);
      mem = ProcMemory.open(p.pid);
      const t0 = performance.now();
      const found = scanForRuntime(elf, mem, loadBase(elf, loc.bias));
      t.diagnostic(`${py.label}: data scan ${(performance.now() - t0).toFixed(1)} ms`);
      assert.equal(found, loc.runtimeAddress);
    } finally {
      mem?.close();
      stop(p);
    }
  });
}

test('warmRuntimeFiles: the executable and, for a shared build, its libpython; the attach that follows finds the same runtime; a script warms nothing', async () => {
  for (const py of installedPythons()) {
    const files = warmRuntimeFiles(py.exe);
    assert.equal(files[0], realpathSync(py.exe), py.label);
    if (py.lib) assert.deepEqual(files.slice(1), [realpathSync(py.lib)], py.label);
    else assert.equal(files.length, 1, `${py.label}: ${files.join(', ')}`);
    if (py.minor < 8) continue; // not sampled: no attach to compare with
    const p = await startSleepingPython(py.exe);
    try {
      const rt = locateRuntime(p.child.pid!);
      assert.equal(realpathSync(rt.libraryPath), files.at(-1), py.label);
    } finally {
      stop(p);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'pylens-warm-'));
  const shim = join(dir, 'python3');
  writeFileSync(shim, '#!/bin/sh\nexec python3 "$@"\n', { mode: 0o755 });
  assert.deepEqual(warmRuntimeFiles(shim), []);
  assert.deepEqual(warmRuntimeFiles(join(dir, 'missing')), []);
});
