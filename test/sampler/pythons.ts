/**
 * The CPython interpreters installed on this machine (pyenv versions and Debian's static
 * /usr/bin/python3.11), found at test time. Tests skip what is not installed.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

export interface InstalledPython {
  label: string;
  exe: string;
  /** the shared library, if the build has one */
  lib?: string;
  minor: number;
}

export function pyenvRoot(): string | undefined {
  try {
    return execFileSync('pyenv', ['root'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

export function installedPythons(): InstalledPython[] {
  const out: InstalledPython[] = [];
  const root = pyenvRoot();
  if (root && existsSync(`${root}/versions`)) {
    for (const v of readdirSync(`${root}/versions`).sort()) {
      const m = /^3\.(\d+)\.\d+$/.exec(v);
      if (!m) continue;
      const minor = Number(m[1]);
      const exe = `${root}/versions/${v}/bin/python3.${minor}`;
      if (!existsSync(exe)) continue;
      const libdir = `${root}/versions/${v}/lib`;
      const lib = readdirSync(libdir).find((f) => new RegExp(`^libpython3\\.${minor}m?\\.so\\.1\\.0$`).test(f));
      out.push({ label: `pyenv ${v}`, exe, minor, ...(lib ? { lib: `${libdir}/${lib}` } : {}) });
    }
  }
  if (existsSync('/usr/bin/python3.11')) out.push({ label: 'debian /usr/bin/python3.11', exe: '/usr/bin/python3.11', minor: 11 });
  return out;
}

export interface SleepingPython {
  child: ChildProcess;
  pid: number;
  /** sys.version */
  version: string;
  /** sys.version_info as [major, minor, micro, releaselevel, serial] */
  versionInfo: [number, number, number, string, number];
}

/** The first line `child` prints on stdout; rejects if it exits or stays silent for `timeoutMs`. */
export function firstLine(child: ChildProcess, what: string, timeoutMs = 20_000): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    child.once('error', reject);
    setTimeout(() => reject(new Error(`${what} printed nothing within ${timeoutMs / 1000} s`)), timeoutMs).unref();
    child.once('exit', (c) => reject(new Error(`${what} exited with ${c} before printing`)));
  });
}

/** Start `python -c "...; time.sleep(30)"` and wait for its first line. Kill it in a finally. */
export async function startSleepingPython(exe: string): Promise<SleepingPython> {
  const code = 'import time,sys; print(sys.version.replace(chr(10), " "), "|", *sys.version_info, flush=True); time.sleep(30)';
  const child = spawn(exe, ['-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let line: string;
  try {
    line = await firstLine(child, exe, 10_000);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const [version, info] = line.split(' | ') as [string, string];
  const p = info.split(' ');
  return { child, pid: child.pid!, version, versionInfo: [Number(p[0]), Number(p[1]), Number(p[2]), p[3]!, Number(p[4])] };
}

export function stop(p: SleepingPython | undefined): void {
  if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
}
