// The workbench app (`pylens serve`): the profile list with filters and search, a profile
// (its metadata and the profile page in a sandboxed frame), compare (the differential page
// and the significant changes), merge, drag-and-drop upload. The view lives in the URL's
// fragment (#/?search=…, #/p/12, #/compare/3/5, #/merge/1,2,3) so a link shares it; the
// token (#token=…, printed by pylens serve) is kept for the tab and sent as a header.
import { formatDuration, formatPercent } from './units.ts';

interface WbRow {
  id: number;
  name: string;
  service: string;
  lens: string;
  mode: string;
  backend: string;
  command: string | null;
  pid: number | null;
  host: string | null;
  python: string | null;
  startMs: number | null;
  durationNs: number | null;
  samples: number;
  errors: number;
  overhead: number | null;
  addedMs: number;
  bytes: number;
  labels: Record<string, string>;
}

const wbState = { ready: false, view: '', rows: [] as WbRow[], total: 0, errors: [] as string[], token: '' };
(window as unknown as { __workbench: typeof wbState }).__workbench = wbState;

function wbEl<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...kids: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

async function wbFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (wbState.token) headers.set('X-Pylens-Token', wbState.token);
  const r = await fetch(path, { ...init, headers });
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try {
      const j = (await r.json()) as { error?: string; fix?: string };
      if (j.error) msg = `${j.error}${j.fix ? ` — ${j.fix}` : ''}`;
    } catch {
      /* not JSON */
    }
    throw new Error(msg);
  }
  return r;
}

