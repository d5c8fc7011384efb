/**
 * The HTML page's data path and view engine, in Node: encode (html.ts) → decode
 * (page/decode.ts) → layouts (page/tree.ts), checked against the model's queries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { encodePageData, renderHtml, PAGE_MODULES } from '../../src/render/html.ts';
import { pageScript } from '../../src/render/bundle.ts';
import { decodeColumns } from '../../src/render/page/decode.ts';
import type { PageData } from '../../src/render/page/data.ts';
import { FlameModel, boxSelf, searchPattern, type Layout, type RowFilter } from '../../src/render/page/tree.ts';
import { callTree, type CallTreeNode } from '../../src/model/query.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import type { Profile } from '../../src/model/profile.ts';
import { outputById as exporterById } from '../../src/render/outputs.ts';
import { bigProfile, smallProfile } from './profiles.ts';

async function model(p: Profile, compress = true): Promise<FlameModel> {
  const { data, blob } = encodePageData(p);
  const body = compress ? deflateRawSync(blob) : blob;
  const page: PageData = { ...data, compressed: compress ? 'deflate-raw' : null };
  return new FlameModel(await decodeColumns(page, Buffer.from(body).toString('base64')));
}

const ALL: RowFilter = { threads: null, states: null, valueIndex: 0, byThread: false };

/** Boxes as "depth label start-end" lines, depth by depth. */
function boxes(m: FlameModel, l: Layout): string[] {
  const out: string[] = [];
  for (let d = 0; d <= l.maxDepth; d++) {
    for (let i = l.depthStart[d]!; i < l.depthStart[d + 1]!; i++) out.push(`${d} ${m.nodeLabel(l.node[i]!)} ${l.start[i]}-${l.end[i]}`);
  }
  return out;
}

test('page data: rows sorted by (thread, time), identical runs merged, narrow columns', async () => {
  const p = smallProfile();
  const { data } = encodePageData(p);
  assert.equal(data.sampleRows, 14);
  // MainThread: dot×4, compute×2, sys_read×2 → 3 rows; worker: idle×3, parse → 2; child → 1.
  assert.equal(data.rowCount, 6);
  assert.equal(data.columns.rowState.enc, 'u8');
  assert.equal(data.columns.frameKind.enc, 'u8');
  assert.deepEqual(data.columns.rowTime && data.columns.rowTime.enc !== 'const' && data.columns.rowTime.delta, true);
  const m = await model(p);
  const c = m.cols;
  assert.deepEqual(Array.from(c.rowThread), [0, 0, 0, 1, 1, 2]);
  assert.deepEqual(Array.from(c.rowValues[0]!), [4, 2, 2, 3, 1, 2]);
  assert.deepEqual(Array.from(c.rowTime!), [1e6, 8e6, 10e6, 5e6, 12e6, 13e6]);
  // Uncompressed blobs decode the same.
  const u = await model(p, false);
  assert.deepEqual(u.cols.rowStack, c.rowStack);
});

test('merged layout equals the model call tree, children heaviest first', async () => {
  const p = bigProfile({ samples: 20_000, stacks: 3_000, seed: 3 });
  const m = await model(p);
  const l = m.buildMerged(ALL);
  const tree = callTree(p);
  assert.equal(l.total, tree.total);
  // Same multiset of (depth, total) — labels are unique per frame in this profile.
  const want: string[] = [];
  const walk = (n: CallTreeNode, d: number) => {
    want.push(`${d}:${n.total}`);
    for (const c of n.children) walk(c, d + 1);
  };
  walk(tree, 0);
  const got: string[] = [];
  for (let d = 0; d <= l.maxDepth; d++) for (let i = l.depthStart[d]!; i < l.depthStart[d + 1]!; i++) got.push(`${d}:${l.end[i]! - l.start[i]!}`);
  assert.deepEqual(got.sort(), want.sort());
  // Left heavy: within a depth, siblings (same parent) never grow left to right.
  const par = m.nodes.parent;
  for (let d = 1; d <= l.maxDepth; d++) {
    for (let i = l.depthStart[d]! + 1; i < l.depthStart[d + 1]!; i++) {
      if (par[l.node[i]!] === par[l.node[i - 1]!]) assert.ok(l.end[i - 1]! - l.start[i - 1]! >= l.end[i]! - l.start[i]!);
    }
  }
});

