/**
 * `pylens check [NAME…]`: performance budgets from pyproject.toml (`[[tool.pylens.check]]`) or
 * pylens.toml, enforced in CI. Each check runs its command with the fewest lenses its budgets
 * need — call counts under the count lens once, wall time `repeat` times with no lens at all,
 * a pytest check's @pytest.mark.pylens budgets in one pytest run with the plugin measuring —
 * then the table (budget, measured with its interval, verdict) goes to stdout; `--junit FILE`,
 * `--json`, and under GitHub Actions annotations and a step summary. Exit 1 when a budget is
 * broken or could not be measured, 2 on a configuration error.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { checkOutcome, judgeCount, judgeGrowth, judgeRegression, judgeShare, judgeTimings, type BudgetResult, type CheckResult } from '../analysis/budgets.ts';
import type { CountData } from '../analysis/count.ts';
import { memReport, type MemData } from '../analysis/mem.ts';
import { decodePylens, encodePylens } from '../formats/pylens.ts';
import { diffProfiles } from '../analysis/diff.ts';
import type { Profile } from '../model/profile.ts';
import { frameInfo, stackFrames } from '../model/profile.ts';
import { formatBytes } from '../render/page/units.ts';
import { runLens } from '../capture/python/helper.ts';
import { githubAnnotations, markdownSummary, renderCheckTable, renderJUnit } from '../render/check.ts';
import { renderDiffHtml } from '../render/diff.ts';
import type { CommandSpec, Parsed } from './args.ts';
import { findConfig, PYTHON_PACKAGE_DIR, readChecks, type CheckSpec } from './check-config.ts';
import { CliError, EXIT_USAGE } from './errors.ts';

export const checkSpec: CommandSpec = {
  name: 'check',
  summary: 'Enforce performance budgets from pyproject.toml ([[tool.pylens.check]]) and pytest markers: calls, wall time, CPU shares, memory, noise-aware; JUnit, GitHub annotations; exit 1 when one breaks.',
  usage: 'pylens check [NAME…] [--config FILE] [--baseline DIR] [--update-baseline] [--junit FILE] [--json]',
  positionals: { min: 0, max: 1000 },
  options: [
    { name: 'config', type: 'string', value: 'FILE', help: 'the pyproject.toml or pylens.toml to read (default: ./pylens.toml, else ./pyproject.toml)' },
    { name: 'junit', type: 'string', value: 'FILE', help: 'also write JUnit XML there (a testcase per budget)' },
    { name: 'json', type: 'boolean', help: 'the results as JSON on stdout instead of the table' },
    { name: 'baseline', type: 'string', value: 'DIR', help: 'where baselines are kept (default .pylens/baselines next to the config; commit it)' },
    { name: 'artifacts', type: 'string', value: 'DIR', help: 'where a broken sampled budget leaves its profile and differential flamegraph (default ./pylens-check)' },
    { name: 'update-baseline', type: 'boolean', help: 'run the checks and write their baselines (timings and sampled profiles) instead of comparing' },
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
    '#   [[tool.pylens.check]]',
    '#   name = "perf tests"',
    '#   pytest = "tests/perf"                      # budgets from @pytest.mark.pylens(calls=…, peak_memory=…)',
  ],
};

export const pythonpathSpec: CommandSpec = {
  name: 'pythonpath',
  summary: "Print the folder of pylens's Python package, for PYTHONPATH: the pytest plugin (pytest -p pylens.pytest) and pylens.region.",
  usage: 'pylens pythonpath',
  positionals: { min: 0, max: 0 },
  options: [],
  examples: ['PYTHONPATH="$(pylens pythonpath)" pytest -p pylens.pytest tests/perf'],
};

export async function runPythonpath(): Promise<number> {
  process.stdout.write(PYTHON_PACKAGE_DIR + '\n');
  return 0;
}

export async function runCheck(args: Parsed): Promise<number> {
  const path = findConfig(args.options.config as string | undefined);
  let checks = await readChecks(path);
  const wanted = args.positionals;
  if (wanted.length > 0) {
    const unknown = wanted.filter((w) => !checks.some((c) => c.name === w));
    if (unknown.length) throw new CliError(`check: no check named ${unknown.map((u) => JSON.stringify(u)).join(', ')} in ${path}`, `the checks there: ${checks.map((c) => JSON.stringify(c.name)).join(', ')}`, EXIT_USAGE);
    checks = checks.filter((c) => wanted.includes(c.name));
  }
  const update = Boolean(args.options['update-baseline']);
  const baseDir = resolve(dirname(path), (args.options.baseline as string | undefined) ?? '.pylens/baselines');
  const results: CheckResult[] = [];
  for (const c of checks) {
    process.stderr.write(`pylens check: running "${c.name}"…\n`);
    const ctx: BaselineCtx = { overheads: [], dir: baseDir, update, baseline: update ? undefined : readBaseline(baseDir, c.name), fresh: {} };
    const result = await runOne(c, dirname(path), ctx);
    results.push(result);
    // a broken sampled budget: the profile, and against the baseline a differential flamegraph, as CI artifacts
    const broken = result.budgets.filter((b) => b.judged?.verdict === 'fail' && (b.kind === 'cpu-share' || b.kind === 'no-regression'));
    if (broken.length > 0 && ctx.fresh.profiles?.length) {
      const dir = resolve((args.options.artifacts as string | undefined) ?? 'pylens-check');
      mkdirSync(dir, { recursive: true });
      const prof = join(dir, `${slug(c.name)}.pylens`);
      writeFileSync(prof, encodePylens(ctx.fresh.profiles[0]!));
      const wrote = [prof];
      if (broken.some((b) => b.kind === 'no-regression') && ctx.baseline?.profiles?.length) {
        const html = join(dir, `${slug(c.name)}.diff.html`);
        writeFileSync(html, renderDiffHtml(diffProfiles(ctx.baseline.profiles, ctx.fresh.profiles), { title: `pylens check: ${c.name} — baseline → now` }));
        wrote.push(html);
      }
      process.stderr.write(`pylens check: "${c.name}" broke a budget; wrote ${wrote.join(', ')}\n`);
    }
    if (update) {
      const wrote = writeBaseline(baseDir, c, ctx.fresh);
      process.stderr.write(`pylens check: baseline of "${c.name}" written: ${wrote}\n`);
    }
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

/** A check's baseline (timings, sampled profiles), the one being written, and whether this run writes it. */
interface BaselineCtx {
  /** the overheads the lenses of this check reported about themselves (max-overhead) */
  overheads: { lens: string; fraction: number }[];
  dir: string;
  update: boolean;
  baseline: Baseline | undefined;
  fresh: Baseline;
}

