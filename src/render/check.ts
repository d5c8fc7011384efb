/**
 * `pylens check`'s outputs from its results (analysis/budgets.ts): the table on stdout, JUnit
 * XML (one testcase per budget), GitHub Actions annotations and the Markdown step summary.
 */
import { relative } from 'node:path';
import type { BudgetResult, CheckResult } from '../analysis/budgets.ts';
import { checkOutcome } from '../analysis/budgets.ts';
import { formatBytes } from './page/units.ts';

function fmtSeconds(s: number): string {
  return s >= 10 ? `${s.toFixed(1)} s` : s >= 1 ? `${s.toFixed(2)} s` : s >= 0.01 ? `${(s * 1000).toFixed(0)} ms` : `${(s * 1000).toFixed(2)} ms`;
}

/** the measured value with its interval, in the budget's unit */
export function measuredText(b: BudgetResult): string {
  if (b.error !== undefined) return 'error';
  const j = b.judged!;
  if (b.kind === 'wall-regression') return `${j.value >= 0 ? '+' : ''}${(100 * j.value).toFixed(1)}% vs baseline${j.confidence !== undefined && j.verdict !== 'pass' ? ` (p ${(1 - j.confidence).toFixed(3)})` : ''}`;
  if (b.kind === 'max-overhead') return j.verdict === 'unsure' && j.value === 0 ? `not reported${b.note ? ` (${b.note})` : ''}` : `${(100 * j.value).toFixed(1)}%${b.note ? ` (${b.note})` : ''}`;
  if (b.kind === 'no-regression') return `${j.value >= 0 ? '+' : ''}${j.value.toFixed(1)} pts${b.note ? ` (${b.note})` : ''}`;
  const f = b.kind === 'wall-time' ? fmtSeconds : b.kind === 'cpu-share' ? (v: number) => `${(100 * v).toFixed(1)}%` : b.kind === 'peak-memory' ? formatBytes : b.kind === 'memory-growth' ? (v: number) => `${v >= 0 ? '+' : ''}${formatBytes(v)}` : (v: number) => String(v);
  const iv = j.low !== undefined && j.high !== undefined ? ` (${f(j.low)}–${f(j.high)}, ${Math.round(100 * (j.confidence ?? 0))} %)` : '';
  return `${f(j.value)}${iv}`;
}

function verdictText(b: BudgetResult): string {
  if (b.error !== undefined) return 'ERROR';
  const v = b.judged!.verdict;
  return v === 'fail' ? 'FAIL' : v === 'unsure' ? 'unsure (not failed: the interval straddles the budget; more repeats decide)' : 'pass';
}

export function renderCheckTable(results: readonly CheckResult[], cwd = process.cwd()): string {
  const out: string[] = [];
  for (const c of results) {
    out.push(`check "${c.name}" (${relative(cwd, c.file) || c.file}:${c.line})`);
    const rows = c.budgets.map((b) => [b.budget, measuredText(b), verdictText(b)]);
    const w0 = Math.max(6, ...rows.map((r) => r[0]!.length));
    const w1 = Math.max(8, ...rows.map((r) => r[1]!.length));
    out.push(`  ${'budget'.padEnd(w0)}  ${'measured'.padEnd(w1)}  verdict`);
    for (const r of rows) out.push(`  ${r[0]!.padEnd(w0)}  ${r[1]!.padEnd(w1)}  ${r[2]}`);
    for (const b of c.budgets) if (b.error !== undefined) out.push(`    ${b.budget}: ${b.error}`);
    for (const b of c.budgets) if (b.note === 'baseline written') out.push(`    ${b.budget}: baseline written`);
    out.push('');
  }
  const o = checkOutcome(results);
  out.push(
    o.failed + o.errors === 0
      ? `pylens check: ${o.budgets} budget${o.budgets === 1 ? '' : 's'} kept${o.unsure ? ` (${o.unsure} unsure)` : ''}`
      : `pylens check: ${o.failed} of ${o.budgets} budget${o.budgets === 1 ? '' : 's'} broken${o.errors ? `, ${o.errors} could not be measured` : ''}`,
  );
  return out.join('\n') + '\n';
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');

/** JUnit XML: a testsuite per check, a testcase per budget; broken budgets are failures, unmeasured ones errors. */
export function renderJUnit(results: readonly CheckResult[]): string {
  const o = checkOutcome(results);
  const out = [`<?xml version="1.0" encoding="UTF-8"?>`, `<testsuites name="pylens check" tests="${o.budgets}" failures="${o.failed}" errors="${o.errors}">`];
  for (const c of results) {
    const failed = c.budgets.filter((b) => b.error === undefined && b.judged?.verdict === 'fail').length;
    const errors = c.budgets.filter((b) => b.error !== undefined).length;
    const time = c.budgets.reduce((a, b) => a + b.seconds, 0);
    out.push(`  <testsuite name="${xml(c.name)}" tests="${c.budgets.length}" failures="${failed}" errors="${errors}" time="${time.toFixed(3)}">`);
    for (const b of c.budgets) {
      const head = `    <testcase classname="pylens.${xml(c.name)}" name="${xml(b.budget)}" file="${xml(b.file)}" line="${b.line}" time="${b.seconds.toFixed(3)}"`;
      if (b.error !== undefined) out.push(`${head}>`, `      <error message="${xml(b.error)}"/>`, '    </testcase>');
      else if (b.judged!.verdict === 'fail') out.push(`${head}>`, `      <failure message="${xml(`measured ${measuredText(b)}, budget ${b.budget}`)}"/>`, '    </testcase>');
      else out.push(`${head}>`, `      <system-out>${xml(`measured ${measuredText(b)}: ${b.judged!.verdict}`)}</system-out>`, '    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return out.join('\n') + '\n';
}

/** `::error file=…,line=…::…` per broken or unmeasured budget, at the function's source when known, else at the budget's line. */
export function githubAnnotations(results: readonly CheckResult[], cwd = process.cwd()): string {
  const esc = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  const prop = (s: string) => esc(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
  const out: string[] = [];
  for (const c of results)
    for (const b of c.budgets) {
      if (b.error === undefined && b.judged!.verdict !== 'fail') continue;
      const at = b.source ?? { file: b.file, line: b.line };
      const msg = b.error !== undefined ? `${c.name}: ${b.budget} could not be measured: ${b.error}` : `${c.name}: ${b.budget} broken — measured ${measuredText(b)}`;
      out.push(`::error file=${prop(relative(cwd, at.file) || at.file)},line=${at.line},title=${prop(`pylens check: ${c.name}`)}::${esc(msg)}`);
    }
  return out.length ? out.join('\n') + '\n' : '';
}

/** The Markdown summary for $GITHUB_STEP_SUMMARY. */
export function markdownSummary(results: readonly CheckResult[]): string {
  const o = checkOutcome(results);
  const out = [`### pylens check: ${o.failed + o.errors === 0 ? '✅ all budgets kept' : `❌ ${o.failed} broken${o.errors ? `, ${o.errors} unmeasured` : ''}`}`, '', '| check | budget | measured | verdict |', '|---|---|---|---|'];
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  for (const c of results) for (const b of c.budgets) out.push(`| ${cell(c.name)} | ${cell(b.budget)} | ${cell(measuredText(b))} | ${b.error !== undefined ? 'error' : b.judged!.verdict} |`);
  return out.join('\n') + '\n\n';
}
