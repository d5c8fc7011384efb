/**
 * Grafana Pyroscope destination: `POST {url}/ingest?name=SERVICE.cpu{labels}&from=…&until=…
 * &format=pprof&sampleRate=HZ&spyName=pylens`, the window's gzipped pprof as the raw body.
 *
 * Checked against Pyroscope's handler (grafana/pyroscope pkg/ingester/pyroscope/ingest_handler.go,
 * pkg/og/convert/pprof/profile.go, api/model/labelset/labelset.go):
 * - `format=pprof` takes the body as it is (a multipart form is parsed only when no format
 *   is given), gzip or not.
 * - The profile type (`__name__`) comes from the pprof's sample types: a `wall` sample type
 *   makes `wall`, one containing `cpu` makes `process_cpu`; the `.cpu` / `.wall` suffix of
 *   the name is what the other formats use, we send it to match.
 * - `service_name` is the whole name (suffix included) unless a `service_name` label is
 *   given: we always give one.
 * - The label set has no quoting and no escape: a value ends at `,` or `}`, spaces around
 *   it are trimmed, `=` and `"` in a value are kept as they are. So `,` and `}` in a value
 *   become `_`, nothing else changes; a label name keeps `[A-Za-z0-9_.]` (others become `_`);
 *   names starting with `__` are dropped (reserved; the server drops them too).
 * - Errors are JSON `{"code": …, "message": …}`; 400 bad metadata, 408 body read failed,
 *   413 body too large, 422 ingestion failed.
 */
import { PYLENS_VERSION } from '../version.ts';
import { HttpPoster } from './http-post.ts';
import type { AgentWindow, Destination } from './window.ts';

export interface PyroscopeOptions {
  /** server base URL, e.g. `http://pyroscope:4040` (a path prefix is kept) */
  url: string;
  /** tenant: the `X-Scope-OrgID` header */
  orgId?: string;
  basicAuth?: { user: string; password: string };
  bearerToken?: string;
  /** one request's limit, default 10 s */
  timeoutMs?: number;
}

/** a label name Pyroscope's label-set parser accepts */
export function pyroscopeLabelName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.]/g, '_');
}

/** a label value that survives Pyroscope's label-set parser (no escape exists: `,` and `}` end a value) */
export function pyroscopeLabelValue(value: string): string {
  return value.replace(/[,}]/g, '_').replace(/[\r\n]/g, ' ').trim();
}

/** the application part of the name: Pyroscope's service-name characters `[A-Za-z0-9_.\-/]` */
export function pyroscopeAppName(service: string): string {
  const s = service.replace(/[^A-Za-z0-9_.\-/]/g, '_');
  return s || 'python';
}

/** `SERVICE.cpu{a=1,b=2}`: the `name` parameter, labels sorted, `service_name` always present */
export function pyroscopeName(w: AgentWindow): string {
  const labels = new Map<string, string>();
  for (const [k, v] of Object.entries(w.labels)) {
    if (k.startsWith('__')) continue;
    const name = pyroscopeLabelName(k);
    const value = pyroscopeLabelValue(v);
    if (!name || !value || labels.has(name)) continue;
    labels.set(name, value);
  }
  if (!labels.has('service_name')) labels.set('service_name', pyroscopeLabelValue(w.service) || 'python');
  const body = [...labels.keys()]
    .sort()
    .map((k) => `${k}=${labels.get(k)}`)
    .join(',');
  return `${pyroscopeAppName(w.service)}.${w.type}{${body}}`;
}

/** the full ingest URL of a window */
export function pyroscopeIngestUrl(base: string, w: AgentWindow): URL {
  const u = new URL(base);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/ingest`;
  const q = u.searchParams;
  q.set('name', pyroscopeName(w));
  q.set('from', String(Math.floor(w.fromMs / 1000)));
  q.set('until', String(Math.max(Math.floor(w.fromMs / 1000), Math.ceil(w.untilMs / 1000))));
  q.set('format', 'pprof');
  q.set('sampleRate', String(Math.max(1, Math.round(w.sampleRateHz))));
  q.set('spyName', 'pylens');
  return u;
}

export class PyroscopeDestination implements Destination {
  readonly name = 'pyroscope';
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly http = new HttpPoster();

  constructor(opts: PyroscopeOptions) {
    const u = new URL(opts.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`pyroscope: ${opts.url} is not an http(s) URL`);
    if (opts.basicAuth && opts.bearerToken) throw new Error('pyroscope: give basic auth or a bearer token, not both');
    this.url = opts.url;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.headers = { 'content-type': 'application/octet-stream', 'user-agent': `pylens/${PYLENS_VERSION}` };
    if (opts.orgId) this.headers['x-scope-orgid'] = opts.orgId;
    if (opts.basicAuth) this.headers.authorization = `Basic ${Buffer.from(`${opts.basicAuth.user}:${opts.basicAuth.password}`).toString('base64')}`;
    if (opts.bearerToken) this.headers.authorization = `Bearer ${opts.bearerToken}`;
  }

  async send(w: AgentWindow, signal?: AbortSignal): Promise<void> {
    const url = pyroscopeIngestUrl(this.url, w);
    await this.http.post(url, this.headers, w.pprof, `pyroscope ${url.origin}`, this.timeoutMs, signal);
  }

  close(): void {
    this.http.close();
  }
}