interface Baseline {
  wallTimes?: number[];
  profiles?: Profile[];
}

function noBaseline(ctx: BaselineCtx): string {
  return `no baseline in ${ctx.dir}: run pylens check --update-baseline and commit that folder`;
}

async function runOne(spec: CheckSpec, cwd: string, ctx: BaselineCtx): Promise<CheckResult> {
  let c = spec;
  const budgets: BudgetResult[] = [];
  // a baseline needs the runs the budgets against it compare: timings and sampled profiles
  if (ctx.update && !c.wallTime) c = { ...c, wallTime: { line: c.line } };
  // a pytest check: one run with the plugin measuring each test's @pytest.mark.pylens budgets
  if (c.pytest) budgets.push(...(await pytestBudgets(c, cwd, !hasOwnBudgets(c))));
  if (c.calls.length > 0) {
    // exact counts: one run under the count lens (no sampling, no timing)
    const t0 = performance.now();
    const { data, error } = await underLens<CountData>('count', { functions: c.calls.map((b) => b.fn), time: false }, c, cwd, ctx);
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
      const r = await timed(c.run, cwd, envOf(c));
      if (r.error !== undefined) error = r.error;
      else times.push(r.seconds);
    }
    const seconds = (performance.now() - t0) / 1000;
    if (error === undefined) ctx.fresh.wallTimes = times;
    if (c.wallTime.max !== undefined) {
      const base = { budget: `wall time ≤ ${fmt(c.wallTime.max)} (median of ${c.repeat})`, kind: 'wall-time' as const, limit: c.wallTime.max, file: c.file, line: c.wallTime.line, seconds };
      budgets.push(error !== undefined ? { ...base, judged: null, error } : { ...base, judged: judgeTimings(times, c.wallTime.max) });
    }
    if (c.wallTime.regression !== undefined) {
      const allowed = c.wallTime.regression;
      const base = { budget: `wall time ≤ baseline + ${+(100 * allowed).toFixed(2)}%`, kind: 'wall-regression' as const, limit: allowed, file: c.file, line: c.wallTime.line, seconds };
      const was = ctx.baseline?.wallTimes;
      if (error !== undefined) budgets.push({ ...base, judged: null, error });
      else if (ctx.update) budgets.push({ ...base, judged: { verdict: 'pass', value: 0 }, note: 'baseline written' });
      else if (!was || was.length === 0) budgets.push({ ...base, judged: null, error: noBaseline(ctx) });
      else budgets.push({ ...base, judged: judgeRegression(times, was, allowed) });
    }
  }
  if (c.cpuShare.length > 0 || c.noRegression) {
    const sampled = await sampledRuns(c, cwd);
    if (c.cpuShare.length > 0) budgets.push(...cpuShares(c, cwd, sampled));
    if (c.noRegression) budgets.push(noRegression(c, ctx, sampled));
    if (!('error' in sampled)) {
      ctx.fresh.profiles = sampled.profiles;
      for (const p of sampled.profiles) if (p.meta.overhead?.fraction != null) ctx.overheads.push({ lens: 'sampler', fraction: p.meta.overhead.fraction });
    }
  }
  if (c.peakMemory || c.noMemoryGrowth) budgets.push(...(await memory(c, cwd, ctx)));
  if (c.maxOverhead) {
    const worst = ctx.overheads.reduce<{ lens: string; fraction: number } | undefined>((a, o) => (a === undefined || o.fraction > a.fraction ? o : a), undefined);
    const base = { budget: `lens overhead ≤ ${+(100 * c.maxOverhead.max).toFixed(2)}%`, kind: 'max-overhead' as const, limit: c.maxOverhead.max, file: c.file, line: c.maxOverhead.line, seconds: 0 };
    budgets.push(worst === undefined ? { ...base, judged: { verdict: 'unsure', value: 0 }, note: 'no lens of this check reported its overhead as a share' } : { ...base, judged: { verdict: worst.fraction <= c.maxOverhead.max ? 'pass' : 'fail', value: worst.fraction }, note: worst.lens });
  }
  return { name: c.name, file: c.file, line: c.line, budgets };
}

