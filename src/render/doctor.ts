/**
 * `pylens doctor` as text and JSON. The report is capture/doctor.ts's `DoctorReport`; render
 * may not import capture, so the shape it reads is named here (structurally the same).
 */

type Status = 'ready' | 'degraded' | 'unavailable';
interface Check {
  name: string;
  status: Status;
  detail: string;
  fix?: string;
}
export interface DoctorView {
  lenses: Array<{ id: string; title: string; commands: string[]; status: Status; checks: Check[] }>;
  environment: { kernel: string; os: string | undefined; node: string; uid: number; capabilities: string[]; container: string | undefined; pidNamespace: 'host' | 'own'; seccomp: string; ptraceScope: number | undefined };
  container: string[];
  target?: { pid: number; command: string; uid: number | undefined; checks: Check[]; python?: { version: string; binary: string; kind: string; symbols: string }; lenses: Array<{ id: string; status: Status; sees: string }>; status: Status };
}

const MARK: Record<Status, string> = { ready: '✓', degraded: '!', unavailable: '✗' };
const WORD: Record<Status, string> = { ready: 'ready', degraded: 'degraded', unavailable: 'unavailable' };

function checkLines(c: Check, indent: string): string[] {
  const out = [`${indent}${MARK[c.status]} ${c.name}: ${c.detail}`];
  if (c.fix && c.status !== 'ready') out.push(`${indent}  fix: ${c.fix}`);
  return out;
}

export function renderDoctorText(r: DoctorView): string {
  const e = r.environment;
  const lines: string[] = [];
  lines.push('pylens doctor — what each lens can do here');
  lines.push(
    `Environment: ${e.os ?? 'Linux'} · kernel ${e.kernel} · Node ${e.node} · uid ${e.uid}${e.capabilities.length ? ` · capabilities ${e.capabilities.join(', ')}` : ' · no capabilities'}` +
      `${e.ptraceScope !== undefined ? ` · Yama ptrace_scope ${e.ptraceScope}` : ''} · seccomp ${e.seccomp}${e.container ? ` · container: ${e.container}` : ''}${e.pidNamespace === 'own' ? " · own PID namespace (not the host's)" : ''}`,
  );
  for (const l of r.lenses) {
    lines.push('');
    lines.push(`${MARK[l.status]} ${l.title} (${l.commands.join(', ')}): ${WORD[l.status]}`);
    for (const c of l.checks) lines.push(...checkLines(c, '    '));
  }
  if (r.container.length) {
    lines.push('');
    lines.push('Containers:');
    for (const c of r.container) lines.push(`    - ${c}`);
  }
  const t = r.target;
  if (t) {
    lines.push('');
    lines.push(`${MARK[t.status]} PID ${t.pid}: ${t.command.length > 100 ? `${t.command.slice(0, 97)}…` : t.command}${t.uid !== undefined ? ` (uid ${t.uid})` : ''}`);
    for (const c of t.checks) lines.push(...checkLines(c, '    '));
    lines.push('  What each lens would see of it:');
    for (const s of t.lenses) lines.push(`    ${MARK[s.status]} ${r.lenses.find((l) => l.id === s.id)?.title ?? s.id}: ${s.sees}`);
  }
  const bad = r.lenses.filter((l) => l.status !== 'ready');
  lines.push('');
  lines.push(bad.length === 0 ? 'Every lens is ready.' : `${r.lenses.length - bad.length} of ${r.lenses.length} lenses ready; ${bad.map((l) => `${l.title} ${WORD[l.status]}`).join(', ')} — the fixes are above.`);
  return lines.join('\n') + '\n';
}

/** The JSON document: the report as is, with a format tag. */
export function doctorJson(r: DoctorView): object {
  return { format: 'pylens-doctor', version: 1, ...r };
}
