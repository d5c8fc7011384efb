/**
 * The launched program: spawned with the terminal's stdio (and, behind a gate, the gate
 * socket as fd 3), its signals forwarded, its exit status as a shell reports it.
 *
 * Signals: the target stays in pylens's process group, so a Ctrl-C typed at the terminal
 * reaches both already; SIGINT is therefore forwarded only when stdin is not a terminal
 * (someone ran `kill -INT` on pylens). SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are
 * always forwarded. `onSignal` lets the caller react (stop sampling, flush).
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { commandPath } from '../perf/python.ts';
import { execGateArgv, GateChannel, pythonGateEnv, type GateKind } from './gate.ts';

export interface Launched {
  child: ChildProcess;
  /** the launched process (behind the exec gate: the shell that becomes the program, same PID) */
  pid: number;
  /** resolves when the target has exited: its exit code, or 128 + signal number */
  exited: Promise<number>;
  /** true once `exited` has resolved */
  hasExited(): boolean;
  /** how it ended, for messages: "exit code 3" / "signal SIGKILL" */
  howEnded(): string | undefined;
  /** send a signal unless it has exited (never throws) */
  kill(sig: NodeJS.Signals): void;
  /** pylens's end of the gate, when launched behind one */
  gate: GateChannel | undefined;
  /** remove the signal handlers and close the gate (call when done) */
  dispose(): void;
}

export class LaunchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LaunchError';
  }
}

export const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

export interface LaunchOptions {
  /** called for every signal pylens gets (after forwarding) */
  onSignal?: (sig: NodeJS.Signals) => void;
  /** the program's environment (default pylens's) */
  env?: NodeJS.ProcessEnv;
  /** hold it at a gate (gate.ts): 'python' (inside site, interpreter up), 'exec' (before exec) or 'none' (default) */
  gate?: GateKind;
  /** its working directory (default pylens's) */
  cwd?: string;
  /** send its stdout to pylens's stderr (when pylens's own stdout carries a report, e.g. JSON) */
  stdoutToStderr?: boolean;
}

/**
 * Spawn `argv` with inherited stdio. Throws LaunchError when the program cannot be started.
 */
export async function launch(argv: string[], opts: LaunchOptions = {}): Promise<Launched> {
  if (argv.length === 0) throw new LaunchError('no command to run after --');
  const gate = opts.gate ?? 'none';
  const env = opts.env ?? process.env;
  const missing = () => new LaunchError(`cannot run ${JSON.stringify(argv[0])}: ${argv[0]!.includes('/') ? 'no such file, or not executable' : 'no such program on PATH'}`);
  // behind the exec gate the shell starts whatever argv[0] is: check it first
  if (gate === 'exec' && !commandPath(argv[0]!, env)) throw missing();
  const cmd = gate === 'exec' ? execGateArgv(argv) : argv;
  const out = opts.stdoutToStderr ? 2 : 'inherit';
  const stdio: StdioOptions = gate === 'none' ? ['inherit', out, 'inherit'] : ['inherit', out, 'inherit', 'pipe'];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio, env: gate === 'python' ? pythonGateEnv(env) : env, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}) });
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
      reject(e.code === 'ENOENT' ? missing() : new LaunchError(`cannot run ${JSON.stringify(argv[0])}: ${e.message}`));
    });
  });
  const channel = gate === 'none' ? undefined : new GateChannel(child.stdio[3] as Socket);
  const kill = (sig: NodeJS.Signals) => {
    if (done) return;
    try {
      child.kill(sig);
    } catch {
      /* already gone */
    }
  };
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of [...FORWARDED, 'SIGINT' as const]) {
    const h = () => {
      if (sig !== 'SIGINT' || !process.stdin.isTTY) kill(sig);
      opts.onSignal?.(sig);
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
    kill,
    gate: channel,
    dispose() {
      for (const [sig, h] of handlers) process.off(sig, h);
      handlers.clear();
      channel?.close();
    },
  };
}

/**
 * Wait for a launched target to end: `graceMs` to exit on its own, then `signal`, then
 * SIGKILL `killAfterMs` later. Its exit code (128 + signal).
 */
export async function endTarget(t: Launched, o: { graceMs?: number; signal?: NodeJS.Signals; killAfterMs?: number } = {}): Promise<number> {
  if (!t.hasExited() && (o.graceMs ?? 0) > 0) await Promise.race([t.exited, new Promise((r) => setTimeout(r, o.graceMs))]);
  if (t.hasExited()) return t.exited;
  t.kill(o.signal ?? 'SIGINT');
  const timer = setTimeout(() => t.kill('SIGKILL'), o.killAfterMs ?? 5000);
  const code = await t.exited;
  clearTimeout(timer);
  return code;
}
