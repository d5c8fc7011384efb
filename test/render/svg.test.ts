/**
 * SVG flamegraph: FlameGraph conventions checked on the text, then well-formedness and the
 * embedded script (click zoom, Reset Zoom, search with Matched %) in real Chromium.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { renderSvg, svgExporter } from '../../src/render/svg.ts';
import { bigProfile, smallProfile } from './profiles.ts';
import { launch, openFile, tempDir, writeTemp } from './browser.ts';

/** [title, x, y, width] of every frame, in document order. */
function frames(svg: string): Array<{ title: string; x: number; y: number; w: number }> {
  const re = /<g class="f"[^>]*><title>([^<]*)<\/title><rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"/g;
  return [...svg.matchAll(re)].map((m) => ({ title: m[1]!, x: Number(m[2]), y: Number(m[3]), w: Number(m[4]) }));
}

test('titles carry counts and percentages; siblings sorted alphabetically; root at the bottom', () => {
  const svg = renderSvg(smallProfile());
  const f = frames(svg);
  const titles = f.map((x) => x.title);
  assert.ok(titles.includes('all (14 samples, 100.00%)'));
  assert.ok(titles.includes('compute (app.py:10) (6 samples, 42.86%)'));
  assert.ok(titles.includes('sys_read_[k] (2 samples, 14.29%)'));
  assert.ok(titles.includes('&lt;idle&gt; (3 samples, 21.43%)'), 'escaped');
  const level1 = f.filter((x) => /^(child_main|main|worker_loop) /.test(x.title));
  assert.deepEqual(level1.map((x) => x.title.split(' ')[0]), ['child_main', 'main', 'worker_loop']);
  assert.ok(level1[0]!.x < level1[1]!.x && level1[1]!.x < level1[2]!.x, 'x order = alphabetical order');
  const root = f.find((x) => x.title.startsWith('all '))!;
  assert.equal(root.w, 1180);
  assert.ok(root.y > level1[0]!.y, 'root below its children');
  const inv = frames(renderSvg(smallProfile(), { inverted: true }));
  assert.ok(inv.find((x) => x.title.startsWith('all '))!.y < inv.find((x) => x.title.startsWith('main '))!.y, 'icicle: root on top');
  assert.match(svg, /fill="rgb\(/);
  assert.doesNotMatch(svg, /<script[^>]+(src|href)=/);
});

test('minwidth culls narrow frames; big profiles stay bounded', () => {
  assert.deepEqual(frames(renderSvg(smallProfile(), { minWidth: 500 })).map((x) => x.title.split(' ')[0]), ['all', 'main', 'compute']); // 1180, 674, 506 px
  const big = renderSvg(bigProfile({ samples: 200_000, stacks: 50_000 }));
  const n = frames(big).length;
  assert.ok(n > 100 && n < 20_000, `${n} frames`);
  assert.equal(svgExporter.id, 'svg');
  assert.equal(svgExporter.extension, '.svg');
});

describe('SVG in Chromium', () => {
  let browser: Browser;
  let tmp: ReturnType<typeof tempDir>;
  before(async () => {
    browser = await launch();
    tmp = tempDir();
  });
  after(async () => {
    await browser?.close();
    tmp?.cleanup();
  });

  test('well-formed XML (DOMParser)', async () => {
    const page = await browser.newPage();
    const errors = await page.evaluate((text) => {
      const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
      return doc.getElementsByTagName('parsererror').length + (doc.documentElement.nodeName === 'svg' ? 0 : 100);
    }, renderSvg(smallProfile(), { title: 'a <b> & "c"' }));
    assert.equal(errors, 0);
    await page.close();
  });

  test('click zooms, Reset Zoom restores, search shows Matched %', async () => {
    const path = writeTemp(tmp.dir, 'small.svg', renderSvg(smallProfile()));
    const o = await openFile(browser, path, { width: 1200, height: 400 });
    const frame = (label: string) => o.page.locator('g.f', { has: o.page.locator(`title:text-matches("^${label.replace(/[()[\]]/g, '\\$&')} ")`) });
    const width = async (label: string) => Number(await frame(label).locator('rect').getAttribute('width'));
    assert.equal(await width('compute \\(app.py:10\\)'), 505.71);
    assert.equal(await o.page.locator('#unzoom').isVisible(), false);
    await frame('compute \\(app.py:10\\)').locator('rect').click();
    assert.equal(await width('compute \\(app.py:10\\)'), 1180);
    assert.equal(await width('dot'), 786.67);
    assert.equal(await frame('main \\(app.py:1\\)').getAttribute('class'), 'f parent');
    assert.equal(await frame('worker_loop \\(worker.py:3\\)').isVisible(), false);
    assert.equal(await o.page.locator('#unzoom').isVisible(), true);
    await o.page.locator('#unzoom').click();
    assert.equal(await width('compute \\(app.py:10\\)'), 505.71);
    assert.equal(await frame('worker_loop \\(worker.py:3\\)').isVisible(), true);
    // Search through the prompt, as a user would.
    o.page.once('dialog', (d) => void d.accept('^(main|worker_loop)'));
    await o.page.locator('#search').click();
    assert.equal(await o.page.locator('#matched').textContent(), 'Matched: 85.71%');
    assert.equal(await frame('main \\(app.py:1\\)').locator('rect').getAttribute('fill'), 'rgb(230,0,230)');
    o.page.once('dialog', (d) => void d.accept('compute'));
    await o.page.keyboard.press('Control+f');
    await o.page.waitForFunction(() => document.getElementById('matched')?.textContent === 'Matched: 42.86%');
    await o.page.keyboard.press('Escape');
    assert.equal((await o.page.locator('#matched').textContent())?.trim(), '');
    // Hover details.
    await frame('dot').locator('rect').hover();
    assert.equal(await o.page.locator('#details').textContent(), 'Function: dot (4 samples, 28.57%)');
    assert.deepEqual(o.errors, []);
    assert.deepEqual(o.requests, [o.url]);
    await o.page.close();
  });
});
