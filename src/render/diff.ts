/**
 * The outputs of `pylens diff` (src/analysis/diff.ts holds the numbers): the text table, the
 * JSON document, and the differential flamegraph as SVG and as a self-contained HTML page.
 *
 * Differential flamegraph: FlameGraph's layout (root at the bottom, children in name order)
 * over the call paths of both sides, frame widths the NEW side's shares; a "Widths" control
 * switches to the BASE side's widths. Colours: red where a path's share grew, blue where it
 * shrank, with strength by the size of the change, grey where the change is not significant
 * (a red/blue diverging scheme that colour-blind readers tell apart); frames that appeared
 * are outlined and tagged `[new]`, frames that vanished (only visible at BASE widths)
 * dashed and tagged `[gone]`. Click to zoom, Ctrl-F to search, as in pylens's SVG.
 */
import type { DiffFunction, DiffPath, DiffResult } from '../analysis/diff.ts';
import { shortestUniquePaths } from '../model/labels.ts';
import { pageScript } from './bundle.ts';
import { flameSvgStyle } from './svg.ts';
import { attrNumber, dataNumber, escapeMarkup } from './markup.ts';
import { groupDigits } from './page/units.ts';

export interface DiffTextOptions {
  /** rows to show (default 20; 0 = all) */
  limit?: number;
  /** full file paths instead of the shortest unambiguous ones */
  fullFilenames?: boolean;
}

function labeller(d: DiffResult, full: boolean): (k: { name: string; file: string | null; line: number; kind: string }) => string {
  const short = shortestUniquePaths(d.keys.map((k) => k.file ?? '').filter((f) => f !== ''));
  return (k) => {
    if (k.kind === 'marker' || !k.file) return k.name;
    const file = full ? k.file : (short.get(k.file) ?? k.file);
    return k.line > 0 ? `${k.name} (${file}:${k.line})` : `${k.name} (${file})`;
  };
}

const pct = (x: number) => (100 * x).toFixed(2);
const signed = (x: number, digits = 2) => `${x > 0 ? '+' : x < 0 ? '−' : ' '}${Math.abs(x).toFixed(digits)}`;
const qText = (q: number) => (Number.isNaN(q) ? '—' : q < 0.001 ? '<0.001' : q.toFixed(3));

function sideText(name: string, s: DiffResult['base'], unit: string): string {
  const parts = [`${s.runs} ${s.runs === 1 ? 'run' : 'runs'}`, `${groupDigits(s.samples)} samples`];
  if (s.seconds !== undefined) parts.push(`${s.seconds.toFixed(s.seconds >= 10 ? 1 : 2)} s`);
  if (unit === 'nanoseconds' && s.perSecond !== undefined) parts.push(`${(s.perSecond / 1e9).toFixed(3)} s per wall second`);
  return `${name}: ${parts.join(', ')}`;
}

/** The diff as text: what was compared and how, then the changes, significant first. */
export function renderDiffText(d: DiffResult, o: DiffTextOptions = {}): string {
  const limit = o.limit ?? 20;
  const label = labeller(d, o.fullFilenames ?? false);
  const sig = d.functions.filter((f) => f.significant);
  const grew = sig.filter((f) => f.delta > 0).length;
  const lines = [
    `Diff by ${d.by}, shares of ${d.value.name} — ${sideText('base', d.base, d.value.unit)} · ${sideText('new', d.new, d.value.unit)}`,
    `Method: ${d.methodText}`,
    sig.length === 0
      ? `No significant change in ${d.functions.length} ${d.by === 'line' ? 'lines' : 'functions'} (the largest moves below are within sampling noise).`
      : `Significant: ${sig.length} of ${d.functions.length} ${d.by === 'line' ? 'lines' : 'functions'} (${grew} grew, ${sig.length - grew} shrank).`,
    '',
    `${'Δ total'.padStart(9)} ${'base %'.padStart(8)} ${'new %'.padStart(8)} ${'Δ self'.padStart(8)} ${'q'.padStart(7)}  ${d.by === 'line' ? 'line' : 'function'}`,
  ];
  const rows = limit > 0 ? d.functions.slice(0, limit) : d.functions;
  for (const f of rows) {
    const tag = f.status === 'appeared' ? '  [new]' : f.status === 'vanished' ? '  [gone]' : '';
    const mark = f.significant ? (f.delta > 0 ? '▲' : f.delta < 0 ? '▼' : ' ') : ' ';
    lines.push(`${mark}${signed(f.delta).padStart(8)} ${pct(f.baseShare).padStart(8)} ${pct(f.newShare).padStart(8)} ${signed(f.selfDelta).padStart(8)} ${qText(f.qValue).padStart(7)}  ${label(f)}${tag}${f.significant ? '' : '  ~'}`);
  }
  if (rows.length < d.functions.length) lines.push(`… ${d.functions.length - rows.length} more (--limit 0 shows all)`);
  lines.push('', 'Δ in percentage points of each side\u2019s total; ▲/▼ significant (q ≤ ' + d.alpha + '), ~ within noise.');
  return lines.join('\n') + '\n';
}

