/**
 * The interpreter lenses' launcher: run the user's Python command under pylens's stdlib
 * helper (`python/pylens_boot.py`, see python/README.md) and read back its result file.
 *
 * `pylens <lens> -- python [interpreter options] script.py args` becomes
 *   python [interpreter options] <pylens>/python/pylens_boot.py LENS RESULT OPTIONS -- script.py args
 * so the interpreter options (-X, -W, -O, -u, …) still apply, and the helper runs the
 * program as `__main__` with its own argv, path, exit code, stdio and exceptions. A
 * launcher script whose `#!` names a Python (`pytest`, a console script) runs as the script.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandPath, probePython, pythonOfCommand, type PythonBuild } from '../perf/python.ts';
import { launch, type Launched } from '../session/target.ts';

/** The helper's entry script, shipped in the package (`python/` at its root; from dist/src one level further up). */
export const HELPER_BOOT = ['../../../python/pylens_boot.py', '../../../../python/pylens_boot.py']
  .map((rel) => fileURLToPath(new URL(rel, import.meta.url)))
  .find((p) => existsSync(p)) ?? fileURLToPath(new URL('../../../python/pylens_boot.py', import.meta.url));
export const RESULT_FORMAT = 'pylens-interp';
export const RESULT_VERSION = 1;

export class HelperError extends Error {
  readonly fix: string;
  constructor(message: string, fix: string) {
    super(message);
    this.name = 'HelperError';
    this.fix = fix;
  }
}

/** A Python command split the way `python` reads its own command line. */
export interface PythonCommand {
  /** the interpreter to run */
  python: string;
  /** interpreter options, before the script (-X dev, -W error, -u, -O, …) */
  interpreterArgs: string[];
  /** what follows them: `script args…`, `-m module args…` or `-c code args…` */
  target: string[];
}

/** CPython options that take a value (`-X dev` or `-Xdev`). */
const WITH_VALUE = new Set(['X', 'W', 'Q']);

/**
 * Split `argv` (the command after `--`) into interpreter, its options and the target.
 * Throws HelperError when it is not a Python command pylens can run this way.
 */
export function parsePythonCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): PythonCommand {
  if (argv.length === 0) throw new HelperError('no command to run after --', 'give a Python command, e.g. `-- python app.py` or `-- python -m pkg`');
  const python = pythonOfCommand(argv, env);
  if (!python) {
    const found = commandPath(argv[0]!, env);
    throw new HelperError(
      found ? `${argv[0]} is not a Python interpreter or a script run by one` : `cannot run ${JSON.stringify(argv[0])}: no such program on PATH`,
      'the interpreter lenses run Python code: give `-- python script.py …`, `-- python -m module …` or a script whose #! names python',
    );
  }
  // a launcher script (#! python): the script is the program
  if (!/^python(?:\d+(?:\.\d+)?)?[a-z]*$/.test(basename(argv[0]!))) {
    return { python, interpreterArgs: [], target: [commandPath(argv[0]!, env) ?? argv[0]!, ...argv.slice(1)] };
  }
  const interpreterArgs: string[] = [];
  let i = 1;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    if (a === '-m' || a === '-c') break;
    if (a.startsWith('--')) {
      interpreterArgs.push(a); // --check-hash-based-pycs needs a value
      if (a === '--check-hash-based-pycs' && i + 1 < argv.length) interpreterArgs.push(argv[++i]!);
      continue;
    }
    // -X dev / -Xdev / -W error; combined flags like -uB; -um module
    const letters = a.slice(1);
    if (WITH_VALUE.has(letters[0]!)) {
      interpreterArgs.push(a);
      if (letters.length === 1 && i + 1 < argv.length) interpreterArgs.push(argv[++i]!);
      continue;
    }
    const mc = letters.search(/[mc]/);
    if (mc > 0) {
      interpreterArgs.push(`-${letters.slice(0, mc)}`);
      const rest = letters.slice(mc + 1);
      const target = [`-${letters[mc]}`, ...(rest ? [rest] : []), ...argv.slice(i + 1)];
      return checked({ python, interpreterArgs, target });
    }
    interpreterArgs.push(a);
  }
  return checked({ python, interpreterArgs, target: argv.slice(i) });
}

