/**
 * The HTML page's data path and view engine, in Node: encode (html.ts) → decode
 * (page/decode.ts) → layouts (page/tree.ts), checked against the model's queries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { encodePageData, renderHtml, tableData, PAGE_MODULES } from '../../src/render/html.ts';
import { pageScript } from '../../src/render/bundle.ts';
import { decodeColumns } from '../../src/render/page/decode.ts';
import type { PageData } from '../../src/render/page/data.ts';
import { FlameModel, boxSelf, rangeShare, searchPattern, type Layout, type RowFilter } from '../../src/render/page/tree.ts';
import { fnNames, fnSandwich, functionRows } from '../../src/render/page/functions.ts';
import { functionTable } from '../../src/analysis/report.ts';
import { callTree, type CallTreeNode } from '../../src/model/query.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import type { Profile } from '../../src/model/profile.ts';
import { outputById as exporterById } from '../../src/render/outputs.ts';
import { bigProfile, smallProfile, twoThreadProfile } from './profiles.ts';

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
  assert.deepEqual(data.columns.rowTime && 'delta' in data.columns.rowTime && data.columns.rowTime.delta, true);
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

test('time range: a row counts by its samples inside (a merged run by those of its samples); layouts, search and threads follow', async () => {
  const { p, samples } = twoThreadProfile();
  const { data } = encodePageData(p);
  assert.equal(data.sampleIntervalNs, 1e6);
  assert.deepEqual(data.sampleTimes, { first: 1e6, last: 140e6 });
  assert.equal(data.columns.rowRuns?.count, 2, 'the idle run of A and the run of B');
  const m = await model(p);
  assert.equal(m.cols.nRows, 50 + 1 + 1);
  const inRange = (a: number, b: number, fn?: string) => samples.filter((x) => x.t >= a && x.t < b && (fn === undefined || x.fns.includes(fn))).length;
  for (const [a, b] of [[0, 200e6], [0, 80e6], [20.5e6, 45.5e6], [45.5e6, 55.5e6], [55e6, 56e6], [54.99e6, 120.2e6], [60.5e6, 100.5e6], [130e6, 141e6]] as const) {
    const f = { ...ALL, range: { start: a, end: b } };
    const merged = m.buildMerged(f);
    assert.equal(merged.total, inRange(a, b), `merged total in [${a}, ${b})`);
    assert.equal(m.buildTimeOrder(f).total, inRange(a, b), `time-order total in [${a}, ${b})`);
    assert.equal(m.search(merged, searchPattern('wait_a')!).matched, inRange(a, b, 'wait_a'));
    assert.equal(m.threadsPassing(f), (inRange(a, b, 'main_a') > 0 ? 1 : 0) + (inRange(a, b, 'main_b') > 0 ? 1 : 0));
  }
  // the first half of the span holds only thread A's frames
  const half = m.buildMerged({ ...ALL, range: { start: 1e6, end: 70.5e6 } });
  const labels = boxes(m, half).map((x) => x.split(' ')[1]);
  assert.ok(labels.includes('main_a') && !labels.includes('main_b') && !labels.includes('work_b'));
  // no range, or none on an untimed profile: the value column itself
  assert.equal(m.values(ALL), m.cols.rowValues[0]);
  assert.equal(rangeShare(10, 0, 1, 10, 11), 1);
  assert.equal(rangeShare(11, 0, 1, 10, 11), 0);
  assert.equal(rangeShare(0, 9, 1, 2.5, 6.5), 0.4); // points 3, 4, 5, 6 of 0..9
  assert.equal(rangeShare(0, 9, 0, 0, 4.5), 0.5); // no interval: the part of the span
});

test('function table for a filter: equals functionTable unfiltered, in-range counts with a range, sandwich by edge', async () => {
  const big = bigProfile({ samples: 20_000, stacks: 3_000, seed: 5 });
  const m = await model(big);
  const td = tableData(big);
  const frameFn = Int32Array.from(td.fns.frame);
  const names = fnNames(m, frameFn, td.fns.label.length);
  const mine = functionRows(m, td.fns, frameFn, names, ALL, { states: true, limit: td.limit });
  const theirs = functionTable(big, { limit: td.limit });
  assert.equal(mine.grandTotal, theirs.grandTotal);
  assert.deepEqual(
    mine.rows.map((r) => [r.label, r.name, r.self, r.total, r.states]),
    theirs.rows.map((r) => [r.label, r.name, r.self, r.total, r.states]),
  );
  for (const i of [0, 3, 10, 40]) {
    const sw = fnSandwich(m, frameFn, td.fns.label.length, mine.perStack, mine.rows[i]!.fn, 8);
    const named = (xs: Array<[number, number]>) => xs.map(([k, v]) => `${td.fns.label[k]} ${v}`).sort();
    assert.deepEqual(named(sw.callers), theirs.rows[i]!.callers.map((e) => `${e.label} ${e.value}`).sort(), `callers of ${mine.rows[i]!.label}`);
    assert.deepEqual(named(sw.callees), theirs.rows[i]!.callees.map((e) => `${e.label} ${e.value}`).sort(), `callees of ${mine.rows[i]!.label}`);
  }
  // with a range: totals are the in-range sample counts, per function
  const { p, samples } = twoThreadProfile();
  const m2 = await model(p);
  const td2 = tableData(p);
  const ff2 = Int32Array.from(td2.fns.frame);
  const t = functionRows(m2, td2.fns, ff2, fnNames(m2, ff2, td2.fns.label.length), { ...ALL, range: { start: 30.5e6, end: 55.5e6 } }, { states: true, limit: 300 });
  const want = new Map<string, number>();
  for (const x of samples) if (x.t >= 30.5e6 && x.t < 55.5e6) for (const f of x.fns) want.set(f, (want.get(f) ?? 0) + 1);
  assert.deepEqual(new Map(t.rows.map((r) => [r.name, r.total])), want);
  assert.equal(t.grandTotal, 25);
  assert.deepEqual(t.rows.find((r) => r.name === 'wait_a')!.states, { idle: 5 });
  assert.equal(t.rows.find((r) => r.name === 'main_a')!.label, 'main_a (a.py)');
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
