/**
 * `pylens trace -- python app.py`: every call of a Python program, deterministically —
 * counts, self and cumulative time, callers and callees — through CPython's own hooks:
 * sys.monitoring (PEP 669) on 3.12+, cProfile before (python/pylens/_lens_trace.py).
 *
 * Scopes: --include/--exclude module or path globs, --region NAME (only inside
 * `with pylens.region(NAME):`), --within mod:fn (only while that function is on the
 * thread's stack; sys.monitoring only). Output: a profile (HTML by default, -o picks the
 * format), a pstats-like table on stdout, optionally a real pstats dump (--pstats FILE).
 */
import { checkPython, HelperError, parsePythonCommand } from '../capture/python/helper.ts';
import { cprofileStats, traceToProfile, type TraceData } from '../capture/python/trace.ts';
import { functionStats, writePstats } from '../formats/pstats.ts';
import { PSTATS_SORTS as SORTS, renderPstatsTable, type PstatsSort as Sort } from '../render/pstats-table.ts';
import type { Profile } from '../model/profile.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { pickExporter, writeOutput } from './commands.ts';
import { CliError } from './errors.ts';
import { checkOutputArgs, commandArgv, finishLens, lensMeta, outputOptions, overheadText, runUnderLens, writeLensProfile } from './interp.ts';


export const traceSpec: CommandSpec = {
  name: 'trace',
  summary: 'Every call of a Python program, deterministically: counts, self and cumulative time, callers and callees (sys.monitoring on 3.12+, cProfile before; on 3.12+ a whole-program trace runs on cProfile until a second thread starts).',
  usage: 'pylens trace [--include GLOB] [--exclude GLOB] [--region NAME] [--within MOD:FN] [--sort cumulative|self|calls] [--top N] [--pstats FILE] [-o OUT] -- python app.py [args…]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    ...outputOptions,
    { name: 'include', type: 'list', value: 'GLOB', help: 'record only functions of these modules (`mypkg`, `mypkg.sub*`) or files (`src/*.py`); repeatable, comma-separated' },
    { name: 'exclude', type: 'list', value: 'GLOB', help: 'do not record these modules or files (their time goes to the nearest recorded caller); repeatable' },
    { name: 'region', type: 'string', value: 'NAME', help: 'trace only inside `with pylens.region(NAME):` blocks (any thread, nested)' },
    { name: 'within', type: 'list', value: 'MOD:FN', help: 'trace only while MOD:FN (a qualname; MOD may be __main__ or the script name) is on the thread’s stack; Python 3.12+' },
    { name: 'backend', type: 'string', value: 'NAME', choices: ['auto', 'monitoring', 'cprofile'], help: 'auto (default): on 3.12+ a whole-program trace runs on cProfile while the program has one thread and switches to sys.monitoring (exact call paths per thread, about 1 µs per traced call) when it starts a second; with --include/--exclude/--region/--within/--builtins, sys.monitoring throughout (nearly nothing for code outside the scope); before 3.12, cProfile. monitoring: sys.monitoring for the whole run (exact call paths, 4-5x the cost of cProfile). cprofile: cProfile only (on 3.12+ it mixes up the calls of concurrent threads)' },
    { name: 'builtins', type: 'boolean', help: 'record C functions (len, time.sleep, …) as native frames too' },
    { name: 'sort', type: 'string', value: 'KEY', choices: SORTS, help: 'order of the table: cumulative (default), self or calls' },
    { name: 'top', type: 'number', value: 'N', help: 'rows of the table (default 25)' },
    { name: 'pstats', type: 'string', value: 'FILE', help: 'also write a pstats dump (`python -m pstats FILE`, `pstats.Stats(FILE)`)' },
    { name: 'json', type: 'boolean', help: 'the table as JSON on stdout instead' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'no table on stdout' },
  ],
  examples: [
    'pylens trace -- python app.py',
    'pylens trace --include mypkg --sort self -- python -m mypkg.cli run',
    'pylens trace --region checkout -o checkout.html -- python server.py',
    'pylens trace --within app:handle --pstats handle.pstats -- python app.py',
    'pylens trace -o app.pstats -- python app.py && python -m pstats app.pstats',
  ],
};

