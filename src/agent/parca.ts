/**
 * Parca destination: the unary gRPC call
 * `parca.profilestore.v1alpha1.ProfileStoreService/WriteRaw` over node:http2, the request
 * protobuf encoded here; or, with `transport: 'json'`, the same request through Parca's
 * grpc-gateway, `POST {url}/profiles/writeraw` with a JSON body.
 *
 * Checked against parca-dev/parca proto/parca/profilestore/v1alpha1/profilestore.proto:
 *   WriteRawRequest  { string tenant = 1 [deprecated]; repeated RawProfileSeries series = 2; bool normalized = 3; }
 *   RawProfileSeries { LabelSet labels = 1; repeated RawSample samples = 2; }
 *   LabelSet         { repeated Label labels = 1; }
 *   Label            { string name = 1; string value = 2; }
 *   RawSample        { bytes raw_profile = 1; repeated ExecutableInfo executable_info = 2; }
 * and pkg/normalizer/normalizer.go (NormalizeWriteRawRequest): `__name__` is required and
 * becomes the profile type's name (`NAME:sample_type:unit:period_type:unit:delta`), other
 * names must be valid Prometheus label names and unique, a gzipped raw_profile is
 * decompressed. Parca's UI names `process_cpu:samples:count:cpu:nanoseconds:delta` "Process
 * CPU Samples" and picks `process_cpu` as a default view: cpu windows go as `process_cpu`,
 * wall windows as `wall` (Pyroscope's name for the same thing).
 *
 * gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md): `content-type: application/grpc`,
 * `te: trailers`, the message prefixed by 1 byte (compressed = 0) and a 4-byte big-endian
 * length; the answer's `grpc-status` / `grpc-message` come in the trailers, or in the headers
 * of a trailers-only answer.
 */
import http2 from 'node:http2';
import { ProtoWriter } from '../formats/protobuf.ts';
import { PYLENS_VERSION } from '../version.ts';
import { errorBodyMessage, HttpPoster, networkError, retryableStatus } from './http-post.ts';
import { SendError, type AgentWindow, type Destination } from './window.ts';

export const WRITE_RAW_PATH = '/parca.profilestore.v1alpha1.ProfileStoreService/WriteRaw';

export interface ParcaOptions {
  /** `host:port` (TLS unless `insecure`), `https://host:port` or `http://host:port` (plaintext) */
  url: string;
  bearerToken?: string;
  /** plaintext HTTP/2 (h2c) instead of TLS, like parca-agent's `--remote-store-insecure` */
  insecure?: boolean;
  /** TLS without checking the server's certificate (`--remote-store-insecure-skip-verify`) */
  insecureSkipVerify?: boolean;
  /** one request's limit, default 10 s */
  timeoutMs?: number;
  /** `grpc` (default) or `json`: grpc-gateway's `POST /profiles/writeraw` over HTTP/1.1 */
  transport?: 'grpc' | 'json';
}

/** gRPC status codes worth trying again: CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE */
const RETRY_CODES = new Set([1, 4, 8, 10, 14]);
const CODE_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/** a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`), as Parca checks them */
export function parcaLabelName(name: string): string {
  let s = name.replace(/[^A-Za-z0-9_]/g, '_');
  if (/^[0-9]/.test(s)) s = `_${s}`;
  return s;
}

/** the series' labels: `__name__` first-class, then the window's, valid, unique, sorted by name */
export function parcaLabels(w: AgentWindow): Array<{ name: string; value: string }> {
  const labels = new Map<string, string>();
  labels.set('__name__', w.type === 'wall' ? 'wall' : 'process_cpu');
  for (const [k, v] of Object.entries(w.labels)) {
    if (k.startsWith('__') || v === '') continue;
    const name = parcaLabelName(k);
    if (!name || labels.has(name)) continue;
    labels.set(name, v);
  }
  if (!labels.has('service_name') && w.service) labels.set('service_name', w.service);
  return [...labels.keys()].sort().map((name) => ({ name, value: labels.get(name)! }));
}

/** WriteRawRequest{series: [{labels, samples: [{raw_profile}]}], normalized: true} */
export function encodeWriteRawRequest(w: AgentWindow): Uint8Array {
  const labelSet = new ProtoWriter();
  for (const l of parcaLabels(w)) {
    const lw = new ProtoWriter();
    lw.string(1, l.name);
    lw.string(2, l.value);
    labelSet.message(1, lw);
  }
  const sample = new ProtoWriter();
  sample.bytes(1, w.pprof);
  const series = new ProtoWriter();
  series.message(1, labelSet);
  series.message(2, sample);
  const req = new ProtoWriter();
  req.message(2, series);
  // no addresses to normalize: Python frames carry none, native ones are symbolized already
  req.uint(3, 1);
  return req.finish();
}

/** the grpc-gateway JSON form of the same request (protojson: camelCase names, bytes as base64) */
export function writeRawJson(w: AgentWindow): string {
  return JSON.stringify({
    series: [{ labels: { labels: parcaLabels(w) }, samples: [{ rawProfile: Buffer.from(w.pprof.buffer, w.pprof.byteOffset, w.pprof.byteLength).toString('base64') }] }],
    normalized: true,
  });
}

