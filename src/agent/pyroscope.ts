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
import { SendError, type AgentWindow, type Destination } from './window.ts';

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

/** HTTP status → is it worth sending again later */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** the server's reason, from a JSON `{message}` / `{error}` body or the text itself, one line, short */
export function errorBodyMessage(text: string): string {
  let msg = text.trim();
  try {
    const j = JSON.parse(msg) as { message?: unknown; error?: unknown };
    if (typeof j.message === 'string') msg = j.message;
    else if (typeof j.error === 'string') msg = j.error;
  } catch {
    // not JSON: the text as it is
  }
  msg = msg.replace(/\s+/g, ' ');
  return msg.length > 300 ? `${msg.slice(0, 300)}…` : msg;
}

/** a fetch failure (no HTTP answer) as a retryable SendError */
export function networkError(what: string, e: unknown, timedOut: boolean, timeoutMs: number): SendError {
  if (timedOut) return new SendError(`${what}: no answer within ${timeoutMs} ms`, true);
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err?.name === 'AbortError') return new SendError(`${what}: cancelled`, true);
  const cause = err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
  return new SendError(`${what}: ${cause}`, true);
}

/**
 * One HTTP request of a window, within `timeoutMs` (and `signal`): resolves on a 2xx, else
 * throws SendError — retryable for a network failure, a timeout, 5xx, 429 and 408 — with the
 * server's reason (`where` names the backend in the message).
 */
export async function postWindow(url: string | URL, init: RequestInit, where: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: sig });
  } catch (e) {
    throw networkError(where, e, timeout.aborted, timeoutMs);
  }
  let text = '';
  try {
    text = await res.text();
  } catch (e) {
    if (res.ok) throw networkError(where, e, timeout.aborted, timeoutMs);
  }
  if (res.ok) return;
  const msg = errorBodyMessage(text) || res.statusText;
  throw new SendError(`${where}: HTTP ${res.status}${msg ? `: ${msg}` : ''}`, retryableStatus(res.status), res.status);
}

export class PyroscopeDestination implements Destination {
  readonly name = 'pyroscope';
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

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
    await postWindow(url, { method: 'POST', headers: this.headers, body: w.pprof as Uint8Array<ArrayBuffer> }, `pyroscope ${url.origin}`, this.timeoutMs, signal);
  }
}