export async function runTrace(args: Parsed): Promise<number> {
  const o = args.options;
  const argv = commandArgv('trace', args);
  const top = (o.top as number | undefined) ?? 25;
  if (!(Number.isInteger(top) && top > 0)) throw new UsageError('trace', `--top must be a whole number > 0, got ${top}`);
  const sort = ((o.sort as Sort | undefined) ?? 'cumulative') as Sort;
  const within = (o.within as string[] | undefined) ?? [];
  for (const w of within) if (!/^([A-Za-z_][\w.]*:)?[A-Za-z_<][\w.<>]*$/.test(w)) throw new UsageError('trace', `--within wants MODULE:FUNCTION or FUNCTION (a qualname like Class.method), got '${w}'`);
  const backend = (o.backend as string | undefined) ?? 'auto';
  if (within.length && backend === 'cprofile') throw new UsageError('trace', '--within needs the sys.monitoring backend (Python 3.12+), not --backend cprofile');
  checkOutputArgs('trace', args);
  if (within.length) {
    try {
      const build = checkPython(parsePythonCommand(argv).python);
      if (build.minor < 12) throw new CliError(`trace: --within needs Python 3.12+ (sys.monitoring); ${parsePythonCommand(argv).python} is ${build.version}`, 'run the program with Python 3.12 or newer, or use --region / --include instead');
    } catch (e) {
      if (e instanceof HelperError) throw new CliError(`trace: ${e.message}`, e.fix);
      throw e;
    }
  }
  const options: Record<string, unknown> = {
    include: (o.include as string[] | undefined) ?? [],
    exclude: (o.exclude as string[] | undefined) ?? [],
    region: (o.region as string | undefined) ?? null,
    within,
    backend,
    builtins: Boolean(o.builtins),
  };
  const run = await runUnderLens<TraceData>('trace', 'trace', options, argv);
  const data = run.result.data;
  if (!data || !Array.isArray(data.threads)) {
    for (const w of run.result.warnings) process.stderr.write(`pylens trace: warning: ${w}\n`);
    throw new CliError('trace: the helper recorded no trace', 'see the warnings above', run.exitCode || 1);
  }
  const meta = lensMeta(run, { backend: data.backend, mode: 'calls' });
  const profile: Profile = traceToProfile(data, run.result.pid, meta);
  // cProfile's own numbers when nothing of the user's was filtered out; else from the profile
  const filtered = ((o.include as string[] | undefined) ?? []).length > 0 || ((o.exclude as string[] | undefined) ?? []).length > 0;
  const stats = cprofileStats(data, filtered) ?? functionStats(profile);
  const name = profile.meta.name ?? 'python';
  const outOpt = o.output as string | undefined;
  const toPstats = outOpt !== undefined && pickExporter('trace', outOpt, o.format as string | undefined).id === 'pstats';
  // a pstats output gets the same numbers as the table (cProfile's own where possible)
  const abs = toPstats ? writeOutput(outOpt, writePstats(stats)) : writeLensProfile('trace', args, profile, `${name}: every call (${data.backend})`);
  let pstatsPath: string | undefined;
  if (o.pstats) {
    pstatsPath = writeOutput(o.pstats as string, writePstats(stats));
  }
  const ov = run.result.overhead;
  const calls = stats.reduce((s, x) => s + x.nc, 0);
  if (o.json) {
    process.stdout.write(
      JSON.stringify(
        {
          output: abs,
          ...(pstatsPath ? { pstats: pstatsPath } : {}),
          backend: data.backend,
          calls,
          threads: profile.threads.length,
          overhead: ov,
          exitCode: run.exitCode,
          functions: stats.map((s) => ({ file: s.key[0], line: s.key[1], name: s.key[2], qualname: s.frame.qualname, ncalls: s.nc, primitive: s.cc, tottime: s.tt, cumtime: s.ct })),
        },
        null,
        2,
      ) + '\n',
    );
  } else if (!o.quiet) {
    process.stdout.write(renderPstatsTable(stats, { sort, top }));
  }
  process.stderr.write(`pylens trace: ${calls.toLocaleString('en-US')} calls of ${stats.length} functions in ${profile.threads.length} thread${profile.threads.length === 1 ? '' : 's'} (${data.backend}); overhead ${overheadText(ov)}\n`);
  process.stderr.write(`pylens trace: wrote ${abs}${pstatsPath ? ` and ${pstatsPath}` : ''}\n`);
  return finishLens('trace', run);
}
