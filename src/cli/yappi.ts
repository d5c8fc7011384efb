/**
 * `pylens yappi -- python app.py`: per-thread function statistics from yappi, with each
 * thread's CPU time next to its wall time.
 *
 * yappi must be importable by the program's interpreter: that is checked first, with the
 * interpreter and its options (`python [opts] -c "import yappi"`), so a missing yappi is one
 * clear error and the program is not run. Then the program runs under the yappi lens
 * (python/pylens/_lens_yappi.py): yappi in the chosen clock for the function times, and
 * every thread's CPU (time.thread_time) and wall lifetime measured in the same run.
 * The profile (capture/python/yappi.ts) has one thread row per Python thread; the exit code
 * is the program's.
 */
import { checkPython, HelperError, parsePythonCommand } from '../capture/python/helper.ts';
import { checkYappi, YAPPI_CLOCKS, yappiThreadRows, yappiToProfile, type YappiClock, type YappiData } from '../capture/python/yappi.ts';
import { aggregate } from '../model/query.ts';
import { renderTopTable } from '../render/top.ts';
import { formatPercent } from '../render/page/units.ts';
import { formatThreadTable } from '../render/yappi.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { CliError } from './errors.ts';
import { checkOutputArgs, commandArgv, finishLens, lensMeta, outputOptions, runUnderLens, writeLensProfile } from './interp.ts';

export const yappiSpec: CommandSpec = {
  name: 'yappi',
  summary: 'Per-thread function statistics with yappi (CPU or wall clock), and each thread’s CPU vs wall time.',
  usage: 'pylens yappi [--clock cpu|wall] [-o OUT] [--json] -- python script.py [args…]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'clock', type: 'string', value: 'CLOCK', choices: YAPPI_CLOCKS, help: 'yappi’s clock for function times: cpu (thread CPU time, default) or wall' },
    ...outputOptions,
    { name: 'json', type: 'boolean', help: 'the threads and top functions as JSON on stdout' },
    { name: 'top', type: 'number', value: 'N', help: 'functions in the text report (default 15)' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'no report on stdout (the output file and its path only)' },
  ],
  examples: [
    'pylens yappi -- /usr/bin/python3 app.py',
    'pylens yappi --clock wall -o app.html -- python3 -m mypkg.server',
    'pylens yappi --json -- python3 worker.py > threads.json',
  ],
};

export async function runYappi(args: Parsed): Promise<number> {
  const o = args.options;
  const clock = ((o.clock as string | undefined) ?? 'cpu') as YappiClock;
  if (!YAPPI_CLOCKS.includes(clock)) throw new UsageError('yappi', `--clock must be cpu or wall, got ${clock}`);
  const top = (o.top as number | undefined) ?? 15;
  if (!(Number.isInteger(top) && top > 0)) throw new UsageError('yappi', `--top must be a whole number > 0, got ${top}`);
  checkOutputArgs('yappi', args);
  const argv = commandArgv('yappi', args);

  // yappi missing: say how to get it, before the program runs
  let yappiVersion: string;
  try {
    const command = parsePythonCommand(argv);
    checkPython(command.python);
    yappiVersion = checkYappi(command);
  } catch (e) {
    if (e instanceof HelperError) throw new CliError(`yappi: ${e.message}`, e.fix);
    throw e;
  }

  const run = await runUnderLens<YappiData>('yappi', 'yappi', { clock }, argv);
  const data = run.result.data;
  if (!data || !Array.isArray(data.threads) || !Array.isArray(data.functions)) {
    for (const w of run.result.warnings) process.stderr.write(`pylens yappi: warning: ${w}\n`);
    throw new CliError('yappi: the helper returned no yappi statistics', 'see the warnings above; run again', run.exitCode || 1);
  }
  const meta = lensMeta(run, { backend: 'yappi', mode: clock });
  const profile = yappiToProfile(data, run.result.pid, meta);
  if (yappiVersion && !data.yappi_version) profile.meta.extra = { ...(profile.meta.extra ?? {}), yappiVersion };
  const name = profile.meta.name ?? 'python';
  const out = writeLensProfile('yappi', args, profile, `${name}: yappi (${clock} clock), per thread`);
  const threads = yappiThreadRows(data);
  const calls = threads.reduce((s, t) => s + t.calls, 0);
  const oh = run.result.overhead;

  if (o.json) {
    const { rows, grandTotal } = aggregate(profile, { valueIndex: 1 });
    const callsOf = new Map<string, number>();
    for (const f of data.functions) callsOf.set(`${f.name}\u0000${f.module}`, (callsOf.get(`${f.name}\u0000${f.module}`) ?? 0) + f.ncall);
    process.stdout.write(
      JSON.stringify(
        {
          output: out,
          clock,
          yappiVersion: data.yappi_version ?? (yappiVersion || null),
          exitCode: run.exitCode,
          wallNs: run.result.wall_ns,
          processCpuNs: Math.round(data.process_cpu * 1e9),
          overhead: oh,
          threads,
          functions: {
            selfTotalNs: grandTotal,
            top: rows.slice(0, top).map((r) => ({ name: r.name, file: r.file, selfNs: r.self, totalNs: r.total, calls: callsOf.get(`${r.name}\u0000${r.file ?? ''}`) ?? null })),
          },
          warnings: run.result.warnings,
        },
        null,
        2,
      ) + '\n',
    );
  } else if (!o.quiet) {
    process.stdout.write(formatThreadTable(threads, clock));
    process.stdout.write('\n');
    process.stdout.write(renderTopTable(profile, { valueIndex: 1, limit: top }));
  }
  const ohText = oh?.fraction != null ? `, overhead about ${formatPercent(oh.fraction)}` : '';
  process.stderr.write(`pylens yappi: ${threads.length} thread${threads.length === 1 ? '' : 's'}, ${calls.toLocaleString('en-US')} Python calls (${clock} clock${ohText}); wrote ${out}\n`);
  return finishLens('yappi', run);
}
