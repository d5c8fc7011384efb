/**
 * The file commands: convert, view, report. Thin: read → import → query → export.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Profile, SampleState } from '../model/profile.ts';
import { SAMPLE_STATES } from '../model/profile.ts';
import { filterSamples, focus, mergeThreads, type AggregateBy } from '../model/query.ts';
import { IMPORTERS, importProfile } from '../formats/index.ts';
import { OUTPUTS, outputById, outputForPath } from '../render/outputs.ts';
import { InputFile, type Exporter } from '../formats/types.ts';
import { profileHeader } from '../render/header.ts';
import { countsCalls, reportDoc } from '../render/report-json.ts';
import { renderTopTable, renderWideBottoms } from '../render/top.ts';
import { stateSplits, statesPresent, wideBottoms } from '../analysis/report.ts';
import { asyncWaits } from '../analysis/tasks.ts';
import { renderAsyncWaits } from '../render/tasks.ts';
import { renderPstatsTable, type PstatsSort } from '../render/pstats-table.ts';
import { functionStats } from '../formats/pstats.ts';
import { CliError } from './errors.ts';
import { UsageError, type CommandSpec, type OptionSpec, type Parsed } from './args.ts';

const INPUT_FORMATS = () => IMPORTERS.map((i) => i.id);
const OUTPUT_FORMATS = () => OUTPUTS.map((e) => e.id);

/** Options every file command shares: input format and the core filters. */
export const filterOptions: OptionSpec[] = [
  { name: 'from', type: 'string', value: 'FORMAT', help: 'input format, when detection should not decide' },
  { name: 'tid', type: 'list', value: 'TID[,TID…]', help: 'keep only these thread ids' },
  { name: 'pid', type: 'list', value: 'PID[,PID…]', help: 'keep only these process ids' },
  { name: 'state', type: 'list', value: 'STATE[,…]', help: `keep only samples in these states (${SAMPLE_STATES.join(', ')})` },
  { name: 'focus', type: 'string', value: 'FUNC', help: 'keep samples through FUNC, re-rooted at it' },
  { name: 'task', type: 'list', value: 'NAME[,…]', help: "keep only these asyncio tasks' samples (record --async: the `task NAME` roots); '*' for every task" },
  { name: 'no-tasks', type: 'boolean', help: 'leave asyncio task samples out: the threads alone' },
  { name: 'merge-threads', type: 'boolean', help: 'put every thread of a process together' },
  { name: 'value', type: 'string', value: 'NAME', help: 'value column to use when the profile has several (e.g. cpu, samples, self)' },
];

export const convertSpec: CommandSpec = {
  name: 'convert',
  summary: 'Convert a profile from any supported format to another.',
  usage: 'pylens convert IN -o OUT [--format FORMAT] [options]',
  positionals: { min: 1, max: 1 },
  options: [
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'output file (format from its extension unless --format is given)' },
    { name: 'format', short: 'f', type: 'string', value: 'FORMAT', help: 'output format' },
    { name: 'nolineno', type: 'boolean', help: 'leave line numbers out of frame labels (folded, svg)' },
    { name: 'full-filenames', type: 'boolean', help: 'full file paths in frame labels instead of base names' },
    ...filterOptions,
  ],
  examples: [
    'pylens convert perf-script.txt -o app.speedscope.json',
    'pylens convert profile.pstats -o profile.pb.gz        # pprof, opens in go tool pprof',
    'pylens convert stacks.folded -o flame.svg --focus handle_request',
    'pylens convert app.pylens -o app.folded --state on-cpu --nolineno',
  ],
};

export const viewSpec: CommandSpec = {
  name: 'view',
  summary: 'Write an interactive, self-contained HTML flamegraph of a profile and print its path.',
  usage: 'pylens view IN [-o OUT.html] [options]',
  positionals: { min: 1, max: 1 },
  options: [{ name: 'output', short: 'o', type: 'string', value: 'OUT.html', help: 'where to write the page (default: IN’s name with .html, in the current directory)' }, ...filterOptions],
  examples: ['pylens view perf-script.txt', 'pylens view profile.pstats -o /tmp/profile.html', 'pylens view app.pylens --tid 4242'],
};

