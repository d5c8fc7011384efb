/**
 * The start gate: a launched program is held until pylens has attached to it (see
 * README.md in this folder).
 *
 * Both gates talk over one socket, fd 3 in the child (Node's extra 'pipe' stdio is a
 * socketpair): the held process writes `pylens-gate PID\n` once it waits, and goes on when
 * it reads a byte, or on EOF (pylens gone), or after its own timeout.
 * - python: `python/gate/sitecustomize.py`, first on PYTHONPATH, waits inside `site`: the
 *   interpreter is initialised (the sampler can attach) and none of the program's code has
 *   run. Chain-loads the sitecustomize it shadows. Not for `python -I`, `-E` or `-S` (no
 *   PYTHONPATH or no site): `pythonGateRefusal` says why, and the program then starts at
 *   once (the sampler attaches as early as it can, as before the gate existed).
 * - exec: `sh -c` holds the process before it execs the program, keeping its PID: perf -p
 *   or a bpftrace pid filter set on that PID follows it through the exec.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandPath } from '../perf/python.ts';

/** `python/gate` in the package (from dist/src one level further up). */
export const GATE_DIR = ['../../../python/gate', '../../../../python/gate']
  .map((rel) => fileURLToPath(new URL(rel, import.meta.url)))
  .find((p) => existsSync(`${p}/sitecustomize.py`)) ?? fileURLToPath(new URL('../../../python/gate', import.meta.url));

/** the gate socket's number in the child */
export const GATE_FD = 3;
export const GATE_FD_ENV = 'PYLENS_GATE_FD';

export type GateKind = 'python' | 'exec' | 'none';

/** `sh -c` that says it waits, reads one line (or EOF) from fd 3, closes it and execs the program with the same PID. */
const EXEC_GATE = `echo "pylens-gate $$" >&${GATE_FD}; read -r _ <&${GATE_FD}; exec "$@" ${GATE_FD}<&-`;

/** argv that runs `argv` behind the exec gate. */
export function execGateArgv(argv: string[]): string[] {
  return ['/bin/sh', '-c', EXEC_GATE, 'pylens-gate', ...argv];
}

/** The environment of a program launched behind the python gate: the gate folder first on PYTHONPATH, the socket's fd named. */
export function pythonGateEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const path = env.PYTHONPATH;
  return { ...env, PYTHONPATH: path ? `${GATE_DIR}:${path}` : GATE_DIR, [GATE_FD_ENV]: String(GATE_FD) };
}

const PYTHON_NAME = /^python(?:\d+(?:\.\d+)?)?[a-z]*$/;
/** interpreter options that take a value (`-X dev` or `-Xdev`) */
const WITH_VALUE = new Set(['X', 'W', 'Q']);
const REFUSING: Record<string, string> = { I: '-I (isolated mode) ignores PYTHONPATH and sitecustomize', E: '-E ignores PYTHONPATH', S: '-S skips the site module, which imports sitecustomize' };

/** The refusing flag among a Python command line's interpreter options (before the script, -m or -c). */
function refusingFlag(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--check-hash-based-pycs') {
      i++;
      continue;
    }
    if (a.startsWith('--') && a !== '--') continue;
    // the script, `-` (stdin) or `--`: the interpreter's options end here
    if (!a.startsWith('-') || a === '-' || a === '--') return undefined;
    const letters = a.slice(1);
    for (let k = 0; k < letters.length; k++) {
      const c = letters[k]!;
      if (c === 'm' || c === 'c') return undefined;
      if (WITH_VALUE.has(c)) {
        if (k === letters.length - 1) i++;
        break;
      }
      if (REFUSING[c]) return c;
    }
  }
  return undefined;
}

/**
 * Why the python gate cannot hold `argv`, when that can be told from its command line:
 * `python -I/-E/-S …`, or a script whose `#!` line passes one of them. Undefined when it
 * should work (or the command is not visibly Python: if it runs a Python that honours
 * PYTHONPATH, that one waits).
 */
export function pythonGateRefusal(argv: string[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const cmd = argv[0];
  if (!cmd) return undefined;
  let flag: string | undefined;
  if (PYTHON_NAME.test(basename(cmd))) flag = refusingFlag(argv.slice(1));
  else {
    const file = commandPath(cmd, env);
    if (!file) return undefined;
    let line = '';
    try {
      line = readFileSync(file, { encoding: 'latin1' }).slice(0, 256).split('\n')[0]!;
    } catch {
      return undefined;
    }
    if (!line.startsWith('#!')) return undefined;
    const words = line.slice(2).trim().split(/\s+/);
    const at = words.findIndex((w) => PYTHON_NAME.test(basename(w)));
    if (at < 0) return undefined;
    flag = refusingFlag(words.slice(at + 1));
  }
  if (flag === undefined) return undefined;
  return `python ${REFUSING[flag]}`;
}

/**
 * pylens's end of the gate socket: who waits (`pylens-gate PID` lines), and `release()`.
 * Released with the gate passed, the socket is closed at once, so a later process that
 * inherited it (a second Python under the same shell) reads EOF and does not wait.
 */
export class GateChannel {
  private readonly waiters: number[] = [];
  private listeners: ((pid: number) => void)[] = [];
  private released = false;
  private closed = false;
  private buf = '';

  private readonly socket: Socket;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => this.onData(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
    socket.unref();
  }

  /** Pids that said they wait (in order). */
  get seen(): readonly number[] {
    return this.waiters;
  }

  /** Resolves with the first process that waits at the gate (never, if none does). */
  waiting(): Promise<number> {
    if (this.waiters.length > 0) return Promise.resolve(this.waiters[0]!);
    return new Promise((resolve) => this.listeners.push(resolve));
  }

  /** Let the program go: one byte; the socket is closed once a process has said it waits. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.closed) return;
    this.socket.write('\n');
    if (this.waiters.length > 0) this.close();
  }

  /**
   * `release`, for a caller that then blocks pylens's thread (the ptrace hold): whether the
   * byte is already in the socket (libuv writes at once when nothing is queued), so that
   * the program goes on without an event-loop turn.
   */
  releaseNow(): boolean {
    if (this.released || this.closed) return false;
    this.release();
    return this.socket.writableLength === 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end(() => this.socket.destroy());
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const m = /^pylens-gate (\d+)$/.exec(line);
      if (!m) continue;
      const pid = Number(m[1]);
      this.waiters.push(pid);
      for (const l of this.listeners.splice(0)) l(pid);
      if (this.released) this.close();
    }
    if (this.buf.length > 4096) this.buf = '';
  }
}
