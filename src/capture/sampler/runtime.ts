/**
 * Locate `_PyRuntime` in a live CPython process and detect its exact version.
 *
 * Order: find the binary holding the runtime (libpython in maps, else the executable),
 * detect the version (3.11+: exported `Py_Version`; before: the `Py_GetVersion` buffer read
 * from memory, checked against the file name, then a .rodata scan for the PY_VERSION
 * string), refuse unsupported versions, then locate `_PyRuntime` (.dynsym/.symtab symbol,
 * else the `.PyRuntime` section of 3.10+, else for 3.8–3.10 a validated scan of its data). On 3.13+ the
 * `_Py_DebugOffsets` header at the start of `_PyRuntime` is validated against the version.
 */
import { existsSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ElfError, ElfFile, PT_LOAD } from './elf.ts';
import { findExecutable, findLibpython, readMaps, type MapRecord, type PythonBinary } from './maps.ts';
import { BadReadError, ProcMemory, type Address, type ProcessMemory } from './memory.ts';

export interface PythonVersion {
  major: number;
  minor: number;
  micro: number;
  /** 0xA alpha, 0xB beta, 0xC candidate, 0xF final (as in PY_VERSION_HEX) */
  level: number;
  serial: number;
  /** "3.11.7", "3.13.0rc1" */
  text: string;
}

export interface RuntimeLocation {
  pid: number;
  runtimeAddress: Address;
  version: PythonVersion;
  /** the file holding the runtime, as written in maps */
  libraryPath: string;
  kind: PythonBinary['kind'];
  /** start of the mapping of that file with file offset 0 */
  bias: Address;
  /** where ELF vaddr 0 is loaded: a symbol is at loadBase + st_value (= bias for shared libraries and PIE; 0 for a non-PIE executable) */
  loadBase: Address;
  source: 'symbol' | 'section' | 'scan';
  /** how the version was found */
  versionSource: 'Py_Version' | 'version buffer' | 'rodata';
  /** 3.13+: the `_Py_DebugOffsets` header, validated */
  debugOffsets?: DebugOffsetsHeader;
}

export const MIN_SUPPORTED = { major: 3, minor: 8 } as const;
export const MAX_SUPPORTED = { major: 3, minor: 14 } as const;

export class UnsupportedVersionError extends Error {
  readonly pid: number;
  readonly version: PythonVersion;
  constructor(pid: number, version: PythonVersion) {
    super(
      `process ${pid} runs Python ${version.text}, which pylens cannot sample ` +
        `(supported: ${MIN_SUPPORTED.major}.${MIN_SUPPORTED.minor} to ${MAX_SUPPORTED.major}.${MAX_SUPPORTED.minor})`,
    );
    this.name = 'UnsupportedVersionError';
    this.pid = pid;
    this.version = version;
  }
}

export class RuntimeNotFoundError extends Error {
  readonly pid: number;
  constructor(pid: number, why: string) {
    super(`cannot find the CPython runtime in process ${pid}: ${why}`);
    this.name = 'RuntimeNotFoundError';
    this.pid = pid;
  }
}

export class DebugOffsetsError extends Error {
  readonly address: Address;
  constructor(address: Address, why: string) {
    super(`_Py_DebugOffsets at 0x${address.toString(16)}: ${why}`);
    this.name = 'DebugOffsetsError';
    this.address = address;
  }
}

const LEVEL_SUFFIX: Record<number, string> = { 0xa: 'a', 0xb: 'b', 0xc: 'rc', 0xf: '' };

export function versionText(v: Omit<PythonVersion, 'text'>): string {
  const suffix = v.level === 0xf ? '' : `${LEVEL_SUFFIX[v.level] ?? `?${v.level.toString(16)}`}${v.serial}`;
  return `${v.major}.${v.minor}.${v.micro}${suffix}`;
}

/** Decode PY_VERSION_HEX (the low 32 bits of `Py_Version`). */
export function decodeVersionHex(hex: number | bigint): PythonVersion {
  const v = Number(BigInt(hex) & 0xffffffffn);
  const parts = { major: v >>> 24, minor: (v >>> 16) & 0xff, micro: (v >>> 8) & 0xff, level: (v >>> 4) & 0xf, serial: v & 0xf };
  return { ...parts, text: versionText(parts) };
}

