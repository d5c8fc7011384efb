/**
 * The page's function table and sandwich (runs in the browser; data from
 * analysis/report.ts `functionTable`, in <script type="application/json" id="pylens-table">).
 * A panel under the flamegraph: one row per function (the heaviest by total), columns
 * Function, Self %, Total %, Self, Total and, where the profile has several states, the
 * state split; a click on a header sorts by it (again: the other way). A click on a row
 * selects the function: the flamegraph's search highlights it, and the sandwich beside the
 * table lists its callers and its callees with the value through each (a listed one is a
 * link to its own row).
 */
import { formatPercent, formatValueShort } from './units.ts';

interface TableEntry {
  row: number;
  label: string;
  value: number;
}
interface TableRow {
  label: string;
  name: string;
  file: string | null;
  self: number;
  total: number;
  states?: Record<string, number>;
  callers: TableEntry[];
  callees: TableEntry[];
}
interface TableData {
  unit: string;
  grandTotal: number;
  rows: TableRow[];
}

type SortKey = 'label' | 'self' | 'total' | 'selfv' | 'totalv' | 'split';

function tableMain(): void {
  const src = document.getElementById('pylens-table');
  const panel = document.getElementById('fnpanel');
  if (!src || !panel) return;
  const data = JSON.parse(src.textContent ?? 'null') as TableData | null;
  if (!data || data.rows.length === 0) {
    panel.hidden = true;
    return;
  }
  const hasStates = data.rows.some((r) => r.states !== undefined);
  const el = (tag: string, text?: string, cls?: string): HTMLElement => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  const share = (v: number) => formatPercent(data.grandTotal > 0 ? v / data.grandTotal : 0);
  const splitText = (r: TableRow) => {
    if (!r.states) return '';
    const t = Object.values(r.states).reduce((a, x) => a + x, 0) || 1;
    return Object.entries(r.states)
      .sort((a, b) => b[1] - a[1])
      .filter(([, v]) => v / t >= 0.005)
      .map(([s, v]) => `${s} ${Math.round((100 * v) / t)}%`)
      .join(' · ');
  };
  const cpuShare = (r: TableRow) => (r.states ? (r.states['on-cpu'] ?? 0) / (Object.values(r.states).reduce((a, x) => a + x, 0) || 1) : 0);
  const cols: Array<{ key: SortKey; title: string; num: boolean }> = [
    { key: 'label', title: 'Function', num: false },
    { key: 'self', title: 'Self %', num: true },
    { key: 'total', title: 'Total %', num: true },
    { key: 'selfv', title: 'Self', num: true },
    { key: 'totalv', title: 'Total', num: true },
    ...(hasStates ? [{ key: 'split' as SortKey, title: 'State split', num: false }] : []),
  ];
  let sortKey: SortKey = 'total';
  let desc = true;
  let selected = -1;
  const table = el('table', undefined, 'fntable');
  const thead = el('thead');
  const tbody = el('tbody');
  const side = el('div', undefined, 'sandwich');
  side.id = 'sandwich';
  table.append(thead, tbody);
  const wrap = el('div', undefined, 'fnwrap');
  wrap.append(table);
  panel.append(wrap, side);

  const value = (r: TableRow, k: SortKey): number | string => (k === 'label' ? r.label : k === 'self' || k === 'selfv' ? r.self : k === 'total' || k === 'totalv' ? r.total : cpuShare(r));
  const order = () => {
    const idx = data.rows.map((_, i) => i);
    idx.sort((a, b) => {
      const x = value(data.rows[a]!, sortKey);
      const y = value(data.rows[b]!, sortKey);
      const c = typeof x === 'string' ? x.localeCompare(y as string) : x - (y as number);
      return (desc ? -c : c) || a - b;
    });
    return idx;
  };
  const renderHead = () => {
    thead.textContent = '';
    const tr = el('tr');
    for (const c of cols) {
      const th = el('th', c.title + (c.key === sortKey ? (desc ? ' ▼' : ' ▲') : ''), c.num ? 'num' : '');
      th.dataset['key'] = c.key;
      th.addEventListener('click', () => {
        if (sortKey === c.key) desc = !desc;
        else (sortKey = c.key), (desc = c.key !== 'label');
        renderHead();
        renderBody();
      });
      tr.append(th);
    }
    thead.append(tr);
  };
  const renderBody = () => {
    tbody.textContent = '';
    for (const i of order()) {
      const r = data.rows[i]!;
      const tr = el('tr', undefined, i === selected ? 'sel' : '');
      tr.dataset['row'] = String(i);
      tr.append(el('td', r.label, 'fn'), el('td', share(r.self), 'num'), el('td', share(r.total), 'num'), el('td', formatValueShort(r.self, data.unit), 'num'), el('td', formatValueShort(r.total, data.unit), 'num'));
      if (hasStates) tr.append(el('td', splitText(r), 'split'));
      tr.addEventListener('click', () => select(i));
      tbody.append(tr);
    }
  };
  const list = (title: string, entries: TableEntry[]) => {
    const box = el('div', undefined, 'sw');
    box.append(el('b', title));
    if (entries.length === 0) box.append(el('div', '—', 'none'));
    for (const e of entries) {
      const line = el(e.row >= 0 ? 'a' : 'span', `${share(e.value)}  ${e.label}`, 'swe');
      if (e.row >= 0) {
        line.setAttribute('href', '#');
        line.addEventListener('click', (ev) => {
          ev.preventDefault();
          select(e.row);
        });
      }
      box.append(line);
    }
    return box;
  };
  function select(i: number): void {
    selected = i;
    const r = data!.rows[i]!;
    side.textContent = '';
    side.append(el('div', r.label, 'swtitle'), el('div', `${share(r.total)} total · ${share(r.self)} self${r.states ? ` · ${splitText(r)}` : ''}`, 'swsub'), list('Callers', r.callers), list('Callees', r.callees));
    renderBody();
    // the flamegraph highlights the function (its search is a regular expression)
    window.__pylens?.search(`^${r.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( |$)`);
  }
  renderHead();
  renderBody();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', tableMain);
else tableMain();
