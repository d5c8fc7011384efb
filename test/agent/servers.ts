/**
 * Servers of the agent tests' own, real ones on 127.0.0.1: a node:http Pyroscope `/ingest`
 * (what it got, the answer it gives), a node:http2 gRPC Parca `WriteRaw` whose frame and
 * WriteRawRequest are decoded by a protobuf reader of the test's own (independent of
 * src/agent/parca.ts), Pyroscope's label-set parser ported, Parca's id check, and `go tool
 * pprof -raw` of received bodies. Used by ship.test.ts (the shipping side alone) and
 * agent-cli.test.ts (`pylens agent` as a child process), bench/agent-churn.ts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { WRITE_RAW_PATH } from '../../src/agent/parca.ts';
// ---------------------------------------------------------------------------------------
// go tool pprof

export const hasGo = (() => {
  const r = spawnSync('go', ['version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
})();

export interface Raw {
  types: string[];
  totals: number[];
  functions: string[];
}

/** `go tool pprof -raw` of the bytes: sample types, each type's total, function names */
export function goPprofRaw(bytes: Uint8Array): Raw {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-ship-'));
  try {
    const file = join(dir, 'got.pb.gz');
    writeFileSync(file, bytes);
    const env = { ...process.env, HOME: dir, GOCACHE: join(dir, 'gocache'), GOTOOLCHAIN: 'local', GOFLAGS: '', PPROF_TMPDIR: dir };
    const r = spawnSync('go', ['tool', 'pprof', '-raw', file], { encoding: 'utf8', env, timeout: 60_000 });
    assert.equal(r.status, 0, `go tool pprof -raw failed: ${r.stderr}`);
    const lines = r.stdout.split('\n');
    const at = lines.indexOf('Samples:');
    assert.ok(at >= 0, r.stdout);
    const types = lines[at + 1]!.trim().split(/\s+/).map((t) => t.replace('[dflt]', ''));
    const totals = types.map(() => 0);
    let i = at + 2;
    for (; i < lines.length && lines[i] !== 'Locations'; i++) {
      const m = /^\s+(\d+(?:\s+\d+)*):/.exec(lines[i]!);
      if (m) m[1]!.split(/\s+/).forEach((v, k) => (totals[k]! += Number(v)));
    }
    const functions: string[] = [];
    for (; i < lines.length && lines[i] !== 'Mappings'; i++) {
      const m = /^\s+\d+: 0x[0-9a-f]+ (?:M=\d+ )?(\S+)/.exec(lines[i]!);
      if (m) functions.push(m[1]!);
    }
    return { types, totals, functions: functions.sort() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// a Pyroscope of our own

export interface Got {
  method: string;
  url: URL;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface FakeHttp {
  port: number;
  got: Got[];
  /** status and body for a request; 200 when unset */
  answer: (g: Got) => { status: number; body?: string } | undefined;
  close: () => Promise<void>;
}

/**
 * A port free now that a server is to listen on later (a backend that comes back). Taken
 * below the kernel's ephemeral range: a port the kernel handed out and took back (listen on
 * 0) can go to the next listen on 0 or to an outgoing connection meanwhile — a full run saw
 * the fake Parca server get it, and the fake Pyroscope's later listen fail (EADDRINUSE).
 */
export async function freePort(): Promise<number> {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'latin1').trim().split(/\s+/)[0]);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * Math.max(1, Math.min(low, 65_536) - 10_000));
    const s = http.createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (ok) await new Promise<void>((r) => s.close(() => r()));
    if (ok) return port;
  }
  throw new Error('no free port below the ephemeral range');
}

export async function fakeHttp(port = 0): Promise<FakeHttp> {
  const f: FakeHttp = { port: 0, got: [], answer: () => undefined, close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const g: Got = { method: req.method!, url: new URL(req.url!, 'http://x'), headers: req.headers, body: Buffer.concat(chunks) };
      const a = f.answer(g) ?? { status: 200 };
      if (a.status === 200) f.got.push(g);
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(a.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  f.port = (server.address() as AddressInfo).port;
  f.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return f;
}

/** Pyroscope's label-set parser (api/model/labelset/labelset.go Parse), ported as it is */
export function parsePyroscopeName(name: string): Map<string, string> {
  const labels = new Map<string, string>();
  let state = 0;
  let key = '';
  let value = '';
  for (const r of name + '{') {
    if (state === 0) {
      if (r === '{') {
        state = 1;
        labels.set('__name__', value.trim());
      } else value += r;
    } else if (state === 1) {
      if (r === '}') state = 3;
      else if (r === '=') {
        state = 2;
        value = '';
      } else key += r;
    } else if (state === 2) {
      if (r === ',' || r === '}') {
        state = 1;
        const k = key.trim();
        assert.match(k, /^[A-Za-z0-9_.]+$/, `label name ${k} Pyroscope would refuse`);
        labels.set(k, value.trim());
        key = '';
      } else value += r;
    }
  }
  assert.match(labels.get('__name__')!, /^[A-Za-z0-9_.\-/]+$/);
  return labels;
}

// ---------------------------------------------------------------------------------------
// a Parca of our own: gRPC over h2c, the request decoded here

export interface Field {
  n: number;
  wire: number;
  v: number | Uint8Array;
}

/** a protobuf message's fields (varint and length-delimited only: all WriteRawRequest has) */
export function fields(b: Uint8Array): Field[] {
  const out: Field[] = [];
  let p = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      assert.ok(p < b.length, 'truncated varint');
      const x = b[p++]!;
      v += (x & 0x7f) * mul;
      mul *= 128;
      if (!(x & 0x80)) return v;
    }
  };
  while (p < b.length) {
    const tag = varint();
    const n = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) out.push({ n, wire, v: varint() });
    else if (wire === 2) {
      const len = varint();
      assert.ok(p + len <= b.length, 'truncated field');
      out.push({ n, wire, v: b.subarray(p, p + len) });
      p += len;
    } else assert.fail(`unexpected wire type ${wire}`);
  }
  return out;
}

