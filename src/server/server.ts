/**
 * `pylens serve`: the workbench over a profile store. node:http, a dozen fixed routes matched
 * by a small table (no router library: the routes are fixed and few), JSON errors with status
 * codes. Every answer comes from the same code the CLI uses: the store (`../store`), the
 * analysis queries and the renderers (`report --json`'s document, the profile page, the
 * differential page), merged profiles from the model.
 *
 * Security
 * - Bound to loopback by default; any other address needs a token (given, or generated and
 *   printed in the URL). With a token, every /api request must carry it in the
 *   `X-Pylens-Token` header (or `Authorization: Bearer`); no cookies are set or read. The app
 *   shell (GET /) holds no data and is served without it; it reads the token from the URL's
 *   fragment, which browsers never send.
 * - Without a token the Host header must name a loopback host (no DNS rebinding).
 * - No file is read from disk on request: the only assets are the in-memory app shell and
 *   the store's rows; any other path is a 404, whatever its encoding.
 * - Uploads are limited (`maxUploadBytes`, 413 past it) and parsed by the formats' importers,
 *   whose errors are 400s naming the problem.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { diffProfiles } from '../analysis/diff.ts';
import { lineHeat, sourceFiles } from '../analysis/source.ts';
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { importProfile } from '../formats/index.ts';
import { exporterById } from '../formats/index.ts';
import { InputFile } from '../formats/types.ts';
import { mergeProfiles } from '../model/merge.ts';
import type { Profile } from '../model/profile.ts';
import { diffJson, renderDiffHtml } from '../render/diff.ts';
import { encodePageBundle, pageShell, renderHtml, STORED_PAGE_MIN_SAMPLES, STORED_PAGE_VERSION, storedPage, storedPageOf } from '../render/html.ts';
import { reportDoc } from '../render/report-json.ts';
import { workbenchHtml } from '../render/workbench.ts';
import { parseLabels, type ListQuery, type ProfileStore } from '../store/store.ts';

export interface ServeOptions {
  store: ProfileStore;
  host?: string;
  port?: number;
  /** required for a non-loopback host; generated when undefined there */
  token?: string;
  /** the largest upload accepted, bytes (default 512 MiB) */
  maxUploadBytes?: number;
  /** the most profiles one merge or diff side may name (default 1000) */
  maxProfilesPerQuery?: number;
}

export interface Serving {
  server: Server;
  url: string;
  /** the URL to open, with the token in its fragment when there is one */
  openUrl: string;
  token: string | undefined;
  close(): Promise<void>;
}

