/**
 * What `record` and `top` sample: a running process (`-p PID`) or a command they launch
 * (`-- python app.py …`). The usage checks and the launch-then-attach sequence they share.
 */
import { attachWhenReady, launch, LaunchError, type Launched } from '../capture/sampler/launch.ts';
import type { ProcessSampler } from '../capture/sampler/session.ts';
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

/** `launch` with a missing program explained. */
export async function launchTarget(argv: string[], onSignal: (sig: NodeJS.Signals) => void): Promise<Launched> {
  try {
    return await launch(argv, onSignal);
  } catch (e) {
    if (e instanceof LaunchError) throw new CliError(e.message, 'check the command after --; it is run as given, looked up on PATH');
    throw e;
  }
}

export type Launch = { target: Launched; sampler: ProcessSampler } | { ended: number };

/**
 * Launch `argv` and attach as soon as its interpreter is up. `{ ended }` when there is
 * nothing to sample: the program exited first (its exit code; said on stderr) or `signal`
 * aborted meanwhile (0). Any other attach failure stops the program with `stop` (rather than
 * leave it running unprofiled) and throws the explained error.
 */
export async function launchAndAttach(
  command: string,
  argv: string[],
  opts: { onSignal: (sig: NodeJS.Signals) => void; signal: AbortSignal; stop: (t: Launched) => Promise<unknown> },
): Promise<Launch> {
  const t = await launchTarget(argv, opts.onSignal);
  try {
    return { target: t, sampler: await attachWhenReady(t.pid, { isAlive: () => !t.hasExited(), signal: opts.signal, timeoutMs: 10_000 }) };
  } catch (e) {
    if (t.hasExited()) {
      process.stderr.write(`pylens ${command}: ${argv[0]} ended (${t.howEnded()}) before a Python interpreter could be sampled; nothing recorded\n`);
      t.dispose();
      return { ended: await t.exited };
    }
    await opts.stop(t);
    t.dispose();
    if (opts.signal.aborted) return { ended: 0 };
    throw attachError(e, t.pid, command);
  }
}

/** Attach mode: Ctrl-C or SIGTERM ends the recording (the target keeps running). */
export function abortOnSignals(abort: AbortController): void {
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  abort.signal.addEventListener('abort', () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  });
}

/**
 * Launch mode: the target got the signal too (launch.ts forwards it), so recording goes on
 * until it exits — unless Ctrl-C comes twice, or SIGTERM/SIGHUP asked pylens itself to stop
 * (`forwardedStop`: then give the target time to exit on its own).
 */
export function launchSignals(abort: AbortController): { onSignal: (sig: NodeJS.Signals) => void; forwardedStop: () => boolean } {
  let interrupts = 0;
  let forwarded = false;
  return {
    onSignal: (sig) => {
      if (sig === 'SIGINT' && ++interrupts < 2) return;
      if (sig === 'SIGINT' || sig === 'SIGTERM' || sig === 'SIGHUP') {
        forwarded = sig !== 'SIGINT';
        abort.abort();
      }
    },
    forwardedStop: () => forwarded,
  };
}

/**
 * Wait for a launched target. Recording normally ends because it exited. When it is still
 * running it gets `graceMs` to exit on its own (it got a stop signal already), then
 * `signal` (SIGINT, as after -d), then SIGKILL 5 s later. Its exit code (128 + signal).
 */
export async function finishTarget(t: Launched, graceMs = 0, signal: NodeJS.Signals = 'SIGINT'): Promise<number> {
  if (!t.hasExited() && graceMs > 0) await Promise.race([t.exited, new Promise((r) => setTimeout(r, graceMs))]);
  if (!t.hasExited()) {
    t.child.kill(signal);
    const timer = setTimeout(() => t.child.kill('SIGKILL'), 5000);
    const code = await t.exited;
    clearTimeout(timer);
    return code;
  }
  return t.exited;
}
