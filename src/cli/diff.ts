/**
 * `pylens diff BASE NEW`: what changed between two profiles (or two sets of repeated runs),
 * with sampling noise taken into account (src/analysis/diff.ts); text, JSON, or a
 * differential flamegraph (src/render/diff.ts). `--fail-on-regression POINTS` makes the exit
 * code say whether any function grew significantly by more than POINTS, for CI.
 */
import { basename } from 'node:path';
import { diffProfiles } from '../analysis/diff.ts';
import { diffJson, renderDiffHtml, renderDiffSvg, renderDiffText } from '../render/diff.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { filterOptions, loadProfile, writeOutput } from './commands.ts';
import { CliError } from './errors.ts';

export const diffSpec: CommandSpec = {
  name: 'diff',
  summary: 'Compare two profiles (or sets of runs): what grew, what shrank, and whether it is more than sampling noise.',
  usage: 'pylens diff BASE NEW | --base A B … --new C D … [--by function|line] [--json] [-o diff.html|diff.svg] [--fail-on-regression POINTS]',
  positionals: { min: 0, max: 2 },
  options: [
    { name: 'base', type: 'list', value: 'FILE…', help: 'the baseline runs (several pool repeated runs; also comma-separated)' },
    { name: 'new', type: 'list', value: 'FILE…', help: 'the runs to compare with the baseline' },
    { name: 'by', type: 'string', value: 'KEY', choices: ['function', 'line'], help: 'compare by function (default) or by line' },
    { name: 'limit', short: 'n', type: 'number', value: 'N', help: 'rows to show (default 20; 0 = all)' },
    { name: 'json', type: 'boolean', help: 'machine-readable output: a `functions` array with baseShare, newShare, delta, significant, pValue' },
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'also write a differential flamegraph (.html or .svg)' },
    { name: 'alpha', type: 'number', value: 'Q', help: 'false discovery rate at which a change counts as significant (default 0.05)' },
    { name: 'fail-on-regression', type: 'number', value: 'POINTS', help: 'exit 3 when a function’s share grew significantly by more than POINTS percentage points' },
    { name: 'full-filenames', type: 'boolean', help: 'full file paths instead of the shortest unambiguous ones' },
    ...filterOptions,
  ],
  examples: [
    'pylens diff before.pylens after.pylens',
    'pylens diff before.pylens after.pylens -o diff.html        # differential flamegraph',
    'pylens diff --base b1.pylens b2.pylens b3.pylens --new n1.pylens n2.pylens n3.pylens',
    'pylens diff main.pylens pr.pylens --fail-on-regression 2 --json > diff.json',
  ],
};

/** `--base a b c --new d e` → `--base a --base b --base c --new d --new e` (values up to the next option). */
export function spreadSides(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--base' || a === '--new') {
      let j = i + 1;
      for (; j < argv.length && !argv[j]!.startsWith('-'); j++) out.push(a, argv[j]!);
      if (j === i + 1) out.push(a); // no value: the parser says so
      i = j - 1;
    } else out.push(a);
  }
  return out;
}

export const EXIT_REGRESSION = 3;

export function runDiff(args: Parsed): number {
  const baseFiles = (args.options.base as string[] | undefined) ?? [];
  const newFiles = (args.options.new as string[] | undefined) ?? [];
  const pos = args.positionals;
  if (baseFiles.length || newFiles.length) {
    if (pos.length) throw new UsageError('diff', `give the files either as BASE NEW or with --base/--new, not both (extra: ${pos.join(' ')})`);
    if (!baseFiles.length || !newFiles.length) throw new UsageError('diff', `--base and --new both need at least one file`);
  } else if (pos.length !== 2) throw new UsageError('diff', `needs two profiles: ${diffSpec.usage}`);
  const bases = baseFiles.length ? baseFiles : [pos[0]!];
  const news = newFiles.length ? newFiles : [pos[1]!];
  const by = (args.options.by as 'function' | 'line' | undefined) ?? 'function';
  const limit = (args.options.limit as number | undefined) ?? 20;
  if (!Number.isInteger(limit) || limit < 0) throw new UsageError('diff', `--limit expects a whole number ≥ 0, got ${limit}`);
  const alpha = (args.options.alpha as number | undefined) ?? 0.05;
  if (!(alpha > 0 && alpha < 1)) throw new UsageError('diff', `--alpha expects a number between 0 and 1, got ${alpha}`);
  const failOn = args.options['fail-on-regression'] as number | undefined;
  if (failOn !== undefined && !(failOn >= 0)) throw new UsageError('diff', `--fail-on-regression expects points ≥ 0, got ${failOn}`);
  const out = args.options.output as string | undefined;
  if (out !== undefined && !/\.(html?|svg)$/i.test(out)) throw new UsageError('diff', `-o writes a differential flamegraph: give a .html or .svg file, not '${out}'`);
  const load = (f: string) => {
    const p = loadProfile('diff', args, f);
    if (p.samples.length === 0) throw new CliError(`'${f}' has no samples${args.options.state || args.options.tid || args.options.pid || args.options.focus ? ' after filtering' : ''}`, 'diff profiles that hold samples (check the filters)');
    return p;
  };
  const value = args.options.value as string | undefined;
  let d;
  try {
    d = diffProfiles(bases.map(load), news.map(load), { by, alpha, ...(value !== undefined ? { value } : {}) });
  } catch (e) {
    if (e instanceof RangeError) throw new CliError(e.message, 'diff profiles of the same kind (same value: samples or time, calls, bytes)');
    throw e;
  }
  const full = Boolean(args.options['full-filenames']);
  if (out !== undefined) {
    const title = `pylens diff: ${bases.map((f) => basename(f)).join(' ')} → ${news.map((f) => basename(f)).join(' ')}`;
    const abs = writeOutput(out, /\.svg$/i.test(out) ? renderDiffSvg(d, { title, fullFilenames: full }) : renderDiffHtml(d, { title, fullFilenames: full }));
    process.stderr.write(`pylens diff: differential flamegraph written to ${abs}\n`);
  }
  if (args.options.json) process.stdout.write(JSON.stringify(diffJson(d, { fullFilenames: full }), null, 2) + '\n');
  else process.stdout.write(renderDiffText(d, { limit, fullFilenames: full }));
  if (failOn !== undefined) {
    const bad = d.functions.filter((f) => f.significant && f.delta > failOn);
    if (bad.length) {
      process.stderr.write(`pylens diff: ${bad.length} regression${bad.length === 1 ? '' : 's'} over ${failOn} points: ${bad.slice(0, 5).map((f) => `${f.name} ${f.delta > 0 ? '+' : ''}${f.delta.toFixed(2)}`).join(', ')}\n`);
      return EXIT_REGRESSION;
    }
  }
  return 0;
}