function hasOwnBudgets(c: CheckSpec): boolean {
  return c.calls.length > 0 || c.wallTime !== undefined || c.cpuShare.length > 0 || c.peakMemory !== undefined || c.noMemoryGrowth !== undefined || c.noRegression !== undefined;
}

/** what python/pylens/pytest.py writes to PYLENS_PYTEST_REPORT */
interface PytestReport {
  format: 'pylens-pytest';
  version: number;
  exitstatus: number;
  tests: {
    nodeid: string;
    file: string;
    line: number;
    outcome: 'passed' | 'failed' | 'skipped' | 'error' | null;
    message: string | null;
    budgets: { kind: 'calls' | 'peak-memory'; spec?: string; max: number; text?: string; value: number | null; verdict: 'pass' | 'fail' | null; error: string | null; source: { file: string; line: number } | null }[];
  }[];
}

/** pytest's exit statuses that mean it did not run the tests through (3 internal error, 4 usage, 5 none collected) */
const PYTEST_EXIT: Record<number, string> = { 2: 'was interrupted', 3: 'hit an internal error', 4: 'was used wrongly', 5: 'collected no tests' };

/**
 * A pytest check's marker budgets: pytest run once with the plugin measuring (python/pylens/pytest.py),
 * a row per test and budget, and a row for each test that failed for another reason.
 */