export const reportSpec: CommandSpec = {
  name: 'report',
  summary: 'Print the top functions (or lines) of a profile: self and total, counts and percentages.',
  usage: 'pylens report IN [--by function|line|file|module] [--limit N] [--json] [options]',
  positionals: { min: 1, max: 1 },
  options: [
    { name: 'by', type: 'string', value: 'KEY', choices: ['function', 'line', 'file', 'module'], help: 'aggregate by function (default), line, file or module (a call-counting profile then gets the top table instead of pstats columns)' },
    { name: 'sort', type: 'string', value: 'KEY', choices: ['cumulative', 'self', 'calls'], help: 'order of the pstats table of call-counting profiles (pstats, trace, yappi): cumulative (default), self (tottime) or calls' },
    { name: 'limit', short: 'n', type: 'number', value: 'N', help: 'rows to show (default 20; 0 = all)' },
    { name: 'json', type: 'boolean', help: 'machine-readable output' },
    { name: 'full-filenames', type: 'boolean', help: 'full file paths instead of base names' },
    ...filterOptions,
  ],
  examples: ['pylens report profile.pstats                 # ncalls tottime percall cumtime percall, like pstats', 'pylens report profile.pstats --sort self -n 10', 'pylens report perf-script.txt --by line --limit 10', 'pylens report app.pylens --json | jq .rows[0]', 'pylens report flame.html                     # pylens HTML and SVG carry their profile'],
};

export function readInput(path: string): InputFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError(`cannot read '${path}': no such file`, 'check the path (relative paths are from the current directory)');
    if (code === 'EACCES') throw new CliError(`cannot read '${path}': permission denied`, 'run as a user who can read it, or copy it somewhere readable');
    if (code === 'EISDIR') throw new CliError(`cannot read '${path}': it is a directory`, 'pass a profile file');
    throw new CliError(`cannot read '${path}': ${(e as Error).message}`, 'check the path and permissions');
  }
  return new InputFile(bytes, path);
}

function numberList(cmd: string, name: string, v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  return (v as string[]).map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n)) throw new UsageError(cmd, `--${name} expects integers, got '${s}'`);
    return n;
  });
}

/** Read, import and apply the shared filters (to `path`, default the first argument). */
export function loadProfile(cmd: string, args: Parsed, path: string = args.positionals[0]!): Profile {
  const from = args.options.from as string | undefined;
  if (from && !INPUT_FORMATS().includes(from)) throw new UsageError(cmd, `--from must be one of ${INPUT_FORMATS().join(', ')}; got '${from}'`);
  let p = importProfile(readInput(path), from).profile;
  const states = args.options.state as string[] | undefined;
  for (const s of states ?? []) if (!SAMPLE_STATES.includes(s as SampleState)) throw new UsageError(cmd, `--state must be among ${SAMPLE_STATES.join(', ')}; got '${s}'`);
  const tids = numberList(cmd, 'tid', args.options.tid);
  const pids = numberList(cmd, 'pid', args.options.pid);
  const tasks = args.options.task as string[] | undefined;
  const noTasks = Boolean(args.options['no-tasks']);
  if (tasks && noTasks) throw new UsageError(cmd, '--task and --no-tasks exclude each other');
  if (tids || pids || states || tasks || noTasks) p = filterSamples(p, { tids, pids, states: states as SampleState[] | undefined, ...(tasks ? { tasks } : {}), ...(noTasks ? { noTasks } : {}) });
  if (args.options.focus) p = focus(p, args.options.focus as string);
  if (args.options['merge-threads']) p = mergeThreads(p);
  const value = args.options.value as string | undefined;
  if (value !== undefined) {
    const vi = p.valueTypes.findIndex((v) => v.name === value);
    if (vi < 0) throw new UsageError(cmd, `--value: this profile has ${p.valueTypes.map((v) => v.name).join(', ')}; got '${value}'`);
    p.defaultValue = vi;
  }
  if (p.samples.length === 0 && (tids || pids || states || tasks || noTasks || args.options.focus)) {
    process.stderr.write(`pylens ${cmd}: warning: no samples left after filtering\n`);
  }
  return p;
}

