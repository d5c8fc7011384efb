/**
 * Does the interpreter have symbols? A distribution's CPython is usually stripped: its
 * `.symtab` (every static C function: the eval loop's helpers, the object implementations,
 * the allocator) is shipped apart, in a debug-symbol package. perf then names only what
 * `.dynsym` exports and shows the rest as `[unknown] (python3.11)`; on Debian 12's
 * /usr/bin/python3.11 that was 40–50 % of a `record --native` profile's self time.
 *
 * `interpreterSymbols(path)` reads the file that holds the interpreter's code (libpython*.so
 * when the process maps one, else the python executable: `interpreterImage(pid)`) with the
 * sampler's ELF reader and says:
 * - `symbols`: it has a `.symtab`;
 * - `debug-file`: it has none, but a separate debug file with the same build id and a
 *   `.symtab` lies where perf looks for one (below), so perf names its frames;
 * - `stripped`: neither; `symbolsFix` says what to install.
 *
 * Where perf 6.x looks (tools/perf/util/dso.c, symbol.c), and so where this looks, in order:
 * - the `.gnu_debuglink` name next to the file, in its `.debug/` folder, and below
 *   /usr/lib/debug in the file's folder (gdb's places too);
 * - perf's build-id cache: `<buildid dir>/.build-id/xx/rest/{elf,debug}` (what
 *   `perf buildid-cache -a FILE.debug` adds). The build-id dir is `buildid.dir` of perf's
 *   config ($PERF_CONFIG alone when set, else /etc/perfconfig then ~/.perfconfig), else
 *   ~/.debug. perf does not read $PERF_BUILDID_DIR: it only sets it for its scripts;
 * - /usr/lib/debug<path>.debug (Fedora), /usr/lib/debug<path> (Ubuntu's older layout),
 *   /usr/lib/debug/.build-id/xx/rest.debug (every distribution's debug packages).
 * perf uses a candidate only when its build id matches the file's, so this checks that too.
 * debuginfod: `debuginfod` says whether DEBUGINFOD_URLS is set; a perf built with debuginfod
 * support fetches by itself (Debian 12's perf is not), else `debuginfod-find` fetches the
 * file and `perf buildid-cache -a` hands it to perf (the fix says so).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ElfFile } from '../sampler/elf.ts';
import { findExecutable, findLibpython, PYTHON_EXE, readMaps } from '../sampler/maps.ts';
import { frameInfo, type Profile } from '../../model/profile.ts';

export type SymbolsVerdict = 'symbols' | 'debug-file' | 'stripped';

export interface InterpreterSymbols {
  /** the file examined */
  path: string;
  /** the GNU build id, hex; undefined when the file has none */
  buildId: string | undefined;
  /** the file has a .symtab of its own */
  symtab: boolean;
  /** its .gnu_debuglink file name, if any */
  debugLink?: string;
  /** a separate debug file perf will use (same build id, with a .symtab) */
  debugFile?: string;
  /** DEBUGINFOD_URLS is set */
  debuginfod: boolean;
  verdict: SymbolsVerdict;
}

export interface SymbolsOptions {
  env?: NodeJS.ProcessEnv;
  /** the system debug root (default /usr/lib/debug; tests point it elsewhere) */
  debugRoot?: string;
  /** perf's build-id cache (default: perfBuildIdDir(env)) */
  buildIdDir?: string;
  /** /etc/os-release's text, for the fix (default: read it) */
  osRelease?: string;
}

const SHT_NOTE = 7;
const NT_GNU_BUILD_ID = 3;

/** The GNU build id from the file's note sections, hex; undefined when there is none. */
export function buildIdOf(elf: ElfFile): string | undefined {
  for (const s of elf.sections) {
    if (s.type !== SHT_NOTE) continue;
    const b = elf.sectionBytes(s);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let o = 0; o + 12 <= b.length; ) {
      const namesz = dv.getUint32(o, true);
      const descsz = dv.getUint32(o + 4, true);
      const type = dv.getUint32(o + 8, true);
      const nameAt = o + 12;
      const descAt = nameAt + align4(namesz);
      if (descAt + descsz > b.length) break;
      const name = Buffer.from(b.buffer, b.byteOffset + nameAt, Math.max(0, namesz - 1)).toString('latin1');
      if (type === NT_GNU_BUILD_ID && name === 'GNU' && descsz > 0) return Buffer.from(b.buffer, b.byteOffset + descAt, descsz).toString('hex');
      o = descAt + align4(descsz);
    }
  }
  return undefined;
}

const align4 = (n: number) => (n + 3) & ~3;