/** The diff as a JSON document: `functions` (name, file, line, baseShare, newShare, delta, significant, pValue, …) and the significant call paths. */
export function diffJson(d: DiffResult, o: { fullFilenames?: boolean } = {}): object {
  const label = labeller(d, o.fullFilenames ?? false);
  const fn = (f: DiffFunction) => ({ ...f, label: label(f) });
  const path = (p: DiffPath) => ({ path: p.path.map((k) => label(d.keys[k]!)), baseShare: p.baseShare, newShare: p.newShare, delta: p.delta, pValue: p.pValue, qValue: p.qValue, significant: p.significant, status: p.status });
  return {
    by: d.by,
    value: d.value,
    method: d.method,
    methodText: d.methodText,
    alpha: d.alpha,
    base: d.base,
    new: d.new,
    significant: d.functions.filter((f) => f.significant).length,
    functions: d.functions.map(fn),
    paths: d.paths.filter((p) => p.significant).map(path),
  };
}

const esc = escapeMarkup;
const n2 = attrNumber;
const nv = dataNumber;

/** grew: reds, shrank: blues (ColorBrewer RdBu ends), not significant: grey; `t` in 0–1 is the strength */
export function diffColor(p: Pick<DiffPath, 'delta' | 'significant'>, maxAbs: number): string {
  if (!p.significant || p.delta === 0) return 'rgb(200,200,200)';
  const t = Math.min(1, Math.abs(p.delta) / (maxAbs || 1));
  const mix = (a: number[], b: number[]) => `rgb(${a.map((x, i) => Math.round(x + (b[i]! - x) * (0.25 + 0.75 * t))).join(',')})`;
  return p.delta > 0 ? mix([253, 219, 199], [178, 24, 43]) : mix([209, 229, 240], [33, 102, 172]);
}

export interface DiffSvgOptions {
  title?: string;
  width?: number;
  minWidth?: number;
  fullFilenames?: boolean;
}

/** The differential flamegraph as a standalone SVG document. */
export function renderDiffSvg(d: DiffResult, o: DiffSvgOptions = {}): string {
  return ['<?xml version="1.0" standalone="no"?>', diffSvgElement(d, o), ''].join('\n');
}

