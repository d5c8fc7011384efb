/**
 * SVG flamegraph in Brendan Gregg's FlameGraph conventions: frames are
 * <g><title>label (N samples, P%)</title><rect/><text/></g>, stacks merged by label and
 * sorted alphabetically at each level (x-order carries no meaning), root ("all") at the
 * bottom or at the top when inverted (icicle), frames narrower than minWidth px left out,
 * colours by frame kind (page/palette.ts). The embedded script (page/svgscript.ts) does
 * click-to-zoom, Reset Zoom, Ctrl-F regex search and "Matched: x%". Self-contained.
 */
import type { Profile } from '../model/profile.ts';
import { FrameKindCode } from '../model/profile.ts';
import { frameLabel } from '../model/query.ts';
import type { ExportOptions, Exporter } from '../formats/types.ts';
import { EMBEDDED_MARK, embedInSvg } from '../formats/embedded.ts';
import { pageScript } from './bundle.ts';
import { attrNumber, dataNumber, escapeMarkup } from './markup.ts';
import { frameColor } from './page/palette.ts';
import { formatDuration, formatPercent, formatValue, groupDigits } from './page/units.ts';

export interface SvgOptions extends ExportOptions {
  /** Image width in px (default 1200). */
  width?: number;
  /** Leave out frames narrower than this many px (default 0.1), like --minwidth. */
  minWidth?: number;
  /** Icicle graph: root at the top (FlameGraph's --inverted). */
  inverted?: boolean;
  /** Frame height in px (default 16). */
  frameHeight?: number;
  /** Font size in px (default 12). */
  fontSize?: number;
}

const FONT_WIDTH = 0.59;
const MARKER = FrameKindCode.marker;

const esc = escapeMarkup;
const n2 = attrNumber;
const nv = dataNumber;

interface Tree {
  label: string[];
  kind: number[];
  parent: number[];
  total: Float64Array;
  children: number[][];
}

/** Merge stacks by label (FlameGraph merges folded lines by text); node 0 is "all". */
function buildTree(p: Profile, o: SvgOptions): Tree {
  const vi = o.valueIndex ?? p.defaultValue;
  const col = p.samples.values[vi]!;
  const labels = new Array<string>(p.frames.length);
  for (let f = 0; f < p.frames.length; f++) labels[f] = frameLabel(p, f, { lineno: o.lineno ?? true, fullFilenames: o.fullFilenames ?? false });
  const label = ['all'];
  const kind = [MARKER as number];
  const parent = [-1];
  const key = new Map<string, number>();
  const stackNode = new Int32Array(p.stacks.length);
  for (let s = 0; s < p.stacks.length; s++) {
    const ps = p.stacks.parent[s]!;
    const par = ps < 0 ? 0 : stackNode[ps]!;
    const f = p.stacks.frame[s]!;
    const k = `${par}\u0000${labels[f]}`;
    let nd = key.get(k);
    if (nd === undefined) {
      nd = label.length;
      label.push(labels[f]!);
      kind.push(FrameKindCode[p.frames.kind[f]!]);
      parent.push(par);
      key.set(k, nd);
    }
    stackNode[s] = nd;
  }
  const total = new Float64Array(label.length);
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples.stack[i]!;
    total[s < 0 ? 0 : stackNode[s]!] += col[i]!;
  }
  for (let nd = label.length - 1; nd > 0; nd--) total[parent[nd]!] += total[nd]!;
  const children: number[][] = label.map(() => []);
  for (let nd = 1; nd < label.length; nd++) if (total[nd]! > 0) children[parent[nd]!]!.push(nd);
  for (const c of children) c.sort((a, b) => (label[a]! < label[b]! ? -1 : label[a]! > label[b]! ? 1 : a - b));
  return { label, kind, parent, total, children };
}

function subtitle(p: Profile): string {
  const m = p.meta;
  const parts = [`${m.lens} (${m.backend})`, m.mode];
  if (m.rateHz) parts.push(`${groupDigits(m.rateHz)} Hz`);
  if (m.durationNs !== undefined) parts.push(formatDuration(m.durationNs));
  parts.push(`${groupDigits(m.sampleCount)} samples`);
  if (m.errorCount) parts.push(`${groupDigits(m.errorCount)} errors`);
  const py = m.environment.python;
  if (py?.version) parts.push(`${py.implementation ?? 'Python'} ${py.version}`);
  return parts.join(' · ');
}

/** The style of pylens's flamegraph SVGs (this one and the differential one, render/diff.ts). */
export function flameSvgStyle(fs: number, o: { subtitleSize?: number; buttons?: string[] } = {}): string {
  return `<style type="text/css"><![CDATA[
text { font-family: Verdana, "DejaVu Sans", sans-serif; font-size: ${fs}px; fill: rgb(0,0,0); }
#title { text-anchor: middle; font-size: ${fs + 5}px; }
#subtitle { text-anchor: middle; fill: rgb(90,90,90);${o.subtitleSize ? ` font-size: ${o.subtitleSize}px;` : ''} }
${['#unzoom', '#search', ...(o.buttons ?? [])].join(', ')} { cursor: pointer; }
#search { text-anchor: end; }
#search.active { fill: rgb(160,0,160); }
#matched { text-anchor: end; }
g.f:hover rect { stroke: black; stroke-width: 0.5; cursor: pointer; }
g.f text { pointer-events: none; }
.hide { display: none; }
.parent { opacity: 0.5; }
]]></style>`;
}

