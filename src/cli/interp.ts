/**
 * What the interpreter-lens commands (trace, count, yappi, mem) share: running the Python
 * command under the helper, turning helper failures into explained errors, the profile's
 * metadata, the output file and the exit code (the program's own).
 */
import { basename } from 'node:path';
import { HelperError, runLens, type HelperResult, type LensRun } from '../capture/python/helper.ts';
import { hostEnvironment } from '../model/environment.ts';
import type { Profile, ProfileMeta } from '../model/profile.ts';
import type { OptionSpec, Parsed } from './args.ts';
import { UsageError } from './args.ts';
import { pickExporter, writeOutput } from './commands.ts';
import { checkSaveArgs, saveIfAsked, saveOptions } from './store.ts';
import { CliError } from './errors.ts';
import { defaultOutput } from './record.ts';

export const outputOptions: OptionSpec[] = [
  { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'output file; format from its extension (default <program>-<command>-<time>.html)' },
  { name: 'format', short: 'f', type: 'string', value: 'FORMAT', help: 'output format (overrides the extension)' },
  ...saveOptions,
];

/** The Python command after `--`, required. */
export function commandArgv(command: string, args: Parsed): string[] {
  if (args.rest.length === 0) throw new UsageError(command, `missing the Python command to run after -- (e.g. pylens ${command} -- python app.py)`);
  return args.rest;
}

/**
 * Run the command under `lens`; the result is there when this returns. Without one (the
 * program was killed, or called os._exit) this throws a CliError whose exit code is the
 * program's, saying what happened.
 */
export async function runUnderLens<D>(command: string, lens: string, options: Record<string, unknown>, argv: string[]): Promise<LensRun<D> & { result: HelperResult<D> }> {
  let run: LensRun<D>;
  try {
    run = await runLens<D>(lens, options, argv);
  } catch (e) {
    if (e instanceof HelperError) throw new CliError(`${command}: ${e.message}`, e.fix);
    throw e;
  }
  if (!run.result) {
    throw new CliError(
      `${command}: the program ended (${run.howEnded}) without pylens's result: ${run.missing ?? 'no result file'}`,
      'the helper writes its result at interpreter exit; a program killed by SIGKILL or leaving through os._exit() skips that',
      run.exitCode || 1,
    );
  }
  return run as LensRun<D> & { result: HelperResult<D> };
}

/** The profile metadata every interpreter lens records. */
export function lensMeta(run: LensRun<unknown> & { result: HelperResult<unknown> }, fields: { backend: string; mode: ProfileMeta['mode'] }): Partial<ProfileMeta> {
  const r = run.result;
  const env = hostEnvironment();
  env.python = {
    version: r.python.version,
    implementation: r.python.implementation,
    executable: r.python.executable,
  };
  const name = r.target.kind === 'script' ? basename(r.target.value).replace(/\.py$/, '') : r.target.kind === 'module' ? r.target.value : 'python-c';
  return {
    lens: 'interpreter',
    backend: fields.backend,
    mode: fields.mode,
    name,
    durationNs: r.wall_ns,
    startTime: new Date(Math.floor(r.start_unix_ns / 1e6)).toISOString(),
    command: [run.command.python, ...run.command.interpreterArgs, ...run.command.target],
    pid: r.pid,
    environment: env,
    ...(r.overhead ? { overhead: { method: r.overhead.method, ...(r.overhead.fraction !== null ? { fraction: r.overhead.fraction } : {}) } } : {}),
  };
}

/**
 * The lens's overhead as one phrase for its summary line: "12.3 % (method)", or the method
 * alone when the lens could not put a figure on it.
 */
export function overheadText(ov: HelperResult<unknown>['overhead']): string {
  if (!ov) return 'not reported';
  if (ov.fraction === null) return `not measured as a share (${ov.method})`;
  const pct = ov.fraction * 100;
  return `${pct.toFixed(pct < 10 ? 1 : 0)} % (${ov.method})`;
}

/** Write `profile` to -o (or the default name); returns the absolute path. */
export function writeLensProfile(command: string, args: Parsed, profile: Profile, title: string): string {
  const outOpt = args.options.output as string | undefined;
  const fmt = args.options.format as string | undefined;
  const out = outOpt ?? defaultOutput(`${profile.meta.name ?? 'python'}-${command}`, fmt);
  const exporter = pickExporter(command, out, fmt);
  const abs = writeOutput(out, exporter.write(profile, { title }));
  saveIfAsked(command, args, profile);
  return abs;
}

/** Fail fast on a bad -o/-f before running anything. */
export function checkOutputArgs(command: string, args: Parsed): void {
  checkSaveArgs(command, args);
  const outOpt = args.options.output as string | undefined;
  const fmt = args.options.format as string | undefined;
  if (outOpt !== undefined || fmt !== undefined) pickExporter(command, outOpt ?? defaultOutput('x', fmt), fmt);
}

/** Print the helper's warnings and the program's ending; returns the exit code to use (the program's). */
export function finishLens(command: string, run: LensRun<unknown> & { result: HelperResult<unknown> }): number {
  for (const w of run.result.warnings) process.stderr.write(`pylens ${command}: warning: ${w}\n`);
  const ex = run.result.exit.exception;
  if (ex) process.stderr.write(`pylens ${command}: the program raised ${ex.type}${ex.message ? `: ${ex.message}` : ''} (exit ${run.exitCode})\n`);
  return run.exitCode;
}