export interface WriteRaw {
  series: Array<{ labels: Array<[string, string]>; samples: Uint8Array[] }>;
  normalized: boolean;
}

export function decodeWriteRaw(b: Uint8Array): WriteRaw {
  const td = new TextDecoder();
  const req: WriteRaw = { series: [], normalized: false };
  for (const f of fields(b)) {
    if (f.n === 3) req.normalized = f.v === 1;
    else if (f.n === 2) {
      const s = { labels: [] as Array<[string, string]>, samples: [] as Uint8Array[] };
      for (const g of fields(f.v as Uint8Array)) {
        if (g.n === 1) {
          for (const l of fields(g.v as Uint8Array)) {
            assert.equal(l.n, 1);
            const kv = fields(l.v as Uint8Array);
            s.labels.push([td.decode(kv.find((x) => x.n === 1)!.v as Uint8Array), td.decode((kv.find((x) => x.n === 2)?.v as Uint8Array) ?? new Uint8Array())]);
          }
        } else if (g.n === 2) {
          const raw = fields(g.v as Uint8Array).find((x) => x.n === 1);
          s.samples.push(raw!.v as Uint8Array);
        } else assert.fail(`RawProfileSeries field ${g.n}`);
      }
      req.series.push(s);
    } else assert.fail(`WriteRawRequest field ${f.n}`);
  }
  return req;
}

export interface GotRpc {
  headers: http2.IncomingHttpHeaders;
  req: WriteRaw;
}

export interface FakeParca {
  port: number;
  got: GotRpc[];
  /** grpc-status (and message) for a call, or an HTTP status; OK when unset */
  answer: (g: GotRpc) => { grpcStatus?: number; message?: string; httpStatus?: number } | undefined;
  close: () => Promise<void>;
}

export async function fakeParca(port = 0): Promise<FakeParca> {
  const f: FakeParca = { port: 0, got: [], answer: () => undefined, close: async () => {} };
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      if (headers[':path'] !== WRITE_RAW_PATH) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'unknown method' }, { endStream: true });
        return;
      }
      const body = Buffer.concat(chunks);
      // the gRPC frame: not compressed, big-endian length, exactly one message
      assert.equal(body[0], 0, 'compressed flag');
      const len = body.readUInt32BE(1);
      assert.equal(body.length, 5 + len, 'one whole message');
      const g: GotRpc = { headers, req: decodeWriteRaw(new Uint8Array(body.subarray(5))) };
      const a = f.answer(g);
      if (a?.httpStatus) {
        stream.respond({ ':status': a.httpStatus, 'content-type': 'text/plain' });
        stream.end('overloaded');
        return;
      }
      if (a?.grpcStatus) {
        // a trailers-only answer, as gRPC servers send errors
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(a.grpcStatus), 'grpc-message': encodeURIComponent(a.message ?? '') }, { endStream: true });
        return;
      }
      f.got.push(g);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
      stream.end(Buffer.from([0, 0, 0, 0, 0])); // WriteRawResponse{}
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  f.port = (server.address() as AddressInfo).port;
  f.close = () =>
    new Promise<void>((r) => {
      for (const s of sessions) s.destroy();
      server.close(() => r());
    });
  return f;
}

/**
 * What Parca's ValidatePprofProfile (pkg/normalizer/validate.go) asks of ids: mappings,
 * functions and locations numbered 1, 2, 3 … in table order; else INVALID_ARGUMENT.
 */
