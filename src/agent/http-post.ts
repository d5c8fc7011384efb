/**
 * One HTTP POST of a window on node:http / node:https, connections kept alive between
 * windows. (It replaced `fetch`: undici's WHATWG streams, AbortSignal.any and Response
 * cost ~7 % of the agent's JS time for two windows a second; this is a request and a
 * buffered answer.)
 */
import http from 'node:http';
import https from 'node:https';
import { SendError } from './window.ts';

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

/** a failure with no HTTP answer, as a retryable SendError */
export function networkError(what: string, e: unknown, timedOut: boolean, timeoutMs: number): SendError {
  if (timedOut) return new SendError(`${what}: no answer within ${timeoutMs} ms`, true);
  const err = e as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err?.name === 'AbortError') return new SendError(`${what}: cancelled`, true);
  const cause = err?.code ?? err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
  return new SendError(`${what}: ${cause}`, true);
}

/** the most of an answer's body kept (for the error message) */
const MAX_ANSWER = 64 * 1024;

export class HttpPoster {
  private readonly agents: { http: http.Agent; https: https.Agent };

  /** `insecureSkipVerify`: TLS certificates are not checked (a test backend's own) */
  constructor(opts: { insecureSkipVerify?: boolean } = {}) {
    this.agents = { http: new http.Agent({ keepAlive: true, maxSockets: 4 }), https: new https.Agent({ keepAlive: true, maxSockets: 4, rejectUnauthorized: !opts.insecureSkipVerify }) };
  }

  /**
   * POST `body` to `url` within `timeoutMs` (and `signal`): resolves on a 2xx, else throws
   * SendError — retryable for a network failure, a timeout, 5xx, 429 and 408 — with the
   * server's reason (`where` names the backend in the message).
   */
  post(url: URL, headers: Record<string, string>, body: Uint8Array | string, where: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new SendError(`${where}: cancelled`, true));
      const tls = url.protocol === 'https:';
      const data = typeof body === 'string' ? Buffer.from(body) : body;
      let timedOut = false;
      let settled = false;
      const finish = (e?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (e === undefined) resolve();
        else reject(e);
      };
      const req = (tls ? https : http).request(url, { method: 'POST', agent: tls ? this.agents.https : this.agents.http, headers: { ...headers, 'content-length': String(data.length) } }, (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (c: Buffer) => {
          if (kept < MAX_ANSWER) {
            chunks.push(c);
            kept += c.length;
          }
        });
        res.on('error', (e) => finish(networkError(where, e, timedOut, timeoutMs)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return finish();
          const msg = errorBodyMessage(Buffer.concat(chunks).toString('utf8')) || res.statusMessage || '';
          finish(new SendError(`${where}: HTTP ${status}${msg ? `: ${msg}` : ''}`, retryableStatus(status), status));
        });
      });
      const timer = setTimeout(() => {
        timedOut = true;
        req.destroy(new Error('timeout'));
      }, timeoutMs);
      const onAbort = () => req.destroy(Object.assign(new Error('cancelled'), { name: 'AbortError' }));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e) => finish(networkError(where, e, timedOut, timeoutMs)));
      req.end(data);
    });
  }

  /** close kept-alive connections */
  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}
