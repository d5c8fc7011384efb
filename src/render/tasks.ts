/**
 * Text of the asyncio section (analysis/tasks.ts `asyncWaits`): which tasks hold the task
 * time, each coroutine's inclusive share with the lines it waits on, and the innermost awaits.
 * Used by `report` on record --async profiles.
 */
import { basename } from 'node:path';
import type { AsyncWaits } from '../analysis/tasks.ts';
import { formatPercent, groupDigits } from './page/units.ts';

const pct = (f: number) => formatPercent(f).padStart(7);
const where = (file: string | null, line?: number | null) => (file ? ` (${basename(file)}${line ? `:${line}` : ''})` : '');
/** ", 40% running" when part of the time was a running task's */
const runs = (running: number, value: number) => (running > 0 && value > 0 ? `, ${formatPercent(running / value)} running` : '');

export function renderAsyncWaits(w: AsyncWaits, opts: { limit?: number } = {}): string {
  const limit = opts.limit ?? 10;
  const out: string[] = [];
  out.push(`asyncio — where tasks wait (${groupDigits(w.total)} task samples, shares of all task time):`);
  out.push('  tasks');
  for (const t of w.tasks.slice(0, limit)) out.push(`  ${pct(t.share)}  task ${t.task}${t.running ? `  (${formatPercent(t.running / t.value)} running)` : ''}`);
  out.push('  coroutines, inclusive (time their tasks spent under them), and the lines they wait or run on');
  for (const c of w.coroutines.slice(0, limit)) {
    const extra = [c.tasks > 1 ? `in ${groupDigits(c.tasks)} tasks` : '', c.running ? `${formatPercent(c.running / c.value)} running` : ''].filter(Boolean).join(', ');
    out.push(`  ${pct(c.share)}  ${c.name}${where(c.file)}${extra ? `  ${extra}` : ''}`);
    for (const s of c.sites) out.push(`  ${' '.repeat(7)}    ${pct(s.share)}  line ${s.line ?? '?'}${s.awaits ? ` → ${s.awaits}` : s.running >= s.value / 2 ? ' (runs here)' : ' (waits here)'}${s.awaits ? runs(s.running, s.value) : ''}`);
  }
  out.push('  innermost frames (what is awaited, or what runs)');
  for (const l of w.innermost.slice(0, limit)) out.push(`  ${pct(l.share)}  ${l.name}${where(l.file, l.line)}${runs(l.running, l.value)}`);
  return out.join('\n') + '\n\n';
}