async function pytestBudgets(c: CheckSpec, cwd: string, onlyMarkers: boolean): Promise<BudgetResult[]> {
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'pylens-pytest-'));
  const file = join(dir, 'report.json');
  const line = c.pytest!.line;
  try {
    const r = await new Promise<{ code: number; stderr: string; error?: string }>((res) => {
      let err = '';
      const child = spawn(c.run[0]!, c.run.slice(1), { cwd, env: envOf(c, { PYLENS_PYTEST_REPORT: file }), stdio: ['ignore', 2, 'pipe'] });
      child.stderr!.on('data', (d: Buffer) => {
        process.stderr.write(d);
        err = (err + d.toString('utf8')).slice(-2000);
      });
      child.on('error', (e) => res({ code: 127, stderr: '', error: `cannot run ${c.run[0]}: ${e.message}` }));
      child.on('close', (code, signal) => res({ code: code ?? 128, stderr: err, ...(signal ? { error: `pytest ended on ${signal}` } : {}) }));
    });
    const seconds = (performance.now() - t0) / 1000;
    const row = (budget: string, error: string): BudgetResult => ({ budget, kind: 'test', limit: 0, file: c.file, line, seconds, judged: null, error });
    const tail = r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` : '';
    if (r.error) return [row('pytest runs', r.error)];
    let rep: PytestReport;
    try {
      rep = JSON.parse(readFileSync(file, 'utf8')) as PytestReport;
    } catch {
      return [row('pytest runs', `${c.run.join(' ')} exited with ${r.code} and wrote no pylens report${tail} (is pytest installed for ${c.run[0]}? set python = "…" in the check)`)];
    }
    if (PYTEST_EXIT[rep.exitstatus]) return [row('pytest runs', `pytest ${PYTEST_EXIT[rep.exitstatus]} (exit ${rep.exitstatus})${tail}`)];
    const out: BudgetResult[] = [];
    for (const t of rep.tests) {
      let broke = false;
      for (const b of t.budgets) {
        const budget = b.kind === 'calls' ? `${t.nodeid}: calls ${b.spec} ≤ ${b.max}` : `${t.nodeid}: peak memory ≤ ${b.text}`;
        const base = { budget, kind: b.kind, limit: b.max, file: t.file, line: t.line, seconds };
        if (b.error !== null || b.value === null || b.verdict === null) {
          broke = true;
          out.push({ ...base, judged: null, error: b.error ?? 'not measured' });
        } else {
          broke ||= b.verdict === 'fail';
          out.push({ ...base, judged: { verdict: b.verdict, value: b.value }, ...(b.source ? { source: b.source } : {}) });
        }
      }
      if ((t.outcome === 'failed' || t.outcome === 'error') && !broke) out.push({ ...row(`${t.nodeid} passes`, `the test ${t.outcome === 'error' ? 'errored' : 'failed'}${t.message ? `: ${t.message}` : ''}`), file: t.file, line: t.line });
    }
    if (out.length === 0 && onlyMarkers) out.push(row('pytest runs', `no test under pytest ${c.pytest!.args.join(' ')} carries @pytest.mark.pylens budgets, and the check has none of its own`));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Sampled CPU shares: the command run `repeat` times under `pylens record` (on-CPU samples,
 * 200 Hz), samples pooled; a function's share is the samples with it on the stack over all
 * samples, judged with its Wilson interval.
 */
async function sampledRuns(c: CheckSpec, cwd: string): Promise<{ profiles: Profile[]; seconds: number } | { error: string; seconds: number }> {
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'pylens-check-'));
  const profiles: Profile[] = [];
  try {
    for (let i = 0; i < c.repeat; i++) {
      const out = join(dir, `run${i}.pylens`);
      const r = await runNode([process.argv[1]!, 'record', '-q', '-r', '200', '-o', out, '--', ...c.run], cwd, envOf(c));
      if (r.code !== 0) return { error: `the command under pylens record exited with ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` : ''}`, seconds: (performance.now() - t0) / 1000 };
      profiles.push(decodePylens(readFileSync(out), out));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { profiles, seconds: (performance.now() - t0) / 1000 };
}