class HttpError extends Error {
  readonly status: number;
  readonly fix: string | undefined;
  constructor(status: number, message: string, fix?: string) {
    super(message);
    this.status = status;
    this.fix = fix;
  }
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

type Handler = (req: IncomingMessage, res: ServerResponse, m: RegExpExecArray, url: URL) => Promise<void> | void;

export async function serve(o: ServeOptions): Promise<Serving> {
  const host = o.host ?? '127.0.0.1';
  const loopback = isLoopback(host);
  const token = o.token ?? (loopback ? undefined : randomBytes(18).toString('base64url'));
  const maxUpload = o.maxUploadBytes ?? 512 * 1024 * 1024;
  const maxIds = o.maxProfilesPerQuery ?? 1000;
  const store = o.store;
  const shell = workbenchHtml();

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const html = (res: ServerResponse, text: string, csp: string) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'content-security-policy': csp, 'referrer-policy': 'no-referrer', 'x-frame-options': 'SAMEORIGIN', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const idOf = (s: string): number => {
    const id = Number(s);
    if (!Number.isSafeInteger(id) || id <= 0) throw new HttpError(400, `'${s}' is not a profile id`);
    return id;
  };
  const idsOf = (s: string | null, what: string): number[] => {
    if (!s) throw new HttpError(400, `${what}: give profile ids, e.g. ${what}=3,4`);
    const ids = s.split(',').filter(Boolean).map(idOf);
    if (ids.length === 0) throw new HttpError(400, `${what}: no profile ids`);
    if (ids.length > maxIds) throw new HttpError(400, `${what}: ${ids.length} profiles; at most ${maxIds} at once`);
    return ids;
  };
  const load = (id: number): Profile => {
    const p = store.profile(id);
    if (!p) throw new HttpError(404, `no profile #${id} in the store`);
    return p;
  };
  const loadMany = (ids: number[]): Profile => (ids.length === 1 ? load(ids[0]!) : mergeProfiles(ids.map(load), { name: `${ids.length} profiles merged (#${ids.join(', #')})` }));
  // page bundles (the data of a profile page in the workbench) made here: merges, and stored
  // profiles saved without theirs (or with another version's), a few kept
  const pages = new Map<string, Uint8Array>();
  const cached = (key: string, make: () => Profile): Uint8Array => {
    let hit = pages.get(key);
    if (hit) {
      pages.delete(key);
      pages.set(key, hit);
      return hit;
    }
    hit = encodePageBundle(make());
    pages.set(key, hit);
    while (pages.size > 4) pages.delete(pages.keys().next().value!);
    return hit;
  };
  /**
   * A stored profile's page bundle: the one saved with it (gzip), else made now, and for a
   * large profile kept in the store after answering.
   */
  const profileBundle = (id: number): { bytes: Uint8Array; gzip: boolean } => {
    const saved = store.page(id, STORED_PAGE_VERSION);
    if (saved) return { bytes: saved, gzip: true };
    let keep = false;
    const bundle = cached(`p${id}`, () => {
      const p = load(id);
      keep = p.samples.length >= STORED_PAGE_MIN_SAMPLES;
      return p;
    });
    if (keep) setImmediate(() => {
      try {
        if (!store.page(id, STORED_PAGE_VERSION)) store.setPage(id, storedPageOf(bundle));
      } catch {
        /* a read-only or busy store: made again next time */
      }
    });
    return { bytes: bundle, gzip: false };
  };
  const sendBlob = (req: IncomingMessage, res: ServerResponse, blob: { bytes: Uint8Array; gzip: boolean }) => {
    let { bytes, gzip } = blob;
    if (gzip && !/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) (bytes = gunzipSync(bytes)), (gzip = false);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'content-length': bytes.byteLength, ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
    res.end(bytes);
  };
  /**
   * Where a profile's file is on this machine: an absolute name as is, a short one under the
   * folders the sampler cut (meta.extra.pathRoots). Python files only, regular, ≤ 2 MiB.
   */
  const locate = (p: Profile, file: string): { path: string } | { why: string } => {
    let roots: string[] = [];
    try {
      const r = p.meta.extra?.pathRoots;
      if (typeof r === 'string') roots = (JSON.parse(r) as unknown[]).filter((x): x is string => typeof x === 'string' && isAbsolute(x));
    } catch {
      /* no roots */
    }
    const tried = isAbsolute(file) ? [normalize(file)] : roots.map((r) => normalize(join(r, file)));
    if (tried.length === 0) return { why: `${file} is a relative name and the profile does not say where it was (record with --full-filenames, or a newer pylens)` };
    for (const path of tried) {
      if (!/\.pyw?$/.test(path)) return { why: `${file} is not a Python file` };
      try {
        const st = statSync(path);
        if (!st.isFile()) continue;
        if (st.size > 2 * 1024 * 1024) return { why: `${path} is over 2 MiB` };
        return { path };
      } catch {
        /* next */
      }
    }
    return { why: `${file} is not on this machine (looked for ${tried.join(', ')})` };
  };
  const listQuery = (u: URL): ListQuery => {
    const q = u.searchParams;
    const num = (k: string) => {
      const v = q.get(k);
      if (v === null || v === '') return undefined;
      const n = Number(v);
      if (!Number.isFinite(n)) throw new HttpError(400, `${k}=${v} is not a number`);
      return n;
    };
    const out: ListQuery = {};
    const where = q.getAll('where').filter(Boolean);
    if (where.length) out.where = where;
    for (const k of ['service', 'lens', 'search', 'fn'] as const) {
      const v = q.get(k);
      if (v) out[k] = v;
    }
    const since = num('since');
    const until = num('until');
    const limit = num('limit');
    const offset = num('offset');
    if (since !== undefined) out.since = since;
    if (until !== undefined) out.until = until;
    if (limit !== undefined) out.limit = Math.min(limit, 10_000);
    if (offset !== undefined) out.offset = offset;
    if (q.get('order') === 'oldest') out.order = 'oldest';
    return out;
  };
  const readBody = (req: IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length'] ?? NaN);
      if (declared > maxUpload) {
        reject(new HttpError(413, `the upload is ${declared} bytes; this server takes at most ${maxUpload}`, 'start pylens serve with a larger --max-upload, or pylens store add FILE'));
        req.resume();
        return;
      }
      const chunks: Buffer[] = [];
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        if (n > maxUpload) {
          reject(new HttpError(413, `the upload is over ${maxUpload} bytes`, 'start pylens serve with a larger --max-upload, or pylens store add FILE'));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });

  const SHELL_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; frame-src 'self' about:; base-uri 'none'; form-action 'none'";
  const PAGE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

  const routes: [string, RegExp, Handler][] = [
    ['GET', /^\/$/, (_req, res) => html(res, shell, SHELL_CSP)],
    ['GET', /^\/api\/page$/, (_req, res) => html(res, pageShell(), PAGE_CSP)],
    [
      'GET',
      /^\/api\/profiles$/,
      (_req, res, _m, u) => {
        const { total, rows } = store.list(listQuery(u));
        json(res, 200, { total, profiles: rows });
      },
    ],
    ['GET', /^\/api\/labels$/, (_req, res) => json(res, 200, { labels: store.labelValues() })],
    [
      'GET',
      /^\/api\/trend$/,
      (_req, res, _m, u) => {
        const names = (u.searchParams.get('names') ?? '').split(',').filter(Boolean);
        const top = Number(u.searchParams.get('top') ?? 8);
        json(res, 200, store.trend({ ...listQuery(u), ...(names.length ? { names } : {}), top: Number.isInteger(top) && top > 0 && top <= 50 ? top : 8 }));
      },
    ],
    [
      'POST',
      /^\/api\/profiles$/,
      async (req, res, _m, u) => {
        const body = await readBody(req);
        if (body.length === 0) throw new HttpError(400, 'empty upload', 'send the profile file as the request body');
        const name = u.searchParams.get('name') ?? undefined;
        let labels: Record<string, string>;
        try {
          labels = parseLabels(u.searchParams.getAll('label').filter(Boolean));
        } catch (e) {
          throw new HttpError(400, (e as Error).message);
        }
        let profile: Profile;
        try {
          profile = importProfile(new InputFile(new Uint8Array(body.buffer, body.byteOffset, body.byteLength), name), u.searchParams.get('format') ?? undefined).profile;
        } catch (e) {
          throw new HttpError(400, `${name ?? 'the upload'}: ${(e as Error).message}`, 'upload a profile in a format pylens reads (pylens help formats)');
        }
        const row = store.add(profile, { labels, ...(name ? { source: name } : {}), page: storedPage(profile) });
        json(res, 201, row);
      },
    ],
    [
      'GET',
      /^\/api\/profiles\/(\d+)$/,
      (_req, res, m) => {
        const id = idOf(m[1]!);
        const row = store.get(id);
        if (!row) throw new HttpError(404, `no profile #${id} in the store`);
        json(res, 200, { ...row, meta: store.meta(id), functions: store.functions(id) });
      },
    ],
    [
      'DELETE',
      /^\/api\/profiles\/(\d+)$/,
      (_req, res, m) => {
        const id = idOf(m[1]!);
        if (store.remove([id]) === 0) throw new HttpError(404, `no profile #${id} in the store`);
        pages.clear();
        json(res, 200, { removed: id });
      },
    ],
    [
      'GET',
      /^\/api\/profiles\/(\d+)\/report$/,
      (_req, res, m, u) => {
        const by = u.searchParams.get('by') ?? 'function';
        if (!['function', 'line', 'file', 'module'].includes(by)) throw new HttpError(400, `by=${by}: one of function, line, file, module`);
        const limit = Number(u.searchParams.get('limit') ?? 50);
        json(res, 200, reportDoc(load(idOf(m[1]!)), { by: by as 'function', limit: Number.isInteger(limit) && limit >= 0 ? limit : 50 }));
      },
    ],
    [
      'GET',
      /^\/api\/profiles\/(\d+)\/page$/,
      (_req, res, m, u) => {
        const id = idOf(m[1]!);
        if (u.searchParams.get('external') !== '1') html(res, renderHtml(load(id)), PAGE_CSP);
        else if (!store.get(id)) throw new HttpError(404, `no profile #${id} in the store`);
        else html(res, pageShell(), PAGE_CSP);
      },
    ],
    [
      'GET',
      /^\/api\/profiles\/(\d+)\/sources$/,
      (_req, res, m) => {
        const p = load(idOf(m[1]!));
        json(res, 200, { files: sourceFiles(p).slice(0, 200).map((f) => {
          const at = locate(p, f.file);
          return { ...f, path: 'path' in at ? at.path : null, ...('why' in at ? { why: at.why } : {}) };
        }) });
      },
    ],
    [
      'GET',
      /^\/api\/profiles\/(\d+)\/source$/,
      (_req, res, m, u) => {
        const p = load(idOf(m[1]!));
        const file = u.searchParams.get('file') ?? '';
        // only files the profile names: never an arbitrary path
        let named = false;
        for (let f = 0; f < p.frames.length && !named; f++) named = p.frames.file[f]! >= 0 && p.strings[p.frames.file[f]!] === file;
        if (!named) throw new HttpError(404, `profile #${m[1]} has no frame in '${file}'`);
        const at = locate(p, file);
        if ('why' in at) throw new HttpError(404, at.why);
        const heat = lineHeat(p, file);
        json(res, 200, { file, path: at.path, text: readFileSync(at.path, 'utf8'), ...heat });
      },
    ],
    [
      'GET',
      /^\/api\/profiles\/(\d+)\/blob$/,
      (req, res, m) => {
        const id = idOf(m[1]!);
        if (!store.get(id)) throw new HttpError(404, `no profile #${id} in the store`);
        sendBlob(req, res, profileBundle(id));
      },
    ],
    [
      'GET',
      /^\/api\/profiles\/(\d+)\/export$/,
      (_req, res, m, u) => {
        const fmt = u.searchParams.get('format') ?? 'pylens';
        const id = idOf(m[1]!);
        if (fmt === 'pylens') {
          const bytes = store.bytes(id);
          if (!bytes) throw new HttpError(404, `no profile #${id} in the store`);
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': `attachment; filename="profile-${id}.pylens"`, 'content-length': bytes.byteLength });
          res.end(bytes);
          return;
        }
        const ex = exporterById(fmt);
        if (!ex) throw new HttpError(400, `format=${fmt}: not a format pylens writes`);
        const data = ex.write(load(id), { title: `profile #${id}` });
        const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': `attachment; filename="profile-${id}${ex.extension}"`, 'content-length': buf.length });
        res.end(buf);
      },
    ],
    [
      'GET',
      /^\/api\/merge$/,
      (req, res, _m, u) => {
        // the profiles named, or every profile the list's filters match (a service over an hour)
        const ids = u.searchParams.has('ids') ? idsOf(u.searchParams.get('ids'), 'ids') : store.list({ ...listQuery(u), limit: maxIds + 1 }).rows.map((r) => r.id);
        if (ids.length === 0) throw new HttpError(404, 'no profile matches these filters');
        if (ids.length > maxIds) throw new HttpError(400, `more than ${maxIds} profiles match; narrow the filters (since, service, labels)`);
        const view = u.searchParams.get('view');
        if (view === 'page' && u.searchParams.get('external') === '1') html(res, pageShell(), PAGE_CSP);
        else if (view === 'blob') sendBlob(req, res, { bytes: cached(`m${ids.join(',')}`, () => loadMany(ids)), gzip: false });
        else if (view === 'page') html(res, renderHtml(loadMany(ids)), PAGE_CSP);
        else json(res, 200, reportDoc(loadMany(ids), { limit: 50 }));
      },
    ],
    [
      'GET',
      /^\/api\/diff$/,
      (_req, res, _m, u) => {
        const base = idsOf(u.searchParams.get('base'), 'base').map(load);
        const neu = idsOf(u.searchParams.get('new'), 'new').map(load);
        const d = diffProfiles(base, neu);
        if (u.searchParams.get('view') === 'page') html(res, renderDiffHtml(d, { title: `#${u.searchParams.get('base')} → #${u.searchParams.get('new')}` }), PAGE_CSP);
        else json(res, 200, diffJson(d));
      },
    ],
  ];

  const authorized = (req: IncomingMessage): boolean => {
    if (token === undefined) return true;
    const h = req.headers['x-pylens-token'] ?? (typeof req.headers.authorization === 'string' && /^Bearer /.test(req.headers.authorization) ? req.headers.authorization.slice(7) : undefined);
    if (typeof h !== 'string') return false;
    const a = Buffer.from(h);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };

  const server = createServer(async (req, res) => {
    try {
      const raw = req.url ?? '/';
      // one canonical form: no dot segments, no encoded slashes or dots, no backslashes
      const rawPath = raw.split('?', 1)[0]!;
      if (!rawPath.startsWith('/') || /%2e|%2f|%5c|\\|\/\.\.?(\/|$)/i.test(rawPath)) throw new HttpError(404, 'no such page');
      if (token === undefined) {
        const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
        if (!isLoopback(hostHeader)) throw new HttpError(403, `Host '${req.headers.host}' is not this loopback server`, 'open the URL pylens serve printed');
      }
      const u = new URL(raw, 'http://localhost');
      const path = u.pathname;
      let allowed: string[] = [];
      for (const [method, re, handler] of routes) {
        const m = re.exec(path);
        if (!m) continue;
        if (method !== req.method) {
          allowed.push(method);
          continue;
        }
        if (path.startsWith('/api/') && !authorized(req)) throw new HttpError(401, 'this server needs its token', 'send it in the X-Pylens-Token header (the app takes it from the URL pylens serve printed)');
        await handler(req, res, m, u);
        return;
      }
      if (allowed.length) {
        allowed = [...new Set(allowed)];
        res.setHeader('allow', allowed.join(', '));
        throw new HttpError(405, `${req.method} is not allowed here (allowed: ${allowed.join(', ')})`);
      }
      throw new HttpError(404, 'no such page');
    } catch (e) {
      const err = e instanceof HttpError ? e : new HttpError(500, (e as Error).message);
      if (!res.headersSent) json(res, err.status, { error: err.message, status: err.status, ...(err.fix ? { fix: err.fix } : {}) });
      else res.destroy();
    }
  });
  server.requestTimeout = 120_000;
  server.headersTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (o.port ?? 0);
  const shown = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${port}/`;
  return {
    server,
    url,
    openUrl: token ? `${url}#token=${token}` : url,
    token,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
