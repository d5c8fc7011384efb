/**
 * `pylens store ls` as text: a row per stored profile (id, start, service, lens, mode,
 * samples, duration, the labels the other columns do not already show) and a count line.
 * The rows are the store's (`ProfileStore.list`); render may not import store, so the fields
 * it reads are named here.
 */

/** what the table shows of a stored profile (store's StoredProfile has these fields) */
export interface StoreListLine {
  id: number;
  startMs: number | null;
  addedMs: number;
  service: string;
  lens: string;
  mode: string;
  samples: number;
  durationNs: number | null;
  labels: Record<string, string>;
}

/** labels shown in their own columns (or implied by them), left out of the labels column */
const SHOWN = new Set(['lens', 'mode', 'service', 'host', 'python']);

function when(ms: number | null): string {
  if (ms === null) return '-';
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
}

/** The table and its count line ("3 of 10 profiles in PATH"). */
export function renderStoreList(rows: StoreListLine[], total: number, path: string): string {
  const head = ['id', 'started', 'service', 'lens', 'mode', 'samples', 'duration', 'labels'];
  const table = rows.map((r) => [
    `#${r.id}`,
    when(r.startMs ?? r.addedMs),
    r.service,
    r.lens,
    r.mode,
    String(r.samples),
    r.durationNs !== null ? `${(r.durationNs / 1e9).toFixed(1)} s` : '-',
    Object.entries(r.labels)
      .filter(([k]) => !SHOWN.has(k))
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const lines = [head, ...table].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd());
  return `${lines.join('\n')}\n${rows.length} of ${total} profile${total === 1 ? '' : 's'} in ${path}\n`;
}