function cpuShares(c: CheckSpec, cwd: string, sampled: Awaited<ReturnType<typeof sampledRuns>>): BudgetResult[] {
  let total = 0;
  const hits = new Array<number>(c.cpuShare.length).fill(0);
  const sources: ({ file: string; line: number } | undefined)[] = new Array(c.cpuShare.length).fill(undefined);
  let error = 'error' in sampled ? sampled.error : undefined;
  const seconds = sampled.seconds;
  {
    for (const p of 'error' in sampled ? [] : sampled.profiles) {
      const col = p.samples.values[p.defaultValue]!;
      // which frames are each budget's function: its qualname, in its module's file
      const match = c.cpuShare.map((b) => {
        const [mod, qual] = [b.fn.slice(0, b.fn.indexOf(':')), b.fn.slice(b.fn.indexOf(':') + 1)];
        const tail = mod.replace(/\./g, '/');
        const m = new Uint8Array(p.frames.length);
        for (let f = 0; f < p.frames.length; f++) {
          const fi = frameInfo(p, f);
          if (fi.qualname !== qual || fi.kind !== 'python' || fi.file === null) continue;
          const path = fi.file.replace(/\.py$/, '').replace(/\/__init__$/, '');
          if (mod === '__main__' || path === tail || path.endsWith(`/${tail}`)) m[f] = 1;
        }
        return m;
      });
      for (let s = 0; s < p.samples.length; s++) {
        const w = col[s]!;
        total += w;
        const frames = stackFrames(p, p.samples.stack[s]!);
        match.forEach((m, k) => {
          const f = frames.find((x) => m[x] === 1);
          if (f === undefined) return;
          hits[k]! += w;
          if (!sources[k]) {
            const fi = frameInfo(p, f);
            sources[k] = { file: resolve(cwd, fi.file!), line: fi.line };
          }
        });
      }
    }
  }
  if (error === undefined && total === 0) error = 'no CPU samples: the command ran too briefly for 200 Hz (raise repeat, or make the scenario longer)';
  return c.cpuShare.map((b, k) => {
    const base = { budget: `cpu share ${b.fn} ≤ ${+(100 * b.max).toFixed(2)}%`, kind: 'cpu-share' as const, limit: b.max, file: c.file, line: b.line, seconds };
    return error !== undefined ? { ...base, judged: null, error } : { ...base, judged: judgeShare(hits[k]!, total, b.max), ...(sources[k] ? { source: sources[k] } : {}) };
  });
}

/** No function's share grows significantly by more than the allowed points against the baseline's runs (analysis/diff.ts). */
function noRegression(c: CheckSpec, ctx: BaselineCtx, sampled: Awaited<ReturnType<typeof sampledRuns>>): BudgetResult {
  const pts = c.noRegression!.points;
  const base = { budget: `no function's CPU share up by > ${pts} points`, kind: 'no-regression' as const, limit: pts, file: c.file, line: c.noRegression!.line, seconds: sampled.seconds };
  if ('error' in sampled) return { ...base, judged: null, error: sampled.error };
  if (ctx.update) return { ...base, judged: { verdict: 'pass', value: 0 }, note: 'baseline written' };
  const was = ctx.baseline?.profiles;
  if (!was || was.length === 0) return { ...base, judged: null, error: noBaseline(ctx) };
  const d = diffProfiles(was, sampled.profiles, { paths: false });
  const grew = d.functions.filter((f) => f.kind === 'python' && f.delta > pts);
  const sig = grew.filter((f) => f.significant).sort((a, b) => b.delta - a.delta);
  const top = sig[0] ?? grew.sort((a, b) => b.delta - a.delta)[0];
  const value = top?.delta ?? Math.max(0, ...d.functions.map((f) => f.delta));
  const note = top ? `${top.name}: ${(100 * top.baseShare).toFixed(1)}% → ${(100 * top.newShare).toFixed(1)}% (q ${top.qValue.toFixed(3)})` : undefined;
  return { ...base, judged: { verdict: sig.length > 0 ? 'fail' : grew.length > 0 ? 'unsure' : 'pass', value }, ...(note ? { note } : {}) };
}

/** Peak traced memory and steady growth: one run under the mem lens (tracemalloc, snapshots every 0.1 s). */
async function memory(c: CheckSpec, cwd: string, ctx: BaselineCtx): Promise<BudgetResult[]> {
  const t0 = performance.now();
  const { data, error } = await underLens<MemData>('mem', { interval: 0.1, top: 5, frames: 1 }, c, cwd, ctx);
  const seconds = (performance.now() - t0) / 1000;
  const out: BudgetResult[] = [];
  if (c.peakMemory) {
    const base = { budget: `peak memory ≤ ${c.peakMemory.text}`, kind: 'peak-memory' as const, limit: c.peakMemory.max, file: c.file, line: c.peakMemory.line, seconds };
    out.push(data ? { ...base, judged: judgeCount(data.peak, c.peakMemory.max) } : { ...base, judged: null, error: error ?? 'no measurement' });
  }
  if (c.noMemoryGrowth) {
    const base = { budget: 'no steady memory growth', kind: 'memory-growth' as const, limit: 0, file: c.file, line: c.noMemoryGrowth.line, seconds };
    if (!data) out.push({ ...base, judged: null, error: error ?? 'no measurement' });
    else {
      const g = memReport(data).growth.traced;
      out.push({ ...base, judged: judgeGrowth(g.growing, !/too few snapshots/.test(g.reason), g.growth) });
    }
  }
  return out;
}

