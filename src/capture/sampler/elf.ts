/**
 * A small ELF64 little-endian reader: header, program headers, named section headers,
 * symbol lookup in .dynsym/.dynstr and .symtab/.strtab. Every read is bounds-checked;
 * a truncated or corrupt file is an ElfError naming the file and the offset.
 */
import { readFileSync } from 'node:fs';

export class ElfError extends Error {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, what: string) {
    super(`${file}: bad ELF at offset 0x${offset.toString(16)}: ${what}`);
    this.name = 'ElfError';
    this.file = file;
    this.offset = offset;
  }
}

export const PT_LOAD = 1;
export const SHT_NOBITS = 8;

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface SectionHeader {
  name: string;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

export interface ElfSymbol {
  name: string;
  value: number;
  size: number;
  /** STT_* (low 4 bits of st_info) */
  type: number;
  /** section index; 0 = undefined (imported) */
  shndx: number;
}

export class ElfFile {
  readonly file: string;
  readonly type: number;
  readonly programHeaders: ProgramHeader[];
  readonly sections: SectionHeader[];
  private data: { bytes: Uint8Array; dv: DataView } | undefined;
  /** re-reads the file's bytes after `release()` (absent for an ElfFile made from bytes) */
  private reload: (() => Uint8Array) | undefined;
  private symCache = new Map<string, Map<string, ElfSymbol>>();
  private lookups = new Map<string, (ElfSymbol & { table: '.dynsym' | '.symtab' }) | null>();

  constructor(bytes: Uint8Array, file: string, reload?: () => Uint8Array) {
    this.file = file;
    this.reload = reload;
    this.data = { bytes, dv: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
    this.check(0, 64, 'ELF header');
    if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) throw new ElfError(file, 0, 'no ELF magic');
    if (bytes[4] !== 2) throw new ElfError(file, 4, `class ${bytes[4]} is not ELF64`);
    if (bytes[5] !== 1) throw new ElfError(file, 5, `data encoding ${bytes[5]} is not little-endian`);
    this.type = this.u16(16);
    const phoff = this.u64(32);
    const shoff = this.u64(40);
    const phentsize = this.u16(54);
    const phnum = this.u16(56);
    const shentsize = this.u16(58);
    const shnum = this.u16(60);
    const shstrndx = this.u16(62);
    if (phnum > 0 && phentsize < 56) throw new ElfError(file, 54, `program header size ${phentsize}`);
    if (shnum > 0 && shentsize < 64) throw new ElfError(file, 58, `section header size ${shentsize}`);

    this.programHeaders = [];
    for (let i = 0; i < phnum; i++) {
      const o = phoff + i * phentsize;
      this.check(o, 56, `program header ${i}`);
      this.programHeaders.push({
        type: this.u32(o),
        flags: this.u32(o + 4),
        offset: this.u64(o + 8),
        vaddr: this.u64(o + 16),
        filesz: this.u64(o + 32),
        memsz: this.u64(o + 40),
        align: this.u64(o + 48),
      });
    }

    const raw: (Omit<SectionHeader, 'name'> & { nameOff: number })[] = [];
    for (let i = 0; i < shnum; i++) {
      const o = shoff + i * shentsize;
      this.check(o, 64, `section header ${i}`);
      raw.push({
        nameOff: this.u32(o),
        type: this.u32(o + 4),
        flags: this.u64(o + 8),
        addr: this.u64(o + 16),
        offset: this.u64(o + 24),
        size: this.u64(o + 32),
        link: this.u32(o + 40),
        entsize: this.u64(o + 56),
      });
    }
    let strtab: SectionHeader | undefined;
    if (raw.length > 0) {
      const s = raw[shstrndx];
      if (!s) throw new ElfError(file, 62, `section name table index ${shstrndx} out of range`);
      strtab = { ...s, name: '.shstrtab' };
      this.check(s.offset, s.size, 'section name table');
    }
    this.sections = raw.map(({ nameOff, ...s }) => ({ ...s, name: strtab ? this.cstr(strtab, nameOff) : '' }));
  }

  static read(path: string, displayName = path): ElfFile {
    return new ElfFile(readFileSync(path), displayName, () => readFileSync(path));
  }

  /** the whole file (read again if it was released) */
  get bytes(): Uint8Array {
    return this.loaded().bytes;
  }

  private get dv(): DataView {
    return this.loaded().dv;
  }

  private loaded(): { bytes: Uint8Array; dv: DataView } {
    if (this.data === undefined) {
      if (!this.reload) throw new Error(`ElfFile ${this.file}: bytes released and no way to read them again`);
      const bytes = this.reload();
      this.data = { bytes, dv: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
    }
    return this.data;
  }

  /**
   * Drop the file's bytes (libpython is ~30 MB) but keep headers and the symbols looked up
   * so far; anything else re-reads the file. For an ElfFile kept in a cache.
   */
  release(): void {
    if (!this.reload) return;
    this.data = undefined;
    this.symCache.clear();
  }

  section(name: string): SectionHeader | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /** The bytes of a section (empty for SHT_NOBITS such as .bss). */
  sectionBytes(s: SectionHeader): Uint8Array {
    if (s.type === SHT_NOBITS) return new Uint8Array(0);
    this.check(s.offset, s.size, `section ${s.name}`);
    return this.bytes.subarray(s.offset, s.offset + s.size);
  }

  /** Look a symbol up by name in .dynsym, then .symtab. Undefined (imported) symbols are skipped. */
  symbol(name: string): (ElfSymbol & { table: '.dynsym' | '.symtab' }) | undefined {
    const memo = this.lookups.get(name);
    if (memo !== undefined) return memo ?? undefined;
    let found: (ElfSymbol & { table: '.dynsym' | '.symtab' }) | null = null;
    for (const table of ['.dynsym', '.symtab'] as const) {
      const cached = this.symCache.get(table);
      const s = cached ? cached.get(name) : this.findSymbol(table, name);
      if (s) {
        found = { ...s, table };
        break;
      }
    }
    this.lookups.set(name, found);
    return found ?? undefined;
  }

  /**
   * One defined symbol of `table` by name, comparing the string table's bytes in place: no
   * string is decoded and no map is built (libpython's .symtab has ~15,000 entries, and an
   * attach looks up a handful).
   */
  private findSymbol(table: '.dynsym' | '.symtab', name: string): ElfSymbol | undefined {
    const t = this.symbolTable(table);
    if (!t) return undefined;
    const { sec, strs, ent } = t;
    const want = Buffer.from(name, 'latin1');
    const b = this.bytes;
    const dv = this.dv;
    const strEnd = strs.offset + strs.size;
    for (let o = sec.offset; o + 24 <= sec.offset + sec.size; o += ent) {
      const off = dv.getUint32(o, true);
      const at = strs.offset + off;
      if (off >= strs.size || at + want.length >= strEnd || b[at] !== want[0]) continue;
      let i = 1;
      while (i < want.length && b[at + i] === want[i]) i++;
      if (i < want.length || b[at + want.length] !== 0) continue;
      const shndx = dv.getUint16(o + 6, true);
      if (shndx === 0) continue;
      return { name, type: b[o + 4]! & 0xf, shndx, value: this.u64(o + 8), size: this.u64(o + 16) };
    }
    return undefined;
  }

  /** A symbol table's section, its string table and entry size, bounds-checked. */
  private symbolTable(table: '.dynsym' | '.symtab'): { sec: SectionHeader; strs: SectionHeader; ent: number } | undefined {
    const sec = this.section(table);
    if (!sec) return undefined;
    const strs = this.sections[sec.link];
    if (!strs) throw new ElfError(this.file, sec.offset, `${table} links to missing string table ${sec.link}`);
    this.check(sec.offset, sec.size, `section ${table}`);
    this.check(strs.offset, strs.size, `string table of ${table}`);
    const ent = sec.entsize || 24;
    if (ent < 24) throw new ElfError(this.file, sec.offset, `${table} entry size ${ent}`);
    return { sec, strs, ent };
  }

  /** All defined symbols of one table, by name. */
  symbols(table: '.dynsym' | '.symtab'): Map<string, ElfSymbol> {
    const cached = this.symCache.get(table);
    if (cached) return cached;
    const out = new Map<string, ElfSymbol>();
    const t = this.symbolTable(table);
    if (t) {
      const { sec, strs, ent } = t;
      for (let o = sec.offset; o + 24 <= sec.offset + sec.size; o += ent) {
        const shndx = this.u16(o + 6);
        if (shndx === 0) continue;
        const sym: ElfSymbol = {
          name: this.cstr(strs, this.u32(o)),
          type: this.bytes[o + 4]! & 0xf,
          shndx,
          value: this.u64(o + 8),
          size: this.u64(o + 16),
        };
        if (sym.name && !out.has(sym.name)) out.set(sym.name, sym);
      }
    }
    this.symCache.set(table, out);
    return out;
  }

  /** The file offset holding virtual address `vaddr`, via the PT_LOAD segments. */
  fileOffsetOf(vaddr: number): number | undefined {
    for (const p of this.programHeaders) {
      if (p.type === PT_LOAD && vaddr >= p.vaddr && vaddr < p.vaddr + p.filesz) return p.offset + (vaddr - p.vaddr);
    }
    return undefined;
  }

  private check(offset: number, len: number, what: string): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || len < 0 || offset + len > this.bytes.length) {
      throw new ElfError(this.file, offset, `${what} (${len} bytes) runs past the end of the file (${this.bytes.length} bytes)`);
    }
  }
  private u16(o: number): number {
    this.check(o, 2, 'field');
    return this.dv.getUint16(o, true);
  }
  private u32(o: number): number {
    this.check(o, 4, 'field');
    return this.dv.getUint32(o, true);
  }
  private u64(o: number): number {
    this.check(o, 8, 'field');
    const v = this.dv.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(this.file, o, `value 0x${v.toString(16)} too large`);
    return Number(v);
  }
  private cstr(table: SectionHeader, off: number): string {
    const start = table.offset + off;
    if (off >= table.size) throw new ElfError(this.file, start, `string offset ${off} outside its table (${table.size} bytes)`);
    const end = table.offset + table.size;
    this.check(table.offset, table.size, 'string table');
    let i = start;
    while (i < end && this.bytes[i] !== 0) i++;
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + start, i - start).toString('latin1');
  }
}