test('merged layout of the small profile, with filters and thread roots', async () => {
  const m = await model(smallProfile());
  assert.deepEqual(boxes(m, m.buildMerged(ALL)), [
    '0 all 0-14',
    '1 main (app.py:1) 0-8',
    '1 worker_loop (worker.py:3) 8-12',
    '1 child_main (child.py:7) 12-14',
    '2 compute (app.py:10) 0-6',
    '2 load (io.py:5) 6-8',
    '2 <idle> 8-11',
    '2 parse (worker.py:20) 11-12',
    '3 dot 0-4',
    '3 sys_read_[k] 6-8',
  ]);
  const l = m.buildMerged(ALL);
  const compute = boxes(m, l).findIndex((b) => b.includes('compute'));
  assert.equal(boxSelf(l, compute), 2);
  const idleOnly = m.buildMerged({ ...ALL, states: Uint8Array.from([0, 0, 0, 1, 0]) });
  assert.equal(idleOnly.total, 3);
  const worker = m.buildMerged({ ...ALL, threads: Uint8Array.from([0, 1, 0]) });
  assert.equal(worker.total, 4);
  const grouped = m.buildMerged({ ...ALL, byThread: true });
  assert.deepEqual(boxes(m, grouped).filter((b) => b.startsWith('1 ')), ['1 MainThread (100/100) 0-8', '1 worker (100/101) 8-12', '1 child (200/200) 12-14']);
});

test('time order merges consecutive identical frames, one root per thread', async () => {
  const m = await model(smallProfile());
  const main = m.buildTimeOrder({ ...ALL, threads: Uint8Array.from([1, 0, 0]) });
  assert.deepEqual(boxes(m, main), ['0 all 0-8', '1 main (app.py:1) 0-8', '2 compute (app.py:10) 0-6', '2 load (io.py:5) 6-8', '3 dot 0-4', '3 sys_read_[k] 6-8']);
  const all = m.buildTimeOrder(ALL);
  assert.deepEqual(boxes(m, all).filter((b) => b.startsWith('1 ')), ['1 MainThread (100/100) 0-8', '1 worker (100/101) 8-12', '1 child (200/200) 12-14']);
  assert.equal(all.idle[boxes(m, all).findIndex((b) => b.includes('<idle>'))], 255);
  // Interleaved leaves split boxes: a;b, a;c, a;b → a is one box, b twice.
  const b = new ProfileBuilder();
  const [fa, fb, fc] = ['a', 'b', 'c'].map((n) => b.frame({ name: n }));
  for (const leaf of [fb, fc, fb]) b.sample(b.stackOf([fa!, leaf!]), 1, 0, 'on-cpu', 0);
  const m2 = await model(b.build());
  assert.deepEqual(boxes(m2, m2.buildTimeOrder(ALL)), ['0 all 0-3', '1 a 0-3', '2 b 0-1', '2 c 1-2', '2 b 2-3']);
});

test('search: regex or substring, smart case, matched share counts each sample once', async () => {
  const m = await model(smallProfile());
  const l = m.buildMerged(ALL);
  assert.equal(m.search(l, searchPattern('compute')!).matched, 6);
  assert.equal(m.search(l, searchPattern('main|compute')!).matched, 10); // nested matches once
  assert.equal(m.search(l, searchPattern('^dot$')!).matched, 4);
  assert.equal(m.search(l, searchPattern('_[k]')!).matched, 0); // a regex: a character class
  assert.equal(m.search(l, searchPattern('sys_read_[')!).matched, 2); // not a regex: substring
  assert.equal(m.search(l, searchPattern('Compute')!).matched, 0); // upper case: case-sensitive
  assert.equal(m.search(m.buildTimeOrder(ALL), searchPattern('compute')!).matched, 6);
  assert.equal(searchPattern(''), null);
});

test('page script bundles into one valid classic script', () => {
  const js = pageScript(PAGE_MODULES);
  assert.doesNotMatch(js, /^\s*(import|export)\b/m);
  assert.doesNotThrow(() => new Function(js)); // compiles; not run (needs a DOM)
  assert.doesNotThrow(() => new Function(pageScript(['svgscript'])));
});

test('html exporter is registered and self-contained', () => {
  const e = exporterById('html')!;
  assert.equal(e.extension, '.html');
  const html = e.write(smallProfile()) as string;
  assert.match(html, /^<!DOCTYPE html>/);
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/);
  assert.equal(renderHtml(smallProfile()), html, 'deterministic');
});
