/**
 * What perf needs to know about the target's CPython, and the plan that follows.
 *
 * - CPython 3.12+ built with perf support (`PY_HAVE_PERF_TRAMPOLINE`) can give each Python
 *   function a small machine-code trampoline perf can name: `-X perf` / PYTHONPERFSUPPORT=1
 *   writes the names to /tmp/perf-PID.map; 3.13+ `-X perf_jit` / PYTHON_PERF_JIT_SUPPORT=1
 *   writes /tmp/jit-PID.dump with unwind info, which `perf inject --jit` turns into
 *   per-function ELF files (jitted-PID-N.so).
 * - Frame-pointer builds (`-fno-omit-frame-pointer` in CFLAGS) unwind cheaply with
 *   `--call-graph fp` through the trampolines. Others need `--call-graph dwarf` (a copy of
 *   the stack per sample); on 3.12 the dwarf unwinder stops at the first trampoline (perf
 *   maps carry no unwind info), on 3.13 the jitdump's unwind info lets it go through.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, openSync, readSync, closeSync, readlinkSync, statSync } from 'node:fs';
import { basename, delimiter, isAbsolute, join } from 'node:path';

export interface PythonBuild {
  executable: string;
  version: string;
  major: number;
  minor: number;
  /** Built with -fno-omit-frame-pointer. */
  framePointers: boolean;
  /** PY_HAVE_PERF_TRAMPOLINE: -X perf works. */
  perfTrampoline: boolean;
  cflags: string;
}

// stdlib only, runs on 3.6+; prints one JSON line
const PROBE = [
  'import json, sys, sysconfig',
  'v = sysconfig.get_config_var',
  "flags = ' '.join(str(v(k) or '') for k in ('CFLAGS', 'PY_CFLAGS', 'CONFIGURE_CFLAGS', 'OPT'))",
  "print(json.dumps({'executable': sys.executable, 'version': '%d.%d.%d' % sys.version_info[:3], 'major': sys.version_info[0], 'minor': sys.version_info[1], 'trampoline': bool(v('PY_HAVE_PERF_TRAMPOLINE')), 'cflags': flags}))",
].join('\n');

/** Ask `python` about itself (one run, about 30 ms). Undefined when it does not run as a CPython. */
export function probePython(python: string): PythonBuild | undefined {
  const r = spawnSync(python, ['-I', '-c', PROBE], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, PYTHONPERFSUPPORT: '', PYTHON_PERF_JIT_SUPPORT: '' } });
  if (r.error || r.status !== 0) return undefined;
  try {
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { executable: string; version: string; major: number; minor: number; trampoline: boolean; cflags: string };
    return {
      executable: j.executable || python,
      version: j.version,
      major: j.major,
      minor: j.minor,
      framePointers: /(?:^|\s)-fno-omit-frame-pointer(?:\s|$)/.test(j.cflags),
      perfTrampoline: j.trampoline,
      cflags: j.cflags.replace(/\s+/g, ' ').trim(),
    };
  } catch {
    return undefined;
  }
}

const PYTHON_NAME = /^python(?:\d+(?:\.\d+)?)?[a-z]*$/;

/** Where `cmd` runs from: itself when it has a slash, else the first PATH entry; undefined when not executable. */
export function commandPath(cmd: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = cmd.includes('/') ? [''] : (env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of dirs) {
    const p = dir ? join(dir, cmd) : cmd;
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // next
    }
  }
  return undefined;
}
const onPath = commandPath;

/** The `#!` line of a file, or undefined. */
function shebang(path: string): string[] | undefined {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const buf = Buffer.alloc(256);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString('utf8');
    if (!text.startsWith('#!')) return undefined;
    return text.slice(2).split('\n')[0]!.trim().split(/\s+/);
  } catch {
    return undefined;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/**
 * The Python interpreter a command will run: `python3 app.py`, `/x/bin/python -m pytest`,
 * or a script whose `#!` names one (`pytest`, `#!/usr/bin/env python3`). Undefined when the
 * command is not a Python one as far as can be told.
 */
export function pythonOfCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const cmd = argv[0];
  if (!cmd) return undefined;
  if (PYTHON_NAME.test(basename(cmd))) return onPath(cmd, env);
  const file = onPath(cmd, env);
  if (!file) return undefined;
  const sb = shebang(file);
  if (!sb || sb.length === 0) return undefined;
  let interp = sb[0]!;
  let rest = sb.slice(1);
  if (basename(interp) === 'env') {
    rest = rest.filter((a) => !a.startsWith('-'));
    interp = rest[0] ?? '';
  }
  if (!PYTHON_NAME.test(basename(interp))) return undefined;
  return isAbsolute(interp) ? interp : onPath(interp, env);
}

/** Perf support a running process was started with, read from /proc and /tmp. */
export interface RunningPython {
  pid: number;
  executable: string | undefined;
  /** /tmp/perf-PID.map exists: trampolines (-X perf) are on. */
  perfMap: boolean;
  /** /tmp/jit-PID.dump exists: -X perf_jit is on. */
  jitDump: boolean;
}

export function runningPython(pid: number): RunningPython {
  let executable: string | undefined;
  try {
    executable = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    executable = undefined;
  }
  return { pid, executable, perfMap: existsSync(`/tmp/perf-${pid}.map`), jitDump: existsSync(`/tmp/jit-${pid}.dump`) };
}

/** How `pylens perf` will run: unwinding, CPython's perf support, and what the user should know. */
export interface PerfPlan {
  callGraph: 'fp' | 'dwarf';
  /** Environment for a launched target (enables CPython's perf support). */
  env: Record<string, string>;
  /** Run `perf inject --jit` before `perf script`. */
  jit: boolean;
  /** How much of the Python stack perf will see. */
  pythonFrames: 'full' | 'innermost' | 'none';
  /** One line: what was chosen and why. */
  summary: string;
  /** Warnings and advice, one line each. */
  notes: string[];
}

