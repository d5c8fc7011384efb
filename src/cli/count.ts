/**
 * `pylens count`: exact call counts (and with --time, time) of named Python functions, with
 * no change to their callers. The count lens (python/pylens/_lens_count.py) watches only the
 * target functions' code objects: sys.monitoring local events on 3.12+, a filtered
 * sys.setprofile before. The table goes to stdout after the program ended; -o also writes a
 * profile (one sample per function).
 *
 * Exit code: the program's. When a --function never resolved (its module was never
 * imported, or has no such function) the counts are printed, then an error naming it, and
 * the exit code is the program's if it failed, else 2.
 */
import type { CommandSpec, Parsed } from './args.ts';
import { UsageError } from './args.ts';
import { countRows, type CountData } from '../analysis/count.ts';
import { buildCountProfile, checkFunctionSpec } from '../capture/python/count.ts';
import { formatCountTable } from '../render/count.ts';
import { saveIfAsked } from './store.ts';
import { checkOutputArgs, commandArgv, finishLens, lensMeta, outputOptions, overheadText, runUnderLens, writeLensProfile } from './interp.ts';
import { CliError, EXIT_USAGE } from './errors.ts';

export const countSpec: CommandSpec = {
  name: 'count',
  summary: 'Exact call counts (and --time: time) of named Python functions, callers unchanged (sys.monitoring on 3.12+, a filtered profile hook before).',
  usage: 'pylens count --function MODULE:QUALNAME [--function …] [--time] [--json] [-o OUT] -- python script.py [args…]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'function', short: 'F', type: 'list', value: 'MODULE:QUALNAME', help: 'a function to count, e.g. app.handlers:Handler.get, __main__:fib, mod:outer.<locals>.inner (repeat, or comma-separated)' },
    { name: 'time', short: 't', type: 'boolean', help: 'also the total and mean wall time inside each function (costs more per call)' },
    { name: 'json', type: 'boolean', help: 'the counts as JSON on stdout' },
    ...outputOptions.map((o) => (o.name === 'output' ? { ...o, help: 'also write a profile (one sample per function: calls [, total ns]); format from its extension' } : o)),
  ],
  examples: [
    'pylens count --function __main__:fib -- python fib.py',
    'pylens count -F app.handlers:Handler.get -F app.db:query --time -- python -m app',
    'pylens count --json -F mod:outer.<locals>.inner -- python script.py > counts.json',
    'pylens count -F app.cache:lookup -o counts.pylens -- python -m pytest tests/',
  ],
};

export async function runCount(args: Parsed): Promise<number> {
  const o = args.options;
  const functions = (o.function as string[] | undefined) ?? [];
  if (functions.length === 0) throw new UsageError('count', 'name at least one function: --function module:qualname (e.g. --function __main__:main)');
  for (const f of functions) {
    const err = checkFunctionSpec(f);
    if (err) throw new UsageError('count', err);
  }
  const unique = [...new Set(functions)];
  const argv = commandArgv('count', args);
  if (o.output !== undefined || o.format !== undefined || o.save || o.label || o.store !== undefined) checkOutputArgs('count', args);
  const timed = Boolean(o.time);

  const run = await runUnderLens<CountData>('count', 'count', { functions: unique, time: timed }, argv);
  const data = run.result.data;
  if (!data || !Array.isArray(data.functions)) {
    finishLens('count', run);
    throw new CliError('count: the count lens returned no counts', 'see the warnings above; run again', run.exitCode || 1);
  }
  const meta = lensMeta(run, { backend: `pylens-count (${data.mechanism})`, mode: 'calls' });
  const overhead = run.result.overhead;
  if (o.json) {
    process.stdout.write(
      JSON.stringify(
        {
          mechanism: data.mechanism,
          time: data.time,
          functions: countRows(data),
          overhead,
          exitCode: run.exitCode,
          python: run.result.python.version,
        },
        null,
        2,
      ) + '\n',
    );
  } else {
    process.stdout.write(formatCountTable(data));
  }
  if (o.output !== undefined) {
    const profile = buildCountProfile(data, meta);
    const abs = writeLensProfile('count', args, profile, `${meta.name ?? 'python'}: call counts`);
    process.stderr.write(`pylens count: wrote ${abs}\n`);
  } else saveIfAsked('count', args, buildCountProfile(data, meta));
  if (overhead && !o.json) {
    process.stderr.write(`pylens count: ${data.mechanism}, overhead ${overheadText(overhead)}\n`);
  }
  const code = finishLens('count', run);
  const unresolved = data.functions.filter((f) => !f.resolved);
  if (unresolved.length > 0) {
    // one line per name saying why, the last one carried by the error
    for (const f of unresolved.slice(0, -1)) process.stderr.write(`pylens count: error: ${f.error ?? `${f.spec} was never resolved`}\n`);
    const last = unresolved.at(-1)!;
    throw new CliError(
      `count: ${last.error ?? `${last.spec} was never resolved`}`,
      'name functions as module:qualname of a module the program imports (use __main__ for the script, outer.<locals>.inner for nested functions)',
      code !== 0 ? code : EXIT_USAGE,
    );
  }
  return code;
}
