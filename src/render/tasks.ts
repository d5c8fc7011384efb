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

export function renderAsyncWaits(w: AsyncWaits, opts: { limit?: number } = {}): string {
  const limit = opts.limit ?? 10;
  const out: string[] = [];
  out.push(`asyncio — where tasks wait (${groupDigits(w.total)} task samples, shares of all task time):`);
  out.push('  tasks');
  for (const t of w.tasks.slice(0, limit)) out.push(`  ${pct(t.share)}  task ${t.task}`);
  out.push('  coroutines, inclusive (time their tasks waited somewhere under them), and the lines they wait on');
  for (const c of w.coroutines.slice(0, limit)) {
    out.push(`  ${pct(c.share)}  ${c.name}${where(c.file)}${c.tasks > 1 ? `  in ${groupDigits(c.tasks)} tasks` : ''}`);
    for (const s of c.sites) out.push(`  ${' '.repeat(7)}    ${pct(s.share)}  line ${s.line ?? '?'}${s.awaits ? ` → ${s.awaits}` : ' (waits here)'}`);
  }
  out.push('  innermost awaits');
  for (const l of w.innermost.slice(0, limit)) out.push(`  ${pct(l.share)}  ${l.name}${where(l.file, l.line)}`);
  return out.join('\n') + '\n\n';
}
