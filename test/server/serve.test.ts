/**
 * `pylens serve` over a real store: real recordings saved by `pylens record --save`, the JSON
 * API, security (path traversal in encoded variants, tokens, Host checks, oversized and
 * malformed uploads), and the workbench in real Chromium: list, filter, open a profile,
 * compare two, merge, upload by the file input — with no console errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Browser } from 'playwright-core';
import { ProfileStore } from '../../src/store/store.ts';
import { serve, type Serving } from '../../src/server/server.ts';
import { STORED_PAGE_VERSION, storedPage } from '../../src/render/html.ts';
import { bigProfile } from '../render/profiles.ts';
import { launch } from '../render/browser.ts';
import { installedPythons } from '../sampler/pythons.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const py = installedPythons().find((p) => p.minor === 12) ?? installedPythons()[0]!;
const dir = mkdtempSync(join(tmpdir(), 'pylens-serve-'));
const DB = join(dir, 'profiles.db');

const APP = `import os, time
def encode(n):
    return sum(i * i for i in range(n))
def extra(n):
    return sum(range(n))
end = time.perf_counter() + 0.6
while time.perf_counter() < end:
    encode(20000)
    if os.environ.get("SLOW"):
        extra(60000)
`;

let store: ProfileStore;
let s: Serving;

/** a raw HTTP request: the path goes out exactly as given (fetch would normalise it) */
function raw(url: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<{ status: number; body: string; bytes: Buffer; headers: Record<string, unknown> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: o.method ?? 'GET', headers: o.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, body: bytes.toString('utf8'), bytes, headers: res.headers });
      });
    });
    req.on('error', reject);
    if (o.body) req.end(o.body);
    else req.end();
  });
}

