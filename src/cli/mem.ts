/**
 * `pylens mem -- python app.py`: where a Python program's memory goes, through CPython's
 * tracemalloc (python/pylens/_lens_mem.py): current and peak traced memory, RSS, the top
 * allocation lines, snapshots every --interval seconds with their diffs, the lines that
 * grow steadily ("memory creep"), and a flame graph of live bytes by allocation traceback
 * (alive at exit, or --at peak: the largest snapshot seen while running).
 */
import { memProfile, memReport, type MemData } from '../capture/python/mem.ts';
import { renderMemReport } from '../render/mem.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { CliError } from './errors.ts';
import { checkOutputArgs, commandArgv, finishLens, lensMeta, outputOptions, overheadText, runUnderLens, writeLensProfile } from './interp.ts';

export const memSpec: CommandSpec = {
  name: 'mem',
  summary: 'Where a Python program’s memory goes (tracemalloc): current and peak, top allocation lines and tracebacks, snapshots over time and the lines that keep growing.',
  usage: 'pylens mem [--interval S] [--top N] [--frames N] [--at exit|peak] [--min-growth BYTES] [-o OUT] [--json] -- python app.py [args…]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    ...outputOptions,
    { name: 'interval', type: 'number', value: 'S', help: 'seconds between snapshots (default 1; 0: only the one at exit)' },
    { name: 'top', type: 'number', value: 'N', help: 'lines in the report (default 15)' },
    { name: 'frames', type: 'number', value: 'N', help: 'traceback depth tracemalloc records (default 16; more costs more per allocation)' },
    { name: 'at', type: 'string', value: 'WHEN', choices: ['exit', 'peak'], help: 'the flame graph: what is alive at exit (default) or at the largest snapshot seen while running' },
    { name: 'min-growth', type: 'number', value: 'BYTES', help: 'the least growth a line needs to be flagged as growing (default 65536)' },
    { name: 'full-filenames', type: 'boolean', help: 'full paths in the report' },
    { name: 'json', type: 'boolean', help: 'the report as JSON on stdout' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'no report on stdout' },
  ],
  examples: [
    'pylens mem -- python app.py',
    'pylens mem --interval 5 --top 20 -- python -m myservice',
    'pylens mem --at peak -o peak.html -- python batch.py input.csv',
    'pylens mem --json --interval 0.5 -- python leak.py > mem.json',
  ],
};

export async function runMem(args: Parsed): Promise<number> {
  const o = args.options;
  const argv = commandArgv('mem', args);
  const interval = (o.interval as number | undefined) ?? 1;
  if (!(interval >= 0)) throw new UsageError('mem', `--interval must be 0 or more seconds, got ${interval}`);
  if (interval > 0 && interval < 0.05) throw new UsageError('mem', `--interval must be at least 0.05 s (or 0 for none), got ${interval}`);
  const top = (o.top as number | undefined) ?? 15;
  if (!(Number.isInteger(top) && top > 0)) throw new UsageError('mem', `--top must be a whole number > 0, got ${top}`);
  const frames = (o.frames as number | undefined) ?? 16;
  if (!(Number.isInteger(frames) && frames >= 1 && frames <= 1000)) throw new UsageError('mem', `--frames must be a whole number from 1 to 1000, got ${frames}`);
  const minGrowth = (o['min-growth'] as number | undefined) ?? 64 * 1024;
  if (!(minGrowth >= 0)) throw new UsageError('mem', `--min-growth must be 0 or more bytes, got ${minGrowth}`);
  const at = ((o.at as string | undefined) ?? 'exit') as 'exit' | 'peak';
  checkOutputArgs('mem', args);

  const run = await runUnderLens<MemData>('mem', 'mem', { interval, top, frames }, argv);
  const data = run.result.data;
  if (!data || !Array.isArray(data.snapshots)) {
    for (const w of run.result.warnings) process.stderr.write(`pylens mem: warning: ${w}\n`);
    throw new CliError('mem: the helper recorded no memory data', 'see the warnings above', run.exitCode || 1);
  }
  const meta = lensMeta(run, { backend: 'tracemalloc', mode: 'allocations' });
  const { profile, used } = memProfile(data, meta, at);
  const name = profile.meta.name ?? 'python';
  const abs = writeLensProfile('mem', args, profile, `${name}: live memory by allocation traceback (${used === 'peak' ? 'largest snapshot' : 'at exit'})`);
  const report = memReport(data, { top, minBytes: minGrowth });
  const ov = run.result.overhead;
  if (o.json) {
    process.stdout.write(JSON.stringify({ output: abs, flamegraph: used, overhead: ov, exitCode: run.exitCode, ...report }, null, 2) + '\n');
  } else if (!o.quiet) {
    process.stdout.write(renderMemReport(report, { fullFilenames: Boolean(o['full-filenames']) }));
  }
  if (at === 'peak' && used === 'exit') process.stderr.write('pylens mem: note: no snapshot while running was larger than the one at exit; the flame graph shows what is alive at exit\n');
  process.stderr.write(`pylens mem: ${data.snapshots.length} snapshots, tracebacks of ${data.options.frames} frames; overhead ${overheadText(ov)}\n`);
  process.stderr.write(`pylens mem: wrote ${abs}\n`);
  return finishLens('mem', run);
}