function diffSvgElement(d: DiffResult, o: DiffSvgOptions): string {
  const width = o.width ?? 1200;
  const fh = 16;
  const fs = 12;
  const charW = fs * 0.59;
  const xpad = 10;
  const minWidth = o.minWidth ?? 0.1;
  const label = labeller(d, o.fullFilenames ?? false);
  const n = d.paths.length;
  // children in name order; node −1 is "all" (share 1 on both sides)
  const names = d.paths.map((p) => label(d.keys[p.path[p.path.length - 1]!]!));
  const kids: number[][] = Array.from({ length: n + 1 }, () => []);
  for (let i = 0; i < n; i++) kids[d.paths[i]!.parent + 1]!.push(i);
  for (const c of kids) c.sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : a - b));
  const xNew = new Float64Array(n);
  const xBase = new Float64Array(n);
  const depth = new Int32Array(n);
  const order: number[] = [];
  const walk = (node: number, xn: number, xb: number, dep: number) => {
    for (const c of kids[node + 1]!) {
      const p = d.paths[c]!;
      xNew[c] = xn;
      xBase[c] = xb;
      depth[c] = dep;
      order.push(c);
      walk(c, xn, xb, dep + 1);
      xn += p.newShare;
      xb += p.baseShare;
    }
  };
  walk(-1, 0, 0, 1);
  const span = width - 2 * xpad;
  const shown = order.filter((i) => Math.max(d.paths[i]!.newShare, d.paths[i]!.baseShare) * span >= minWidth);
  const maxDepth = shown.reduce((m, i) => Math.max(m, depth[i]!), 0);
  const maxAbs = d.paths.reduce((m, p) => (p.significant ? Math.max(m, Math.abs(p.delta)) : m), 0);
  const ypad1 = fs * 5;
  const ypad2 = fs * 2 + 10;
  const height = (maxDepth + 1) * fh + ypad1 + ypad2;
  const frame = (i: number | -1): string => {
    const p = i < 0 ? undefined : d.paths[i]!;
    const w = p ? p.newShare : 1;
    const dep = p ? depth[i]! : 0;
    const x = p ? xNew[i]! : 0;
    const y = height - ypad2 - (dep + 1) * fh;
    const name = p ? names[i]! : 'all';
    const tag = p?.status === 'appeared' ? ' [new]' : p?.status === 'vanished' ? ' [gone]' : '';
    const title = p
      ? `${name}${tag} (new ${pct(p.newShare)} %, base ${pct(p.baseShare)} %, Δ ${signed(p.delta)} pts, q ${qText(p.qValue)}${p.significant ? '' : ', within noise'})`
      : `all (new ${groupDigits(d.new.samples)} samples, base ${groupDigits(d.base.samples)} samples)`;
    const fill = p ? diffColor(p, maxAbs) : 'rgb(200,200,208)';
    const stroke = p?.status === 'appeared' ? ' stroke="black" stroke-width="1"' : p?.status === 'vanished' ? ' stroke="black" stroke-width="1" stroke-dasharray="3,2"' : '';
    const rw = w * span;
    const fit = Math.floor((rw - 3) / charW);
    const text = rw >= 2 * charW + 3 && fit >= 3 ? (name.length <= fit ? name : `${name.slice(0, fit - 2)}..`) : '';
    const cls = p?.status ? ` data-status="${p.status}"${p.significant ? ' data-significant="1"' : ''}` : '';
    return (
      `<g class="f" data-x="${nv(x)}" data-w="${nv(w)}" data-xb="${nv(p ? xBase[i]! : 0)}" data-wb="${nv(p ? p.baseShare : 1)}" data-d="${dep}"${cls}><title>${esc(title)}</title>` +
      `<rect x="${n2(xpad + x * span)}" y="${y}" width="${n2(rw)}" height="${fh - 1}" fill="${fill}"${stroke} rx="2" ry="2"${w === 0 ? ' class="hide"' : ''}/>` +
      `<text x="${n2(xpad + x * span + 3)}" y="${y + fh - 4.5}">${esc(text)}</text></g>`
    );
  };
  const title = o.title ?? 'Differential flame graph';
  const sub = `widths: NEW (${groupDigits(d.new.samples)} samples) · red grew, blue shrank, grey within noise (q ≤ ${d.alpha}) · ${d.methodText}`;
  const script = pageScript(['svgscript']);
  if (script.includes(']]>')) throw new Error('the SVG script must not contain "]]>"');
  return [
    `<svg version="1.1" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg"` +
      ` data-total="1" data-width="${width}" data-xpad="${xpad}" data-charw="${n2(charW)}" data-widths="new">`,
    '<!-- Differential flame graph by pylens (see src/render/diff.ts). -->',
    flameSvgStyle(fs, { subtitleSize: fs - 1, buttons: ['#widths'] }),
    `<rect x="0" y="0" width="${width}" height="${height}" fill="rgb(248,248,248)"/>`,
    `<text id="title" x="${width / 2}" y="${fs * 2}">${esc(title)}</text>`,
    `<text id="subtitle" x="${width / 2}" y="${fs * 2 + fs + 6}">${esc(sub)}</text>`,
    `<text id="details" x="${xpad}" y="${height - ypad2 / 2 + 4}"> </text>`,
    `<text id="unzoom" class="hide" x="${xpad}" y="${fs * 2}">Reset Zoom</text>`,
    `<text id="widths" x="${xpad}" y="${fs * 4}">Widths: NEW (click for BASE)</text>`,
    `<text id="search" x="${width - xpad}" y="${fs * 2}">Search</text>`,
    `<text id="matched" x="${width - xpad}" y="${height - ypad2 / 2 + 4}"> </text>`,
    '<g id="frames">',
    frame(-1),
    ...shown.map(frame),
    '</g>',
    `<script type="text/ecmascript"><![CDATA[\n${script}]]></script>`,
    '</svg>',
  ].join('\n');
}

/** The differential flamegraph and the function table in one self-contained HTML page. */
export function renderDiffHtml(d: DiffResult, o: DiffSvgOptions & DiffTextOptions = {}): string {
  const title = o.title ?? 'pylens diff';
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">`,
    `<title>${esc(title)}</title>`,
    '<style>body{font-family:system-ui,sans-serif;margin:16px;background:#fff}pre{font-size:12px;background:#f6f6f6;padding:8px;overflow:auto}svg{max-width:100%;height:auto}</style>',
    '</head><body>',
    `<h1 style="font-size:18px">${esc(title)}</h1>`,
    diffSvgElement(d, { ...o, title }),
    `<pre id="diff-table">${esc(renderDiffText(d, { limit: o.limit ?? 50, ...(o.fullFilenames ? { fullFilenames: true } : {}) }))}</pre>`,
    '</body></html>',
    '',
  ].join('\n');
}
