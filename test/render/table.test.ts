/**
 * The HTML page's function table and sandwich (src/render/page/table.ts, data from
 * analysis/report.ts functionTable) in real Chromium: rows by total, sorting by a header,
 * the state split column, a click selecting a function (callers and callees listed, the
 * flamegraph's search highlighting it), a callee link moving the selection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { functionTable } from '../../src/analysis/report.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import type { SampleState } from '../../src/model/profile.ts';
import { renderHtml } from '../../src/render/html.ts';
import { launch, openFile, tempDir, writeTemp } from './browser.ts';

/** main → handle → {parse ×50, render ×30 → escape ×10}; main → idle ×20 (idle) */
function profile() {
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'test', mode: 'wall' }, unitValues: true });
  const fr = (n: string) => b.frame({ kind: 'python', name: n, qualname: n, file: `/app/${n}.py`, line: 1 });
  const main = b.stack(-1, fr('main'));
  const handle = b.stack(main, fr('handle'));
  const parse = b.stack(handle, fr('parse'));
  const render = b.stack(handle, fr('render'));
  const escape = b.stack(render, fr('escape'));
  const idle = b.stack(main, fr('idle'));
  const add = (s: number, n: number, st: SampleState) => {
    for (let i = 0; i < n; i++) b.sample(s, 1, 0, st, i * 1e7);
  };
  add(parse, 50, 'on-cpu');
  add(render, 20, 'on-cpu');
  add(escape, 10, 'on-cpu');
  add(idle, 20, 'idle');
  return b.build();
}

test('functionTable: rows by total, self, states, callers and callees by the value through each edge', () => {
  const t = functionTable(profile());
  assert.deepEqual(t.rows.map((r) => [r.name, r.total, r.self]), [['main', 100, 0], ['handle', 80, 0], ['parse', 50, 50], ['render', 30, 20], ['idle', 20, 20], ['escape', 10, 10]]);
  const render = t.rows.find((r) => r.name === 'render')!;
  assert.deepEqual(render.callers.map((c) => [c.label, c.value]), [['handle (handle.py)', 30]]);
  assert.deepEqual(render.callees.map((c) => [c.label, c.value, c.row]), [['escape (escape.py)', 10, 5]]);
  assert.deepEqual(t.rows[0]!.states, { 'on-cpu': 80, idle: 20 });
});

test('the page: table sorted by total, header click sorts, a row click fills the sandwich and highlights the function, a callee link moves on', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir();
  const browser = await launch();
  try {
    const o = await openFile(browser, writeTemp(dir, 't.html', renderHtml(profile(), { title: 'table' })));
    const page = o.page;
    await page.waitForFunction(() => window.__pylens?.isReady);
    const names = () => page.$$eval('#fnpanel tbody td.fn', (tds) => tds.map((t) => t.textContent));
    assert.deepEqual(await names(), ['main (main.py)', 'handle (handle.py)', 'parse (parse.py)', 'render (render.py)', 'idle (idle.py)', 'escape (escape.py)']);
    assert.deepEqual(await page.$$eval('#fnpanel th', (ths) => ths.map((t) => t.textContent)), ['Function', 'Self %', 'Total % ▼', 'Self', 'Total', 'State split']);
    assert.equal(await page.$eval('#fnpanel tbody tr:first-child td.split', (t) => t.textContent), 'on-cpu 80% · idle 20%');
    await page.click('#fnpanel th[data-key="self"]');
    assert.deepEqual((await names()).slice(0, 3), ['parse (parse.py)', 'render (render.py)', 'idle (idle.py)']);
    await page.click('#fnpanel th[data-key="self"]');
    assert.equal((await names())[0], 'main (main.py)'); // ascending now: 0 self first (main before handle by order)
    await page.click('#fnpanel td.fn >> text=render (render.py)');
    assert.equal(await page.$eval('#sandwich .swtitle', (t) => t.textContent), 'render (render.py)');
    const sw = await page.$$eval('#sandwich .swe', (es) => es.map((e) => e.textContent));
    assert.deepEqual(sw, ['30.00%  handle (handle.py)', '10.00%  escape (escape.py)']);
    assert.match((await page.$eval('#matched', (m) => m.textContent)) ?? '', /30(\.0+)?%/);
    await page.click('#sandwich a.swe >> text=escape');
    assert.equal(await page.$eval('#sandwich .swtitle', (t) => t.textContent), 'escape (escape.py)');
    assert.equal(await page.$eval('#fnpanel tr.sel td.fn', (t) => t.textContent), 'escape (escape.py)');
    assert.deepEqual(o.errors, []);
  } finally {
    await browser.close();
    cleanup();
  }
});