/** one gRPC message frame: compressed flag 0, length (big-endian u32), the message */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** grpc-message is percent-encoded */
function grpcMessage(v: unknown): string {
  if (typeof v !== 'string') return '';
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

export class ParcaDestination implements Destination {
  readonly name = 'parca';
  private readonly authority: string;
  private readonly opts: ParcaOptions;
  private readonly timeoutMs: number;
  private session: http2.ClientHttp2Session | null = null;
  private readonly http: HttpPoster;

  constructor(opts: ParcaOptions) {
    this.opts = opts;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.http = new HttpPoster(opts.insecureSkipVerify ? { insecureSkipVerify: true } : {});
    let url = opts.url;
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) url = `${opts.insecure ? 'http' : 'https'}://${url}`;
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`parca: ${opts.url} is not host:port or an http(s) URL`);
    this.authority = `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  }

  send(w: AgentWindow, signal?: AbortSignal): Promise<void> {
    return this.opts.transport === 'json' ? this.sendJson(w, signal) : this.sendGrpc(w, signal);
  }

  close(): void {
    this.session?.close();
    this.session = null;
    this.http.close();
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'user-agent': `pylens/${PYLENS_VERSION}` };
    if (this.opts.bearerToken) h.authorization = `Bearer ${this.opts.bearerToken}`;
    return h;
  }

  private async sendJson(w: AgentWindow, signal?: AbortSignal): Promise<void> {
    await this.http.post(new URL(`${this.authority}/profiles/writeraw`), { ...this.headers(), 'content-type': 'application/json' }, writeRawJson(w), `parca ${new URL(this.authority).origin}`, this.timeoutMs, signal);
  }

  /** the HTTP/2 connection, opened when there is none (or it closed) */
  private connect(): http2.ClientHttp2Session {
    const s = this.session;
    if (s && !s.closed && !s.destroyed) return s;
    const origin = new URL(this.authority).origin;
    const session = http2.connect(origin, { rejectUnauthorized: !this.opts.insecureSkipVerify });
    session.on('error', () => {
      // each stream reports its own failure; a dead session is replaced at the next send
      if (this.session === session) this.session = null;
    });
    session.on('close', () => {
      if (this.session === session) this.session = null;
    });
    session.on('goaway', () => {
      if (this.session === session) this.session = null;
    });
    // an idle agent should not keep the process up or hold the backend's connection forever
    session.setTimeout(60_000, () => session.close());
    session.unref();
    this.session = session;
    return session;
  }

  private sendGrpc(w: AgentWindow, signal?: AbortSignal): Promise<void> {
    const where = `parca ${new URL(this.authority).origin}`;
    const body = grpcFrame(encodeWriteRawRequest(w));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let stream: http2.ClientHttp2Stream | null = null;
      let timer: NodeJS.Timeout | undefined;
      const finish = (err?: SendError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          if (stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
          reject(err);
        } else resolve();
      };
      const onAbort = () => finish(new SendError(`${where}: cancelled`, true));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(() => finish(new SendError(`${where}: no answer within ${this.timeoutMs} ms`, true)), this.timeoutMs);

      let session: http2.ClientHttp2Session;
      try {
        session = this.connect();
      } catch (e) {
        return finish(networkError(where, e, false, this.timeoutMs));
      }
      const base = new URL(this.authority).pathname.replace(/\/+$/, '');
      try {
        stream = session.request({
          ':method': 'POST',
          ':path': `${base}${WRITE_RAW_PATH}`,
          'content-type': 'application/grpc',
          te: 'trailers',
          'grpc-timeout': `${Math.max(1, Math.ceil(this.timeoutMs))}m`,
          ...this.headers(),
        });
      } catch (e) {
        this.session = null;
        return finish(networkError(where, e, false, this.timeoutMs));
      }
      let httpStatus = 0;
      let grpcStatus: number | undefined;
      let grpcMsg = '';
      const readStatus = (h: http2.IncomingHttpHeaders) => {
        if (h['grpc-status'] !== undefined) {
          grpcStatus = Number(h['grpc-status']);
          grpcMsg = grpcMessage(h['grpc-message']);
        }
      };
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        httpStatus = Number(h[':status']);
        readStatus(h);
      });
      stream.on('trailers', readStatus);
      stream.on('data', (c: Buffer) => {
        if (chunks.length < 64) chunks.push(c);
      });
      stream.on('error', (e) => finish(networkError(where, e, false, this.timeoutMs)));
      stream.on('close', () => {
        if (settled) return;
        if (httpStatus === 0) {
          const code = stream!.rstCode;
          return finish(new SendError(`${where}: stream closed before an answer${code ? ` (HTTP/2 error ${code})` : ''}`, true));
        }
        if (httpStatus !== 200) {
          const text = Buffer.concat(chunks).toString('utf8');
          const msg = errorBodyMessage(text);
          return finish(new SendError(`${where}: HTTP ${httpStatus}${msg ? `: ${msg}` : ''}`, retryableStatus(httpStatus), httpStatus));
        }
        if (grpcStatus === undefined) return finish(new SendError(`${where}: answer without grpc-status`, true));
        if (grpcStatus === 0) return finish();
        const name = CODE_NAMES[grpcStatus] ?? `code ${grpcStatus}`;
        finish(new SendError(`${where}: ${name}${grpcMsg ? `: ${grpcMsg}` : ''}`, RETRY_CODES.has(grpcStatus)));
      });
      stream.end(body);
    });
  }
}
