/**
 * User-space addresses → function names, for stacks bpftrace prints unresolved
 * (BPFTRACE_NO_USER_SYMBOLS=1: bpftrace 0.17's own user symbolization is slow enough here to
 * fall behind and lose most samples). The process's /proc/PID/maps says which file holds
 * an address; the file's ELF symbols (.symtab, else .dynsym; functions only) name it. Read
 * while the process lives: maps are cached per pid (read again, at most every 100 ms, for
 * an address no mapping holds — a library loaded since), ELF files per path.
 */
import { basename } from 'node:path';
import { ElfFile, PT_LOAD } from '../sampler/elf.ts';
import { mappingAt, readMaps, type MapRecord } from '../sampler/maps.ts';

const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;

interface SymbolTable {
  elf: ElfFile | undefined;
  /** function start addresses (ELF virtual), ascending, with sizes and names */
  starts: Float64Array;
  sizes: Float64Array;
  names: string[];
}

export interface ResolvedFrame {
  /** the function; `[unknown]` when no symbol covers the address (like perf) */
  name: string;
  /** the file's base name, or undefined for anonymous memory (JIT code) */
  lib: string | undefined;
}

export class UserSymbolizer {
  private readonly maps = new Map<number, { records: MapRecord[]; at: number }>();
  private readonly files = new Map<string, SymbolTable>();
  private readonly readMapsOf: (pid: number) => MapRecord[];

  constructor(readMapsOf: (pid: number) => MapRecord[] = readMaps) {
    this.readMapsOf = readMapsOf;
  }

  /** Read `pid`'s maps now (call when a process is first seen, while it surely lives). */
  remember(pid: number): void {
    if (!this.maps.has(pid)) this.refresh(pid);
  }

  /**
   * Read `pid`'s maps and the symbol tables of its executable file mappings now. A table is
   * read once, on its first address, and a large one (libpython) blocks pylens for tens of
   * milliseconds: for a program held at the start gate this moves that before its first line.
   */
  warm(pid: number): void {
    this.refresh(pid);
    for (const m of this.maps.get(pid)!.records) {
      if (m.path && !m.path.startsWith('[') && m.perms.includes('x')) this.table(m.path.replace(/ \(deleted\)$/, ''));
    }
  }

  resolve(pid: number, addr: number): ResolvedFrame {
    let m = this.mapping(pid, addr);
    if (!m) {
      const cached = this.maps.get(pid);
      if (!cached || Date.now() - cached.at > 100) {
        this.refresh(pid);
        m = this.mapping(pid, addr);
      }
    }
    const unknown = '[unknown]';
    if (!m || !m.path || m.path.startsWith('[')) return { name: unknown, lib: m?.path.startsWith('[') ? m.path : undefined };
    const path = m.path.replace(/ \(deleted\)$/, '');
    const t = this.table(path);
    const lib = basename(path);
    if (!t.elf) return { name: unknown, lib };
    // address → file offset → ELF virtual address
    const off = addr - m.start + m.offset;
    let vaddr: number | undefined;
    for (const p of t.elf.programHeaders) {
      if (p.type === PT_LOAD && off >= p.offset && off < p.offset + Math.max(p.filesz, 1)) {
        vaddr = off - p.offset + p.vaddr;
        break;
      }
    }
    if (vaddr === undefined) return { name: unknown, lib };
    let lo = 0;
    let hi = t.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (t.starts[mid]! <= vaddr) lo = mid + 1;
      else hi = mid;
    }
    const i = lo - 1;
    if (i >= 0 && (vaddr < t.starts[i]! + t.sizes[i]! || (t.sizes[i] === 0 && i + 1 < t.starts.length && vaddr < t.starts[i + 1]!))) return { name: t.names[i]!, lib };
    return { name: unknown, lib };
  }

  private mapping(pid: number, addr: number): MapRecord | undefined {
    const c = this.maps.get(pid);
    return c ? mappingAt(c.records, addr) : undefined;
  }

  private refresh(pid: number): void {
    let records: MapRecord[] = [];
    try {
      records = this.readMapsOf(pid);
    } catch {
      // gone: keep what we had
      records = this.maps.get(pid)?.records ?? [];
    }
    this.maps.set(pid, { records, at: Date.now() });
  }

  private table(path: string): SymbolTable {
    let t = this.files.get(path);
    if (t) return t;
    t = { elf: undefined, starts: new Float64Array(0), sizes: new Float64Array(0), names: [] };
    try {
      const elf = ElfFile.read(path);
      const pick = elf.symbols('.symtab').size > 0 ? elf.symbols('.symtab') : elf.symbols('.dynsym');
      const funcs = [...pick.values()].filter((s) => (s.type === STT_FUNC || s.type === STT_GNU_IFUNC) && s.value > 0).sort((a, b) => a.value - b.value);
      t = { elf, starts: Float64Array.from(funcs, (s) => s.value), sizes: Float64Array.from(funcs, (s) => s.size), names: funcs.map((s) => s.name) };
      elf.release();
    } catch {
      // unreadable or not ELF: its addresses stay unnamed
    }
    this.files.set(path, t);
    return t;
  }
}