function wbWhen(ms: number | null): string {
  if (ms === null) return '–';
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function wbShowError(msg: string): void {
  wbState.errors.push(msg);
  const bar = document.getElementById('wb-error')!;
  bar.textContent = msg;
  bar.hidden = false;
}

/** the fragment's route and query: "#/compare/3/5?x=1" → ['compare','3','5'], {x:'1'} */
function wbRoute(): { parts: string[]; q: URLSearchParams } {
  const h = location.hash.replace(/^#/, '');
  const [path, query] = h.split('?', 2) as [string, string | undefined];
  return { parts: path.split('/').filter(Boolean), q: new URLSearchParams(query ?? '') };
}

function wbGo(hash: string): void {
  if (location.hash !== hash) location.hash = hash;
  else void wbRender();
}

/**
 * A frame holding the page without data (GET /api/page), started while the list shows, so its
 * process and script are up before the next open, which moves it in place (moveBefore: no
 * reload) and hands it its data. Where moveBefore is missing, every open starts its own frame.
 */
let wbSpare: { frame: HTMLIFrameElement; html: string; asked: boolean } | null = null;
function wbWarmFrame(html: string): void {
  if (wbSpare || !('moveBefore' in Element.prototype)) return;
  const frame = wbEl('iframe', { sandbox: 'allow-scripts allow-downloads', title: 'profile page (ready for the next open)', tabindex: '-1' });
  frame.srcdoc = html;
  wbSpare = { frame, html, asked: false };
  document.getElementById('wb-spare')!.append(frame);
}
// the spare page asks for its data as soon as it runs: remembered until an open takes it
addEventListener('message', (ev) => {
  if (wbSpare && ev.source === wbSpare.frame.contentWindow && (ev.data as { type?: string } | null)?.type === 'pylens-want-blob') wbSpare.asked = true;
});

/**
 * A profile page in a sandboxed frame, placed at the end of `into`: its own scripts, no access
 * to this app, its token or the network. With `blob` (the page's data, fetched here), the page
 * asks for it once it runs and gets it as a Blob.
 */
function wbFrame(into: HTMLElement, html: string, title: string, blob?: Promise<Blob>, q?: URLSearchParams): HTMLIFrameElement {
  const spare = blob && wbSpare?.html === html ? wbSpare : null;
  let f: HTMLIFrameElement;
  if (spare) {
    wbSpare = null;
    f = spare.frame;
    f.title = title;
    f.className = 'wb-frame';
    f.removeAttribute('tabindex');
    (into as HTMLElement & { moveBefore(node: Node, child: Node | null): void }).moveBefore(f, null);
  } else {
    f = wbEl('iframe', { class: 'wb-frame', sandbox: 'allow-scripts allow-downloads', title });
    f.srcdoc = html;
    into.append(f);
  }
  if (blob) {
    // the page's view (filters, search, time range …) rides in this app's URL as view=JSON
    let view: unknown = null;
    try {
      view = JSON.parse(q?.get('view') ?? 'null');
    } catch {
      /* a hand-edited URL: open the default view */
    }
    const route = location.hash.split('?', 1)[0]!;
    // a Blob, not its bytes: the message carries a handle, and the frame reads the bytes
    // straight from the browser (an ArrayBuffer went through this page, then was copied across)
    const send = () => void blob.then((buf) => f.contentWindow?.postMessage({ type: 'pylens-blob', buf, view }, '*'));
    const onMessage = (ev: MessageEvent) => {
      if (ev.source !== f.contentWindow) return;
      const d = ev.data as { type?: string; view?: Record<string, unknown> } | null;
      if (d?.type === 'pylens-want-blob') send();
      // this page is complete: start the next open's page while this one is viewed
      else if (d?.type === 'pylens-ready') wbPageShell().then(wbWarmFrame, () => undefined);
      else if (d?.type === 'pylens-view' && d.view && location.hash.split('?', 1)[0] === route) {
        const p = new URLSearchParams(location.hash.split('?')[1] ?? '');
        if (Object.keys(d.view).length) p.set('view', JSON.stringify(d.view));
        else p.delete('view');
        const qs = p.toString();
        history.replaceState(null, '', `${route}${qs ? `?${qs}` : ''}`);
      }
    };
    addEventListener('message', onMessage);
    // the listener goes with the view
    addEventListener('hashchange', () => removeEventListener('message', onMessage), { once: true });
    if (spare?.asked) send();
  }
  return f;
}

/** The list's filters in this app's URL as the API's query: the time range (an age here) as a start time. */
function wbApiFilters(q: URLSearchParams): URLSearchParams {
  const api = new URLSearchParams();
  for (const k of ['search', 'service', 'lens', 'where', 'fn']) if (q.get(k)) api.set(k, q.get(k)!);
  const age = Number(q.get('since') ?? 0);
  if (age > 0) api.set('since', String(Date.now() - age));
  return api;
}

const WB_SINCE: [string, number][] = [
  ['any time', 0],
  ['last hour', 3600e3],
  ['last 24 h', 86400e3],
  ['last 7 days', 7 * 86400e3],
  ['last 30 days', 30 * 86400e3],
];

async function wbList(main: HTMLElement, q: URLSearchParams): Promise<void> {
  const labels = ((await (await wbFetch('/api/labels')).json()) as { labels: { key: string; value: string; count: number }[] }).labels;
  const values = (key: string) => labels.filter((l) => l.key === key).map((l) => l.value);
  const form = wbEl('form', { id: 'wb-filters', class: 'wb-filters' });
  const search = wbEl('input', { type: 'search', name: 'search', placeholder: 'search name, command, labels', value: q.get('search') ?? '' });
  const select = (name: string, opts: string[], label: string) => {
    const s = wbEl('select', { name, 'aria-label': label }, wbEl('option', { value: '', text: `any ${label}` }));
    for (const o of opts) s.append(wbEl('option', { value: o, text: o }));
    s.value = q.get(name) ?? '';
    return s;
  };
  const service = select('service', values('service'), 'service');
  const lens = select('lens', values('lens'), 'lens');
  const where = wbEl('input', { type: 'text', name: 'where', placeholder: 'label=value', value: q.get('where') ?? '' });
  const since = wbEl('select', { name: 'since', 'aria-label': 'time range' });
  for (const [t, v] of WB_SINCE) since.append(wbEl('option', { value: String(v), text: t }));
  since.value = q.get('since') ?? '0';
  const fn = wbEl('input', { type: 'text', name: 'fn', placeholder: 'has function…', value: q.get('fn') ?? '' });
  form.append(search, service, lens, where, fn, since, wbEl('button', { type: 'submit', text: 'Filter' }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    new FormData(form).forEach((v, k) => {
      if (typeof v === 'string' && v && v !== '0') p.set(k, v);
    });
    wbGo(`#/?${p}`);
  });
  for (const s of [service, lens, since]) s.addEventListener('change', () => form.requestSubmit());

  const api = wbApiFilters(q);
  api.set('limit', '500');
  const { total, profiles } = (await (await wbFetch(`/api/profiles?${api}`)).json()) as { total: number; profiles: WbRow[] };
  wbState.rows = profiles;
  wbState.total = total;

  const actions = wbEl('div', { class: 'wb-actions' });
  const compare = wbEl('button', { id: 'wb-compare', type: 'button', text: 'Compare', disabled: '' });
  const merge = wbEl('button', { id: 'wb-merge', type: 'button', text: 'Merge', disabled: '' });
  const del = wbEl('button', { id: 'wb-delete', type: 'button', text: 'Delete', disabled: '' });
  const trend = wbEl('a', { id: 'wb-trend', class: 'wb-button', href: `#/trend?${q}`, text: 'Functions over time' });
  const mergeAll = wbEl('a', { id: 'wb-merge-all', class: 'wb-button', href: `#/merge?${q}`, text: `Merge all ${total}`, title: 'every profile these filters match, as one' });
  const count = wbEl('span', { class: 'wb-count', text: `${profiles.length} of ${total} profile${total === 1 ? '' : 's'}` });
  actions.append(compare, merge, del, trend, ...(total > 1 && total <= 1000 ? [mergeAll] : []), count);
  const checked = () => Array.from(main.querySelectorAll<HTMLInputElement>('input.wb-pick:checked')).map((c) => Number(c.value));
  const update = () => {
    const n = checked().length;
    compare.disabled = n !== 2;
    merge.disabled = n < 2;
    del.disabled = n < 1;
  };
  compare.addEventListener('click', () => {
    // older is the baseline
    const [a, b] = checked()
      .map((id) => profiles.find((r) => r.id === id)!)
      .sort((x, y) => (x.startMs ?? x.addedMs) - (y.startMs ?? y.addedMs));
    wbGo(`#/compare/${a!.id}/${b!.id}`);
  });
  merge.addEventListener('click', () => wbGo(`#/merge/${checked().join(',')}`));
  del.addEventListener('click', async () => {
    const ids = checked();
    if (!confirm(`Delete ${ids.length} profile${ids.length === 1 ? '' : 's'}?`)) return;
    for (const id of ids) await wbFetch(`/api/profiles/${id}`, { method: 'DELETE' });
    void wbRender();
  });

  const table = wbEl('table', { id: 'wb-table', class: 'wb-table' });
  const head = wbEl('tr');
  for (const h of ['', 'id', 'started', 'service', 'name', 'lens', 'mode', 'samples', 'duration', 'overhead', 'labels']) head.append(wbEl('th', { text: h }));
  table.append(wbEl('thead', {}, head));
  const body = wbEl('tbody');
  for (const r of profiles) {
    const tr = wbEl('tr', { 'data-id': String(r.id) });
    const pick = wbEl('input', { type: 'checkbox', class: 'wb-pick', value: String(r.id), 'aria-label': `select #${r.id}` });
    pick.addEventListener('click', (ev) => ev.stopPropagation());
    pick.addEventListener('change', update);
    const labelText = Object.entries(r.labels)
      .filter(([k]) => !['lens', 'mode', 'service', 'host', 'python'].includes(k))
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    tr.append(
      wbEl('td', {}, pick),
      wbEl('td', { text: `#${r.id}` }),
      wbEl('td', { text: wbWhen(r.startMs ?? r.addedMs) }),
      wbEl('td', { text: r.service }),
      wbEl('td', { class: 'wb-name', text: r.name, title: r.command ?? r.name }),
      wbEl('td', { text: r.lens }),
      wbEl('td', { text: r.mode }),
      wbEl('td', { class: 'wb-num', text: String(r.samples) }),
      wbEl('td', { class: 'wb-num', text: r.durationNs !== null ? formatDuration(r.durationNs) : '–' }),
      wbEl('td', { class: 'wb-num', text: r.overhead !== null ? formatPercent(r.overhead) : '–' }),
      wbEl('td', { class: 'wb-labels', text: labelText }),
    );
    tr.addEventListener('click', () => wbGo(`#/p/${r.id}`));
    // a pointer resting on a row starts its data's transfer (and the server's encoding of it)
    let dwell = 0;
    tr.addEventListener('mouseenter', () => (dwell = window.setTimeout(() => wbPrefetch(r.id), 150)));
    tr.addEventListener('mouseleave', () => clearTimeout(dwell));
    body.append(tr);
  }
  table.append(body);
  main.append(form, actions, profiles.length ? table : wbEl('p', { class: 'wb-empty', text: total === 0 && !api.has('search') ? 'The store is empty: pylens record … --save, pylens store add FILE, or drop a profile file here.' : 'No profile matches these filters.' }));
  // the profile page, loaded and running in a spare frame before the next open
  if (profiles.length) wbPageShell().then(wbWarmFrame, () => undefined);
}

function wbMetaPanel(p: WbRow & { meta: Record<string, unknown> }): HTMLElement {
  const meta = p.meta as { environment?: Record<string, unknown>; overhead?: { fraction?: number; method?: string }; extra?: Record<string, unknown>; rateHz?: number; errorCount?: number };
  const dl = wbEl('dl', { class: 'wb-meta', id: 'wb-meta' });
  const add = (k: string, v: string | null | undefined) => {
    if (v === null || v === undefined || v === '') return;
    dl.append(wbEl('dt', { text: k }), wbEl('dd', { text: v }));
  };
  add('service', p.service);
  add('lens', `${p.lens} (${p.backend}), ${p.mode}`);
  add('command', p.command);
  add('pid', p.pid !== null ? String(p.pid) : null);
  add('started', wbWhen(p.startMs));
  add('duration', p.durationNs !== null ? formatDuration(p.durationNs) : null);
  add('samples', `${p.samples}${p.errors ? ` (${p.errors} errors)` : ''}${meta.rateHz ? ` at ${meta.rateHz} Hz` : ''}`);
  add('overhead', meta.overhead ? `${meta.overhead.fraction !== undefined ? formatPercent(meta.overhead.fraction) : 'not measured'} — ${meta.overhead.method ?? ''}` : null);
  const env = meta.environment ?? {};
  const py = env.python as { version?: string; implementation?: string } | undefined;
  add('python', py ? `${py.implementation ?? ''} ${py.version ?? ''}`.trim() : null);
  add('host', [env.hostname, env.os, env.kernel, env.cpuModel, env.cpuCores ? `${env.cpuCores} cores` : ''].filter(Boolean).join(' · '));
  const extra = meta.extra ?? {};
  for (const k of ['quality', 'cutStacks', 'achievedRateHz', 'missedTicks']) if (extra[k] !== undefined) add(k, String(extra[k]));
  add('labels', Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(' '));
  return dl;
}

interface WbSourceFile {
  file: string;
  total: number;
  self: number;
  path: string | null;
  why?: string;
}

/** The source view: the profile's files (hottest first), and one file's lines with their heat. */
async function wbSource(main: HTMLElement, id: number, file: string | null): Promise<void> {
  const { files } = (await (await wbFetch(`/api/profiles/${id}/sources`)).json()) as { files: WbSourceFile[] };
  const pick = file ?? files.find((f) => f.path)?.file ?? null;
  const list = wbEl('ul', { class: 'wb-files', id: 'wb-files' });
  for (const f of files) {
    const li = wbEl('li', { class: `${f.path ? '' : 'wb-unreadable'}${f.file === pick ? ' wb-on' : ''}`, title: f.path ?? f.why ?? '' });
    li.append(wbEl('span', { class: 'wb-num', text: formatPercent(f.total) }), wbEl('span', { text: ` ${f.file}` }));
    if (f.path) li.addEventListener('click', () => wbGo(`#/p/${id}/source?file=${encodeURIComponent(f.file)}`));
    list.append(li);
  }
  const code = wbEl('div', { class: 'wb-code', id: 'wb-code' });
  main.append(wbEl('div', { class: 'wb-source' }, list, code));
  if (!pick) {
    code.append(wbEl('p', { class: 'wb-empty', text: 'None of this profile’s Python files is readable on this machine.' }));
    return;
  }
  const src = (await (await wbFetch(`/api/profiles/${id}/source?file=${encodeURIComponent(pick)}`)).json()) as { path: string; text: string; lines: { line: number; self: number; total: number; functions: string[] }[] };
  const heat = new Map(src.lines.map((l) => [l.line, l]));
  const max = Math.max(1e-9, ...src.lines.map((l) => l.total));
  code.append(wbEl('div', { class: 'wb-path', text: src.path }));
  const table = wbEl('table', { class: 'wb-lines' });
  table.append(wbEl('thead', {}, wbEl('tr', {}, wbEl('th', { text: 'total' }), wbEl('th', { text: 'self' }), wbEl('th', { text: 'line' }), wbEl('th', { text: '' }))));
  const body = wbEl('tbody');
  src.text.split('\n').forEach((text, i) => {
    const h = heat.get(i + 1);
    const tr = wbEl('tr', h ? { 'data-line': String(i + 1), class: 'wb-hot', title: h.functions.join(', ') } : {});
    if (h) tr.style.background = `rgba(234, 88, 12, ${(0.08 + 0.5 * (h.total / max)).toFixed(3)})`;
    tr.append(wbEl('td', { class: 'wb-num', text: h ? formatPercent(h.total) : '' }), wbEl('td', { class: 'wb-num', text: h && h.self ? formatPercent(h.self) : '' }), wbEl('td', { class: 'wb-num wb-ln', text: String(i + 1) }), wbEl('td', { class: 'wb-src', text }));
    body.append(tr);
  });
  table.append(body);
  code.append(table);
  const hottest = src.lines.reduce<{ line: number; total: number } | null>((a, l) => (a === null || l.self > a.total ? { line: l.line, total: l.self } : a), null);
  if (hottest) table.querySelector(`tr[data-line="${hottest.line}"]`)?.scrollIntoView({ block: 'center' });
}

/**
 * The profile page without data (GET /api/page: the same for every profile, fetched once):
 * each profile or merge opens it in a frame and hands it its data.
 */
let wbShell: Promise<string> | null = null;
function wbPageShell(): Promise<string> {
  if (!wbShell) {
    wbShell = wbFetch('/api/page').then((r) => r.text());
    wbShell.catch(() => (wbShell = null));
  }
  return wbShell;
}

/** One profile's data fetched ahead (the row under the pointer); taken by the next open of that profile. */
let wbAhead: { id: number; blob: Promise<Blob> } | null = null;
function wbPrefetch(id: number): void {
  if (wbAhead?.id === id) return;
  const blob = wbFetch(`/api/profiles/${id}/blob`).then((r) => r.blob());
  blob.catch(() => undefined);
  wbAhead = { id, blob };
}

async function wbProfile(main: HTMLElement, id: number, tab: string | undefined, q: URLSearchParams): Promise<void> {
  const source = tab === 'source';
  const ahead = wbAhead?.id === id ? wbAhead.blob : undefined;
  wbAhead = null;
  // the row and the page first (small), then the data: the frame starts while the data comes
  const infoP = wbFetch(`/api/profiles/${id}`).then((r) => r.json() as Promise<WbRow & { meta: Record<string, unknown> }>);
  const pageP = source ? Promise.resolve('') : wbPageShell();
  const blob = source ? undefined : (ahead ?? wbFetch(`/api/profiles/${id}/blob`).then((r) => r.blob()));
  blob?.catch(() => undefined);
  const [info, page] = await Promise.all([infoP, pageP]);
  document.title = `#${id} ${info.name} — pylens`;
  const bar = wbEl('div', { class: 'wb-bar' }, wbEl('a', { href: '#/', text: '← profiles' }), wbEl('h2', { text: `#${id} ${info.name}` }));
  const dl = wbEl('button', { type: 'button', text: 'Download .pylens' });
  dl.addEventListener('click', async () => {
    const blob = await (await wbFetch(`/api/profiles/${id}/export`)).blob();
    const a = wbEl('a', { href: URL.createObjectURL(blob), download: `profile-${id}.pylens` });
    a.click();
  });
  bar.append(dl);
  const tabs = wbEl('nav', { class: 'wb-tabs' }, wbEl('a', { href: `#/p/${id}`, class: source ? '' : 'wb-on', text: 'Flamegraph & table' }), wbEl('a', { href: `#/p/${id}/source`, class: source ? 'wb-on' : '', id: 'wb-tab-source', text: 'Source' }));
  const details = wbEl('details', { class: 'wb-details' }, wbEl('summary', { text: 'environment, overhead, quality' }), wbMetaPanel(info));
  main.append(bar, tabs, details);
  if (source) await wbSource(main, id, q.get('file'));
  else wbFrame(main, page, `profile #${id}`, blob, q);
}

async function wbCompare(main: HTMLElement, base: string, neu: string): Promise<void> {
  const q = `base=${encodeURIComponent(base)}&new=${encodeURIComponent(neu)}`;
  const [d, page] = await Promise.all([wbFetch(`/api/diff?${q}`).then((r) => r.json() as Promise<{ functions: { name: string; file: string | null; baseShare: number; newShare: number; delta: number; significant: boolean; qValue: number }[]; method?: string }>), wbFetch(`/api/diff?${q}&view=page`).then((r) => r.text())]);
  document.title = `#${base} → #${neu} — pylens`;
  main.append(wbEl('div', { class: 'wb-bar' }, wbEl('a', { href: '#/', text: '← profiles' }), wbEl('h2', { text: `compare #${base} (base) → #${neu}` })));
  const sig = d.functions.filter((f) => f.significant);
  const table = wbEl('table', { id: 'wb-changes', class: 'wb-table' });
  const head = wbEl('tr');
  for (const h of ['function', 'file', 'base', 'new', 'change', 'q']) head.append(wbEl('th', { text: h }));
  table.append(wbEl('thead', {}, head));
  const body = wbEl('tbody');
  for (const f of sig.slice(0, 50)) {
    body.append(
      wbEl(
        'tr',
        { class: f.delta > 0 ? 'wb-grew' : 'wb-shrank' },
        wbEl('td', { text: f.name }),
        wbEl('td', { text: f.file ?? '' }),
        wbEl('td', { class: 'wb-num', text: formatPercent(f.baseShare) }),
        wbEl('td', { class: 'wb-num', text: formatPercent(f.newShare) }),
        wbEl('td', { class: 'wb-num', text: `${f.delta > 0 ? '+' : ''}${f.delta.toFixed(1)} pts` }),
        wbEl('td', { class: 'wb-num', text: f.qValue.toPrecision(2) }),
      ),
    );
  }
  table.append(body);
  main.append(sig.length ? table : wbEl('p', { class: 'wb-empty', id: 'wb-changes', text: 'No significant change: every difference is within sampling noise.' }));
  wbFrame(main, page, 'differential flamegraph');
}

const WB_COLORS = ['#c2410c', '#1d4ed8', '#15803d', '#7e22ce', '#b45309', '#0e7490', '#be123c', '#4d7c0f', '#6d28d9', '#0369a1'];

/** Functions over time for the list's filters: each function's share per profile, a line per function. */
async function wbTrend(main: HTMLElement, q: URLSearchParams): Promise<void> {
  const api = wbApiFilters(q);
  if (q.get('names')) api.set('names', q.get('names')!);
  const t = (await (await wbFetch(`/api/trend?${api}`)).json()) as { profiles: { id: number; startMs: number; name: string }[]; series: { name: string; file: string | null; mean: number; points: (number | null)[] }[] };
  const filters = q.toString();
  main.append(wbEl('div', { class: 'wb-bar' }, wbEl('a', { href: `#/?${filters}`, text: '← profiles' }), wbEl('h2', { text: `functions over time${q.get('service') ? ` — ${q.get('service')}` : ''} (${t.profiles.length} profiles)` })));
  if (t.profiles.length < 2 || t.series.length === 0) {
    main.append(wbEl('p', { class: 'wb-empty', id: 'wb-trend-chart', text: 'Fewer than two profiles match: nothing to draw over time.' }));
    return;
  }
  const W = 1000;
  const H = 340;
  const L = 50;
  const B = 30;
  const t0 = t.profiles[0]!.startMs;
  const t1 = Math.max(t0 + 1, t.profiles[t.profiles.length - 1]!.startMs);
  const ymax = Math.max(0.01, ...t.series.flatMap((s) => s.points.filter((p): p is number => p !== null)));
  const x = (ms: number) => L + ((W - L - 10) * (ms - t0)) / (t1 - t0);
  const y = (v: number) => 10 + (H - B - 10) * (1 - v / ymax);
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('id', 'wb-trend-chart');
  svg.setAttribute('class', 'wb-chart');
  const line = (x1: number, y1: number, x2: number, y2: number, stroke: string) => {
    const l = document.createElementNS(NS, 'line');
    for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) l.setAttribute(k, String(v));
    l.setAttribute('stroke', stroke);
    svg.append(l);
  };
  const text = (px: number, py: number, s: string, anchor = 'end') => {
    const e = document.createElementNS(NS, 'text');
    e.setAttribute('x', String(px));
    e.setAttribute('y', String(py));
    e.setAttribute('text-anchor', anchor);
    e.textContent = s;
    svg.append(e);
  };
  for (let k = 0; k <= 4; k++) {
    const v = (ymax * k) / 4;
    line(L, y(v), W - 10, y(v), '#eef0f3');
    text(L - 6, y(v) + 4, formatPercent(v));
  }
  text(L, H - 8, wbWhen(t0), 'start');
  text(W - 10, H - 8, wbWhen(t1), 'end');
  const legend = wbEl('ul', { class: 'wb-legend' });
  t.series.forEach((s, i) => {
    const color = WB_COLORS[i % WB_COLORS.length]!;
    const pts = s.points.map((v, j) => (v === null ? null : [x(t.profiles[j]!.startMs), y(v), j] as const)).filter((p): p is readonly [number, number, number] => p !== null);
    const path = document.createElementNS(NS, 'polyline');
    path.setAttribute('points', pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' '));
    path.setAttribute('fill', 'none');
    path.setAttribute('stroke', color);
    path.setAttribute('stroke-width', '2');
    svg.append(path);
    for (const [a, b, j] of pts) {
      const c = document.createElementNS(NS, 'circle');
      c.setAttribute('cx', a.toFixed(1));
      c.setAttribute('cy', b.toFixed(1));
      c.setAttribute('r', '3.5');
      c.setAttribute('fill', color);
      c.setAttribute('data-profile', String(t.profiles[j]!.id));
      const title = document.createElementNS(NS, 'title');
      title.textContent = `${s.name}: ${formatPercent(s.points[j]!)} in #${t.profiles[j]!.id} (${wbWhen(t.profiles[j]!.startMs)})`;
      c.append(title);
      c.addEventListener('click', () => wbGo(`#/p/${t.profiles[j]!.id}`));
      svg.append(c);
    }
    const li = wbEl('li', {}, wbEl('span', { class: 'wb-swatch' }), `${s.name}${s.file ? ` (${s.file.replace(/^.*\//, '')})` : ''} — mean ${formatPercent(s.mean)}`);
    (li.firstChild as HTMLElement).style.background = color;
    legend.append(li);
  });
  main.append(svg, legend);
}

/** Many profiles as one: the ids picked (#/merge/1,2,3), or every one the filters match (#/merge?service=…). */
async function wbMerge(main: HTMLElement, ids: string | undefined, filters: URLSearchParams): Promise<void> {
  const api = ids ? new URLSearchParams({ ids }) : wbApiFilters(filters);
  const page = wbPageShell();
  const blob = wbFetch(`/api/merge?${api}&view=blob`).then((r) => r.blob());
  blob.catch(() => undefined);
  await page;
  const what = ids ? `${ids.split(',').length} profiles merged: #${ids.split(',').join(', #')}` : `every profile matching ${filters.toString().replace(/&/g, ', ') || 'no filter'}, merged`;
  document.title = `merge — pylens`;
  main.append(wbEl('div', { class: 'wb-bar' }, wbEl('a', { href: ids ? '#/' : `#/?${filters}`, text: '← profiles' }), wbEl('h2', { text: what })));
  wbFrame(main, await page, 'merged profiles', blob, filters);
}

async function wbRender(): Promise<void> {
  const main = document.getElementById('wb-main')!;
  wbState.ready = false;
  main.replaceChildren();
  document.getElementById('wb-error')!.hidden = true;
  const { parts, q } = wbRoute();
  wbState.view = parts[0] ?? 'list';
  document.title = 'pylens workbench';
  try {
    if (parts[0] === 'p' && parts[1]) await wbProfile(main, Number(parts[1]), parts[2], q);
    else if (parts[0] === 'compare' && parts[1] && parts[2]) await wbCompare(main, parts[1], parts[2]);
    else if (parts[0] === 'merge') await wbMerge(main, parts[1], q);
    else if (parts[0] === 'trend') await wbTrend(main, q);
    else await wbList(main, q);
  } catch (e) {
    wbShowError((e as Error).message);
  }
  wbState.ready = true;
}

async function wbUpload(files: FileList): Promise<void> {
  for (const f of Array.from(files)) {
    try {
      await wbFetch(`/api/profiles?name=${encodeURIComponent(f.name)}`, { method: 'POST', body: f });
    } catch (e) {
      wbShowError(`${f.name}: ${(e as Error).message}`);
      return;
    }
  }
  wbGo('#/');
}

function wbStart(): void {
  const m = /(?:^#|[&?])token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem('pylens-token', decodeURIComponent(m[1]!));
    history.replaceState(null, '', '#/');
  }
  wbState.token = sessionStorage.getItem('pylens-token') ?? '';
  window.addEventListener('hashchange', () => void wbRender());
  document.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    document.body.classList.add('wb-dropping');
  });
  document.addEventListener('dragleave', () => document.body.classList.remove('wb-dropping'));
  document.addEventListener('drop', (ev) => {
    ev.preventDefault();
    document.body.classList.remove('wb-dropping');
    if (ev.dataTransfer?.files.length) void wbUpload(ev.dataTransfer.files);
  });
  const input = document.getElementById('wb-file') as HTMLInputElement;
  input.addEventListener('change', () => input.files && void wbUpload(input.files));
  void wbRender();
  // the profile page, started now for the first open (the list starts one again for later opens)
  wbPageShell().then(wbWarmFrame, () => undefined);
}

wbStart();
