import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ElfError, ElfFile, PT_LOAD, SHT_NOBITS } from '../../src/capture/sampler/elf.ts';
import { scanRodataVersion } from '../../src/capture/sampler/runtime.ts';
import { installedPythons } from './pythons.ts';

const pythons = installedPythons();
const libs = pythons.filter((p) => p.lib && p.minor >= 8);

for (const p of libs) {
  test(`ELF of ${p.label}: _PyRuntime symbol, sections, PT_LOAD`, () => {
    const elf = ElfFile.read(p.lib!);
    assert.equal(elf.type, 3, 'ET_DYN');
    const load = elf.programHeaders.filter((h) => h.type === PT_LOAD);
    assert.ok(load.length >= 2);
    assert.equal(load[0]!.vaddr, 0, 'the first PT_LOAD of a shared library is at vaddr 0');

    const rt = elf.symbol('_PyRuntime')!;
    assert.ok(rt, '_PyRuntime is defined');
    assert.equal(rt.table, '.dynsym');
    assert.equal(rt.type, 1, 'STT_OBJECT');
    assert.ok(rt.size >= 512, `size ${rt.size}`);
    assert.deepEqual(elf.symbols('.symtab').get('_PyRuntime')?.value, rt.value);

    const inSection = elf.sections.find((s) => rt.value >= s.addr && rt.value < s.addr + s.size)!;
    if (p.minor >= 10) {
      assert.equal(inSection.name, '.PyRuntime');
      assert.equal(elf.section('.PyRuntime')!.addr, rt.value);
    } else {
      assert.equal(elf.section('.PyRuntime'), undefined);
      assert.ok(['.bss', '.data'].includes(inSection.name), inSection.name);
    }
    assert.equal(elf.section('.bss')!.type, SHT_NOBITS);
    assert.equal(elf.sectionBytes(elf.section('.bss')!).length, 0);
    assert.ok(elf.section('.data')!.size > 0);
    assert.equal(Boolean(elf.symbol('Py_Version')), p.minor >= 11, 'Py_Version is exported from 3.11');
    assert.equal(elf.symbol('no_such_symbol_here'), undefined);
  });
}

for (const p of libs.filter((l) => l.minor <= 10)) {
  test(`.rodata of ${p.label} holds the PY_VERSION literal`, () => {
    const elf = ElfFile.read(p.lib!);
    const micro = /\/3\.\d+\.(\d+)\//.exec(p.lib!)![1];
    const v = scanRodataVersion(elf, { major: 3, minor: p.minor })!;
    assert.equal(v.text, `3.${p.minor}.${micro}`);
  });
}

const debian = pythons.find((p) => p.exe === '/usr/bin/python3.11' && !p.lib);
test('Debian /usr/bin/python3.11 is a static build with _PyRuntime and Py_Version in the executable', { skip: !debian }, () => {
  const elf = ElfFile.read('/usr/bin/python3.11');
  const rt = elf.symbol('_PyRuntime')!;
  assert.ok(rt);
  assert.equal(elf.section('.PyRuntime')!.addr, rt.value);
  assert.ok(elf.symbol('Py_Version'));
  const off = elf.fileOffsetOf(elf.symbol('Py_Version')!.value)!;
  const hex = new DataView(elf.bytes.buffer, elf.bytes.byteOffset).getUint32(off, true);
  assert.equal(hex >>> 24, 3);
  assert.equal((hex >>> 16) & 0xff, 11);
});

const sample = libs[0]?.lib ?? debian?.exe;

test('truncated ELF files give an ElfError naming the file and offset', { skip: !sample }, () => {
  const full = readFileSync(sample!);
  const elf = new ElfFile(full, sample!);
  const shoff = Number(full.readBigUInt64LE(40));
  const dynsym = elf.section('.dynsym')!;
  for (const [cut, where] of [
    [10, 'ELF header'],
    [63, 'ELF header'],
    [shoff + 100, 'section header'],
  ] as const) {
    assert.throws(
      () => new ElfFile(full.subarray(0, cut), 'cut.so'),
      (e: unknown) => e instanceof ElfError && e.file === 'cut.so' && /cut\.so: bad ELF at offset 0x[0-9a-f]+/.test(e.message) && e.message.includes(where),
      `cut at ${cut}`,
    );
  }
  // Headers intact but the symbol table points past the end: the lookup fails, not the parse.
  const copy = Buffer.from(full);
  const idx = elf.sections.indexOf(dynsym);
  copy.writeBigUInt64LE(BigInt(full.length + 1), shoff + idx * 64 + 24);
  const bad = new ElfFile(copy, 'moved.so');
  assert.throws(() => bad.symbol('_PyRuntime'), (e: unknown) => e instanceof ElfError && e.offset === full.length + 1 && /\.dynsym/.test(e.message));
});

test('not an ELF, wrong class, big-endian: typed errors', () => {
  const junk = new Uint8Array(64);
  assert.throws(() => new ElfFile(junk, 'junk'), (e: unknown) => e instanceof ElfError && /no ELF magic/.test(e.message) && e.offset === 0);
  junk.set([0x7f, 0x45, 0x4c, 0x46, 1, 1]);
  assert.throws(() => new ElfFile(junk, 'elf32'), (e: unknown) => e instanceof ElfError && /not ELF64/.test(e.message) && e.offset === 4);
  junk.set([0x7f, 0x45, 0x4c, 0x46, 2, 2]);
  assert.throws(() => new ElfFile(junk, 'be'), (e: unknown) => e instanceof ElfError && /little-endian/.test(e.message) && e.offset === 5);
});