export function encodeVersionHex(v: Omit<PythonVersion, 'text'>): number {
  return ((v.major << 24) | (v.minor << 16) | (v.micro << 8) | (v.level << 4) | v.serial) >>> 0;
}

/** Parse a PY_VERSION string such as "3.9.18", "3.13.0rc1", "3.12.0b4+". */
export function parseVersionString(s: string): PythonVersion | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)(\d+))?\+?$/.exec(s);
  if (!m) return undefined;
  const level = m[4] === 'a' ? 0xa : m[4] === 'b' ? 0xb : m[4] === 'rc' ? 0xc : 0xf;
  const parts = { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3]), level, serial: m[5] ? Number(m[5]) : 0 };
  return { ...parts, text: versionText(parts) };
}

export function isSupported(v: { major: number; minor: number }): boolean {
  const n = v.major * 100 + v.minor;
  return n >= MIN_SUPPORTED.major * 100 + MIN_SUPPORTED.minor && n <= MAX_SUPPORTED.major * 100 + MAX_SUPPORTED.minor;
}

export const DEBUG_COOKIE = 'xdebugpy';

export interface DebugOffsetsHeader {
  cookie: string;
  version: PythonVersion;
  versionHex: number;
  freeThreaded: boolean;
}

/**
 * Read and validate the 24-byte `_Py_DebugOffsets` header (cookie, version, free_threaded)
 * at the start of `_PyRuntime` (3.13+). Its version must equal `expected` in major.minor
 * (the layout is stable across patch releases) and, when `exact`, in every field.
 */
export function readDebugOffsetsHeader(mem: ProcessMemory, runtimeAddress: Address, expected?: PythonVersion): DebugOffsetsHeader {
  const b = mem.read(runtimeAddress, 24);
  const cookie = Buffer.from(b.subarray(0, 8)).toString('latin1');
  if (cookie !== DEBUG_COOKIE) throw new DebugOffsetsError(runtimeAddress, `cookie ${JSON.stringify(cookie)} is not "${DEBUG_COOKIE}"`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hex64 = dv.getBigUint64(8, true);
  if (hex64 > 0xffffffffn) throw new DebugOffsetsError(runtimeAddress, `version word 0x${hex64.toString(16)} is not a PY_VERSION_HEX`);
  const version = decodeVersionHex(hex64);
  const ft = dv.getBigUint64(16, true);
  if (ft > 1n) throw new DebugOffsetsError(runtimeAddress, `free_threaded flag ${ft} is not 0 or 1`);
  if (expected && encodeVersionHex(expected) !== Number(hex64)) {
    throw new DebugOffsetsError(runtimeAddress, `version ${version.text} disagrees with Py_Version ${expected.text}`);
  }
  return { cookie, version, versionHex: Number(hex64), freeThreaded: ft === 1n };
}

/**
 * Parsed ELF files by path and identity (device, inode, size, mtime): a parent and the
 * Python children it starts run the same binary, and parsing libpython takes tens of ms.
 */
const elfCache = new Map<string, ElfFile>();
const ELF_CACHE_SIZE = 8;

function cachedElf(file: string, displayPath: string): ElfFile {
  const st = statSync(file);
  const key = `${file}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  let elf = elfCache.get(key);
  if (elf === undefined) {
    elf = ElfFile.read(file, displayPath);
    if (elfCache.size >= ELF_CACHE_SIZE) elfCache.delete(elfCache.keys().next().value!);
    elfCache.set(key, elf);
  }
  // headers and looked-up symbols stay; the ~30 MB of file bytes go once this attach is done
  queueMicrotask(() => elf.release());
  return elf;
}

/** the names GCC gives `Py_GetVersion`'s static buffer */
const VERSION_BUFFER_NAMES = ['version.0', 'version'];

/** folders a libpython is looked for in, beside the interpreter's own `../lib` */
const LIB_DIRS = ['/usr/local/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'];

/**
 * Parse, ahead of a launch, the ELF files an attach to interpreter `exe` will read: the
 * executable and, for a shared build, its libpython (`../lib` beside it, or a system
 * library folder; the name from the executable's). The first attach to a process then
 * takes ~2 ms instead of ~110 ms (libpython's symbol tables), which matters where the
 * program cannot be held at the start gate (`python -I`, `-E`, `-S`) and runs meanwhile.
 * Best effort: a shim script (pyenv's), a missing file or a parse error warms nothing.
 * Returns the files warmed.
 */
export function warmRuntimeFiles(exe: string): string[] {
  const out: string[] = [];
  /** whether the file holds the runtime (a static build's executable, or libpython) */
  const warm = (file: string): boolean => {
    try {
      const real = realpathSync(file);
      const elf = cachedElf(real, real); // a script (no ELF magic) throws: nothing warmed
      out.push(real);
      // the lookups an attach makes (kept by the ElfFile once its bytes are released): before
      // 3.11 there is no Py_Version and the whole symbol table is searched for the version buffer
      if (elf.symbol('Py_Version') === undefined) for (const n of VERSION_BUFFER_NAMES) elf.symbol(n);
      return findRuntimeInElf(elf) !== undefined;
    } catch {
      return false;
    }
  };
  if (warm(exe) || out.length === 0) return out;
  const m = /^python(\d)\.(\d+)/.exec(basename(out[0]!));
  if (m) {
    // 3.7 and before: the `m` ABI flag in the name
    const names = [`libpython${m[1]}.${m[2]}.so.1.0`, `libpython${m[1]}.${m[2]}m.so.1.0`];
    for (const d of [join(dirname(out[0]!), '..', 'lib'), ...LIB_DIRS]) {
      const name = names.find((n) => existsSync(join(d, n)));
      if (name !== undefined) {
        warm(join(d, name));
        break;
      }
    }
  }
  return out;
}

/**
 * Is `pid` in our mount namespace? undefined when its namespace link cannot be read. A
 * target in a container (another mount namespace) sees other files under the same paths.
 */
export function sameMountNamespace(pid: number): boolean | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`) === readlinkSync('/proc/self/ns/mnt');
  } catch {
    return undefined;
  }
}