/** The file name in `.gnu_debuglink`, if any. */
export function debugLinkOf(elf: ElfFile): string | undefined {
  const s = elf.section('.gnu_debuglink');
  if (!s) return undefined;
  const b = elf.sectionBytes(s);
  const end = b.indexOf(0);
  const name = Buffer.from(b.buffer, b.byteOffset, end < 0 ? b.length : end).toString('latin1');
  return name && !name.includes('/') ? name : undefined;
}

/** A `.symtab` with more than the null entry. */
export function hasSymtab(elf: ElfFile): boolean {
  const s = elf.section('.symtab');
  return s !== undefined && s.size >= 2 * (s.entsize || 24);
}

/** `buildid.dir` of perf's config, else ~/.debug (perf's build-id cache). */
export function perfBuildIdDir(env: NodeJS.ProcessEnv = process.env, read: (p: string) => string | undefined = readText): string {
  const home = env.HOME || homedir();
  const files = env.PERF_CONFIG !== undefined ? [env.PERF_CONFIG] : ['/etc/perfconfig', join(home, '.perfconfig')];
  let dir: string | undefined;
  for (const f of files) {
    const d = f ? configValue(read(f), 'buildid', 'dir') : undefined;
    if (d) dir = d;
  }
  return dir ?? join(home, '.debug');
}

/** `key` of `[section]` in git-style config text (the last one wins); undefined when absent. */
export function configValue(text: string | undefined, section: string, key: string): string | undefined {
  if (!text) return undefined;
  let cur = '';
  let out: string | undefined;
  for (const raw of text.split('\n')) {
    const l = raw.replace(/[#;].*$/, '').trim();
    const sec = /^\[\s*([^\]\s]+)\s*\]$/.exec(l);
    if (sec) {
      cur = sec[1]!.toLowerCase();
      continue;
    }
    const kv = /^([\w.-]+)\s*=\s*(.*)$/.exec(l);
    if (kv && cur === section && kv[1]!.toLowerCase() === key) out = kv[2]!.replace(/^"(.*)"$/, '$1');
  }
  return out;
}

function readText(p: string): string | undefined {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

/** Where perf looks for a debug file of `path`, in its order (see the top of this file). */
export function debugFileCandidates(path: string, buildId: string | undefined, debugLink: string | undefined, o: { debugRoot?: string; buildIdDir?: string } = {}): string[] {
  const root = o.debugRoot ?? '/usr/lib/debug';
  const dir = dirname(path);
  const out: string[] = [];
  if (debugLink) out.push(join(dir, debugLink), join(dir, '.debug', debugLink), join(root, dir, debugLink));
  if (buildId && buildId.length > 2) {
    const [xx, rest] = [buildId.slice(0, 2), buildId.slice(2)];
    if (o.buildIdDir) out.push(join(o.buildIdDir, '.build-id', xx, rest, 'debug'), join(o.buildIdDir, '.build-id', xx, rest, 'elf'), join(o.buildIdDir, '.build-id', xx, rest));
    out.push(join(root, `${path}.debug`), join(root, path), join(root, '.build-id', xx, `${rest}.debug`));
  } else {
    out.push(join(root, `${path}.debug`), join(root, path));
  }
  return [...new Set(out)];
}

/** A candidate perf would take: a regular ELF file with a .symtab whose build id is `buildId`. */
function usableDebugFile(p: string, buildId: string | undefined): boolean {
  try {
    const elf = readElfHeaders(p);
    return elf !== undefined && hasSymtab(elf) && (buildId === undefined || buildIdOf(elf) === buildId);
  } catch {
    return false;
  }
}

/**
 * The ELF reader over only the parts this needs — the headers, the section names, the note
 * sections and .gnu_debuglink — read into a zeroed buffer of the file's size: a 25 MB
 * libpython or debug file costs a few reads, not the whole file. Undefined for a
 * non-regular file; throws ElfError for a file that is not ELF64.
 */
export function readElfHeaders(path: string): ElfFile | undefined {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    const size = st.size;
    const buf = Buffer.alloc(size);
    const fill = (off: number, len: number) => {
      if (Number.isSafeInteger(off) && off >= 0 && len > 0 && off + len <= size) readSync(fd, buf, off, len, off);
    };
    fill(0, Math.min(64, size));
    if (size >= 64 && buf[4] === 2 && buf[5] === 1) {
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
      const phoff = Number(dv.getBigUint64(32, true));
      const shoff = Number(dv.getBigUint64(40, true));
      const [phentsize, phnum, shentsize, shnum, shstrndx] = [54, 56, 58, 60, 62].map((o) => dv.getUint16(o, true)) as [number, number, number, number, number];
      fill(phoff, phentsize * phnum);
      fill(shoff, shentsize * shnum);
      const names = shoff + shstrndx * shentsize;
      if (shstrndx < shnum && names + 64 <= size) fill(Number(dv.getBigUint64(names + 24, true)), Number(dv.getBigUint64(names + 32, true)));
    }
    const elf = new ElfFile(buf, path);
    for (const s of elf.sections) if (s.type === SHT_NOTE || s.name === '.gnu_debuglink') fill(s.offset, s.size);
    return elf;
  } finally {
    closeSync(fd);
  }
}

/** What `path` (the interpreter's code: libpython or the executable) offers perf for naming its frames. */
export function interpreterSymbols(path: string, o: SymbolsOptions = {}): InterpreterSymbols {
  const env = o.env ?? process.env;
  const elf = readElfHeaders(path);
  if (!elf) throw new Error(`${path} is not a regular file`);
  const buildId = buildIdOf(elf);
  const symtab = hasSymtab(elf);
  const debugLink = debugLinkOf(elf);
  const debuginfod = Boolean(env.DEBUGINFOD_URLS?.trim());
  const r: InterpreterSymbols = { path, buildId, symtab, ...(debugLink ? { debugLink } : {}), debuginfod, verdict: symtab ? 'symbols' : 'stripped' };
  if (!symtab) {
    const buildIdDir = o.buildIdDir ?? perfBuildIdDir(env);
    const found = debugFileCandidates(path, buildId, debugLink, { ...(o.debugRoot ? { debugRoot: o.debugRoot } : {}), buildIdDir }).find((c) => usableDebugFile(c, buildId));
    if (found) {
      r.debugFile = found;
      r.verdict = 'debug-file';
    }
  }
  return r;
}

/**
 * The file that holds a running CPython's interpreter code: its libpython*.so when it maps
 * one (pyenv's shared builds), else its executable (Debian's python3.X links it in).
 * Paths are as the process sees them; when that path is not visible here (another mount
 * namespace) its /proc/PID/root view is returned. Undefined when the maps cannot be read,
 * or when no libpython is mapped and the executable is not named like a python.
 */
export function interpreterImage(pid: number): { path: string; kind: 'library' | 'executable' } | undefined {
  let maps;
  try {
    maps = readMaps(pid);
  } catch {
    return undefined;
  }
  let exe: string | undefined;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
  } catch {
    exe = undefined;
  }
  // no libpython: the executable, when it is a python (not a shell before exec, not uwsgi)
  const bin = findLibpython(maps) ?? findExecutable(maps, exe);
  if (!bin || (bin.kind === 'executable' && !PYTHON_EXE.test(bin.path))) return undefined;
  const path = bin.path.replace(/ \(deleted\)$/, '');
  const seen = existsSync(path) ? path : `/proc/${pid}/root${path}`;
  return { path: seen, kind: bin.kind };
}