/** Pick the settings for a launched CPython (`build` undefined: not known to be Python). */
export function planLaunch(build: PythonBuild | undefined, want: 'auto' | 'fp' | 'dwarf'): PerfPlan {
  const notes: string[] = [];
  if (!build) {
    const cg = want === 'fp' ? 'fp' : 'dwarf';
    return {
      callGraph: cg,
      env: {},
      jit: false,
      pythonFrames: 'none',
      summary: `not a Python command as far as pylens can tell: plain perf, --call-graph ${cg}`,
      notes: ['to get Python frame names, run the Python interpreter directly: pylens perf -- python app.py'],
    };
  }
  const cg: 'fp' | 'dwarf' = want === 'auto' ? (build.framePointers ? 'fp' : 'dwarf') : want;
  const why = want === 'auto' ? (build.framePointers ? ' (built with frame pointers)' : ' (built without frame pointers)') : ' (as asked)';
  if (cg === 'fp' && !build.framePointers) notes.push(`CPython ${build.version} was built without frame pointers: --call-graph fp stacks will be short or wrong; use --call-graph dwarf`);
  const v = `CPython ${build.version}`;
  if (!build.perfTrampoline || build.major < 3 || (build.major === 3 && build.minor < 12)) {
    notes.push(
      build.major === 3 && build.minor < 12
        ? `${v} has no perf support (it came in 3.12): perf sees only the interpreter's C frames; for Python stacks with native leaves use: pylens record --native -- ...`
        : `${v} was built without perf support (PY_HAVE_PERF_TRAMPOLINE): perf sees only C frames; use pylens record --native for Python frames`,
    );
    return { callGraph: cg, env: {}, jit: false, pythonFrames: 'none', summary: `${v}: --call-graph ${cg}${why}, no Python frames`, notes };
  }
  if (cg === 'dwarf' && (build.major > 3 || build.minor >= 13)) {
    return {
      callGraph: 'dwarf',
      env: { PYTHON_PERF_JIT_SUPPORT: '1' },
      jit: true,
      pythonFrames: 'full',
      summary: `${v}: -X perf_jit (PYTHON_PERF_JIT_SUPPORT=1) + perf inject --jit, --call-graph dwarf${why}`,
      notes,
    };
  }
  if (cg === 'dwarf') {
    notes.push(`on ${v} without frame pointers perf's dwarf unwinder stops at the first Python frame: stacks show the innermost Python function and what it calls; for whole Python stacks use pylens record --native`);
    return { callGraph: 'dwarf', env: { PYTHONPERFSUPPORT: '1' }, jit: false, pythonFrames: 'innermost', summary: `${v}: -X perf (PYTHONPERFSUPPORT=1), --call-graph dwarf${why}`, notes };
  }
  return { callGraph: 'fp', env: { PYTHONPERFSUPPORT: '1' }, jit: false, pythonFrames: 'full', summary: `${v}: -X perf (PYTHONPERFSUPPORT=1), --call-graph fp${why}`, notes };
}

/** Settings for attaching to a running process: it has perf support or it has not. */
export function planAttach(run: RunningPython, build: PythonBuild | undefined, want: 'auto' | 'fp' | 'dwarf'): PerfPlan {
  const cg: 'fp' | 'dwarf' = want === 'auto' ? (build?.framePointers ? 'fp' : 'dwarf') : want;
  const v = build ? `CPython ${build.version}` : `process ${run.pid}`;
  const notes: string[] = [];
  if (run.jitDump) {
    // CPython writes the jitdump through a buffered FILE: the newest entries (often the hot
    // functions, compiled last at start-up) reach the file only when its buffer fills or it exits
    notes.push(`${v} runs with -X perf_jit: functions whose jitdump entries are still in CPython's write buffer show as [unknown] and end their stack there; launching under pylens perf, or pylens record --native -p ${run.pid}, avoids that`);
    return { callGraph: cg, env: {}, jit: true, pythonFrames: cg === 'dwarf' || build?.framePointers ? 'full' : 'innermost', summary: `${v} runs with -X perf_jit: perf inject --jit, --call-graph ${cg}`, notes };
  }
  if (run.perfMap) {
    if (cg === 'dwarf' && !build?.framePointers) notes.push(`${v} runs with -X perf but without frame pointers: dwarf unwinding stops at the first Python frame; for whole Python stacks use pylens record --native -p ${run.pid}`);
    return { callGraph: cg, env: {}, jit: false, pythonFrames: cg === 'dwarf' ? 'innermost' : 'full', summary: `${v} runs with -X perf (/tmp/perf-${run.pid}.map): --call-graph ${cg}`, notes };
  }
  const isPy = build !== undefined;
  notes.push(
    isPy
      ? `process ${run.pid} was not started with perf support (no /tmp/perf-${run.pid}.map or /tmp/jit-${run.pid}.dump): perf sees only CPython's C frames. ` +
          (build.major === 3 && build.minor >= 12
            ? `Restart it with -X perf_jit (3.13+) or -X perf, or PYTHONPERFSUPPORT=1 in its environment, or `
            : '') +
          `use the mixed mode, which needs no restart: pylens record --native -p ${run.pid}`
      : `process ${run.pid} does not look like CPython (${run.executable ?? 'executable unknown'}): recording native and kernel frames only`,
  );
  return { callGraph: cg, env: {}, jit: false, pythonFrames: 'none', summary: `${v}: --call-graph ${cg}, no Python frame names`, notes };
}
