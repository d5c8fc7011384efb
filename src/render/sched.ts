/**
 * `pylens sched` as text: the thread table (by run time), then the longest waits with their
 * stacks. The summary is analysis/sched.ts's.
 */
import { stateName, type SchedSummary } from '../analysis/sched.ts';

/** "1.234 s" / "12.3 ms" / "45 µs" */
export function fmtDuration(ns: number): string {
  const a = Math.abs(ns);
  if (a >= 1e9) return `${(ns / 1e9).toFixed(3)} s`;
  if (a >= 1e6) return `${(ns / 1e6).toFixed(a >= 1e8 ? 0 : 1)} ms`;
  if (a >= 1e3) return `${(ns / 1e3).toFixed(0)} µs`;
  return `${ns.toFixed(0)} ns`;
}

const SCHED_FRAME_RE = /^(__schedule|schedule|preempt_schedule\w*|schedule_preempt_disabled) \[k\]$/;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The text report: the thread table (by run time), then the longest waits with stacks. */
export function renderSchedText(s: SchedSummary, what: string, notes: string[]): string {
  const out: string[] = [];
  out.push(`pylens sched: ${what}: ${s.threads.length} thread${s.threads.length === 1 ? '' : 's'}, ${fmtDuration(s.wallNs)} recorded`);
  out.push('');
  const head = ['PID', 'TID', 'NAME', 'RUN', '%', 'SCHED DELAY', '%', 'SLEEP/BLOCKED', '%', 'BLOCKED (D)', 'SWITCHES', 'VOL', 'INVOL'];
  const rows = s.threads.map((t) => [
    String(t.pid), String(t.tid), t.name, fmtDuration(t.runNs), pct(t.runShare), fmtDuration(t.delayNs), pct(t.delayShare),
    fmtDuration(t.waitNs), pct(t.waitShare), fmtDuration(t.blockedNs), String(t.switches), String(t.voluntary), String(t.involuntary),
  ]);
  const T = s.totals;
  const total = ['', '', 'total', fmtDuration(T.runNs), '', fmtDuration(T.delayNs), '', fmtDuration(T.waitNs), '', '', String(T.switches), String(T.voluntary), String(T.involuntary)];
  const all = [head, ...rows, ...(rows.length > 1 ? [total] : [])];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  for (const r of all) out.push(r.map((c, i) => (i === 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd());
  out.push('');
  out.push('% = share of the recording\'s wall time. Sched delay: runnable, waiting for a CPU. Sleep/blocked: off CPU until woken (S sleeping, D uninterruptible: disk I/O, page faults, some locks).');
  out.push('Switches: voluntary (the thread blocked) / involuntary (preempted while runnable).');
  out.push('');
  if (s.waits.length === 0) out.push('No waits recorded.');
  else {
    const seen = new Map<string, number>();
    out.push(`Longest waits (of ${s.threads.length} thread${s.threads.length === 1 ? '' : 's'}):`);
    s.waits.forEach((wt, i) => {
      out.push(
        `${String(i + 1).padStart(3)}. ${fmtDuration(wt.durNs).padStart(9)}  ${wt.state} ${stateName(wt.state)}  ${wt.name} tid ${wt.tid}  at +${fmtDuration(wt.startNs)}` +
          (wt.delayAfterNs > 0 ? `  then ${fmtDuration(wt.delayAfterNs)} runnable` : '') +
          (wt.open ? '  (still waiting when the recording ended)' : ''),
      );
      // the scheduler's own frames top every stack: left out here (kept in --json)
      const stack = wt.stack.slice(wt.stack.findIndex((f) => !SCHED_FRAME_RE.test(f)) >>> 0);
      const key = stack.join('\n');
      const same = seen.get(key);
      if (stack.length === 0) out.push('        (no stack)');
      else if (same !== undefined) out.push(`        (same stack as ${same})`);
      else {
        seen.set(key, i + 1);
        const frames = stack.slice(0, 12);
        for (const f of frames) out.push(`        ${f}`);
        if (stack.length > frames.length) out.push(`        … ${stack.length - frames.length} more`);
      }
    });
  }
  for (const n of notes) out.push('', n);
  return out.join('\n') + '\n';
}