function checked(c: PythonCommand): PythonCommand {
  const t = c.target;
  if (t.length === 0 || t[0] === '-') {
    throw new HelperError('no script, -m module or -c code in the Python command (an interactive or stdin session cannot be profiled this way)', 'give `-- python script.py …`, `-- python -m module …` or `-- python -c CODE`');
  }
  if ((t[0] === '-m' || t[0] === '-c') && t.length < 2) throw new HelperError(`${t[0]} needs an argument`, t[0] === '-m' ? 'e.g. `-- python -m http.server 8000`' : "e.g. `-- python -c 'import app; app.main()'`");
  return c;
}

/** The interpreter's version, checked against the helper's minimum (3.8). */
export function checkPython(python: string): PythonBuild {
  const build = probePython(python);
  if (!build) throw new HelperError(`${python} did not answer as a CPython interpreter`, 'check that the command runs on its own (`python -c "import sys; print(sys.version)"`)');
  if (build.major !== 3 || build.minor < 8) throw new HelperError(`${python} is Python ${build.version}; the interpreter lenses need CPython 3.8 or newer`, 'run the program with a CPython 3.8+ interpreter');
  return build;
}

/** The helper's result file (python/README.md). */
export interface HelperResult<D = unknown> {
  format: typeof RESULT_FORMAT;
  version: number;
  lens: string;
  python: { version: string; implementation: string; executable: string };
  pid: number;
  argv: string[];
  target: { kind: 'script' | 'module' | 'code'; value: string };
  start_unix_ns: number;
  wall_ns: number;
  exit: { code: number; exception: { type: string; module?: string; message: string } | null; signal: string | null };
  overhead: { fraction: number | null; method: string } | null;
  warnings: string[];
  data: D;
}

/** Read and check a result file; errors name the file and what is wrong. */
export function readHelperResult<D = unknown>(file: string): HelperResult<D> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new HelperError(`cannot read the helper's result ${file}: ${(e as Error).message}`, 'the program may have been killed before pylens could write its result (SIGKILL, os._exit); run it again');
  }
  let doc: HelperResult<D>;
  try {
    doc = JSON.parse(text) as HelperResult<D>;
  } catch (e) {
    throw new HelperError(`${file} is not valid JSON: ${(e as Error).message}`, 'the result file is damaged; run again');
  }
  if (doc?.format !== RESULT_FORMAT) throw new HelperError(`${file} is not a pylens interpreter-lens result (format ${JSON.stringify(doc?.format)})`, `expected format "${RESULT_FORMAT}"`);
  if (doc.version !== RESULT_VERSION) throw new HelperError(`${file} has result version ${doc.version}; this pylens reads version ${RESULT_VERSION}`, 'use the pylens that wrote it');
  return doc;
}

export interface LensRun<D> {
  /** the program's exit status as a shell sees it (128 + signal when killed) */
  exitCode: number;
  howEnded: string;
  /** undefined when the helper wrote none (killed by SIGKILL, os._exit, a crash) */
  result: HelperResult<D> | undefined;
  /** why there is no result */
  missing?: string;
  command: PythonCommand;
  build: PythonBuild;
}

/**
 * Run `argv` (a Python command) under lens `lens` with `options` (JSON-able): stdio is the
 * terminal's, signals are forwarded like `record -- cmd`. Resolves when the program ended.
 */
export async function runLens<D>(
  lens: string,
  options: Record<string, unknown>,
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; onSignal?: (sig: NodeJS.Signals) => void; cwd?: string; stdoutToStderr?: boolean } = {},
): Promise<LensRun<D>> {
  const command = parsePythonCommand(argv, opts.env);
  const build = checkPython(command.python);
  const dir = mkdtempSync(join(tmpdir(), `pylens-${lens}-`));
  const resultFile = join(dir, 'result.json');
  let target: Launched;
  try {
    target = await launch([command.python, ...command.interpreterArgs, HELPER_BOOT, lens, resultFile, JSON.stringify(options), '--', ...command.target], {
      ...(opts.onSignal ? { onSignal: opts.onSignal } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      ...(opts.stdoutToStderr ? { stdoutToStderr: true } : {}),
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  try {
    const exitCode = await target.exited;
    let result: HelperResult<D> | undefined;
    let missing: string | undefined;
    try {
      result = readHelperResult<D>(resultFile);
    } catch (e) {
      missing = (e as Error).message;
    }
    return { exitCode, howEnded: target.howEnded() ?? `exit code ${exitCode}`, result, ...(missing ? { missing } : {}), command, build };
  } finally {
    target.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
