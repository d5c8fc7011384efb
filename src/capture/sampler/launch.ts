/**
 * Launch mode shared by `record -- cmd` and `top -- cmd`: spawn the target with the
 * terminal's stdio, attach as soon as its interpreter is up, forward signals, and report
 * its exit status the way a shell does.
 *
 * Signals: the target stays in pylens's process group, so a Ctrl-C typed at the terminal
 * reaches both already; SIGINT is therefore forwarded only when stdin is not a terminal
 * (someone ran `kill -INT` on pylens). SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are
 * always forwarded. `onSignal` lets the caller react (stop sampling, flush).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { ProcessGoneError, PermissionError } from './memory.ts';
import { UnsupportedVersionError } from './runtime.ts';
import { ProcessSampler } from './session.ts';

export interface Launched {
  child: ChildProcess;
  pid: number;
  /** resolves when the target has exited: its exit code, or 128 + signal number */
  exited: Promise<number>;
  /** true once `exited` has resolved */
  hasExited(): boolean;
  /** how it ended, for messages: "exit code 3" / "signal SIGKILL" */
  howEnded(): string | undefined;
  /** remove the signal handlers (call when done) */
  dispose(): void;
}

export class LaunchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LaunchError';
  }
}

const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/**
 * Spawn `argv` with inherited stdio. `onSignal(sig)` is called for every signal pylens gets
 * (after forwarding). Throws LaunchError when the program cannot be started.
 */
export async function launch(argv: string[], onSignal?: (sig: NodeJS.Signals) => void): Promise<Launched> {
  if (argv.length === 0) throw new LaunchError('no command to run after --');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' });
  let ended: string | undefined;
  let done = false;
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      if (signal) {
        ended = `signal ${signal}`;
        resolve(128 + (constants.signals[signal] ?? 0));
      } else {
        ended = `exit code ${code ?? 0}`;
        resolve(code ?? 0);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (e: NodeJS.ErrnoException) => {
      reject(new LaunchError(`cannot run ${JSON.stringify(argv[0])}: ${e.code === 'ENOENT' ? 'no such program on PATH' : e.message}`));
    });
  });
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of [...FORWARDED, 'SIGINT' as const]) {
    const h = () => {
      const forward = sig !== 'SIGINT' || !process.stdin.isTTY;
      if (forward && !done) {
        try {
          child.kill(sig);
        } catch {
          /* already gone */
        }
      }
      onSignal?.(sig);
    };
    handlers.set(sig, h);
    process.on(sig, h);
  }
  return {
    child,
    pid: child.pid!,
    exited,
    hasExited: () => done,
    howEnded: () => ended,
    dispose() {
      for (const [sig, h] of handlers) process.off(sig, h);
      handlers.clear();
    },
  };
}

/**
 * Attach to a freshly launched process as soon as its interpreter is up: retry every
 * `intervalMs` until `_PyRuntime` is found and its thread list has a thread. Permission
 * and unsupported-version errors are final; other errors (still exec'ing, runtime not initialised) are retried
 * until the target exits, `signal` aborts, or `timeoutMs` passes — then the last error is
 * thrown (ProcessGoneError when the target exited first).
 */
export async function attachWhenReady(
  pid: number,
  opts: { isAlive: () => boolean; signal?: AbortSignal; timeoutMs?: number; intervalMs?: number; maxDepth?: number },
): Promise<ProcessSampler> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const interval = opts.intervalMs ?? 2;
  let last: unknown = new ProcessGoneError(pid);
  for (;;) {
    if (!opts.isAlive()) throw last instanceof ProcessGoneError ? last : new ProcessGoneError(pid);
    if (opts.signal?.aborted) throw last;
    try {
      const s = ProcessSampler.attach(pid, opts.maxDepth !== undefined ? { maxDepth: opts.maxDepth } : {});
      if (s.walk().length > 0) return s;
      s.close();
      last = new LaunchError(`process ${pid}: the interpreter has no thread yet`);
    } catch (e) {
      // the version is read from the binary: an unsupported one will not change
      if (e instanceof PermissionError || e instanceof UnsupportedVersionError) throw e;
      last = e;
    }
    if (Date.now() > deadline) throw last;
    await new Promise((r) => setTimeout(r, interval));
  }
}