/** Is `file` (followed) the file of mapping `m` (its device and inode as written in maps)? */
export function isMappedFile(file: string, m: MapRecord): boolean {
  try {
    const st = statSync(file);
    const [major, minor] = m.dev.split(':').map((x) => parseInt(x, 16)) as [number, number];
    // glibc's dev_t: minor's low 8 bits, major's low 12 bits above them, then the rest
    const dev = (minor & 0xff) + (major & 0xfff) * 0x100 + (minor >>> 8) * 0x100000 + (major >>> 12) * 0x100000000;
    return st.ino === m.inode && st.dev === dev;
  } catch {
    return false;
  }
}

/**
 * Read the ELF file of a mapped binary. In our mount namespace: its path, else through
 * /proc/PID/root, else /proc/PID/map_files. A target in another mount namespace (a
 * container seen from the host) has its own files: the path as written in maps may be
 * missing here or, worse, another file (the host's python3.11 is not the container's), so
 * /proc/PID/root (the path resolved in the target's mounts) comes first, then map_files,
 * and the bare path last and only when it is the mapped file (device and inode).
 */
export function readBinaryElf(pid: number, bin: PythonBinary): ElfFile {
  const path = bin.path.replace(/ \(deleted\)$/, '');
  const first = bin.mappings[0]!;
  const viaRoot = `/proc/${pid}/root${path}`;
  const viaMapFiles = `/proc/${pid}/map_files/${first.start.toString(16)}-${first.end.toString(16)}`;
  const ours = sameMountNamespace(pid) !== false;
  const candidates = ours ? [path, viaRoot, viaMapFiles] : [viaRoot, viaMapFiles, path];
  let lastErr: unknown;
  for (const c of candidates) {
    if (!ours && c === path && !isMappedFile(path, first)) {
      lastErr ??= new Error(`${path} here is not the file the process mapped (it runs in another mount namespace)`);
      continue;
    }
    try {
      return cachedElf(c, path);
    } catch (e) {
      if (e instanceof ElfError) throw e;
      lastErr = e;
    }
  }
  throw new RuntimeNotFoundError(pid, `cannot read ${path}: ${(lastErr as Error)?.message}`);
}

/** Load address of ELF virtual address 0: bias minus the page-aligned vaddr of the offset-0 PT_LOAD. */
export function loadBase(elf: ElfFile, bias: Address): Address {
  const first = elf.programHeaders.find((p) => p.type === PT_LOAD && p.offset === 0) ?? elf.programHeaders.find((p) => p.type === PT_LOAD);
  if (!first) return bias;
  return bias - (first.vaddr - (first.vaddr % 4096));
}

