/**
 * What the recording commands record: a running process (`-p PID`) or a command they
 * launch (`-- python app.py …`): the usage check, and the capture session
 * (capture/session/) started with its failures explained the CLI's way.
 */
import { LaunchError } from '../capture/session/target.ts';
import { AttachError, CaptureSession, LaunchEndedError, type CaptureOptions, type CaptureTarget } from '../capture/session/session.ts';
import { UsageError, type Parsed } from './args.ts';
import { attachError } from './dump.ts';
import { CliError } from './errors.ts';

/** -p PID or a command after --, exactly one, checked. */
export function targetArgs(command: string, args: Parsed): { pid: number; argv?: undefined } | { pid?: undefined; argv: string[] } {
  const pid = args.options.pid as number | undefined;
  const argv = args.rest;
  if (pid !== undefined && argv.length > 0) throw new UsageError(command, 'give either -p PID or a command after --, not both');
  if (pid === undefined && argv.length === 0) throw new UsageError(command, `missing -p PID or a command to run after -- (e.g. pylens ${command} -- python app.py)`);
  if (pid !== undefined) {
    if (!(Number.isInteger(pid) && pid > 0)) throw new UsageError(command, `-p expects a process id (a whole number > 0), got ${pid}`);
    return { pid };
  }
  return { argv };
}

/** --duration, checked (undefined when not given). */
export function durationArg(command: string, args: Parsed): number | undefined {
  const duration = args.options.duration as number | undefined;
  if (duration !== undefined && !(duration > 0)) throw new UsageError(command, `--duration must be a positive number of seconds, got ${duration}`);
  return duration;
}

/**
 * Start a capture session for `command`, its warnings on stderr. A number instead of a
 * session when there is nothing to record: the launched program ended first (its exit
 * code; said on stderr) or an interrupt came first (0). Errors come back explained: a
 * program that cannot be run, the sampler's attach errors (with the PID).
 */
export async function startSession(command: string, o: CaptureOptions): Promise<CaptureSession | number> {
  try {
    return await CaptureSession.start({ onWarning: (w) => process.stderr.write(`pylens ${command}: warning: ${w}\n`), ...o });
  } catch (e) {
    if (e instanceof LaunchError) throw new CliError(e.message, 'check the command after --; it is run as given, looked up on PATH');
    if (e instanceof LaunchEndedError) {
      if (e.interrupted) return 0;
      const what = o.target && 'argv' in o.target ? o.target.argv[0] : 'the program';
      process.stderr.write(`pylens ${command}: ${what} ended (${e.how}) before ${o.sampler ? 'a Python interpreter could be sampled' : 'recording started'}; nothing recorded\n`);
      return e.exitCode;
    }
    if (e instanceof AttachError) throw attachError(e.cause, e.pid, command);
    throw e;
  }
}

/** The target of a session from the checked arguments. */
export function captureTarget(t: { pid: number } | { argv: string[] }, env?: NodeJS.ProcessEnv): CaptureTarget {
  return 'pid' in t && t.pid !== undefined ? { pid: t.pid } : { argv: (t as { argv: string[] }).argv, ...(env ? { env } : {}) };
}