/** Run this Node with `args` (pylens itself), collecting its exit code and the tail of its stderr. */
function runNode(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stderr: string }> {
  return new Promise((res) => {
    let err = '';
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString('utf8')).slice(-4000)));
    child.on('close', (code) => res({ code: code ?? 1, stderr: err }));
  });
}

/** a check's files in the baseline folder: its name made safe */
function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'check';
}

function readBaseline(dir: string, name: string): Baseline | undefined {
  const file = join(dir, `${slug(name)}.json`);
  if (!existsSync(file)) return undefined;
  let doc: { version?: number; wallTimes?: number[]; profiles?: string[] };
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CliError(`check: the baseline ${file} is not valid JSON (${(e as Error).message})`, 'write it again with pylens check --update-baseline', EXIT_USAGE);
  }
  const out: Baseline = {};
  if (Array.isArray(doc.wallTimes) && doc.wallTimes.every((x) => typeof x === 'number' && x > 0)) out.wallTimes = doc.wallTimes;
  if (Array.isArray(doc.profiles)) out.profiles = doc.profiles.map((f) => {
    const p = join(dir, f);
    try {
      return decodePylens(readFileSync(p), p);
    } catch (e) {
      throw new CliError(`check: the baseline profile ${p} cannot be read: ${(e as Error).message}`, 'write it again with pylens check --update-baseline', EXIT_USAGE);
    }
  });
  return out;
}

function writeBaseline(dir: string, c: CheckSpec, b: Baseline): string {
  mkdirSync(dir, { recursive: true });
  const s = slug(c.name);
  const profiles = (b.profiles ?? []).map((p, i) => {
    const f = `${s}.run${i + 1}.pylens`;
    writeFileSync(join(dir, f), encodePylens(p));
    return f;
  });
  const file = join(dir, `${s}.json`);
  writeFileSync(file, JSON.stringify({ version: 1, name: c.name, command: c.run, writtenAt: new Date().toISOString(), ...(b.wallTimes ? { wallTimes: b.wallTimes } : {}), ...(profiles.length ? { profiles } : {}) }, null, 2) + '\n');
  return file;
}

function fmt(s: number): string {
  return s >= 1 ? `${+s.toFixed(3)} s` : `${+(s * 1000).toFixed(3)} ms`;
}

/** One run of the check's command under an interpreter lens: its data, or why there is none; the lens's overhead noted. */
async function underLens<D>(lens: string, options: Record<string, unknown>, c: CheckSpec, cwd: string, ctx: BaselineCtx): Promise<{ data?: D; error?: string }> {
  try {
    const run = await runLens<D>(lens, options, c.run, { cwd, env: envOf(c), stdoutToStderr: true });
    if (run.result?.overhead?.fraction != null) ctx.overheads.push({ lens, fraction: run.result.overhead.fraction });
    const ex = run.result?.exit.exception;
    if (run.exitCode !== 0) return { error: `the command exited ${run.howEnded}${ex ? ` (${ex.type}${ex.message ? `: ${ex.message}` : ''})` : ''}` };
    if (!run.result) return { error: `the command ended without the ${lens} lens's result: ${run.missing ?? 'no result'}` };
    return { data: run.result.data };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** the environment of a check's runs: pylens's, the check's own (a pytest check's plugin folder), its plugin passive */
function envOf(c: CheckSpec, extra: Record<string, string> = { PYLENS_PYTEST: 'off' }): NodeJS.ProcessEnv {
  return c.env ? { ...process.env, ...c.env, ...extra } : process.env;
}

/** One run of the command with nothing attached: its wall time, or why it failed. */
function timed(argv: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<{ seconds: number; error?: string }> {
  return new Promise((res) => {
    const t0 = performance.now();
    let err = '';
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString('utf8')).slice(-2000)));
    child.on('error', (e) => res({ seconds: 0, error: `cannot run ${argv[0]}: ${e.message}` }));
    child.on('close', (code, signal) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code === 0) res({ seconds });
      else res({ seconds, error: `the command exited ${signal ? `on ${signal}` : `with ${code}`}${err.trim() ? `: ${err.trim().split('\n').slice(-3).join(' | ')}` : ''}` });
    });
  });
}
