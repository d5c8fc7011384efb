/** The header `report` prints above its tables. */
import type { Environment, Profile } from '../model/profile.ts';
import { samplerQuality } from './page/quality.ts';

/** "CPython 3.12.1 (/usr/bin/python3) · Debian 12 · Linux 6.1.0 · 8 CPUs · host web-1", or '' */
export function environmentLine(e: Environment): string {
  const parts: string[] = [];
  if (e.python?.version) parts.push(`${e.python.implementation ?? 'Python'} ${e.python.version}${e.python.executable ? ` (${e.python.executable})` : ''}`);
  if (e.os) parts.push(e.os);
  if (e.kernel) parts.push(/^\d/.test(e.kernel) ? `Linux ${e.kernel}` : e.kernel);
  if (e.cpuCores) parts.push(`${e.cpuCores} CPU${e.cpuCores === 1 ? '' : 's'}${e.cpuModel ? ` (${e.cpuModel})` : ''}`);
  if (e.hostname) parts.push(`host ${e.hostname}`);
  return parts.join(' · ');
}

/**
 * Where a profile came from, in a few lines: lens, tool, mode, duration, program, samples; the
 * environment (Python, OS, kernel, CPUs, host); the profiler's own overhead as recorded (every
 * pylens capture records it; imports may not); the sample quality.
 */
export function profileHeader(p: Profile): string {
  const m = p.meta;
  const parts = [`${m.lens} lens`, m.backend, m.mode];
  if (m.durationNs) parts.push(`${(m.durationNs / 1e9).toFixed(m.durationNs >= 10e9 ? 1 : 3)} s`);
  if (m.command?.length) parts.push(m.command.join(' '));
  else if (m.pid) parts.push(`pid ${m.pid}`);
  const samples = m.sampleCount ?? p.samples.length;
  parts.push(`${samples.toLocaleString('en-US')} sample${samples === 1 ? '' : 's'}`);
  const lines = [`Profile: ${parts.join(' · ')}`];
  const env = environmentLine(m.environment);
  if (env) lines.push(`Environment: ${env}`);
  if (m.overhead) {
    const f = m.overhead.fraction;
    lines.push(`Overhead: ${f === undefined ? 'not measured' : `${(f * 100).toFixed(f < 0.1 ? 2 : 1)} %`} (${m.overhead.method})`);
  } else if (m.source) {
    lines.push(`Overhead: not recorded (imported from ${m.source.format})`);
  }
  const quality = samplerQuality(m);
  if (quality) lines.push(`Quality: ${quality}`);
  return `${lines.join('\n')}\n`;
}
