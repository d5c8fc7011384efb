/**
 * Turning failures into one clear line plus the fix, and the exit codes:
 * 0 ok, 1 failure, 2 usage.
 */
import { PerfError } from '../capture/perf/tool.ts';
import { ParseError, UnknownFormatError } from '../formats/types.ts';
import { FormatVersionError } from '../model/versioning.ts';
import { UsageError } from './args.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A failure the CLI explains: what went wrong, and how to fix it. */
export class CliError extends Error {
  readonly fix: string;
  /** the exit code (default 1): e.g. the profiled program's own when it is passed on */
  readonly exitCode: number;
  constructor(message: string, fix: string, exitCode: number = EXIT_FAILURE) {
    super(message);
    this.name = 'CliError';
    this.fix = fix;
    this.exitCode = exitCode;
  }
}

/** what a fix about permissions, capabilities or kernel settings says: doctor checks them all */
const ACCESS_FIX = /CAP_|--cap-add|sysctl|ptrace_scope|perf_event_paranoid|tracefs|seccomp|privileged|run (pylens )?(as root|with sudo)/;
export const DOCTOR_HINT = '`pylens doctor` checks every lens on this machine';

export function explain(e: unknown): { message: string; fix?: string; code: number } {
  const r = explainError(e);
  if (r.fix && ACCESS_FIX.test(r.fix) && !r.fix.includes('pylens doctor')) r.fix = `${r.fix.replace(/\.\s*$/, '')}; ${DOCTOR_HINT}`;
  return r;
}

function explainError(e: unknown): { message: string; fix?: string; code: number } {
  if (e instanceof UsageError) return { message: `${e.command === 'pylens' ? '' : `${e.command}: `}${e.message}`, fix: `run 'pylens ${e.command === 'pylens' ? '' : `${e.command} `}--help' for usage`, code: EXIT_USAGE };
  if (e instanceof CliError) return { message: e.message, fix: e.fix, code: e.exitCode };
  if (e instanceof PerfError) return { message: e.message, fix: e.fix, code: EXIT_FAILURE };
  if (e instanceof ParseError) return { message: e.message, fix: `the file is damaged or not ${e.format}; if it is another format, pass --from FORMAT`, code: EXIT_FAILURE };
  if (e instanceof UnknownFormatError) return { message: e.message, code: EXIT_FAILURE };
  if (e instanceof FormatVersionError) return { message: e.message, code: EXIT_FAILURE };
  const err = e as Error;
  return { message: `internal error: ${err?.stack ?? String(e)}`, fix: 'this is a pylens bug: please report it with the command line', code: EXIT_FAILURE };
}
