/**
 * The outputs of `pylens diagnose` (the findings are src/analysis/findings.ts's): the text
 * report — what could be recorded, the findings ranked, the checklist — its JSON, and an
 * HTML report with the recorded profiles' flamegraphs embedded (SVG, each carrying its
 * profile: `pylens report diagnose.html` reads the main one back).
 */
import type { Check, Finding } from '../analysis/findings.ts';
import type { Profile } from '../model/profile.ts';
import { renderSvg } from './svg.ts';
import { escapeMarkup } from './markup.ts';

export interface DiagnoseReport {
  target: string;
  /** what this machine allowed, tool by tool */
  capabilities: { name: string; ok: boolean; detail: string }[];
  /** what was recorded, one line each */
  recorded: string[];
  findings: Finding[];
  checklist: Check[];
}

export function renderDiagnoseText(r: DiagnoseReport): string {
  const lines = [`pylens diagnose — ${r.target}`, `Can use: ${r.capabilities.map((c) => `${c.name} ${c.ok ? '✓' : '✗'}`).join(' · ')}`];
  for (const c of r.capabilities) if (!c.ok) lines.push(`  ${c.name}: ${c.detail}`);
  lines.push(`Recorded: ${r.recorded.join('; ')}`, '');
  if (r.findings.length === 0) lines.push('No finding: nothing stands out (no function over 10 % of CPU, waiting under 20 % of thread time).');
  else lines.push('Findings, most important first:');
  r.findings.forEach((f, i) => {
    lines.push(`${String(i + 1).padStart(2)}. [${f.kind}] ${f.title}`);
    if (f.function && f.file) lines.push(`    at ${f.function} (${f.file}${f.line ? `:${f.line}` : ''})`);
    lines.push(`    evidence: ${f.evidence}`, `    next: ${f.next}`);
  });
  lines.push('', 'Checklist before acting on it:');
  for (const c of r.checklist) lines.push(`  ${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
  return lines.join('\n') + '\n';
}

export function diagnoseJson(r: DiagnoseReport): object {
  return { target: r.target, capabilities: r.capabilities, recorded: r.recorded, findings: r.findings, checklist: r.checklist };
}

const esc = escapeMarkup;

export function renderDiagnoseHtml(r: DiagnoseReport, profiles: { title: string; profile: Profile }[]): string {
  // the first flamegraph is interactive (its script binds to the page's first SVG); the others are static
  const svgs = profiles.map(({ title, profile }, i) => {
    let svg = renderSvg(profile, { title }).replace(/^<\?xml[^>]*>\n/, '');
    if (i > 0) svg = svg.replace(/<script[\s\S]*?<\/script>/, '').replace(/ id="[a-z]+"/g, '');
    return `<h2>${esc(title)}</h2>\n${svg}`;
  });
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">`,
    `<title>pylens diagnose — ${esc(r.target)}</title>`,
    '<style>body{font-family:system-ui,sans-serif;margin:16px}pre{background:#f6f6f6;padding:8px;font-size:13px;white-space:pre-wrap}h2{font-size:16px}svg{max-width:100%;height:auto}</style>',
    '</head><body>',
    `<h1 style="font-size:18px">pylens diagnose — ${esc(r.target)}</h1>`,
    `<pre id="findings">${esc(renderDiagnoseText(r))}</pre>`,
    ...svgs,
    '</body></html>',
    '',
  ].join('\n');
}