export function parcaIdsValid(gz: Uint8Array): string | null {
  const top = fields(gunzipSync(gz));
  for (const [n, what] of [[3, 'mapping'], [5, 'function'], [4, 'location']] as const) {
    const ids = top.filter((f) => f.n === n).map((f) => fields(f.v as Uint8Array).find((x) => x.n === 1)?.v ?? 0);
    for (let i = 0; i < ids.length; i++) if (ids[i] !== i + 1) return `${what} id is not sequential: ${ids.join(',')}`;
  }
  return null;
}

export function labelsOf(g: GotRpc): Record<string, string> {
  return Object.fromEntries(g.req.series[0]!.labels);
}

export async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------
// `pylens agent` as users run it, and Python processes for it to find

export const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

/** gzipped pprof's time_nanos (field 9), ms */
export function pprofTimeMs(gz: Uint8Array): number {
  const t = fields(gunzipSync(gz)).find((f) => f.n === 9);
  return t ? Math.round((t.v as number) / 1e6) : 0;
}

/**
 * A CPython spinning in `work_<tag>` `duty` of the time (0..1; 0 sleeps), `<tag>` last on its
 * command line; resolves once it runs. `wrap` runs it through another program first (setpriv
 * to another user). Its own process group: kill it with `killGroup`.
 */
export async function spinningPython(exe: string, tag: string, o: { duty?: number; wrap?: string[] } = {}): Promise<ChildProcess> {
  const duty = o.duty ?? 0.3;
  const code = [
    'import time, sys',
    `def work_${tag.replace(/\W/g, '_')}():`,
    '    while True:',
    '        t = time.monotonic()',
    `        while time.monotonic() - t < ${(0.05 * duty).toFixed(4)}: sum(range(300))`,
    `        time.sleep(${(0.05 * (1 - duty)).toFixed(4)})`,
    'print("ready", flush=True)',
    `work_${tag.replace(/\W/g, '_')}()`,
  ].join('\n');
  const argv = [...(o.wrap ?? []), exe, '-c', code, tag];
  const c = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  await new Promise<void>((resolve, reject) => {
    c.stdout!.once('data', () => resolve());
    c.once('exit', (code) => reject(new Error(`${exe} (${tag}) exited with ${code} before it ran`)));
    setTimeout(() => reject(new Error(`${exe} (${tag}) silent for 20 s`)), 20_000).unref();
  });
  return c;
}

/** SIGKILL each child's process group (or the child) */
export function killGroup(...cs: Array<ChildProcess | undefined>): void {
  for (const c of cs) {
    if (!c || c.pid === undefined || c.exitCode !== null || c.signalCode !== null) continue;
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      c.kill('SIGKILL');
    }
  }
}

export interface AgentRun {
  child: ChildProcess;
  pid: number;
  /** stderr lines so far */
  lines: string[];
  /** the first log line matching, waiting for it */
  waitLog(re: RegExp, ms?: number): Promise<string>;
  /** exit code (or the signal's name) */
  exit: Promise<number | string>;
  /** /metrics URL from the "metrics on …" log line */
  metricsUrl(): Promise<string>;
}

/** `node src/cli/main.ts agent ARGS` (through `wrap`, e.g. setpriv), stderr read line by line */
export function runAgent(args: string[], o: { wrap?: string[]; env?: NodeJS.ProcessEnv } = {}): AgentRun {
  const argv = [...(o.wrap ?? []), process.execPath, MAIN, 'agent', ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
  const lines: string[] = [];
  let buf = '';
  const waiters: Array<() => void> = [];
  child.stderr!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const exit = new Promise<number | string>((r) => child.once('exit', (code, sig) => r(code ?? sig ?? -1)));
  let exited = false;
  void exit.then(() => {
    exited = true;
    for (const w of waiters.splice(0)) w();
  });
  const waitLog = async (re: RegExp, ms = 30_000): Promise<string> => {
    const end = Date.now() + ms;
    for (;;) {
      const l = lines.find((x) => re.test(x));
      if (l !== undefined) return l;
      if (exited) assert.fail(`the agent exited before logging ${re}:\n${lines.join('\n')}`);
      if (Date.now() > end) assert.fail(`no log line ${re} within ${ms} ms:\n${lines.join('\n')}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
  };
  return {
    child,
    pid: child.pid!,
    lines,
    waitLog,
    exit,
    metricsUrl: async () => /metrics on (http:\/\/\S+\/metrics)/.exec(await waitLog(/metrics on http:\/\//))![1]!,
  };
}

/** Prometheus text → value by `name` or `name{labels}` as written */
export async function fetchMetrics(url: string): Promise<Map<string, number>> {
  const r = await fetch(url);
  assert.equal(r.status, 200);
  const out = new Map<string, number>();
  for (const l of (await r.text()).split('\n')) {
    if (!l || l.startsWith('#')) continue;
    const sp = l.lastIndexOf(' ');
    out.set(l.slice(0, sp), Number(l.slice(sp + 1)));
  }
  return out;
}
