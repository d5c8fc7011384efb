/**
 * `pylens record -p PID`: sample a running CPython and write the profile (format from the
 * output's extension). Ctrl-C or SIGTERM stops sampling and writes what was collected.
 */
import { readFileSync } from 'node:fs';
import { sampleProcess } from '../capture/sampler/sampler.ts';
import { exporterById } from '../formats/index.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { attachError, requirePid } from './dump.ts';
import { pickExporter, writeOutput } from './commands.ts';

export const recordSpec: CommandSpec = {
  name: 'record',
  summary: 'Sample a running Python process and write a profile (HTML flamegraph by default).',
  usage: 'pylens record -p PID [-r HZ] [-d SECONDS] [-o OUT] [options]',
  positionals: { min: 0, max: 0 },
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'the Python process to sample' },
    { name: 'rate', short: 'r', type: 'number', value: 'HZ', help: 'samples per second (default 100)' },
    { name: 'frequency', short: 'F', type: 'number', value: 'HZ', help: 'same as --rate (perf’s spelling)' },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'stop after this long (default: until the target exits or Ctrl-C)' },
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'output file; format from its extension (default <program>-<time>.html)' },
    { name: 'format', short: 'f', type: 'string', value: 'FORMAT', help: 'output format (overrides the extension)' },
    { name: 'idle', short: 'i', type: 'boolean', help: 'include idle (not running) threads, marked as idle' },
    { name: 'gil', short: 'g', type: 'boolean', help: 'only samples of the thread holding the GIL' },
  ],
  examples: ['pylens record -p 4242 -d 30', 'pylens record -p 4242 -r 250 -o app.pylens', 'pylens record -p 4242 --idle -o wall.speedscope.json'],
};

function programName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().replace(/[^\w.-]+/g, '_') || 'python';
  } catch {
    return 'python';
  }
}

export async function runRecord(args: Parsed): Promise<number> {
  const pid = requirePid('record', args, 'launching a command comes later; start it and pass its PID');
  const rate = (args.options.rate as number | undefined) ?? (args.options.frequency as number | undefined) ?? 100;
  if (!(rate > 0 && rate <= 10_000)) throw new UsageError('record', `--rate must be between 0 and 10000 Hz, got ${rate}`);
  const duration = args.options.duration as number | undefined;
  if (duration !== undefined && !(duration > 0)) throw new UsageError('record', `--duration must be a positive number of seconds, got ${duration}`);
  const fmt = args.options.format as string | undefined;
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  const out = (args.options.output as string | undefined) ?? `${programName(pid)}-${stamp}.${fmt ? (exporterById(fmt)?.extension ?? '.html').replace(/^\./, '') : 'html'}`;
  const exporter = pickExporter('record', out, fmt);

  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let profile;
  try {
    profile = await sampleProcess(pid, { rateHz: rate, durationS: duration, idle: Boolean(args.options.idle), gilOnly: Boolean(args.options.gil), signal: abort.signal });
  } catch (e) {
    throw attachError(e, pid, 'record');
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  const abs = writeOutput(out, exporter.write(profile, { title: profile.meta.name ?? `pid ${pid}` }));
  const m = profile.meta;
  const achieved = m.extra?.achievedRateHz;
  process.stderr.write(
    `pylens record: ${m.sampleCount} samples, ${m.errorCount} errors` +
      (typeof achieved === 'number' ? `, ${achieved.toFixed(1)} Hz achieved` : '') +
      (m.overhead?.fraction !== undefined ? `, sampler CPU ${(100 * m.overhead.fraction).toFixed(1)} % of wall time` : '') +
      '\n',
  );
  process.stdout.write(`${abs}\n`);
  return 0;
}