/** The exporter for --format, else for the output's extension; a usage error when neither names one. */
export function pickExporter(command: string, out: string, fmt: string | undefined): Exporter {
  const exporter = fmt ? outputById(fmt) : outputForPath(out);
  if (!exporter) {
    throw new UsageError(command, fmt ? `--format must be one of ${OUTPUT_FORMATS().join(', ')}; got '${fmt}'` : `cannot tell the output format from '${out}'; pass --format (${OUTPUT_FORMATS().join(', ')})`);
  }
  return exporter;
}

/** Write a command's output file (creating its folder); returns the absolute path. */
export function writeOutput(path: string, data: Uint8Array | string): string {
  const abs = resolve(path);
  try {
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, data);
  } catch (e) {
    throw new CliError(`cannot write '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'choose a writable location with -o');
  }
  return abs;
}

export function runConvert(args: Parsed): number {
  const out = args.options.output as string | undefined;
  if (!out) throw new UsageError('convert', 'missing -o OUT (the file to write)');
  const fmt = args.options.format as string | undefined;
  const exporter = pickExporter('convert', out, fmt);
  const p = loadProfile('convert', args);
  const data = exporter.write(p, { lineno: !args.options.nolineno, fullFilenames: Boolean(args.options['full-filenames']), title: p.meta.name ?? basename(args.positionals[0]!) });
  const abs = writeOutput(out, data);
  process.stdout.write(`${abs}\n`);
  return 0;
}

export function runView(args: Parsed): number {
  const input = args.positionals[0]!;
  const out = (args.options.output as string | undefined) ?? `${basename(input).replace(/(\.[A-Za-z0-9]+)+$/, '') || 'profile'}.html`;
  const p = loadProfile('view', args);
  const html = outputById('html')!.write(p, { title: p.meta.name ?? basename(input) });
  const abs = writeOutput(out, html);
  process.stdout.write(`${abs}\n`);
  return 0;
}

export function runReport(args: Parsed): number {
  const p = loadProfile('report', args);
  const by = (args.options.by as AggregateBy | undefined) ?? 'function';
  const limit = (args.options.limit as number | undefined) ?? 20;
  if (!Number.isInteger(limit) || limit < 0) throw new UsageError('report', `--limit expects a whole number ≥ 0, got ${limit}`);
  const sort = (args.options.sort as PstatsSort | undefined) ?? 'cumulative';
  const full = Boolean(args.options['full-filenames']);
  // call-counting profiles get pstats's columns unless a top table is asked for (--by)
  const pstats = countsCalls(p) && args.options.by === undefined;
  if (args.options.json) {
    process.stdout.write(JSON.stringify(reportDoc(p, { by, limit, sort, fullFilenames: full, pstats }), null, 2) + '\n');
    return 0;
  }
  if (pstats) {
    process.stdout.write(profileHeader(p) + renderPstatsTable(functionStats(p), { sort, top: limit }));
    return 0;
  }
  // where the profile has several states: each function's split; where the time fans out
  const states = statesPresent(p).filter((s) => s !== 'unknown');
  const splits = states.length >= 2 ? stateSplits(p, { by }) : undefined;
  const bottoms = by === 'file' || by === 'module' ? [] : wideBottoms(p);
  // a record --async profile: where the tasks wait
  const waits = asyncWaits(p);
  process.stdout.write(profileHeader(p) + (waits ? renderAsyncWaits(waits) : '') + renderWideBottoms(bottoms) + renderTopTable(p, { by, limit, fullFilenames: full, ...(splits ? { splits } : {}) }));
  return 0;
}
