/**
 * The agent's shipping side against real servers of this test's own: a node:http Pyroscope
 * `/ingest`, a node:http2 gRPC Parca `WriteRaw` (frame and protobuf decoded here by a
 * decoder of the test's own), Parca's grpc-gateway JSON; what they receive is opened with
 * `go tool pprof -raw` (the servers and the decoder: servers.ts). Then the queue (bounds, restart, damaged files) and the sender
 * (retries, backoff without a hot loop, an outage that loses nothing, flush).
 *
 * PYLENS_OUTAGE_MS sets the outage test's length (default 3000; bench/agent-outage.ts does 30 s).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { pprofExporter } from '../../src/formats/pprof.ts';
import { PyroscopeDestination } from '../../src/agent/pyroscope.ts';
import { ParcaDestination } from '../../src/agent/parca.ts';
import { WindowQueue } from '../../src/agent/queue.ts';
import { Sender } from '../../src/agent/sender.ts';
import { SendError, type AgentWindow } from '../../src/agent/window.ts';
import { fakeHttp, fakeParca, freePort, goPprofRaw, hasGo, labelsOf, parcaIdsValid, parsePyroscopeName, until, type FakeHttp, type Got, type GotRpc } from './servers.ts';

const OUTAGE_MS = Number(process.env.PYLENS_OUTAGE_MS ?? 3000);
const T0 = Date.UTC(2026, 0, 2, 3, 4, 0);

// ---------------------------------------------------------------------------------------
// windows from real profiles

function pprofOf(type: 'cpu' | 'wall', i: number): Uint8Array {
  const b = new ProfileBuilder({
    meta: { backend: 'pylens', mode: type, rateHz: 100, startTime: new Date(T0 + i * 10_000).toISOString(), durationNs: 10e9 },
    valueTypes: [{ name: 'samples', unit: 'samples' }, { name: type, unit: 'nanoseconds' }],
    defaultValue: 1,
  });
  const main = b.frame({ name: 'main', file: '/app/shop.py', line: 3 });
  const handle = b.frame({ name: 'handle', qualname: 'Shop.handle', file: '/app/shop.py', line: 10 });
  const query = b.frame({ name: 'query', qualname: 'db.query', file: '/app/db.py', line: 42 });
  const t1 = b.thread(4242, 4242, 'MainThread');
  const t2 = b.thread(4242, 4243, 'worker');
  b.sample(b.stackOf([main, handle]), [3 + i, (3 + i) * 10e6], t1, 'on-cpu', 1);
  b.sample(b.stackOf([main, handle, query]), [5, 50e6], t2, 'on-cpu', 2);
  b.sample(b.stackOf([main]), [2, 20e6], t1, 'on-cpu', 3);
  return pprofExporter.write(b.build()) as Uint8Array;
}

function windowOf(i: number, over: Partial<AgentWindow> = {}): AgentWindow {
  const type = over.type ?? 'cpu';
  const fromMs = over.fromMs ?? Date.now() - 60_000 + i * 10;
  return {
    id: `${String(fromMs).padStart(15, '0')}-${String(4242).padStart(7, '0')}-${type}-${String(i).padStart(4, '0')}`,
    service: 'shop',
    type,
    fromMs,
    untilMs: fromMs + 10_000,
    sampleRateHz: 100,
    labels: { service_name: 'shop', host: 'h1', pid: '4242', win: String(i) },
    pprof: pprofOf(type, i),
    quality: { samples: 10 + i, errors: 0, truncated: 0, samplerCpuNs: 1000 },
    ...over,
  };
}

function checkPprof(t: { skip: (m: string) => void }, bytes: Uint8Array, type: 'cpu' | 'wall', i: number): void {
  if (!hasGo) return t.skip('`go` is not on PATH: install golang-go to open what the servers got with go tool pprof');
  const raw = goPprofRaw(bytes);
  assert.deepEqual(raw.types, ['samples/count', `${type}/nanoseconds`]);
  assert.deepEqual(raw.totals, [10 + i, (10 + i) * 10e6]);
  assert.deepEqual(raw.functions, ['Shop.handle', 'db.query', 'main']);
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pylens-queue-'));
}

// ---------------------------------------------------------------------------------------
// Pyroscope

test('pyroscope: /ingest URL, label set that Pyroscope parses back, body a pprof go tool pprof reads (cpu and wall)', async (t) => {
  const srv = await fakeHttp();
  try {
    const d = new PyroscopeDestination({ url: `http://127.0.0.1:${srv.port}/pyro/` });
    const labels = { service_name: 'shop', host: 'h1', tricky: ' a,b}c=d"e{f ', 'bad-name': 'x', __private: 'no', empty: '' };
    const cpu = windowOf(1, { labels, fromMs: T0 + 500, untilMs: T0 + 10_500, sampleRateHz: 97.4 });
    const wall = windowOf(2, { type: 'wall', labels: { host: 'h1' }, service: 'my shop' });
    await d.send(cpu);
    await d.send(wall);
    assert.equal(srv.got.length, 2);

    const [a, b] = srv.got as [Got, Got];
    assert.equal(a.method, 'POST');
    assert.equal(a.url.pathname, '/pyro/ingest');
    const q = a.url.searchParams;
    assert.equal(q.get('format'), 'pprof');
    assert.equal(q.get('spyName'), 'pylens');
    assert.equal(q.get('sampleRate'), '97');
    assert.equal(q.get('from'), String(Math.floor((T0 + 500) / 1000)));
    assert.equal(q.get('until'), String(Math.ceil((T0 + 10_500) / 1000)));
    assert.equal(a.headers['content-type'], 'application/octet-stream');
    assert.equal(q.get('name'), 'shop.cpu{bad_name=x,host=h1,service_name=shop,tricky=a_b_c=d"e{f}');
    assert.deepEqual(
      Object.fromEntries(parsePyroscopeName(q.get('name')!)),
      { __name__: 'shop.cpu', bad_name: 'x', host: 'h1', service_name: 'shop', tricky: 'a_b_c=d"e{f' },
    );
    // the wall window: `.wall`, a service name with a space made valid, service_name from the window
    const wl = parsePyroscopeName(b.url.searchParams.get('name')!);
    assert.equal(wl.get('__name__'), 'my_shop.wall');
    assert.equal(wl.get('service_name'), 'my shop');

    assert.deepEqual(new Uint8Array(a.body), cpu.pprof);
    assert.deepEqual(new Uint8Array(b.body), wall.pprof);
    checkPprof(t, a.body, 'cpu', 1);
    checkPprof(t, b.body, 'wall', 2);
  } finally {
    await srv.close();
  }
});

test('pyroscope: X-Scope-OrgID, Basic and Bearer authorization', async () => {
  const srv = await fakeHttp();
  try {
    const url = `http://127.0.0.1:${srv.port}`;
    await new PyroscopeDestination({ url, orgId: 'team-a', basicAuth: { user: 'u1', password: 'p:w' } }).send(windowOf(1));
    await new PyroscopeDestination({ url, bearerToken: 'tok123' }).send(windowOf(2));
    await new PyroscopeDestination({ url }).send(windowOf(3));
    const [a, b, c] = srv.got as [Got, Got, Got];
    assert.equal(a.headers['x-scope-orgid'], 'team-a');
    assert.equal(a.headers.authorization, `Basic ${Buffer.from('u1:p:w').toString('base64')}`);
    assert.equal(b.headers.authorization, 'Bearer tok123');
    assert.equal(b.headers['x-scope-orgid'], undefined);
    assert.equal(c.headers.authorization, undefined);
    assert.match(String(a.headers['user-agent']), /^pylens\//);
    assert.throws(() => new PyroscopeDestination({ url, basicAuth: { user: 'a', password: 'b' }, bearerToken: 'c' }), /not both/);
  } finally {
    await srv.close();
  }
});

test('pyroscope: a 4xx is given up with the server\'s message logged; 5xx, 429 and a refused connection are retried', async () => {
  const srv = await fakeHttp();
  const dir = tmp();
  try {
    const d = new PyroscopeDestination({ url: `http://127.0.0.1:${srv.port}` });
    // SendError's retry flag, one status at a time
    const script: Record<string, number[]> = {};
    srv.answer = (g) => {
      const win = parsePyroscopeName(g.url.searchParams.get('name')!).get('win')!;
      const s = script[win]?.shift();
      return s ? { status: s, body: JSON.stringify({ code: 'invalid_argument', message: `status ${s} for window ${win}` }) } : undefined;
    };
    for (const [status, retry] of [[400, false], [401, false], [413, false], [422, false], [408, true], [429, true], [500, true], [503, true]] as const) {
      script['9'] = [status];
      const e = await d.send(windowOf(9)).then(() => null, (x: unknown) => x);
      assert.ok(e instanceof SendError, `HTTP ${status} throws a SendError`);
      assert.equal(e.retry, retry, `HTTP ${status} retry`);
      assert.equal(e.status, status);
      assert.match(e.message, new RegExp(`HTTP ${status}: status ${status} for window 9`));
    }
    const refused = await new PyroscopeDestination({ url: `http://127.0.0.1:${await freePort()}` }).send(windowOf(9)).then(() => null, (x: unknown) => x);
    assert.ok(refused instanceof SendError && refused.retry, 'connection refused is retried');
    assert.match(refused.message, /ECONNREFUSED/);

    // through the queue and the sender
    srv.got.length = 0;
    script['1'] = [400];
    script['2'] = [503, 503];
    script['3'] = [429];
    const q = await WindowQueue.open(dir, { destinations: ['pyroscope'], maxBytes: 1e7, maxAgeMs: 3600_000 });
    const log: string[] = [];
    const s = new Sender(q, [d], { baseDelayMs: 20, maxDelayMs: 100, log: (l) => log.push(l) });
    for (const i of [1, 2, 3]) await q.put(windowOf(i));
    s.start();
    await until('windows 2 and 3 delivered', () => srv.got.length === 2);
    await until('queue empty', () => q.size === 0);
    await s.stop();
    assert.deepEqual(srv.got.map((g) => parsePyroscopeName(g.url.searchParams.get('name')!).get('win')), ['2', '3']);
    assert.equal(s.stats().pyroscope!.attempts, 6); // 1: once; 2: three times; 3: twice
    assert.equal(s.stats().pyroscope!.retries, 3);
    assert.deepEqual(q.stats().sent, { pyroscope: 2 });
    assert.deepEqual(q.stats().failed, { pyroscope: 1 });
    assert.ok(log.some((l) => /refused, not sent again: .*HTTP 400: status 400 for window 1/.test(l)), log.join('\n'));
    assert.ok(log.some((l) => /back after 2 failed attempt/.test(l)), log.join('\n'));
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------
// Parca

test('parca: WriteRaw over gRPC (h2c): frame, WriteRawRequest fields, labels valid, unique and sorted, raw_profile a pprof go tool pprof reads', async (t) => {
  const srv = await fakeParca();
  const d = new ParcaDestination({ url: `127.0.0.1:${srv.port}`, insecure: true, bearerToken: 'sekrit' });
  try {
    const cpu = windowOf(1, { labels: { service_name: 'shop', 'bad-name': 'x', bad_name: 'dup', '9lives': 'y', __x: 'no', host: 'h1', empty: '' } });
    const wall = windowOf(2, { type: 'wall' });
    await d.send(cpu);
    await d.send(wall);
    assert.equal(srv.got.length, 2);
    const [a, b] = srv.got as [GotRpc, GotRpc];
    assert.equal(a.headers['content-type'], 'application/grpc');
    assert.equal(a.headers.te, 'trailers');
    assert.equal(a.headers.authorization, 'Bearer sekrit');
    assert.match(String(a.headers['grpc-timeout']), /^\d+m$/);
    assert.equal(a.req.normalized, true);
    assert.equal(a.req.series.length, 1);
    assert.equal(a.req.series[0]!.samples.length, 1);
    const names = a.req.series[0]!.labels.map(([n]) => n);
    assert.deepEqual(names, [...names].sort(), 'sorted');
    assert.equal(new Set(names).size, names.length, 'unique');
    for (const n of names) assert.match(n, /^[a-zA-Z_][a-zA-Z0-9_]*$/);
    assert.deepEqual(labelsOf(a), { __name__: 'process_cpu', _9lives: 'y', bad_name: 'x', host: 'h1', service_name: 'shop' });
    assert.equal(labelsOf(b).__name__, 'wall');
    assert.equal(labelsOf(b).service_name, 'shop');
    assert.deepEqual(a.req.series[0]!.samples[0], cpu.pprof);
    assert.deepEqual(b.req.series[0]!.samples[0], wall.pprof);
    assert.deepEqual([...gunzipSync(a.req.series[0]!.samples[0]!).subarray(0, 1)], [0x0a], 'a gzipped profile.proto');
    assert.equal(parcaIdsValid(a.req.series[0]!.samples[0]!), null);
    assert.equal(parcaIdsValid(b.req.series[0]!.samples[0]!), null);
    checkPprof(t, a.req.series[0]!.samples[0]!, 'cpu', 1);
    checkPprof(t, b.req.series[0]!.samples[0]!, 'wall', 2);
  } finally {
    d.close();
    await srv.close();
  }
});

test('parca: a window whose profile has frames no sample uses still has sequential location ids', { timeout: 60_000 }, () => {
  const b = new ProfileBuilder({ meta: { backend: 'pylens', mode: 'cpu', rateHz: 100 }, valueTypes: [{ name: 'samples', unit: 'samples' }, { name: 'cpu', unit: 'nanoseconds' }] });
  b.frame({ name: 'unused', file: '/app/a.py', line: 1 });
  const main = b.frame({ name: 'main', file: '/app/a.py', line: 3 });
  b.sample(b.stackOf([main]), [1, 1e7], 0, 'on-cpu', 1);
  assert.equal(parcaIdsValid(pprofExporter.write(b.build()) as Uint8Array), null);
});

test('parca: INVALID_ARGUMENT and UNAUTHENTICATED are given up, UNAVAILABLE / RESOURCE_EXHAUSTED / HTTP 503 / no server retried', async () => {
  const srv = await fakeParca();
  const d = new ParcaDestination({ url: `http://127.0.0.1:${srv.port}` });
  try {
    const cases: Array<[{ grpcStatus?: number; message?: string; httpStatus?: number }, boolean, RegExp]> = [
      [{ grpcStatus: 3, message: 'invalid label name: a-b, 100%' }, false, /INVALID_ARGUMENT: invalid label name: a-b, 100%/],
      [{ grpcStatus: 16, message: 'no token' }, false, /UNAUTHENTICATED: no token/],
      [{ grpcStatus: 14, message: 'draining' }, true, /UNAVAILABLE: draining/],
      [{ grpcStatus: 8 }, true, /RESOURCE_EXHAUSTED/],
      [{ httpStatus: 503 }, true, /HTTP 503: overloaded/],
    ];
    for (const [answer, retry, msg] of cases) {
      srv.answer = () => answer;
      const e = await d.send(windowOf(1)).then(() => null, (x: unknown) => x);
      assert.ok(e instanceof SendError, JSON.stringify(answer));
      assert.equal(e.retry, retry, JSON.stringify(answer));
      assert.match(e.message, msg);
    }
    srv.answer = () => undefined;
    await d.send(windowOf(2)); // the same connection still works
    assert.equal(srv.got.length, 1);
  } finally {
    d.close();
    await srv.close();
  }
  const down = new ParcaDestination({ url: `127.0.0.1:${await freePort()}`, insecure: true, timeoutMs: 2000 });
  const e = await down.send(windowOf(3)).then(() => null, (x: unknown) => x);
  assert.ok(e instanceof SendError && e.retry, String(e));
  down.close();
});

test('parca: the grpc-gateway JSON fallback, POST /profiles/writeraw', async (t) => {
  const srv = await fakeHttp();
  try {
    const d = new ParcaDestination({ url: `http://127.0.0.1:${srv.port}`, transport: 'json', bearerToken: 'tk' });
    const w = windowOf(4, { labels: { host: 'h1', 'a.b': 'c' } });
    await d.send(w);
    const g = srv.got[0]!;
    assert.equal(g.url.pathname, '/profiles/writeraw');
    assert.equal(g.headers['content-type'], 'application/json');
    assert.equal(g.headers.authorization, 'Bearer tk');
    const body = JSON.parse(g.body.toString('utf8'));
    assert.equal(body.normalized, true);
    assert.deepEqual(body.series[0].labels.labels, [
      { name: '__name__', value: 'process_cpu' },
      { name: 'a_b', value: 'c' },
      { name: 'host', value: 'h1' },
      { name: 'service_name', value: 'shop' },
    ]);
    const raw = new Uint8Array(Buffer.from(body.series[0].samples[0].rawProfile, 'base64'));
    assert.deepEqual(raw, w.pprof);
    checkPprof(t, raw, 'cpu', 4);
    srv.answer = () => ({ status: 400, body: JSON.stringify({ code: 3, message: 'missing __name__ label' }) });
    const e = await d.send(w).then(() => null, (x: unknown) => x);
    assert.ok(e instanceof SendError && !e.retry && /missing __name__ label/.test(e.message), String(e));
  } finally {
    await srv.close();
  }
});

// ---------------------------------------------------------------------------------------
// the sender: an outage, no hot loop, flush

test(`sender: Pyroscope down for ${OUTAGE_MS} ms loses no window and gets them in order once back; Parca, up, is not held up; backoff, not a hot loop`, { timeout: OUTAGE_MS + 60_000 }, async () => {
  const dir = tmp();
  const port = await freePort();
  const parca = await fakeParca();
  let pyro: FakeHttp | null = null;
  const pd = new ParcaDestination({ url: `127.0.0.1:${parca.port}`, insecure: true });
  let s: Sender | undefined;
  try {
    const q = await WindowQueue.open(dir, { destinations: ['pyroscope', 'parca'], maxBytes: 1e8, maxAgeMs: 3600_000 });
    const baseDelayMs = 100;
    const maxDelayMs = 1000;
    s = new Sender(q, [new PyroscopeDestination({ url: `http://127.0.0.1:${port}`, timeoutMs: 2000 }), pd], { baseDelayMs, maxDelayMs });
    s.start();
    const ids: string[] = [];
    const start = Date.now();
    let i = 0;
    while (Date.now() - start < OUTAGE_MS) {
      const w = windowOf(i++, { fromMs: start - 60_000 + i * 100 });
      ids.push(w.id);
      await q.put(w);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Parca kept up during the outage
    await until('parca has every window', () => parca.got.length === ids.length, 5000);
    const attempts = s.stats().pyroscope!.attempts;
    // backoff: base·2^k up to the cap, each × ≥ 0.5: at most this many attempts in the outage
    let bound = 1;
    for (let k = 0, tsum = 0; tsum < OUTAGE_MS; k++) {
      tsum += 0.5 * Math.min(maxDelayMs, baseDelayMs * 2 ** k);
      bound++;
    }
    assert.ok(attempts <= bound, `${attempts} attempts in a ${OUTAGE_MS} ms outage (bound ${bound})`);
    assert.ok(attempts >= 3, `${attempts} attempts: it kept trying`);
    assert.equal(q.pending('pyroscope').length, ids.length);

    pyro = await fakeHttp(port);
    await until('pyroscope has every window', () => pyro!.got.length === ids.length, maxDelayMs + 10_000);
    await until('queue empty', () => q.size === 0);
    const got = pyro.got.map((g) => `${g.url.searchParams.get('from')}/${parsePyroscopeName(g.url.searchParams.get('name')!).get('win')}`);
    assert.deepEqual(got, ids.map((_, k) => `${Math.floor((start - 60_000 + (k + 1) * 100) / 1000)}/${k}`), 'every window, in order');
    assert.deepEqual(
      parca.got.map((g) => labelsOf(g).win),
      ids.map((_, k) => String(k)),
    );
    assert.deepEqual(q.stats().sent, { pyroscope: ids.length, parca: ids.length });
    assert.deepEqual(q.stats().dropped, { full: 0, age: 0, corrupt: 0 });
    // the last window's other marker may still be on its way out (written, then unlinked: settle)
    await until('the queue folder empty', () => readdirSync(dir).length === 0, 5000);
  } finally {
    // stopped even when an assertion failed: its lanes would keep retrying, and the file never end
    await s?.stop();
    pd.close();
    await parca.close();
    await pyro?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sender: flush tries every queued window once more, backoff or not, within its deadline', async () => {
  const dir = tmp();
  const port = await freePort();
  let pyro: FakeHttp | null = null;
  try {
    const q = await WindowQueue.open(dir, { destinations: ['pyroscope'], maxBytes: 1e8, maxAgeMs: 3600_000 });
    const s = new Sender(q, [new PyroscopeDestination({ url: `http://127.0.0.1:${port}` })], { baseDelayMs: 60_000, maxDelayMs: 60_000 });
    s.start();
    for (let i = 0; i < 5; i++) await q.put(windowOf(i));
    await until('first attempt failed', () => s.stats().pyroscope!.retries === 1);
    // the backend is back, but the lane sleeps ≥ 30 s: flush does not wait for it
    pyro = await fakeHttp(port);
    const t0 = Date.now();
    const left = await s.flush(5000);
    assert.equal(left, 0);
    assert.ok(Date.now() - t0 < 3000, `flush took ${Date.now() - t0} ms`);
    assert.equal(pyro.got.length, 5);

    // backend down during flush: one more try, then flush returns with what is left
    await pyro.close();
    pyro = null;
    const s2 = new Sender(q, [new PyroscopeDestination({ url: `http://127.0.0.1:${port}` })], { baseDelayMs: 60_000 });
    for (let i = 5; i < 8; i++) await q.put(windowOf(i));
    const t1 = Date.now();
    assert.equal(await s2.flush(2000), 3);
    assert.ok(Date.now() - t1 < 2500);
    assert.equal(s2.stats().pyroscope!.attempts, 1);
  } finally {
    await pyro?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------
// the queue

test('queue: bounded by bytes (oldest dropped, counted) and by age', async () => {
  const dir = tmp();
  try {
    const probe = await WindowQueue.open(dir, { destinations: ['pyroscope'], maxBytes: 1e9, maxAgeMs: 1e12 });
    const w0 = windowOf(0);
    await probe.put(w0);
    const one = probe.stats().queuedBytes;
    await probe.settle(w0.id, 'pyroscope', 'sent');
    assert.equal(probe.size, 0);

    let now = Date.now();
    const q = await WindowQueue.open(dir, { destinations: ['pyroscope', 'parca'], maxBytes: Math.floor(one * 3.5), maxAgeMs: 120_000, now: () => now });
    const ws = [0, 1, 2, 3, 4, 5].map((i) => windowOf(i, { fromMs: now - 60_000 + i * 1000 }));
    for (const w of ws) await q.put(w);
    assert.equal(q.stats().dropped.full, 3);
    assert.deepEqual(q.pending('parca'), ws.slice(3).map((w) => w.id), 'the newest three stay, oldest first');
    assert.ok(q.stats().queuedBytes <= one * 3.5);
    assert.equal(q.stats().queuedWindows, 3);
    assert.equal(readdirSync(dir).filter((f) => f.endsWith('.win')).length, 3);
    // a window bigger than the whole queue is not kept
    await q.put(windowOf(9, { pprof: new Uint8Array(one * 4) }));
    assert.equal(q.stats().dropped.full, 4);
    assert.equal(q.size, 3);
    // two minutes on, windows that ended more than maxAgeMs ago go
    now += 120_000 - 50_000 + 3500;
    assert.equal(await q.next('parca'), ws[4]!.id);
    assert.equal(q.stats().dropped.age, 1);
    // a partly delivered window keeps its place for the other destination
    await q.settle(ws[4]!.id, 'parca', 'sent');
    assert.equal(await q.next('parca'), ws[5]!.id);
    assert.equal(await q.next('pyroscope'), ws[4]!.id);
    assert.deepEqual(q.stats().sent, { pyroscope: 0, parca: 1 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('queue: puts made back to back enter it in the order they were made, a large window before a small one', async () => {
  const dir = tmp();
  try {
    const q = await WindowQueue.open(dir, { destinations: ['pyroscope'], maxBytes: 1e9, maxAgeMs: 1e12 });
    // what a sender draining the queue would see at each put
    const seen: string[][] = [];
    q.onPut(() => seen.push(q.pending('pyroscope')));
    const now = Date.now();
    // the first is 32 MiB (its write and fsync take longest), the rest small: started together
    const ws = [windowOf(0, { fromMs: now, pprof: new Uint8Array(32 << 20) }), windowOf(1, { fromMs: now + 1000 }), windowOf(2, { fromMs: now + 2000 })];
    await Promise.all(ws.map((w) => q.put(w)));
    await q.settled();
    const ids = ws.map((w) => w.id);
    assert.deepEqual(seen, [ids.slice(0, 1), ids.slice(0, 2), ids], 'each put saw the ones made before it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('queue: a restart sends what the old queue had, partial deliveries remembered', async (t) => {
  const dir = tmp();
  const pyro = await fakeHttp();
  const parca = await fakeParca();
  const pd = new ParcaDestination({ url: `http://127.0.0.1:${parca.port}` });
  try {
    const opts = { destinations: ['pyroscope', 'parca'], maxBytes: 1e8, maxAgeMs: 3600_000 };
    const old = await WindowQueue.open(dir, opts);
    const ws = [0, 1, 2, 3].map((i) => windowOf(i));
    for (const w of ws) await old.put(w);
    await old.settle(ws[0]!.id, 'pyroscope', 'sent'); // pyroscope had window 0 before the "crash"
    await old.settle(ws[1]!.id, 'parca', 'failed');

    const q = await WindowQueue.open(dir, opts);
    assert.equal(q.size, 4);
    assert.deepEqual(q.pending('pyroscope'), ws.slice(1).map((w) => w.id));
    assert.deepEqual(q.pending('parca'), [ws[0]!.id, ws[2]!.id, ws[3]!.id]);
    const w0 = await q.load(ws[0]!.id);
    assert.deepEqual(w0, ws[0]);
    const s = new Sender(q, [new PyroscopeDestination({ url: `http://127.0.0.1:${pyro.port}` }), pd], { baseDelayMs: 20 });
    s.start();
    await until('queue empty', () => q.size === 0);
    await s.stop();
    assert.deepEqual(pyro.got.map((g) => parsePyroscopeName(g.url.searchParams.get('name')!).get('win')), ['1', '2', '3']);
    assert.deepEqual(parca.got.map((g) => labelsOf(g).win), ['0', '2', '3']);
    checkPprof(t, pyro.got[2]!.body, 'cpu', 3);
    assert.deepEqual(readdirSync(dir), [], 'window files and delivery markers gone');
  } finally {
    pd.close();
    await pyro.close();
    await parca.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('queue: a window put by this process is sent from memory (its file is not read back); once it goes, memory lets go of it too', async () => {
  const dir = tmp();
  try {
    const q = await WindowQueue.open(dir, { destinations: ['pyroscope'], maxBytes: 1e8, maxAgeMs: 3600_000 });
    const ws = [0, 1].map((i) => windowOf(i));
    await Promise.all(ws.map((w) => q.put(w)));
    const files = readdirSync(dir).filter((f) => f.endsWith('.win')).sort();
    assert.equal(files.length, 2);
    // the file spoiled behind the queue's back: what this process put is what it sends
    for (const f of files) writeFileSync(join(dir, f), 'spoiled');
    assert.deepEqual(await q.load(ws[0]!.id), ws[0]);
    await q.settle(ws[0]!.id, 'pyroscope', 'sent');
    assert.equal(await q.load(ws[0]!.id), undefined, 'gone once sent');
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.win')), [files[1]]);
    // a queue opened on the same files reads them, and checks them
    const again = await WindowQueue.open(dir, { destinations: ['pyroscope'], maxBytes: 1e8, maxAgeMs: 3600_000 });
    assert.equal(again.stats().dropped.corrupt, 1);
    assert.equal(again.size, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('queue, write-behind: a window taken at once never touches the disk; one still waiting writeBehindMs on is written with the markers of the destinations done; close() writes the rest', async () => {
  const dir = tmp();
  // every name the folder ever saw (inotify), temp files included
  const names = new Set<string>();
  const watcher = watch(dir, (_e, f) => {
    if (f) names.add(String(f));
  });
  try {
    const opts = { destinations: ['pyroscope', 'parca'], maxBytes: 1e8, maxAgeMs: 3600_000 };
    const q = await WindowQueue.open(dir, { ...opts, writeBehindMs: 400 });
    const ws = [0, 1, 2].map((i) => windowOf(i));
    const file = (w: AgentWindow) => `${w.id.replace(/[^A-Za-z0-9._-]/g, '_')}.win`;
    await q.put(ws[0]!);
    assert.deepEqual(await q.load(ws[0]!.id), ws[0]);
    await q.settle(ws[0]!.id, 'pyroscope', 'sent');
    await q.settle(ws[0]!.id, 'parca', 'sent');
    assert.equal(q.size, 0);
    await q.put(ws[1]!);
    await q.settle(ws[1]!.id, 'parca', 'sent'); // half delivered
    assert.equal(q.stats().queuedWindows, 1);
    assert.deepEqual(readdirSync(dir), [], 'nothing written before writeBehindMs');
    await until('the waiting window written', () => readdirSync(dir).length === 2, 5000);
    assert.deepEqual(readdirSync(dir).sort(), [file(ws[1]!), `${file(ws[1]!)}~parca`]);
    await q.put(ws[2]!);
    await q.close();
    assert.deepEqual(readdirSync(dir).sort(), [file(ws[1]!), `${file(ws[1]!)}~parca`, file(ws[2]!)].sort());
    await new Promise((r) => setTimeout(r, 100)); // the last inotify events
    assert.ok(![...names].some((n) => n.includes(file(ws[0]!))), `window 0 was delivered at once and never written: ${[...names].join(' ')}`);
    // what a next start finds
    const again = await WindowQueue.open(dir, opts);
    assert.equal(again.stats().dropped.corrupt, 0);
    assert.deepEqual(again.pending('pyroscope'), [ws[1]!.id, ws[2]!.id]);
    assert.deepEqual(again.pending('parca'), [ws[2]!.id]);
    assert.deepEqual(await again.load(ws[2]!.id), ws[2]);
    // delivered after being written: its files go
    await again.settle(ws[1]!.id, 'pyroscope', 'sent');
    assert.deepEqual(readdirSync(dir), [file(ws[2]!)]);
  } finally {
    watcher.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('queue, write-behind: a backend failing writes what waits at once (not writeBehindMs later) and every put while it fails; sent in order once back, then write-behind again', async () => {
  const dir = tmp();
  try {
    const q = await WindowQueue.open(dir, { destinations: ['pyroscope'], maxBytes: 1e8, maxAgeMs: 3600_000, writeBehindMs: 600_000 });
    let up = false;
    const got: string[] = [];
    const dest = {
      name: 'pyroscope',
      send: async (w: AgentWindow) => {
        if (!up) throw new SendError('pyroscope: ECONNREFUSED', true);
        got.push(w.id);
      },
    };
    const s = new Sender(q, [dest], { baseDelayMs: 200, maxDelayMs: 400, random: () => 0.99 });
    s.start();
    const ws = [0, 1, 2].map((i) => windowOf(i));
    for (const w of ws) await q.put(w);
    await until('written after the failure', () => readdirSync(dir).filter((f) => f.endsWith('.win')).length === 3, 5000);
    // while it fails, a put is on disk when it resolves
    const w3 = windowOf(3);
    await q.put(w3);
    assert.equal(readdirSync(dir).filter((f) => f.endsWith('.win')).length, 4);
    up = true;
    await until('sent', () => q.size === 0, 10_000);
    // back: write-behind again
    const w4 = windowOf(4);
    await q.put(w4);
    assert.deepEqual(readdirSync(dir), []);
    await until('sent', () => q.size === 0, 10_000);
    await s.stop();
    assert.deepEqual(got, [...ws, w3, w4].map((w) => w.id));
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('queue: a file cut mid-write, a left-over temp file and garbage are removed at open and counted', async () => {
  const dir = tmp();
  try {
    const opts = { destinations: ['pyroscope'], maxBytes: 1e8, maxAgeMs: 3600_000 };
    const old = await WindowQueue.open(dir, opts);
    const ws = [0, 1, 2, 3].map((i) => windowOf(i));
    for (const w of ws) await old.put(w);
    const files = readdirSync(dir).sort();
    assert.equal(files.length, 4);
    const cut = join(dir, files[1]!);
    truncateSync(cut, Math.floor(statSync(cut).size / 2));
    // one bit flipped in the pprof of another: the CRC catches it
    const flip = join(dir, files[2]!);
    const b = readFileSync(flip);
    b[b.length - 3]! ^= 0x10;
    writeFileSync(flip, b);
    writeFileSync(join(dir, `.tmp-99-1-${files[3]}`), b.subarray(0, 100));
    writeFileSync(join(dir, 'garbage.win'), 'not a window');
    writeFileSync(join(dir, `${files[1]}~pyroscope`), ''); // a marker of the cut window: goes with it

    const q = await WindowQueue.open(dir, opts);
    assert.equal(q.stats().dropped.corrupt, 4);
    assert.deepEqual(q.pending('pyroscope'), [ws[0]!.id, ws[3]!.id]);
    assert.deepEqual(readdirSync(dir).sort(), [files[0], files[3]]);
    assert.deepEqual(await q.load(ws[3]!.id), ws[3]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