before(() => {
  writeFileSync(join(dir, 'app.py'), APP);
  for (const [label, env] of [
    ['version=1', {}],
    ['version=2', { SLOW: '1' }],
  ] as const) {
    const r = spawnSync(process.execPath, [MAIN, 'record', '-q', '-r', '250', '-o', join(dir, `${label}.pylens`), '--save', '--store', DB, '--label', `${label},env=test`, '--', py.exe, 'app.py'], { cwd: dir, encoding: 'utf8', env: { ...process.env, ...env } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /pylens record: saved as #\d+ in .*profiles\.db/);
  }
  store = ProfileStore.open(DB);
});

after(async () => {
  await s?.close();
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('API: list and filter, a profile with its function summary, report, diff, merge, export, upload, delete', async () => {
  s = await serve({ store, port: 0 });
  try {
  const get = async (p: string) => {
    const r = await fetch(new URL(p, s.url));
    return { status: r.status, json: (await r.json()) as Record<string, unknown> & { profiles: { id: number; labels: Record<string, string>; service: string }[] } };
  };
  const all = await get('/api/profiles');
  assert.equal(all.status, 200);
  assert.equal(all.json.total, 2);
  const [v2, v1] = all.json.profiles; // newest first
  assert.equal(v1!.labels.version, '1');
  assert.equal(v2!.labels.env, 'test');
  assert.equal(v1!.service, 'app');
  assert.equal((await get('/api/profiles?where=version%3D2')).json.total, 1);
  assert.equal((await get('/api/profiles?fn=extra')).json.profiles[0]!.id, v2!.id, 'the function summary finds the profile that ran extra()');
  assert.equal((await get('/api/profiles?search=nothing-like-it')).json.total, 0);
  const one = await get(`/api/profiles/${v2!.id}`);
  const fns = one.json.functions as unknown as { name: string; total: number }[];
  assert.ok(fns.some((f) => f.name === 'extra' && f.total > 0.2), JSON.stringify(fns.slice(0, 5)));
  const rep = (await get(`/api/profiles/${v2!.id}/report`)).json as unknown as { rows: { name: string }[] };
  assert.ok(rep.rows.some((r) => r.name === 'extra'));
  const diff = (await get(`/api/diff?base=${v1!.id}&new=${v2!.id}`)).json as unknown as { functions: { name: string; significant: boolean; delta: number }[] };
  const ex = diff.functions.find((f) => f.name === 'extra')!;
  assert.ok(ex.significant && ex.delta > 20, JSON.stringify(ex));
  const merged = (await get(`/api/merge?ids=${v1!.id},${v2!.id}`)).json as unknown as { meta: { sampleCount: number; extra: { mergedProfiles: number } } };
  assert.equal(merged.meta.extra.mergedProfiles, 2);
  assert.equal(merged.meta.sampleCount, store.get(v1!.id)!.samples + store.get(v2!.id)!.samples);
  // every profile the filters match, merged
  const byService = (await get('/api/merge?service=app')).json as unknown as { meta: { extra: { mergedProfiles: number } } };
  assert.equal(byService.meta.extra.mergedProfiles, 2);
  assert.equal((await get('/api/merge?service=nothing-here')).status, 404);
  const page = await fetch(new URL(`/api/profiles/${v1!.id}/page`, s.url));
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-security-policy')!, /default-src 'none'/);
  assert.match(await page.text(), /id="pylens-data"/);
  // the workbench's way: the page without data (one for every profile), and the profile's
  // page bundle (page/data.ts)
  const shell = await raw(s.url, '/api/page');
  assert.equal(shell.status, 200);
  assert.match(String(shell.headers['content-security-policy']), /default-src 'none'/);
  assert.match(shell.body, /data-external="post"/);
  assert.doesNotMatch(shell.body, /id="pylens-data"/);
  assert.equal((await raw(s.url, `/api/profiles/${v1!.id}/page?external=1`)).body, shell.body);
  const bundleOf = (b: Buffer) => JSON.parse(b.subarray(4, 4 + b.readUInt32LE(0)).toString('utf8')) as { data: { sampleRows: number; blobBytes: number }; table: { rows: unknown[] } };
  const blobBytes = (b: Buffer) => b.length - ((4 + b.readUInt32LE(0) + 7) & ~7);
  // a small profile (this recording): its bundle made on request, not kept
  assert.equal(store.page(v1!.id, STORED_PAGE_VERSION), undefined);
  const small = await raw(s.url, `/api/profiles/${v1!.id}/blob`, { headers: { 'accept-encoding': 'gzip, deflate' } });
  assert.equal(small.headers['content-encoding'], undefined);
  const sb = bundleOf(small.bytes);
  assert.equal(sb.data.sampleRows, store.get(v1!.id)!.samples);
  assert.equal(blobBytes(small.bytes), sb.data.blobBytes);
  assert.ok(sb.table.rows.length > 0);
  // a large one saved as record --save saves it: its bundle kept, sent gzip'd as kept
  const bp = bigProfile({ samples: 60_000, stacks: 2_000 });
  const big = store.add(bp, { page: storedPage(bp)! });
  const gz = await raw(s.url, `/api/profiles/${big.id}/blob`, { headers: { 'accept-encoding': 'gzip, deflate' } });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  const plain = await raw(s.url, `/api/profiles/${big.id}/blob`);
  assert.equal(plain.headers['content-encoding'], undefined, 'inflated for a client that does not take gzip');
  assert.deepEqual(gunzipSync(gz.bytes), plain.bytes);
  assert.equal(bundleOf(plain.bytes).data.sampleRows, 60_000);
  assert.equal(blobBytes(plain.bytes), bundleOf(plain.bytes).data.blobBytes);
  // and saved without it (an older pylens): made on request, then kept for the next time
  const bare = store.add(bp);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(store.page(v1!.id, STORED_PAGE_VERSION), undefined, 'the small one still made on request');
  assert.equal(store.page(bare.id, STORED_PAGE_VERSION), undefined);
  const made = await raw(s.url, `/api/profiles/${bare.id}/blob`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(made.headers['content-encoding'], undefined);
  assert.deepEqual(made.bytes, plain.bytes);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(gunzipSync(store.page(bare.id, STORED_PAGE_VERSION)!), plain.bytes);
  assert.equal((await raw(s.url, `/api/profiles/999999/blob`)).status, 404);
  store.remove([big.id, bare.id]);
  const exp = await fetch(new URL(`/api/profiles/${v1!.id}/export?format=speedscope`, s.url));
  assert.equal(exp.status, 200);
  assert.match(await exp.text(), /speedscope/);
  // functions over time, from the summaries: oldest first; extra() only in the second
  const tr = (await get('/api/trend?service=app')).json as unknown as { profiles: { id: number }[]; series: { name: string; points: (number | null)[] }[] };
  assert.deepEqual(tr.profiles.map((p) => p.id), [v1!.id, v2!.id]);
  const extraSeries = tr.series.find((x) => x.name === 'extra')!;
  assert.equal(extraSeries.points[0], null);
  assert.ok(extraSeries.points[1]! > 0.2);
  assert.ok(tr.series.find((x) => x.name === 'encode')!.points.every((v) => v !== null && v > 0.3), JSON.stringify(tr.series));
  assert.ok(!tr.series.some((x) => x.name === '<module>'), 'the shared root says nothing over time');
  // source heat: the script, found under the folder its short name was cut from
  const srcs = (await get(`/api/profiles/${v2!.id}/sources`)).json as unknown as { files: { file: string; path: string | null; total: number }[] };
  const app = srcs.files.find((f) => f.file === 'app.py')!;
  assert.equal(app.path, join(dir, 'app.py'));
  assert.ok(app.total > 0.9, JSON.stringify(app));
  const src = (await get(`/api/profiles/${v2!.id}/source?file=app.py`)).json as unknown as { text: string; lines: { line: number; self: number; total: number; functions: string[] }[] };
  assert.equal(src.text, APP);
  const l5 = src.lines.find((l) => l.line === 5)!; // return sum(range(n)) in extra()
  assert.ok(l5 && l5.self > 0.2 && l5.functions.includes('extra'), JSON.stringify(src.lines));
  // only files the profile names, never another path
  for (const f of ['/etc/passwd', '../../etc/passwd', join(dir, 'v1.pylens')]) assert.equal((await get(`/api/profiles/${v2!.id}/source?file=${encodeURIComponent(f)}`)).status, 404, f);
  // upload: a collapsed-stacks file
  const up = await fetch(new URL('/api/profiles?name=up.folded&label=env%3Dupload', s.url), { method: 'POST', body: 'main;work 7\nmain;idle 3\n' });
  assert.equal(up.status, 201, await up.clone().text());
  const row = (await up.json()) as { id: number; samples: number; labels: Record<string, string> };
  assert.equal(row.labels.env, 'upload');
  assert.equal((await get('/api/profiles')).json.total, 3);
  const del = await fetch(new URL(`/api/profiles/${row.id}`, s.url), { method: 'DELETE' });
  assert.equal(del.status, 200);
  assert.equal((await get(`/api/profiles/${row.id}`)).status, 404);
  } finally {
    // a failed assertion must not leave the server keeping the test file alive
    await s.close();
  }
});

test('security: traversal in every encoding is a 404, errors are JSON; uploads too large or malformed are refused; Host is checked; a non-loopback bind needs its token', async () => {
  s = await serve({ store, port: 0, maxUploadBytes: 1000 });
  try {
  for (const p of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/%2E%2E%2Fetc%2Fpasswd', '/api/profiles/..%2f..%2fetc%2fpasswd', '/api/profiles/1/..', '/api/../../etc/passwd', '/%252e%252e/etc/passwd', '/..%5c..%5cetc%5cpasswd', '/\\..\\etc\\passwd', '//etc/passwd', '/etc/passwd', '/api/profiles/1/page/../../../etc/passwd']) {
    const r = await raw(s.url, p);
    assert.equal(r.status, 404, `${p}: ${r.status} ${r.body}`);
    assert.doesNotMatch(r.body, /root:/);
    assert.equal(JSON.parse(r.body).status, 404);
  }
  const big = await raw(s.url, '/api/profiles?name=x.folded', { method: 'POST', body: Buffer.alloc(5000, 'a') });
  assert.equal(big.status, 413);
  assert.match(JSON.parse(big.body).error, /at most 1000/);
  const bad = await raw(s.url, '/api/profiles?name=broken.pylens', { method: 'POST', body: Buffer.from('PYLENS\r\n\x01\x00\x00\x00garbage') });
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.body).error, /broken\.pylens/);
  const empty = await raw(s.url, '/api/profiles', { method: 'POST' });
  assert.equal(empty.status, 400);
  assert.equal((await raw(s.url, '/api/profiles/999999')).status, 404);
  assert.equal((await raw(s.url, '/api/profiles/abc')).status, 404);
  const m = await raw(s.url, '/api/profiles', { method: 'PUT' });
  assert.equal(m.status, 405);
  // DNS rebinding: a loopback server without a token answers only loopback Host names
  const rebound = await raw(s.url, '/api/profiles', { headers: { host: 'evil.example:80' } });
  assert.equal(rebound.status, 403);
  await s.close();
  // any other address: a token is generated, required in a header, never a cookie
  s = await serve({ store, port: 0, host: '0.0.0.0' });
  assert.ok(s.token && s.token.length >= 16);
  assert.match(s.openUrl, /#token=/);
  const url = s.url.replace('0.0.0.0', '127.0.0.1');
  assert.equal((await raw(url, '/api/profiles')).status, 401);
  assert.equal((await raw(url, '/api/profiles', { headers: { 'x-pylens-token': 'wrong-token-wrong' } })).status, 401);
  const ok = await raw(url, '/api/profiles', { headers: { 'x-pylens-token': s.token! } });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['set-cookie'], undefined);
  assert.equal((await raw(url, '/api/profiles', { headers: { authorization: `Bearer ${s.token}` } })).status, 200);
  // the shell holds no data and loads without it
  assert.equal((await raw(url, '/')).status, 200);
  } finally {
    await s.close();
  }
});

test('pylens serve: a non-loopback --host prints a URL with a generated token; a port in use is a clear error', async () => {
  const child = spawn(process.execPath, [MAIN, 'serve', '--store', DB, '--host', '0.0.0.0', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.on('exit', (c) => reject(new Error(`exited ${c}`)));
  });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    assert.match(line, /^http:\/\/0\.0\.0\.0:\d+\/#token=[\w-]{16,}$/);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  const port = Number(/:(\d+)\//.exec(line)![1]);
  const busy = await serve({ store, port: 0 });
  try {
    const taken = new URL(busy.url).port;
    const r = spawnSync(process.execPath, [MAIN, 'serve', '--store', DB, '--port', taken], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`port ${taken} on 127\\.0\\.0\\.1 is in use`));
  } finally {
    await busy.close();
  }
  assert.ok(port > 0);
});

let browser: Browser;
test('the workbench in Chromium: list, filter, open a profile, compare, merge, upload; no console errors', { timeout: 120_000 }, async () => {
  s = await serve({ store, port: 0, token: 'a-test-token-123' });
  browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    const ready = () => page.waitForFunction(() => (window as unknown as { __workbench?: { ready: boolean } }).__workbench?.ready === true);
    await page.goto(s.openUrl);
    await ready();
    assert.equal(await page.evaluate(() => location.hash), '#/', 'the token left the URL');
    assert.equal(await page.locator('#wb-table tbody tr').count(), 2);
    // filter by label
    await page.fill('input[name=where]', 'version=2');
    await page.click('#wb-filters button[type=submit]');
    await ready();
    assert.equal(await page.locator('#wb-table tbody tr').count(), 1);
    assert.match(await page.evaluate(() => location.hash), /where=version%3D2/);
    await page.goto(`${s.url}#/`);
    await ready();
    // open a profile: metadata and the profile page, drawn inside its frame. The pointer rests
    // on the row first: its data is fetched then, once, and the open uses it
    const blobs: string[] = [];
    page.on('request', (r) => /\/blob$/.test(r.url()) && blobs.push(r.url()));
    await page.locator('#wb-table tbody tr').first().hover();
    await page.waitForTimeout(400);
    assert.equal(blobs.length, 1, 'fetched ahead while the pointer rested on the row');
    const clickAt = Date.now();
    await page.locator('#wb-table tbody tr').first().click();
    await ready();
    await page.frameLocator('iframe.wb-frame').locator('canvas').first().waitFor();
    assert.equal(blobs.length, 1, 'the open used the data fetched ahead');
    // and the page started while the list showed (a spare frame, moved in place without a reload)
    const opened = (await (await page.$('iframe.wb-frame'))!.contentFrame())!;
    assert.ok((await opened.evaluate(() => performance.timeOrigin)) < clickAt, 'the profile page was loaded before the click');
    // once the page is complete, the next open's page starts in a spare frame
    await page.waitForFunction(() => document.querySelectorAll('#wb-spare iframe').length === 1);
    assert.match(await page.evaluate(() => location.hash), /^#\/p\/\d+$/);
    assert.match((await page.locator('#wb-meta').textContent()) ?? '', /pylens-sampler/);
    const frame = page.frameLocator('iframe.wb-frame');
    await frame.locator('canvas').first().waitFor();
    // the page's view rides in the workbench's URL: search and a time range, then a reload
    const fr = (await (await page.$('iframe.wb-frame'))!.contentFrame())!;
    await fr.evaluate(() => {
      window.__pylens.search('encode');
      window.__pylens.setRange(0, 3e8);
    });
    await page.waitForFunction(() => /view=/.test(location.hash) && /range/.test(decodeURIComponent(location.hash)));
    const before = (await fr.evaluate(() => window.__pylens.view())) as { range?: number[] };
    const withView = await page.evaluate(() => location.href);
    assert.match(decodeURIComponent(withView), /"search":"encode"/);
    await page.goto('about:blank');
    await page.goto(withView);
    await ready();
    const fr2 = await (await page.waitForSelector('iframe.wb-frame')).contentFrame();
    await fr2!.waitForFunction(() => window.__pylens?.isReady === true);
    const v = (await fr2!.evaluate(() => window.__pylens.view())) as { search?: string; range?: number[] };
    assert.equal(v.search, 'encode');
    assert.deepEqual(v.range, before.range);
    assert.equal(v.range![1], 3e8);
    assert.equal(await fr2!.evaluate(() => (document.getElementById('search') as HTMLInputElement).value), 'encode');
    // its source, hottest line in view
    await page.click('#wb-tab-source');
    await ready();
    assert.match(await page.locator('#wb-files').innerText(), /app\.py/);
    assert.ok((await page.locator('#wb-code tr.wb-hot').count()) >= 3);
    // functions over time
    await page.goto(`${s.url}#/`);
    await ready();
    await page.click('#wb-trend');
    await ready();
    assert.ok((await page.locator('#wb-trend-chart circle').count()) >= 3);
    assert.match(await page.locator('.wb-legend').innerText(), /extra/);
    // compare: the two profiles, older as base
    await page.goto(`${s.url}#/`);
    await ready();
    for (const c of await page.locator('input.wb-pick').all()) await c.check();
    await page.click('#wb-compare');
    await ready();
    assert.match(await page.evaluate(() => location.hash), /^#\/compare\/\d+\/\d+$/);
    assert.match(await page.locator('#wb-changes').innerText(), /extra/);
    // merge
    await page.goto(`${s.url}#/`);
    await ready();
    for (const c of await page.locator('input.wb-pick').all()) await c.check();
    await page.click('#wb-merge');
    await ready();
    assert.match(await page.locator('h2').innerText(), /2 profiles merged/);
    await page.frameLocator('iframe.wb-frame').locator('canvas').first().waitFor();
    // upload through the file input
    const folded = join(dir, 'dropped.folded');
    writeFileSync(folded, 'main;handler;query 5\nmain;handler 2\n');
    await page.goto(`${s.url}#/`);
    await ready();
    await page.setInputFiles('#wb-file', folded);
    await page.waitForFunction(() => document.querySelectorAll('#wb-table tbody tr').length === 3);
    // and by dropping a file on the page (a real drop event carrying a File)
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['main;dropped_fn 4\n'], 'dropped2.folded', { type: 'text/plain' }));
      document.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      document.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await page.waitForFunction(() => document.querySelectorAll('#wb-table tbody tr').length === 4);
    assert.match(await page.locator('#wb-table').innerText(), /dropped2/);
    // a bad upload says why
    const junk = join(dir, 'junk.pylens');
    writeFileSync(junk, 'PYLENS\r\n\x01\x00\x00\x00garbage');
    await page.setInputFiles('#wb-file', junk);
    await page.waitForFunction(() => !document.getElementById('wb-error')!.hidden);
    assert.match(await page.locator('#wb-error').innerText(), /junk\.pylens/);
    const unexpected = errors.filter((e) => !/400 \(Bad Request\)/.test(e));
    assert.deepEqual(unexpected, []);
  } finally {
    await browser.close();
    await s.close();
  }
});