/** `interpreterSymbols` of a running process's interpreter image; undefined when it cannot be read. */
export function interpreterSymbolsOf(pid: number, o: SymbolsOptions = {}): InterpreterSymbols | undefined {
  const img = interpreterImage(pid);
  if (!img) return undefined;
  try {
    return interpreterSymbols(img.path, o);
  } catch {
    return undefined;
  }
}

/**
 * `interpreterSymbols` of the interpreter image a python executable runs with — its
 * libpython as the loader finds it (RUNPATH, LD_LIBRARY_PATH in `env`) or the executable
 * itself — by starting it for a moment (`-c`, waiting on stdin) and reading its maps: for
 * checks made before there is a process (pylens doctor). Undefined when it does not start
 * within `timeoutMs` or is not a CPython.
 */
export async function interpreterSymbolsOfPython(exe: string, o: SymbolsOptions & { timeoutMs?: number } = {}): Promise<InterpreterSymbols | undefined> {
  const child = spawn(exe, ['-S', '-c', 'import sys; sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.read()'], {
    stdio: ['pipe', 'pipe', 'ignore'],
    env: o.env ?? process.env,
  });
  try {
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), o.timeoutMs ?? 10_000);
      child.stdout!.once('data', () => (clearTimeout(timer), resolve(true)));
      child.once('error', () => (clearTimeout(timer), resolve(false)));
      child.once('exit', () => (clearTimeout(timer), resolve(false)));
    });
    return ready && child.pid !== undefined ? interpreterSymbolsOf(child.pid, o) : undefined;
  } finally {
    child.kill('SIGKILL');
  }
}

/**
 * How to get symbols for a stripped interpreter file, one sentence: the distribution's
 * debug-symbol package (from the file's name and /etc/os-release), debuginfod when
 * DEBUGINFOD_URLS is set, a debug file added to perf's build-id cache, or a CPython built
 * with its symbols (pyenv's builds keep them).
 */
