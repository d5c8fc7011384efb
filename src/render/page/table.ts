/**
 * The page's function table and sandwich (runs in the browser; data from analysis/report.ts
 * `functionTable`: data.ts PageTable, in <script type="application/json" id="pylens-table"> or
 * in the data the workbench hands over). flame.ts builds it after the flamegraph's first frame
 * (`tableInit`), in the room `tableReserve` kept for it.
 * A panel under the flamegraph: one row per function (the heaviest by total), columns
 * Function, Self %, Total %, Self, Total and, where the profile has several states, the
 * state split; a click on a header sorts by it (again: the other way). A click on a row
 * selects the function: the flamegraph's search highlights it, and the sandwich beside the
 * table lists its callers and its callees with the value through each (a listed one is a
 * link to its own row).
 *
 * Filters. With no filter the table shows the embedded rows. When the page filters the rows
 * (time range, thread, process, task, state, value type: flame.ts calls tableShowFilter),
 * the table is recomputed from the rows that pass (functions.ts), with a caption saying what
 * it covers, and a selected function's sandwich is computed from the same rows: numbers are
 * never those of another selection.
 */
import type { PageTable, PageTableEntry } from './data.ts';
import { fnNames, fnSandwich, functionRows } from './functions.ts';
import type { FlameModel, RowFilter } from './tree.ts';
import { formatDuration, formatPercent, formatValueShort } from './units.ts';

/** A shown row: embedded (with its sandwich) or recomputed (`fn`; the sandwich computed on selection). */
interface TableRow {
  label: string;
  name: string;
  self: number;
  total: number;
  states?: Partial<Record<string, number>>;
  pstats?: { ncalls: number; primitive: number; tottime: number; cumtime: number };
  callers?: PageTableEntry[];
  callees?: PageTableEntry[];
  fn?: number;
}

/** A filter the table recomputes for (null: the embedded, unfiltered rows). */
export interface TableFilter {
  model: FlameModel;
  filter: RowFilter;
  unit: string;
  /** what the rows cover, for the caption: "1.20 s – 2.45 s · worker (100/101)" */
  caption: string;
}

type SortKey = 'label' | 'self' | 'total' | 'selfv' | 'totalv' | 'split' | 'ncalls' | 'tottime' | 'tpercall' | 'cumtime' | 'cpercall';

let tableFilterNow: TableFilter | null = null;
let tableApplyFilter: (() => void) | null = null;

/** Show the table for a filter (null: the embedded rows). Before the table is set up, remembered. */
export function tableShowFilter(f: TableFilter | null): void {
  tableFilterNow = f;
  tableApplyFilter?.();
}

/** Height of a table row and of its header (CSS px), for the room kept before the table exists. */
const TABLE_ROW_PX = 20;

/**
 * Before the first frame: keep the panel's room for the table that `tableInit` builds later
 * (up to its 34vh), so the flamegraph is measured once; hide it when there is no table.
 */
export function tableReserve(data: PageTable | null): void {
  const panel = document.getElementById('fnpanel');
  if (!panel) return;
  if (!data || data.rows.length === 0) {
    panel.hidden = true;
    return;
  }
  panel.style.height = `min(34vh, ${(data.rows.length + 1) * TABLE_ROW_PX + 2}px)`;
}