/** Render the profile as a FlameGraph-style SVG. */
export function renderSvg(p: Profile, o: SvgOptions = {}): string {
  const width = o.width ?? 1200;
  const fh = o.frameHeight ?? 16;
  const fs = o.fontSize ?? 12;
  const minWidth = o.minWidth ?? 0.1;
  const inverted = o.inverted ?? false;
  const xpad = 10;
  const charW = fs * FONT_WIDTH;
  const vi = o.valueIndex ?? p.defaultValue;
  const unit = p.valueTypes[vi]?.unit ?? 'samples';
  const t = buildTree(p, o);
  const grand = t.total[0]!;
  const scale = grand > 0 ? (width - 2 * xpad) / grand : 0;

  // Lay out depth-first, culling narrow frames together with their subtrees.
  const out: string[] = [];
  let maxDepth = 0;
  const placed: Array<[number, number, number]> = []; // node, x (value units), depth
  if (grand > 0) {
    const stack: Array<[number, number, number]> = [[0, 0, 0]];
    while (stack.length) {
      const [nd, x, d] = stack.pop()!;
      placed.push([nd, x, d]);
      if (d > maxDepth) maxDepth = d;
      let acc = x;
      const kids: Array<[number, number, number]> = [];
      for (const c of t.children[nd]!) {
        if (t.total[c]! * scale >= minWidth) kids.push([c, acc, d + 1]);
        acc += t.total[c]!;
      }
      for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]!);
    }
  }
  const ypad1 = fs * 5;
  const ypad2 = fs * 2 + 10;
  const height = Math.max(ypad1 + ypad2 + fh, (maxDepth + 1) * fh + ypad1 + ypad2);
  for (const [nd, x, d] of placed) {
    const w = t.total[nd]! * scale;
    const rx = xpad + x * scale;
    const y = inverted ? ypad1 + d * fh : height - ypad2 - (d + 1) * fh;
    const label = t.label[nd]!;
    const title = `${label} (${formatValue(t.total[nd]!, unit)}, ${formatPercent(grand > 0 ? t.total[nd]! / grand : 0)})`;
    const fit = Math.floor((w - 3) / charW);
    const text = w >= 2 * charW + 3 && fit >= 3 ? (label.length <= fit ? label : `${label.slice(0, fit - 2)}..`) : '';
    const fill = nd === 0 ? 'rgb(200,200,208)' : frameColor(t.kind[nd]!, label);
    out.push(
      `<g class="f" data-x="${nv(x)}" data-w="${nv(t.total[nd]!)}" data-d="${d}"><title>${esc(title)}</title>` +
        `<rect x="${n2(rx)}" y="${y}" width="${n2(w)}" height="${fh - 1}" fill="${fill}" rx="2" ry="2"/>` +
        `<text x="${n2(rx + 3)}" y="${y + fh - 4.5}">${esc(text)}</text></g>`,
    );
  }
  const title = o.title ?? p.meta.name ?? (inverted ? 'Icicle Graph' : 'Flame Graph');
  const script = pageScript(['svgscript']);
  if (script.includes(']]>')) throw new Error('the SVG script must not contain "]]>"');
  return [
    '<?xml version="1.0" standalone="no"?>',
    `<svg version="1.1" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg"` +
      ` data-total="${nv(grand)}" data-width="${width}" data-xpad="${xpad}" data-charw="${n2(charW)}" ${EMBEDDED_MARK}>`,
    '<!-- Flame graph by pylens, in the conventions of Brendan Gregg\'s FlameGraph (https://github.com/brendangregg/FlameGraph). -->',
    '<defs><linearGradient id="background" y1="0" y2="1" x1="0" x2="0"><stop stop-color="#eeeeee" offset="5%"/><stop stop-color="#eeeeb0" offset="95%"/></linearGradient></defs>',
    flameSvgStyle(fs),
    `<rect x="0" y="0" width="${width}" height="${height}" fill="url(#background)"/>`,
    `<text id="title" x="${width / 2}" y="${fs * 2}">${esc(title)}</text>`,
    `<text id="subtitle" x="${width / 2}" y="${fs * 2 + fs + 6}">${esc(subtitle(p))}</text>`,
    `<text id="details" x="${xpad}" y="${height - ypad2 / 2 + 4}"> </text>`,
    `<text id="unzoom" class="hide" x="${xpad}" y="${fs * 2}">Reset Zoom</text>`,
    `<text id="search" x="${width - xpad}" y="${fs * 2}">Search</text>`,
    `<text id="matched" x="${width - xpad}" y="${height - ypad2 / 2 + 4}"> </text>`,
    '<g id="frames">',
    ...out,
    '</g>',
    embedInSvg(p),
    `<script type="text/ecmascript"><![CDATA[\n${script}]]></script>`,
    '</svg>',
    '',
  ].join('\n');
}

export const svgExporter: Exporter = {
  id: 'svg',
  extension: '.svg',
  // the page carries the .pylens encoding of the profile (formats/embedded.ts)
  lossless: true,
  write: (p, o) => renderSvg(p, o),
};
