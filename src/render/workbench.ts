/**
 * The workbench's app shell for `pylens serve`: one HTML document with inline style and the
 * bundled page module `page/workbench.ts` (see README: page code without a bundler). It holds
 * no data; everything comes from the server's /api with the token header.
 */
import { pageScript } from './bundle.ts';

const CSS = `
:root { color-scheme: light; --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --accent: #c2410c; --bg: #fff; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 12px; padding: 8px 16px; border-bottom: 1px solid var(--line); }
header h1 { font-size: 15px; margin: 0; }
header h1 a { color: inherit; text-decoration: none; }
header .wb-upload { margin-left: auto; color: var(--muted); }
main { padding: 12px 16px; }
#wb-error { background: #fef3f2; color: #b42318; border: 1px solid #fecdca; padding: 6px 10px; margin: 8px 16px 0; border-radius: 4px; }
.wb-filters { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 8px; }
.wb-filters input[type=search] { min-width: 240px; }
.wb-filters input, .wb-filters select, button { font: inherit; padding: 3px 6px; }
.wb-actions { display: flex; gap: 6px; align-items: center; margin-bottom: 8px; }
.wb-count { color: var(--muted); margin-left: 8px; }
.wb-table { border-collapse: collapse; width: 100%; }
.wb-table th, .wb-table td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
.wb-table th { font-weight: 600; color: var(--muted); position: sticky; top: 0; background: var(--bg); }
#wb-table tbody tr { cursor: pointer; }
#wb-table tbody tr:hover { background: #f9fafb; }
.wb-num { text-align: right !important; font-variant-numeric: tabular-nums; }
.wb-name { max-width: 320px; overflow: hidden; text-overflow: ellipsis; }
.wb-labels { color: var(--muted); }
.wb-empty { color: var(--muted); padding: 24px 0; }
.wb-bar { display: flex; align-items: center; gap: 12px; margin-bottom: 8px; }
.wb-bar h2 { font-size: 14px; margin: 0; }
.wb-details { margin-bottom: 8px; }
.wb-meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
.wb-meta dt { color: var(--muted); }
.wb-meta dd { margin: 0; }
.wb-frame { width: 100%; height: calc(100vh - 150px); min-height: 480px; border: 1px solid var(--line); border-radius: 4px; }
.wb-grew td:nth-child(5) { color: #b42318; }
.wb-shrank td:nth-child(5) { color: #175cd3; }
.wb-tabs { display: flex; gap: 4px; margin-bottom: 8px; border-bottom: 1px solid var(--line); }
.wb-tabs a { padding: 4px 10px; color: var(--muted); text-decoration: none; border-bottom: 2px solid transparent; }
.wb-tabs a.wb-on { color: var(--fg); border-bottom-color: var(--accent); }
.wb-source { display: grid; grid-template-columns: minmax(220px, 28%) 1fr; gap: 12px; height: calc(100vh - 170px); }
.wb-files { list-style: none; margin: 0; padding: 0; overflow: auto; border-right: 1px solid var(--line); }
.wb-files li { padding: 2px 6px; cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.wb-files li.wb-on { background: #fff7ed; }
.wb-files li.wb-unreadable { color: var(--muted); cursor: default; }
.wb-code { overflow: auto; }
.wb-path { color: var(--muted); margin-bottom: 4px; }
.wb-lines { border-collapse: collapse; font: 12px/1.35 ui-monospace, monospace; }
.wb-lines td { padding: 0 8px; white-space: pre; }
.wb-lines th { color: var(--muted); font-weight: 600; text-align: right; padding: 0 8px; }
.wb-ln { color: var(--muted); }
.wb-button { border: 1px solid #d0d5dd; border-radius: 3px; padding: 2px 8px; color: inherit; text-decoration: none; background: #f9fafb; }
.wb-chart { width: 100%; max-width: 1100px; height: auto; font-size: 11px; fill: var(--muted); }
.wb-chart circle { cursor: pointer; }
.wb-legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 18px; }
.wb-swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
body.wb-dropping main { outline: 3px dashed var(--accent); outline-offset: -6px; }
`;

export function workbenchHtml(): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>pylens workbench</title>',
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<header><h1><a href="#/">pylens workbench</a></h1><label class="wb-upload">add a profile (any format pylens reads): <input type="file" id="wb-file" multiple></label></header>',
    '<div id="wb-error" role="alert" hidden></div>',
    '<main id="wb-main"></main>',
    // a profile page started ahead of the next open (page/workbench.ts wbWarmFrame)
    '<div id="wb-spare" hidden></div>',
    `<script>${pageScript(['units', 'workbench'])}</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