export function symbolsFix(s: Pick<InterpreterSymbols, 'path' | 'buildId' | 'debuginfod'>, o: { osRelease?: string; debugRoot?: string } = {}): string {
  const os = osFamily(o.osRelease ?? readText('/etc/os-release') ?? '');
  const m = /(?:^|\/)(?:lib)?python(\d+\.\d+)[a-z]*(?:\.so[.\d]*)?$/.exec(s.path);
  const ver = m?.[1];
  const system = /^\/usr\/(?:bin|lib|lib64)\//.test(s.path);
  const fixes: string[] = [];
  if (system && ver) {
    if (os === 'debian') fixes.push(`apt-get install python${ver}-dbg (or python${ver}-dbgsym from the distribution's debug archive)`);
    else if (os === 'fedora') fixes.push(`dnf debuginfo-install python3`);
    else if (os === 'suse') fixes.push(`zypper install python${ver.replace('.', '')}-debuginfo`);
    else fixes.push(`install your distribution's debug symbols for it (Debian/Ubuntu: apt-get install python${ver}-dbg or the -dbgsym package; Fedora: dnf debuginfo-install python3)`);
  } else {
    const at = s.buildId ? join(o.debugRoot ?? '/usr/lib/debug', '.build-id', s.buildId.slice(0, 2), `${s.buildId.slice(2)}.debug`) : undefined;
    fixes.push(`add its debug file with \`perf buildid-cache -a FILE.debug\`${at ? ` or put it at ${at}` : ''}`);
  }
  if (s.debuginfod) fixes.push(`fetch it with \`debuginfod-find debuginfo ${s.path}\` and add what it prints with \`perf buildid-cache -a\``);
  else fixes.push('or set DEBUGINFOD_URLS to fetch it with debuginfod-find');
  fixes.push('or use a CPython built with its symbols (pyenv builds keep them)');
  return fixes.join('; ');
}

function osFamily(text: string): 'debian' | 'fedora' | 'suse' | undefined {
  const ids = [/^ID="?([^"\n]*)"?$/m.exec(text)?.[1] ?? '', ...(/^ID_LIKE="?([^"\n]*)"?$/m.exec(text)?.[1] ?? '').split(/\s+/)].map((x) => x.toLowerCase());
  if (ids.some((x) => x === 'debian' || x === 'ubuntu')) return 'debian';
  if (ids.some((x) => x === 'fedora' || x === 'rhel' || x === 'centos')) return 'fedora';
  if (ids.some((x) => x.includes('suse'))) return 'suse';
  return undefined;
}

/**
 * Samples whose leaf is an unknown address inside the interpreter image (a `[unknown]`
 * native frame whose library is `image`'s file name): what a stripped interpreter costs a
 * profile. `share` is of all samples, the self time the report shows on `[unknown] (python3.11)`.
 */
export function unknownInterpreterLeaves(p: Profile, image: string): { samples: number; of: number; share: number } {
  const lib = basename(image);
  const unknown = new Uint8Array(p.frames.length);
  for (let f = 0; f < p.frames.length; f++) {
    const fi = frameInfo(p, f);
    if (fi.kind === 'native' && fi.lib === lib && (fi.name === '[unknown]' || /^(0x)?[0-9a-f]+$/i.test(fi.name))) unknown[f] = 1;
  }
  let n = 0;
  const st = p.samples;
  for (let i = 0; i < st.length; i++) {
    const s = st.stack[i]!;
    if (s >= 0 && unknown[p.stacks.frame[s]!]) n++;
  }
  return { samples: n, of: st.length, share: st.length ? n / st.length : 0 };
}

/** The one warning `record --native` and `perf` print before recording a stripped interpreter. */
export function strippedWarning(s: InterpreterSymbols): string {
  return `${s.path} is stripped (no .symtab, and no debug file for build id ${s.buildId ?? '(none)'} where perf looks): its C functions will show as [unknown]; to name them: ${symbolsFix(s)}`;
}

/**
 * What a profile with native frames keeps in meta.extra about its interpreter's symbols
 * (render/page/quality.ts puts it in words): the image, the verdict, build id, debug file,
 * the fix when stripped, and the samples whose leaf is an unknown address inside it.
 */
export function interpreterSymbolsExtra(s: InterpreterSymbols, p: Profile): Record<string, string | number> {
  const unknown = unknownInterpreterLeaves(p, s.path);
  return {
    interpreterImage: s.path,
    interpreterSymbols: s.verdict,
    ...(s.buildId ? { interpreterBuildId: s.buildId } : {}),
    ...(s.debugFile ? { interpreterDebugFile: s.debugFile } : {}),
    ...(s.verdict === 'stripped' ? { interpreterSymbolsFix: symbolsFix(s) } : {}),
    nativeUnknownInterpreter: Math.round(unknown.share * 1e4) / 1e4,
    nativeUnknownInterpreterSamples: unknown.samples,
  };
}
