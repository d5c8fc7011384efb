/**
 * `pylens check [NAME…]`: performance budgets from pyproject.toml (`[[tool.pylens.check]]`) or
 * pylens.toml, enforced in CI. Each check runs its command with the fewest lenses its budgets
 * need — call counts under the count lens once, wall time `repeat` times with no lens at all —
 * then the table (budget, measured with its interval, verdict) goes to stdout; `--junit FILE`,
 * `--json`, and under GitHub Actions annotations and a step summary. Exit 1 when a budget is
 * broken or could not be measured, 2 on a configuration error.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkOutcome, judgeCount, judgeTimings, type BudgetResult, type CheckResult } from '../analysis/budgets.ts';
import type { CountData } from '../analysis/count.ts';
import { runLens } from '../capture/python/helper.ts';
import { githubAnnotations, markdownSummary, renderCheckTable, renderJUnit } from '../render/check.ts';
import type { CommandSpec, Parsed } from './args.ts';
import { findConfig, readChecks, type CheckSpec } from './check-config.ts';
import { CliError, EXIT_USAGE } from './errors.ts';

export const checkSpec: CommandSpec = {
  name: 'check',
  summary: 'Enforce performance budgets from pyproject.toml ([[tool.pylens.check]]): call counts and wall time, noise-aware; JUnit, GitHub annotations; exit 1 when one breaks.',
  usage: 'pylens check [NAME…] [--config FILE] [--junit FILE] [--json]',
  positionals: { min: 0, max: 1000 },
  options: [
    { name: 'config', type: 'string', value: 'FILE', help: 'the pyproject.toml or pylens.toml to read (default: ./pylens.toml, else ./pyproject.toml)' },
    { name: 'junit', type: 'string', value: 'FILE', help: 'also write JUnit XML there (a testcase per budget)' },
    { name: 'json', type: 'boolean', help: 'the results as JSON on stdout instead of the table' },
  ],
  examples: [
    'pylens check                                  # every check in ./pyproject.toml',
    'pylens check "orders endpoint" --junit pylens.xml',
    '# pyproject.toml:',
    '#   [[tool.pylens.check]]',
    '#   name = "orders endpoint"',
    '#   run = "python -m app.bench orders"',
    '#   repeat = 5',
    '#   calls = { "app.db:query" = { max = 3 } }',
    '#   wall-time = { max = "1.5 s" }',
  ],
};

export async function runCheck(args: Parsed): Promise<number> {
  const path = findConfig(args.options.config as string | undefined);
  let checks = readChecks(path);
  const wanted = args.positionals;
  if (wanted.length > 0) {
    const unknown = wanted.filter((w) => !checks.some((c) => c.name === w));
    if (unknown.length) throw new CliError(`check: no check named ${unknown.map((u) => JSON.stringify(u)).join(', ')} in ${path}`, `the checks there: ${checks.map((c) => JSON.stringify(c.name)).join(', ')}`, EXIT_USAGE);
    checks = checks.filter((c) => wanted.includes(c.name));
  }
  const results: CheckResult[] = [];
  for (const c of checks) {
    process.stderr.write(`pylens check: running "${c.name}"…\n`);
    results.push(await runOne(c, dirname(path)));
  }
  if (args.options.json) process.stdout.write(JSON.stringify({ config: path, checks: results, outcome: checkOutcome(results) }, null, 2) + '\n');
  else process.stdout.write(renderCheckTable(results));
  const junit = args.options.junit as string | undefined;
  if (junit !== undefined) {
    const p = resolve(junit);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, renderJUnit(results));
    process.stderr.write(`pylens check: wrote ${p}\n`);
  }
  if (process.env.GITHUB_ACTIONS === 'true') {
    process.stdout.write(githubAnnotations(results));
    const summary = process.env.GITHUB_STEP_SUMMARY;
    if (summary) appendFileSync(summary, markdownSummary(results));
  }
  const o = checkOutcome(results);
  return o.failed + o.errors > 0 ? 1 : 0;
}

async function runOne(c: CheckSpec, cwd: string): Promise<CheckResult> {
  const budgets: BudgetResult[] = [];
  if (c.calls.length > 0) {
    // exact counts: one run under the count lens (no sampling, no timing)
    const t0 = performance.now();
    let data: CountData | undefined;
    let error: string | undefined;
    try {
      const run = await withCwd(cwd, () => runLens<CountData>('count', { functions: c.calls.map((b) => b.fn), time: false }, c.run));
      if (run.exitCode !== 0) error = `the command exited ${run.howEnded}${run.result?.exit.exception ? ` (${run.result.exit.exception.type}${run.result.exit.exception.message ? `: ${run.result.exit.exception.message}` : ''})` : ''}`;
      else if (!run.result) error = `the command ended without the count lens's result: ${run.missing ?? 'no result'}`;
      else data = run.result.data;
    } catch (e) {
      error = (e as Error).message;
    }
    const seconds = (performance.now() - t0) / 1000;
    for (const b of c.calls) {
      const f = data?.functions.find((x) => x.spec === b.fn);
      const base = { budget: `calls ${b.fn} ≤ ${b.max}`, kind: 'calls' as const, limit: b.max, file: c.file, line: b.line, seconds };
      if (error !== undefined) budgets.push({ ...base, judged: null, error });
      else if (!f || !f.resolved) budgets.push({ ...base, judged: null, error: f?.error ?? `${b.fn} was never resolved: the program did not import that module, or it has no such function` });
      else budgets.push({ ...base, judged: judgeCount(f.calls, b.max), ...(f.codes[0] ? { source: { file: f.codes[0].file, line: f.codes[0].line } } : {}) });
    }
  }
  if (c.wallTime) {
    // wall time: the command alone, `repeat` times
    const t0 = performance.now();
    const times: number[] = [];
    let error: string | undefined;
    for (let i = 0; i < c.repeat && error === undefined; i++) {
      const r = await timed(c.run, cwd);
      if (r.error !== undefined) error = r.error;
      else times.push(r.seconds);
    }
    const base = { budget: `wall time ≤ ${fmt(c.wallTime.max)} (median of ${c.repeat})`, kind: 'wall-time' as const, limit: c.wallTime.max, file: c.file, line: c.wallTime.line, seconds: (performance.now() - t0) / 1000 };
    budgets.push(error !== undefined ? { ...base, judged: null, error } : { ...base, judged: judgeTimings(times, c.wallTime.max) });
  }
  return { name: c.name, file: c.file, line: c.line, budgets };
}

function fmt(s: number): string {
  return s >= 1 ? `${+s.toFixed(3)} s` : `${+(s * 1000).toFixed(3)} ms`;
}

/** run `fn` with the process's working directory set to `cwd` (the config's folder) */
async function withCwd<T>(cwd: string, fn: () => Promise<T>): Promise<T> {
  const before = process.cwd();
  process.chdir(cwd);
  try {
    return await fn();
  } finally {
    process.chdir(before);
  }
}

/** One run of the command with nothing attached: its wall time, or why it failed. */
function timed(argv: string[], cwd: string): Promise<{ seconds: number; error?: string }> {
  return new Promise((res) => {
    const t0 = performance.now();
    let err = '';
    const child = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString('utf8')).slice(-2000)));
    child.on('error', (e) => res({ seconds: 0, error: `cannot run ${argv[0]}: ${e.message}` }));
    child.on('close', (code, signal) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code === 0) res({ seconds });
      else res({ seconds, error: `the command exited ${signal ? `on ${signal}` : `with ${code}`}${err.trim() ? `: ${err.trim().split('\n').slice(-3).join(' | ')}` : ''}` });
    });
  });
}