/** Build the table (after the flamegraph's first frame). */
export function tableInit(data: PageTable | null): void {
  const panel = document.getElementById('fnpanel');
  if (!panel) return;
  panel.style.height = '';
  if (!data || data.rows.length === 0) {
    panel.hidden = true;
    return;
  }
  const embedded = data;
  const hasStates = data.rows.some((r) => r.states !== undefined);
  // a profile that counts calls: pstats's columns (for the whole profile; a filtered table has none)
  const hasPstats = data.rows.some((r) => r.pstats !== undefined);
  const pst = (r: TableRow, k: SortKey): number => {
    const s = r.pstats;
    if (!s) return -1;
    return k === 'ncalls' ? s.ncalls : k === 'tottime' ? s.tottime : k === 'cumtime' ? s.cumtime : k === 'tpercall' ? (s.ncalls ? s.tottime / s.ncalls : 0) : s.primitive ? s.cumtime / s.primitive : 0;
  };
  const secs = (v: number) => (v < 0 ? '' : formatDuration(v * 1e9));
  const frameFn = Int32Array.from(data.fns.frame);
  let names: string[] | null = null;
  // what is shown: the embedded rows, or rows recomputed for the page's filters
  let rows: TableRow[] = data.rows;
  let unit = data.unit;
  let grandTotal = data.grandTotal;
  let perStack: Float64Array | null = null;
  let shownFilter: TableFilter | null = null;
  const el = (tag: string, text?: string, cls?: string): HTMLElement => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  const share = (v: number) => formatPercent(grandTotal > 0 ? v / grandTotal : 0);
  const splitText = (r: TableRow) => {
    if (!r.states) return '';
    const t = Object.values(r.states).reduce((a: number, x) => a + (x ?? 0), 0) || 1;
    return Object.entries(r.states)
      .map(([s, v]) => [s, v ?? 0] as const)
      .sort((a, b) => b[1] - a[1])
      .filter(([, v]) => v / t >= 0.005)
      .map(([s, v]) => `${s} ${Math.round((100 * v) / t)}%`)
      .join(' · ');
  };
  const cpuShare = (r: TableRow) => (r.states ? (r.states['on-cpu'] ?? 0) / (Object.values(r.states).reduce((a: number, x) => a + (x ?? 0), 0) || 1) : 0);
  const cols: Array<{ key: SortKey; title: string; num: boolean }> = [
    { key: 'label', title: 'Function', num: false },
    { key: 'self', title: 'Self %', num: true },
    { key: 'total', title: 'Total %', num: true },
    { key: 'selfv', title: 'Self', num: true },
    { key: 'totalv', title: 'Total', num: true },
    ...(hasStates ? [{ key: 'split' as SortKey, title: 'State split', num: false }] : []),
    ...(hasPstats
      ? ([
          { key: 'ncalls', title: 'ncalls', num: true },
          { key: 'tottime', title: 'tottime', num: true },
          { key: 'tpercall', title: 'percall', num: true },
          { key: 'cumtime', title: 'cumtime', num: true },
          { key: 'cpercall', title: 'percall', num: true },
        ] as Array<{ key: SortKey; title: string; num: boolean }>)
      : []),
  ];
  let sortKey: SortKey = 'total';
  let desc = true;
  let selected = -1;
  const table = el('table', undefined, 'fntable');
  const caption = el('caption');
  const thead = el('thead');
  const tbody = el('tbody');
  const side = el('div', undefined, 'sandwich');
  side.id = 'sandwich';
  table.append(caption, thead, tbody);
  const wrap = el('div', undefined, 'fnwrap');
  wrap.append(table);
  panel.append(wrap, side);

  const value = (r: TableRow, k: SortKey): number | string => (k === 'label' ? r.label : k === 'self' || k === 'selfv' ? r.self : k === 'total' || k === 'totalv' ? r.total : k === 'split' ? cpuShare(r) : pst(r, k));
  const order = () => {
    const idx = rows.map((_, i) => i);
    idx.sort((a, b) => {
      const x = value(rows[a]!, sortKey);
      const y = value(rows[b]!, sortKey);
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
    if (rows.length === 0) {
      const tr = el('tr', undefined, 'empty');
      const td = el('td', 'No samples pass the current filters.');
      (td as HTMLTableCellElement).colSpan = cols.length;
      tr.append(td);
      tbody.append(tr);
      return;
    }
    for (const i of order()) {
      const r = rows[i]!;
      const tr = el('tr', undefined, i === selected ? 'sel' : '');
      tr.dataset['row'] = String(i);
      tr.append(el('td', r.label, 'fn'), el('td', share(r.self), 'num'), el('td', share(r.total), 'num'), el('td', formatValueShort(r.self, unit), 'num'), el('td', formatValueShort(r.total, unit), 'num'));
      if (hasStates) tr.append(el('td', splitText(r), 'split'));
      if (hasPstats) {
        const s = r.pstats;
        tr.append(el('td', s ? (s.ncalls === s.primitive ? String(s.ncalls) : `${s.ncalls}/${s.primitive}`) : '', 'num'), el('td', secs(pst(r, 'tottime')), 'num'), el('td', secs(pst(r, 'tpercall')), 'num'), el('td', secs(pst(r, 'cumtime')), 'num'), el('td', secs(pst(r, 'cpercall')), 'num'));
      }
      tr.addEventListener('click', () => select(i));
      tbody.append(tr);
    }
  };
  const list = (title: string, entries: PageTableEntry[]) => {
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
  /** A recomputed row's callers and callees, from the rows that pass the filter. */
  const sandwichOf = (r: TableRow): { callers: PageTableEntry[]; callees: PageTableEntry[] } => {
    if (r.callers && r.callees) return { callers: r.callers, callees: r.callees };
    if (r.fn === undefined || !shownFilter || !perStack) return { callers: [], callees: [] };
    const rowOfFn = new Map<number, number>();
    rows.forEach((x, i) => rowOfFn.set(x.fn!, i));
    const sw = fnSandwich(shownFilter.model, frameFn, embedded.fns.label.length, perStack, r.fn, 8);
    const entries = (xs: Array<[number, number]>) => xs.map(([k, v]) => ({ row: rowOfFn.get(k) ?? -1, label: embedded.fns.label[k]!, value: v }));
    r.callers = entries(sw.callers);
    r.callees = entries(sw.callees);
    return { callers: r.callers, callees: r.callees };
  };
  function select(i: number, highlight = true): void {
    selected = i;
    const r = rows[i]!;
    const sw = sandwichOf(r);
    side.textContent = '';
    side.append(el('div', r.label, 'swtitle'), el('div', `${share(r.total)} total · ${share(r.self)} self${r.states ? ` · ${splitText(r)}` : ''}`, 'swsub'), list('Callers', sw.callers), list('Callees', sw.callees));
    renderBody();
    // the flamegraph highlights the function (its search is a regular expression)
    if (highlight) window.__pylens?.search(`^${r.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( |$)`);
  }
  /** Switch to the embedded rows or to rows recomputed for the current filter, keeping the selected function. */
  const apply = () => {
    const keep = selected >= 0 ? rows[selected]?.label : undefined;
    const f = tableFilterNow;
    shownFilter = f;
    if (f === null) {
      rows = embedded.rows;
      unit = embedded.unit;
      grandTotal = embedded.grandTotal;
      perStack = null;
      caption.textContent = '';
      caption.hidden = true;
    } else {
      names ??= fnNames(f.model, frameFn, embedded.fns.label.length);
      const t = functionRows(f.model, embedded.fns, frameFn, names, f.filter, { states: hasStates, limit: embedded.limit });
      rows = t.rows;
      unit = f.unit;
      grandTotal = t.grandTotal;
      perStack = t.perStack;
      caption.textContent = `Functions in ${f.caption} — ${formatValueShort(t.grandTotal, f.unit)}${f.unit === 'samples' ? ' samples' : ''}`;
      caption.hidden = false;
    }
    selected = keep === undefined ? -1 : rows.findIndex((r) => r.label === keep);
    if (selected >= 0) select(selected, false);
    else {
      side.textContent = '';
      renderBody();
    }
  };
  tableApplyFilter = apply;
  renderHead();
  if (tableFilterNow !== null) apply();
  else renderBody();
}
