/**
 * The profile store on its own: schema and migration refusals, labels and filters, the
 * function summary, gc, and durability — writers killed with SIGKILL in the middle of 100
 * concurrent saves leave a database that passes SQLite's integrity check, where every
 * acknowledged save is there and whole and no half-written profile is visible.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { mergeProfiles } from '../../src/model/merge.ts';
import { aggregate } from '../../src/model/query.ts';
import { parseLabels, ProfileStore, SCHEMA_VERSION, StoreError } from '../../src/store/store.ts';
import { exclusive } from '../helpers/exclusive.ts';

const SAVER = join(import.meta.dirname, 'scripts/saver.ts');

function profile(name: string, leaves: [string, number][], startTime?: string) {
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: 'cpu', name, command: ['python3', '-m', name], ...(startTime ? { startTime } : {}), durationNs: 1e9 }, unitValues: true });
  const th = b.thread(7, 7, 'MainThread');
  const root = b.stack(-1, b.frame({ name: '<module>', file: '/app/main.py', line: 1 }));
  let t = 0;
  for (const [leaf, n] of leaves) {
    const s = b.stack(root, b.frame({ name: leaf, file: '/app/work.py', line: 5 }));
    for (let i = 0; i < n; i++) b.sample(s, 1, th, 'on-cpu', (t += 1e6));
  }
  return b.build();
}

test('store: add, list with label and time filters, function summary, remove, gc; bad files and newer schemas are refused with a fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-store-'));
  try {
    const path = join(dir, 'sub/profiles.db');
    const s = ProfileStore.open(path);
    const a = s.add(profile('orders', [['encode', 30], ['query', 70]], '2026-12-01T10:00:00Z'), { labels: { env: 'prod' } });
    const b = s.add(profile('orders', [['encode', 60], ['query', 40]], '2026-12-03T10:00:00Z'), { labels: { env: 'staging' } });
    const c = s.add(profile('billing', [['charge', 10]]));
    assert.equal(a.service, 'orders');
    assert.deepEqual(a.labels, { env: 'prod', lens: 'sampling', mode: 'cpu', service: 'orders' });
    assert.equal(s.list().total, 3);
    assert.deepEqual(s.list({ where: ['env=prod'] }).rows.map((r) => r.id), [a.id]);
    assert.deepEqual(s.list({ where: ['env!=prod', 'env'] }).rows.map((r) => r.id), [b.id]);
    assert.deepEqual(s.list({ service: 'orders', order: 'oldest' }).rows.map((r) => r.id), [a.id, b.id]);
    assert.deepEqual(s.list({ since: Date.parse('2026-12-02T00:00:00Z'), until: Date.parse('2026-12-04T00:00:00Z') }).rows.map((r) => r.id), [b.id]);
    assert.deepEqual(s.list({ fn: 'charge' }).rows.map((r) => r.id), [c.id]);
    assert.deepEqual(s.list({ search: 'bill' }).rows.map((r) => r.id), [c.id]);
    assert.equal(s.list({ search: '100%_' }).total, 0, 'LIKE wildcards in a search are literal');
    const fns = s.functions(b.id);
    assert.deepEqual(fns.slice(0, 3).map((f) => [f.name, f.total]), [['<module>', 1], ['encode', 0.6], ['query', 0.4]]);
    assert.equal(fns[1]!.file, '/app/work.py', 'full file paths in the summary');
    const back = s.profile(a.id)!;
    assert.equal(back.samples.length, 100);
    assert.equal(s.remove([a.id, 9999]), 1);
    assert.equal(s.get(a.id), undefined);
    assert.equal(s.functions(a.id).length, 0, 'its summary went with it');
    assert.equal(s.gc(Date.now() + 1000), 2);
    assert.equal(s.list().total, 0);
    assert.deepEqual(s.check(), []);
    s.close();
    // refusals
    assert.throws(() => ProfileStore.open(join(dir, 'none.db'), { create: false }), (e: Error) => e instanceof StoreError && /no profile store at/.test(e.message));
    writeFileSync(join(dir, 'text.db'), 'just text, not SQLite at all, long enough to have a header............................................................');
    assert.throws(() => ProfileStore.open(join(dir, 'text.db')), (e: Error) => e instanceof StoreError && /text\.db/.test(e.message));
    const { DatabaseSync } = createRequire(import.meta.url)('node:sqlite') as typeof import('node:sqlite');
    const other = new DatabaseSync(join(dir, 'other.db'));
    other.exec('CREATE TABLE t (x)');
    other.close();
    assert.throws(() => ProfileStore.open(join(dir, 'other.db')), /not a pylens profile store/);
    const newer = new DatabaseSync(join(dir, 'newer.db'));
    newer.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    newer.close();
    assert.throws(() => ProfileStore.open(join(dir, 'newer.db')), (e: Error) => e instanceof StoreError && /schema version/.test(e.message) && /upgrade pylens/.test((e as StoreError).fix));
    assert.throws(() => parseLabels(['novalue']), /not key=value/);
    assert.deepEqual(parseLabels(['a=1', 'b=x=y']), { a: '1', b: 'x=y' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('migration: a store written by the first schema (labels only in their table) opens upgraded, its labels in every row', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-store-mig-'));
  try {
    const path = join(dir, 'profiles.db');
    const s = ProfileStore.open(path);
    const a = s.add(profile('orders', [['encode', 3]]), { labels: { env: 'prod' } });
    s.close();
    // back to version 1 as it was: no labels_json column, no pages table
    const { DatabaseSync } = createRequire(import.meta.url)('node:sqlite') as typeof import('node:sqlite');
    const raw = new DatabaseSync(path);
    raw.exec('ALTER TABLE profiles DROP COLUMN labels_json; DROP TABLE pages; PRAGMA user_version = 1');
    raw.close();
    const again = ProfileStore.open(path);
    try {
      assert.equal((again.db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, SCHEMA_VERSION);
      assert.deepEqual(again.get(a.id)!.labels, { env: 'prod', lens: 'sampling', mode: 'cpu', service: 'orders' });
      assert.deepEqual(again.list({ where: ['env=prod'] }).rows.map((r) => r.id), [a.id]);
      assert.deepEqual(again.check(), []);
    } finally {
      again.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('page data: kept with a profile by version (opaque bytes), replaced, gone with the profile; a store of schema 2 gains the table', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-store-page-'));
  try {
    const path = join(dir, 'profiles.db');
    const s = ProfileStore.open(path);
    const a = s.add(profile('orders', [['encode', 3]]), { page: { version: 'v1', bytes: new Uint8Array([1, 2, 3]) } });
    const b = s.add(profile('orders', [['query', 2]]));
    assert.deepEqual(Array.from(s.page(a.id, 'v1')!), [1, 2, 3]);
    assert.equal(s.page(a.id, 'v2'), undefined, "another version's data is not this version's");
    assert.equal(s.page(b.id, 'v1'), undefined);
    assert.equal(s.setPage(b.id, { version: 'v2', bytes: new Uint8Array([9]) }), true);
    assert.equal(s.setPage(a.id, { version: 'v2', bytes: new Uint8Array([4]) }), true);
    assert.deepEqual(Array.from(s.page(a.id, 'v2')!), [4]);
    assert.equal(s.page(a.id, 'v1'), undefined, 'replaced');
    assert.equal(s.setPage(9999, { version: 'v2', bytes: new Uint8Array([4]) }), false, 'no profile, no page data');
    s.remove([a.id]);
    assert.equal(s.db.prepare('SELECT count(*) AS n FROM pages').get()!.n, 1, 'its page data went with it');
    s.close();
    // a store of schema 2 (before page data): upgraded, its profiles without page data
    const { DatabaseSync } = createRequire(import.meta.url)('node:sqlite') as typeof import('node:sqlite');
    const raw = new DatabaseSync(path);
    raw.exec('DROP TABLE pages; PRAGMA user_version = 2');
    raw.close();
    const again = ProfileStore.open(path);
    try {
      assert.equal((again.db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, SCHEMA_VERSION);
      assert.equal(again.page(b.id, 'v2'), undefined);
      assert.equal(again.profile(b.id)!.samples.length, 2);
      assert.deepEqual(again.check(), []);
    } finally {
      again.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('merge: profiles on one clock, value summed, threads joined; the merged aggregate equals the sum', () => {
  const p1 = profile('orders', [['encode', 30], ['query', 70]], '2026-12-01T10:00:00Z');
  const p2 = profile('orders', [['encode', 60], ['query', 40]], '2026-12-01T10:00:05Z');
  const m = mergeProfiles([p1, p2]);
  assert.equal(m.samples.length, 200);
  assert.equal(m.meta.sampleCount, 200);
  assert.equal(m.threads.length, 1);
  assert.equal(m.meta.startTime, '2026-12-01T10:00:00.000Z');
  const rows = new Map(aggregate(m).rows.map((r) => [r.name, r.total]));
  assert.equal(rows.get('encode'), 90);
  assert.equal(rows.get('query'), 110);
  // the second one's samples sit 5 s later on the merged clock
  assert.ok(m.samples.time![199]! >= 5e9, String(m.samples.time![199]));
});

// the two durability tests load both CPUs for seconds: under the 'timing' lock, so that the
// tests comparing sampled CPU with the scheduler's own figures do not run beside them
test('durability: 10 writers × 10 saves, killed with SIGKILL at random moments — integrity holds, every acknowledged save is whole, nothing half-written', { timeout: 600_000 }, () => exclusive('timing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-store-kill-'));
  try {
    const path = join(dir, 'profiles.db');
    ProfileStore.open(path).close();
    const acked = new Map<number, number>();
    let killed = 0;
    const runs = Array.from({ length: 10 }, (_, k) =>
      new Promise<void>((resolve) => {
        const child = spawn(process.execPath, [SAVER, path, '10', String(k + 1)], { stdio: ['ignore', 'pipe', 'pipe'] });
        let err = '';
        child.stdout.on('data', (d: Buffer) => {
          for (const m of d.toString().matchAll(/saved (\d+) (\d+)/g)) acked.set(Number(m[1]), Number(m[2]));
        });
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        // most writers die mid-way, some finish
        const t = k < 8 ? setTimeout(() => {
          if (child.exitCode === null) {
            child.kill('SIGKILL');
            killed++;
          }
        }, 600 + 250 * k) : undefined;
        child.on('exit', (code, sig) => {
          if (t) clearTimeout(t);
          if (sig !== 'SIGKILL') assert.equal(code, 0, err);
          resolve();
        });
      }),
    );
    await Promise.all(runs);
    assert.ok(killed >= 4, `only ${killed} writers were killed before finishing`);
    const s = ProfileStore.open(path);
    try {
      assert.deepEqual(s.check(), []);
      const { total, rows } = s.list({ limit: 1000 });
      assert.ok(acked.size > 0);
      for (const [id, samples] of acked) assert.equal(s.get(id)?.samples, samples, `acknowledged save #${id}`);
      // every visible profile is whole: it decodes, its summary is there, its counts agree
      for (const r of rows) {
        const p = s.profile(r.id)!;
        assert.equal(p.samples.length, r.samples);
        assert.ok(s.functions(r.id).length > 0);
        assert.equal(r.labels.saver !== undefined, true);
      }
      console.log(`${total} profiles committed (${acked.size} acknowledged) by 10 writers, ${killed} killed with SIGKILL`);
    } finally {
      s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}));

test('durability: pylens serve killed with SIGKILL during 40 concurrent uploads leaves a sound store; every upload it answered is there', { timeout: 600_000 }, () => exclusive('timing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-serve-kill-'));
  const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
  try {
    const path = join(dir, 'profiles.db');
    const child = spawn(process.execPath, [MAIN, 'serve', '--store', path, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.on('exit', (c) => reject(new Error(`serve exited ${c}`)));
    });
    // a folded file of ~200 k samples each: each save takes a while
    const lines: string[] = [];
    for (let i = 0; i < 4000; i++) lines.push(`main;handler_${i % 40};leaf_${i} ${50 + (i % 7)}`);
    const body = lines.join('\n') + '\n';
    const answered: number[] = [];
    const uploads = Array.from({ length: 40 }, (_, k) =>
      fetch(new URL(`/api/profiles?name=u${k}.folded`, url), { method: 'POST', body })
        .then(async (r) => {
          if (r.status === 201) answered.push(((await r.json()) as { id: number }).id);
        })
        .catch(() => undefined),
    );
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise((r) => setTimeout(r, 700));
    child.kill('SIGKILL');
    await exited;
    await Promise.all(uploads);
    const s = ProfileStore.open(path);
    try {
      assert.deepEqual(s.check(), []);
      const { total, rows } = s.list({ limit: 100 });
      for (const id of answered) assert.ok(s.get(id), `answered upload #${id}`);
      for (const r of rows) assert.equal(s.profile(r.id)!.samples.length, 4000);
      assert.ok(total < 40, `the kill came after every upload (${total}); make the uploads larger`);
      console.log(`${total} uploads committed, ${answered.length} answered, before SIGKILL`);
    } finally {
      s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}));
