/**
 * /proc/PID/maps: typed records, the file that holds the CPython runtime, its load bias.
 */
import { readFileSync } from 'node:fs';
import { mapOsError, type Address } from './memory.ts';

export interface MapRecord {
  start: Address;
  end: Address;
  /** e.g. "r-xp" */
  perms: string;
  /** file offset of the mapping start */
  offset: number;
  dev: string;
  inode: number;
  /** path, "[heap]"-style pseudo name, or "" for anonymous; " (deleted)" is kept */
  path: string;
}

export class MapsParseError extends Error {
  constructor(line: number, text: string) {
    super(`cannot parse maps line ${line}: ${JSON.stringify(text)}`);
    this.name = 'MapsParseError';
  }
}

const LINE = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+([0-9a-f]+)\s+(\S+)\s+(\d+)\s*(.*)$/;

export function parseMaps(text: string): MapRecord[] {
  const out: MapRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.trim() === '') continue;
    const m = LINE.exec(l);
    if (!m) throw new MapsParseError(i + 1, l);
    out.push({
      start: parseInt(m[1]!, 16),
      end: parseInt(m[2]!, 16),
      perms: m[3]!,
      offset: parseInt(m[4]!, 16),
      dev: m[5]!,
      inode: Number(m[6]),
      path: m[7]!.trim(),
    });
  }
  return out;
}

export function readMaps(pid: number): MapRecord[] {
  try {
    return parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8'));
  } catch (e) {
    if (e instanceof Error && (e as NodeJS.ErrnoException).code) throw mapOsError(pid, e);
    throw e;
  }
}

/** libpython3.X.so, libpython3.Xd.so, libpython3.Xm.so (3.6/3.7), with any suffix. */
export const LIBPYTHON = /(?:^|\/)libpython(\d+)\.(\d+)([dmu]*)\.so(?:[.\d]*)?(?: \(deleted\))?$/;
/** The executable: python, python3, python3.11, python3.11d ... */
export const PYTHON_EXE = /(?:^|\/)python(\d+)?(?:\.(\d+))?[dmu]*(?: \(deleted\))?$/;

export interface PythonBinary {
  /** the path as written in maps (may end in " (deleted)") */
  path: string;
  kind: 'library' | 'executable';
  /** the start of the mapping of this file with offset 0 */
  bias: Address;
  /** every mapping of this file */
  mappings: MapRecord[];
  /** "3.11" from the file name, when it says */
  nameVersion?: { major: number; minor: number };
}

/** The mapped file at `path` (its mappings, the bias of its offset-0 one; `re` reads a version from its name), if mapped at offset 0. */
export function binaryFor(maps: MapRecord[], path: string, kind: PythonBinary['kind'], re: RegExp): PythonBinary | undefined {
  const mappings = maps.filter((m) => m.path === path);
  const first = mappings.find((m) => m.offset === 0);
  if (!first) return undefined;
  const m = re.exec(path);
  const b: PythonBinary = { path, kind, bias: first.start, mappings };
  if (m && m[1] !== undefined && m[2] !== undefined) b.nameVersion = { major: Number(m[1]), minor: Number(m[2]) };
  return b;
}

/** The mapped libpython, if any. */
export function findLibpython(maps: MapRecord[]): PythonBinary | undefined {
  const hit = maps.find((m) => LIBPYTHON.test(m.path));
  return hit ? binaryFor(maps, hit.path, 'library', LIBPYTHON) : undefined;
}

/**
 * The main executable: the file mapped first at offset 0 (the kernel maps the executable
 * before the loader and libraries on Linux). Pass `exePath` (readlink /proc/PID/exe) to be exact.
 */
export function findExecutable(maps: MapRecord[], exePath?: string): PythonBinary | undefined {
  const hit = exePath ? maps.find((m) => m.path === exePath || m.path === `${exePath} (deleted)`) : maps.find((m) => m.path.startsWith('/'));
  return hit ? binaryFor(maps, hit.path, 'executable', PYTHON_EXE) : undefined;
}

/** The mapping containing `addr`, if any. */
export function mappingAt(maps: MapRecord[], addr: Address): MapRecord | undefined {
  return maps.find((m) => addr >= m.start && addr < m.end);
}