/**
 * Python before 3.11 exports no version number. `Py_GetVersion()` formats
 * "3.9.18 (main, ...) [GCC ...]" into a static 250-byte buffer (`version.0` in .symtab) during
 * startup, so read it from the target's memory.
 */
export function readVersionBuffer(elf: ElfFile, mem: ProcessMemory, base: Address): PythonVersion | undefined {
  // looked up by name first (kept by a cached ElfFile, no re-read of the file), every
  // `version.N` of the symbol table after
  const named = VERSION_BUFFER_NAMES.map((n) => elf.symbol(n)).filter((x) => x !== undefined);
  const candidates: Iterable<[string, { type: number; size: number; value: number }]> = named.length
    ? named.map((x) => [x.name, x] as [string, typeof x])
    : elf.symbols('.symtab');
  for (const [name, sym] of candidates) {
    if (!/^version(\.\d+)?$/.test(name) || sym.type !== 1 || sym.size !== 250) continue;
    let bytes: Uint8Array;
    try {
      bytes = mem.read(base + sym.value, sym.size);
    } catch (e) {
      if (e instanceof BadReadError) continue;
      throw e;
    }
    const text = Buffer.from(bytes).toString('latin1');
    const m = /^(\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)\+? \(/.exec(text);
    const v = m ? parseVersionString(m[1]!) : undefined;
    if (v) return v;
  }
  return undefined;
}

/**
 * The PY_VERSION literal ("3.9.18") in .rodata. The linker merges string tails, so it may
 * be the end of a longer string ("/opt/python/3.9.18"): match any NUL-terminated
 * X.Y.Z not preceded by a digit or dot, and require `want` major.minor when given.
 */
const RODATA_VERSION = /(?<![\d.])(\d)\.(\d{1,2})\.(\d{1,3})((?:a|b|rc)\d{1,2})?\+?\x00/g;

export function scanRodataVersion(elf: ElfFile, want?: { major: number; minor: number }): PythonVersion | undefined {
  const sec = elf.section('.rodata');
  if (!sec) return undefined;
  const text = Buffer.from(elf.sectionBytes(sec)).toString('latin1');
  let fallback: PythonVersion | undefined;
  for (const m of text.matchAll(RODATA_VERSION)) {
    const v = parseVersionString(m[0].slice(0, -1));
    if (!v || v.major !== 3) continue;
    if (!want || (v.major === want.major && v.minor === want.minor)) return v;
    fallback ??= v;
  }
  return want ? undefined : fallback;
}

/** `_PyRuntime`'s virtual address in the file: its symbol, else the `.PyRuntime` section (3.10+, survives strip). */
export function findRuntimeInElf(elf: ElfFile): { vaddr: number; source: 'symbol' | 'section' } | undefined {
  const sym = elf.symbol('_PyRuntime');
  if (sym) return { vaddr: sym.value, source: 'symbol' };
  const sec = elf.section('.PyRuntime');
  if (sec) return { vaddr: sec.addr, source: 'section' };
  return undefined;
}

/**
 * 3.8–3.10 `_PyRuntimeState` facts used to recognise the runtime in a memory scan:
 * `interpreters.head` at 32 and `interpreters.main` at 40 both point to the main
 * interpreter; its `tstate_head` (at 8) is a thread state whose `interp` (at 16) points back.
 */
const SCAN_LAYOUT = { interpretersHead: 32, interpretersMain: 40, interpTstateHead: 8, tstateInterp: 16 } as const;

/**
 * For stripped 3.8–3.10 builds: scan the library's writable data (`.data`, `.PyRuntime`,
 * `.bss`) for a word run that is a plausible `_PyRuntime` (see SCAN_LAYOUT). Returns the
 * first address that validates, or undefined. 3.11+ always has `Py_Version` and the
 * `.PyRuntime` section, so the scan is not needed there.
 */
export function scanForRuntime(elf: ElfFile, mem: ProcessMemory, base: Address): Address | undefined {
  const L = SCAN_LAYOUT;
  for (const name of ['.PyRuntime', '.data', '.bss']) {
    const sec = elf.section(name);
    if (!sec || sec.size < 64) continue;
    const start = base + sec.addr;
    let bytes: Uint8Array;
    try {
      bytes = mem.read(start, sec.size);
    } catch (e) {
      if (e instanceof BadReadError) continue;
      throw e;
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let off = 0; off + L.interpretersMain + 8 <= bytes.length; off += 8) {
      const head = dv.getBigUint64(off + L.interpretersHead, true);
      if (head === 0n || head >= 1n << 47n || head % 8n !== 0n) continue;
      if (dv.getBigUint64(off + L.interpretersMain, true) !== head) continue;
      try {
        const interp = Number(head);
        const tstate = mem.readPtr(interp + L.interpTstateHead);
        if (tstate === 0 || tstate % 8 !== 0) continue;
        if (mem.readPtr(tstate + L.tstateInterp) === interp) return start + off;
      } catch (e) {
        if (e instanceof BadReadError) continue;
        throw e;
      }
    }
  }
  return undefined;
}

export interface LocateOptions {
  /** memory to use instead of opening /proc/PID/mem (closed by the caller) */
  memory?: ProcessMemory;
  maps?: MapRecord[];
}

/** Find `_PyRuntime` and the exact version of the CPython in process `pid`. */
export function locateRuntime(pid: number, opts: LocateOptions = {}): RuntimeLocation {
  const maps = opts.maps ?? readMaps(pid);
  let exePath: string | undefined;
  try {
    exePath = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    exePath = undefined;
  }
  const lib = findLibpython(maps);
  const exe = findExecutable(maps, exePath);
  const bin = lib ?? exe;
  if (!bin) throw new RuntimeNotFoundError(pid, 'no libpython and no executable in /proc/PID/maps');
  const elf = readBinaryElf(pid, bin);
  const base = loadBase(elf, bin.bias);

  const mem = opts.memory ?? ProcMemory.open(pid);
  try {
    // 1. version
    let version: PythonVersion | undefined;
    let versionSource: RuntimeLocation['versionSource'] = 'Py_Version';
    const pyVersion = elf.symbol('Py_Version');
    if (pyVersion) {
      version = decodeVersionHex(mem.readU64(base + pyVersion.value));
    } else {
      const named = bin.nameVersion ?? (bin !== exe ? exe?.nameVersion : undefined);
      version = readVersionBuffer(elf, mem, base);
      versionSource = 'version buffer';
      if (version && named && (version.major !== named.major || version.minor !== named.minor)) {
        throw new RuntimeNotFoundError(pid, `${bin.path} is named for Python ${named.major}.${named.minor} but its version buffer says ${version.text}`);
      }
      if (!version) {
        version = scanRodataVersion(elf, named);
        versionSource = 'rodata';
      }
      if (!version && named) {
        throw new RuntimeNotFoundError(pid, `${bin.path} is Python ${named.major}.${named.minor} but its micro version was found neither in Py_GetVersion's buffer nor in .rodata`);
      }
    }
    if (!version) throw new RuntimeNotFoundError(pid, `cannot tell the Python version of ${bin.path}`);
    if (!isSupported(version)) throw new UnsupportedVersionError(pid, version);

    // 2. _PyRuntime
    const found = findRuntimeInElf(elf);
    let runtimeAddress = found ? base + found.vaddr : undefined;
    let source: RuntimeLocation['source'] = found?.source ?? 'symbol';
    if (runtimeAddress === undefined && version.major === 3 && version.minor <= 10) {
      runtimeAddress = scanForRuntime(elf, mem, base);
      source = 'scan';
    }
    if (runtimeAddress === undefined) {
      throw new RuntimeNotFoundError(pid, `${bin.path} has no _PyRuntime symbol and no .PyRuntime section, and no plausible runtime was found in its data`);
    }
    // The runtime must be readable.
    try {
      mem.read(runtimeAddress, 64);
    } catch (e) {
      if (e instanceof BadReadError) throw new RuntimeNotFoundError(pid, `_PyRuntime at 0x${runtimeAddress.toString(16)} is not readable`);
      throw e;
    }

    const out: RuntimeLocation = { pid, runtimeAddress, version, libraryPath: bin.path, kind: bin.kind, bias: bin.bias, loadBase: base, source, versionSource };
    if (version.major === 3 && version.minor >= 13) out.debugOffsets = readDebugOffsetsHeader(mem, runtimeAddress, version);
    return out;
  } finally {
    if (!opts.memory) mem.close();
  }
}
