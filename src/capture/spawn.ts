/**
 * Starting an external tool (perf, bpftrace, bcc) with its stderr collected: the one place
 * that knows how a child's end becomes an exit code.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { constants } from 'node:os';

/** stderr kept per tool run (the rest is dropped; the end of a long message is rarely needed) */
const STDERR_CAP = 1 << 20;

/** A child's end as one number: its code, or 128 + the signal's number when a signal ended it. */
export function exitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return signal ? 128 + (constants.signals[signal] ?? 0) : 1;
}

export interface CollectedRun {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (see exitCode) and everything written on stderr; never rejects: a failure to start is 127. */
  done: Promise<{ code: number; stderr: string }>;
  /** stderr so far */
  stderr(): string;
}

export interface CollectOptions {
  stdio: StdioOptions;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  detached?: boolean;
  /** each stderr chunk (stderr is collected either way) */
  onStderr?: (chunk: string) => void;
}

/** Start `cmd args` with stderr piped and collected (the stdio's third entry is ignored). */
export function spawnCollecting(cmd: string, args: string[], opts: CollectOptions): CollectedRun {
  const stdio = Array.isArray(opts.stdio) ? [opts.stdio[0] ?? 'ignore', opts.stdio[1] ?? 'ignore', 'pipe', ...opts.stdio.slice(3)] : [opts.stdio, opts.stdio, 'pipe'];
  const child = spawn(cmd, args, { stdio: stdio as StdioOptions, cwd: opts.cwd, env: opts.env ?? process.env, detached: opts.detached ?? false });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => {
    if (err.length < STDERR_CAP) err += c;
    opts.onStderr?.(c);
  });
  const done = new Promise<{ code: number; stderr: string }>((resolve) => {
    child.on('error', (e) => resolve({ code: 127, stderr: `${err}${e.message}` }));
    child.on('close', (code, signal) => resolve({ code: exitCode(code, signal), stderr: err }));
  });
  return { child, pid: child.pid ?? -1, done, stderr: () => err };
}
