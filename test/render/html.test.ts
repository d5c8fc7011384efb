/**
 * The HTML flamegraph in real Chromium (Debian's /usr/bin/chromium via playwright-core),
 * opened from a file:// URL as a user would. Uses smallProfile() (test/render/profiles.ts),
 * whose numbers are known: total 14, compute 6 (42.86%), main 8, worker thread 4.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { renderHtml } from '../../src/render/html.ts';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { importProfile, InputFile } from '../../src/formats/index.ts';
import { installedPythons } from '../sampler/pythons.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { frameRgb } from '../../src/render/page/palette.ts';
import { bigProfile, smallProfile, twoThreadProfile } from './profiles.ts';
import { countPixels, launch, openFile, tempDir, writeTemp, type Opened } from './browser.ts';

let browser: Browser;
let tmp: ReturnType<typeof tempDir>;
let smallPath: string;

before(async () => {
  browser = await launch();
  tmp = tempDir();
  smallPath = writeTemp(tmp.dir, 'small.html', renderHtml(smallProfile()));
});

after(async () => {
  await browser?.close();
  tmp?.cleanup();
});

async function open(path = smallPath, viewport?: { width: number; height: number }): Promise<Opened> {
  const o = await openFile(browser, path, viewport);
  await o.page.waitForFunction(() => window.__pylens?.isReady, null, { timeout: 60_000 });
  assert.equal(await o.page.evaluate(() => window.__pylens.error), null);
  return o;
}

const findBox = (page: Page, label: string) => page.evaluate((l) => window.__pylens.findBox(l), label);
const crumbs = (page: Page) => page.locator('#crumbs').innerText();
const state = (page: Page) => page.evaluate(() => window.__pylens.state() as { view: string; orientation: string; total: number; zoomed: boolean; x0: number; x1: number });

async function boxOf(page: Page, label: string) {
  const b = await findBox(page, label);
  assert.ok(b, `no drawn box for ${label}`);
  return b;
}

describe('HTML flamegraph in Chromium', () => {
  test('loads offline with no errors and no requests but the file itself', async () => {
    const o = await open();
    assert.deepEqual(o.errors, []);
    assert.deepEqual(o.requests, [o.url]);
    const stats = await o.page.evaluate(() => window.__pylens.stats);
    assert.ok(stats.firstFrameMs > 0);
    assert.equal(stats.nodesDrawn, 10);
    await o.page.close();
  });

  test('draws frames in the kind colours (screenshot)', async () => {
    const o = await open();
    const png = await o.page.locator('#fg').screenshot();
    const px = await countPixels(browser, png);
    assert.ok(px.drawn > 20_000, `only ${px.drawn} drawn pixels`);
    assert.ok(px.python > 2_000, `python colour family: ${px.python} px`);
    assert.ok(px.native > 300, `native colour family: ${px.native} px`);
    assert.ok(px.kernel > 300, `kernel colour family: ${px.kernel} px`);
    // Idle samples are marked: the <idle> box is paler than the marker colour.
    const idle = await boxOf(o.page, '<idle>');
    const pixel = await o.page.evaluate(({ x, y }) => {
      const c = document.getElementById('fg') as HTMLCanvasElement;
      const r = c.getBoundingClientRect();
      const dpr = window.devicePixelRatio;
      return Array.from(c.getContext('2d')!.getImageData(Math.round((x - r.left) * dpr), Math.round((y - r.top) * dpr), 1, 1).data);
    }, { x: idle.x + 5, y: idle.y + 3 });
    const [mr, mg, mb] = frameRgb(3, '<idle>');
    assert.ok(pixel[0]! + pixel[1]! + pixel[2]! > mr + mg + mb + 40, `idle box ${pixel} not paler than ${[mr, mg, mb]}`);
    await o.page.close();
  });

  test('hover shows name, location, total and self with units and percentages', async () => {
    const o = await open();
    const b = await boxOf(o.page, 'compute (app.py:10)');
    await o.page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
    const tip = o.page.locator('#tip');
    await tip.waitFor({ state: 'visible' });
    const text = await tip.innerText();
    assert.match(text, /compute \(app\.py:10\)/);
    assert.match(text, /\/srv\/app\.py:10/);
    assert.match(text, /Total\s+6 samples \(42\.86%\)/);
    assert.match(text, /Self\s+2 samples \(14\.29%\)/);
    const d = await boxOf(o.page, 'dot');
    await o.page.mouse.move(d.x + d.width / 2, d.y + d.height / 2);
    assert.match(await tip.innerText(), /libopenblas\.so · native[\s\S]*Total\s+4 samples \(28\.57%\)/);
    await o.page.mouse.move(2, 2);
    await tip.waitFor({ state: 'hidden' });
    await o.page.close();
  });

  test('hover splits a frame by state: on-CPU, idle, off-CPU (blocked), GIL wait', async () => {
    const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'test', mode: 'wall', durationNs: 1e9, overhead: { fraction: 0, method: 'test' }, environment: {} }, unitValues: true });
    const th = b.thread(1, 1);
    const main = b.stack(-1, b.frame({ kind: 'python', name: 'main', file: '/srv/app.py', line: 1 }));
    const work = b.stack(main, b.frame({ kind: 'python', name: 'work', file: '/srv/app.py', line: 5 }));
    let t = 0;
    for (const [state, n] of [['on-cpu', 4], ['idle', 2], ['off-cpu', 2], ['gil', 2]] as const) for (let i = 0; i < n; i++) b.sample(work, 1, th, state, (t += 1e6));
    const path = writeTemp(tmp.dir, 'states.html', renderHtml(b.build()));
    const o = await open(path);
    const box = await boxOf(o.page, 'work (app.py:5)');
    await o.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const tip = o.page.locator('#tip');
    await tip.waitFor({ state: 'visible' });
    const text = await tip.innerText();
    assert.match(text, /On-CPU\s+40% of this frame's samples/);
    assert.match(text, /Idle\s+20% of this frame's samples/);
    assert.match(text, /Off-CPU\s+20% of this frame's samples \(blocked\)/);
    assert.match(text, /GIL wait\s+20% of this frame's samples/);
    await o.page.close();
  });

  test('click zooms (breadcrumbs, frame fills the width); Reset and Escape undo it', async () => {
    const o = await open();
    const canvasWidth = await o.page.locator('#fg').evaluate((c) => c.getBoundingClientRect().width);
    const before = await boxOf(o.page, 'compute (app.py:10)');
    assert.ok(before.width < canvasWidth * 0.5);
    await o.page.mouse.click(before.x + 5, before.y + 5);
    assert.match(await crumbs(o.page), /all\s*›\s*main \(app\.py:1\)\s*›\s*compute \(app\.py:10\)/);
    const zoomed = await boxOf(o.page, 'compute (app.py:10)');
    assert.ok(zoomed.width > canvasWidth - 20, `zoomed width ${zoomed.width} of ${canvasWidth}`);
    assert.equal(await findBox(o.page, 'worker_loop (worker.py:3)'), null, 'siblings leave the view');
    assert.equal(await o.page.locator('#reset').isEnabled(), true);
    await o.page.locator('#reset').click();
    assert.equal((await state(o.page)).zoomed, false);
    assert.ok((await boxOf(o.page, 'worker_loop (worker.py:3)')).width > 0);
    // Breadcrumb click zooms out to an ancestor; Escape resets.
    await o.page.mouse.click((await boxOf(o.page, 'dot')).x + 3, (await boxOf(o.page, 'dot')).y + 3);
    await o.page.locator('#crumbs button', { hasText: 'main (app.py:1)' }).click();
    assert.match(await crumbs(o.page), /main \(app\.py:1\)\s*·/);
    assert.ok((await boxOf(o.page, 'main (app.py:1)')).width > canvasWidth - 20);
    await o.page.keyboard.press('Escape');
    assert.equal((await state(o.page)).zoomed, false);
    // Keyboard zoom in and out around the centre.
    await o.page.keyboard.press('+');
    const s1 = await state(o.page);
    assert.ok(s1.zoomed && Math.abs(s1.x1 - s1.x0 - 7) < 1e-9);
    await o.page.keyboard.press('0');
    assert.equal((await state(o.page)).zoomed, false);
    await o.page.close();
  });

  test('search highlights matches and shows Matched %; Ctrl+F focuses the box', async () => {
    const o = await open();
    await o.page.locator('#fg').click({ position: { x: 3, y: 3 } });
    await o.page.keyboard.press('Control+f');
    assert.equal(await o.page.evaluate(() => document.activeElement?.id), 'search');
    await o.page.keyboard.type('compute');
    assert.equal(await o.page.locator('#matched').innerText(), 'Matched: 42.86%');
    const png = await o.page.locator('#fg').screenshot();
    assert.ok((await countPixels(browser, png)).search > 500, 'magenta matches drawn');
    await o.page.locator('#search').fill('main|worker_loop'); // also child_main
    assert.equal(await o.page.locator('#matched').innerText(), 'Matched: 100.00%');
    await o.page.locator('#search').fill('^main|^worker_loop');
    assert.equal(await o.page.locator('#matched').innerText(), 'Matched: 85.71%');
    await o.page.locator('#search').fill('');
    assert.equal(await o.page.locator('#matched').innerText(), '');
    assert.equal(await o.page.evaluate(() => window.__pylens.search('^dot$')), 'Matched: 28.57%');
    await o.page.close();
  });

  test('thread and process filters change the totals; state filter too', async () => {
    const o = await open();
    const options = await o.page.locator('#thread option').allInnerTexts();
    assert.deepEqual(
      options.map((t) => t.replace(/ — .*/, '')),
      ['all threads (3)', 'process 100 (2 threads)', 'process 200 (1 threads)', 'MainThread (100/100)', 'worker (100/101)', 'child (200/200)'],
    );
    await o.page.locator('#thread').selectOption('t:1');
    assert.equal((await state(o.page)).total, 4);
    assert.match(await crumbs(o.page), /^4 samples in view/);
    assert.equal(await findBox(o.page, 'main (app.py:1)'), null);
    await o.page.locator('#thread').selectOption('p:100');
    assert.equal((await state(o.page)).total, 12);
    await o.page.locator('#thread').selectOption('all');
    await o.page.locator('#state').selectOption({ label: 'idle — 21.43%' });
    assert.equal((await state(o.page)).total, 3);
    await o.page.locator('#state').selectOption('all');
    await o.page.locator('#group').check();
    assert.ok(await findBox(o.page, 'worker (100/101)'), 'per-thread roots');
    await o.page.close();
  });

  test('asyncio tasks (record --async roots) are selectable like threads: all tasks, threads only, one task', async () => {
    const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: 'wall' }, timed: true });
    const loop = b.frame({ name: 'run_forever', file: '/usr/lib/python3.11/asyncio/base_events.py', line: 600 });
    const select = b.frame({ name: 'select', file: '/usr/lib/python3.11/selectors.py', line: 469 });
    const handler = b.frame({ name: 'handler', file: '/srv/app.py', line: 12 });
    const acquire = b.frame({ name: 'acquire', file: '/usr/lib/python3.11/asyncio/locks.py', line: 387 });
    const sleep = b.frame({ name: 'sleep', file: '/usr/lib/python3.11/asyncio/tasks.py', line: 639 });
    const tHandler = b.frame({ name: 'task handler', kind: 'marker' });
    const tTicker = b.frame({ name: 'task ticker', kind: 'marker' });
    const t = b.thread(1, 1, 'MainThread');
    const stack = (frames: number[]) => frames.reduce((s, f) => b.stack(s, f), -1);
    b.sample(stack([loop, select]), 4, t, 'idle', 0);
    b.sample(stack([tHandler, handler, acquire]), 9, t, 'idle', 1);
    b.sample(stack([tTicker, sleep]), 3, t, 'idle', 2);
    const path = writeTemp(tmp.dir, 'tasks.html', renderHtml(b.build()));
    const o = await open(path);
    const options = await o.page.locator('#thread option').allInnerTexts();
    assert.deepEqual(options.slice(-4), ['asyncio tasks (2) — 75.00%', 'threads only, no task samples — 25.00%', 'task handler — 56.25%', 'task ticker — 18.75%']);
    assert.equal((await state(o.page)).total, 16);
    await o.page.locator('#thread').selectOption({ label: 'task handler — 56.25%' });
    assert.equal((await state(o.page)).total, 9);
    assert.ok(await findBox(o.page, 'acquire (locks.py:387)'));
    assert.equal(await findBox(o.page, 'sleep (tasks.py:639)'), null);
    await o.page.locator('#thread').selectOption({ label: 'asyncio tasks (2) — 75.00%' });
    assert.equal((await state(o.page)).total, 12);
    await o.page.locator('#thread').selectOption({ label: 'threads only, no task samples — 25.00%' });
    assert.equal((await state(o.page)).total, 4);
    assert.equal(await findBox(o.page, 'task handler'), null);
    await o.page.close();
  });

  test('flame / icicle and merged / time-order toggles', async () => {
    const o = await open();
    const flameRoot = await boxOf(o.page, 'all');
    const flameDot = await boxOf(o.page, 'dot');
    assert.ok(flameRoot.y > flameDot.y, 'flame: root at the bottom');
    await o.page.locator('#orient button[data-v=icicle]').click();
    assert.equal((await state(o.page)).orientation, 'icicle');
    assert.ok((await boxOf(o.page, 'all')).y < (await boxOf(o.page, 'dot')).y, 'icicle: root at the top');
    await o.page.keyboard.press('i');
    assert.equal((await state(o.page)).orientation, 'flame');
    await o.page.keyboard.press('2');
    assert.equal((await state(o.page)).view, 'time');
    assert.ok(await findBox(o.page, 'MainThread (100/100)'), 'time order: a root per thread');
    assert.equal(await o.page.locator('#viewsel button.on').innerText(), 'Time order');
    await o.page.locator('#viewsel button[data-v=merged]').click();
    assert.equal((await state(o.page)).view, 'merged');
    assert.equal(await findBox(o.page, 'MainThread (100/100)'), null);
    await o.page.close();
  });

  test('untimed profiles disable time order with a note', async () => {
    const b = new ProfileBuilder({ timed: false, meta: { backend: 'cProfile', source: { format: 'pstats' } } });
    b.sample(b.stackOf([b.frame({ name: 'f', file: 'a.py', line: 1 })]), 3);
    const o = await open(writeTemp(tmp.dir, 'untimed.html', renderHtml(b.build())));
    assert.equal(await o.page.locator('#viewsel button[data-v=time]').isDisabled(), true);
    assert.match(await o.page.locator('#note').innerText(), /Time order is unavailable: this profile \(pstats\) has no sample times/);
    assert.equal(await o.page.locator('#timeline').isVisible(), false, 'no timeline without times');
    assert.equal(await o.page.evaluate(() => window.__pylens.timeline()), null);
    await o.page.keyboard.press('2');
    assert.equal((await state(o.page)).view, 'merged');
    assert.deepEqual(o.errors, []);
    await o.page.close();
  });

  test('header shows the metadata and the environment', async () => {
    const o = await open();
    assert.equal(await o.page.locator('#title').innerText(), 'small test');
    // dt / dd pairs; the colon after each label is CSS, not text.
    const facts = await o.page.locator('#facts').innerText();
    for (const want of [/lens\s+sampling \(pylens-sampler\)/, /mode\s+wall/, /rate\s+1,000 Hz/, /duration\s+14\.0 ms/, /samples\s+14/, /errors\s+1/, /overhead\s+1\.20% \(sampler CPU time \/ wall time\)/, /command\s+python app\.py --fast/, /PID\s+100/, /start\s+2026-01-02 03:04:05Z/]) {
      assert.match(facts, want);
    }
    const env = await o.page.locator('#env').innerText();
    for (const want of [/CPU\s+Test CPU @ 3\.00GHz \(8 cores\)/, /kernel\s+Linux 6\.1\.0-test/, /OS\s+Debian GNU\/Linux 12 \(bookworm\)/, /Python\s+CPython 3\.12\.1 \[--enable-shared\]/, /pylens\s+0\.1\.0/]) {
      assert.match(env, want);
    }
    await o.page.close();
  });

  test('timeline: a lane per thread; a dragged time range filters the flamegraph (merged, time order) and the table; Clear, click and Esc restore', async () => {
    const { p, samples } = twoThreadProfile(); // A at 1..60 ms, B at 101..140 ms
    const o = await open(writeTemp(tmp.dir, 'timeline.html', renderHtml(p)));
    const page = o.page;
    assert.equal(await page.locator('#timeline').isVisible(), true);
    let info = (await page.evaluate(() => window.__pylens.timeline()))!;
    assert.deepEqual(info.lanes, ['A 11', 'B 12']);
    assert.deepEqual([info.startNs, info.endNs], [1e6, 141e6]); // the last sample stands for one interval
    const xOf = (ns: number) => info.left + ((ns - info.startNs) / (info.endNs - info.startNs)) * (info.right - info.left);
    const laneY = (lane: number) => info.top + lane * info.laneHeight + info.laneHeight / 2;
    // each lane is drawn where its thread has samples, in the state colours
    const pixel = (x: number, y: number) =>
      page.evaluate(({ x, y }) => {
        const c = document.getElementById('tl') as HTMLCanvasElement;
        const r = c.getBoundingClientRect();
        const d = window.devicePixelRatio;
        return Array.from(c.getContext('2d')!.getImageData(Math.round((x - r.left) * d), Math.round((y - r.top) * d), 1, 1).data.slice(0, 3));
      }, { x, y });
    assert.deepEqual(await pixel(xOf(20e6), laneY(0)), [46, 157, 79], 'A on-CPU at 20 ms');
    assert.deepEqual(await pixel(xOf(55e6), laneY(0)), [160, 190, 224], 'A idle at 55 ms');
    assert.deepEqual(await pixel(xOf(120e6), laneY(1)), [46, 157, 79], 'B on-CPU at 120 ms');
    assert.notDeepEqual(await pixel(xOf(20e6), laneY(1)), [46, 157, 79], 'B has nothing at 20 ms');
    // hover: time and the lane's state mix
    await page.mouse.move(xOf(55e6), laneY(0));
    await page.locator('#tip').waitFor({ state: 'visible' });
    assert.match(await page.locator('#tip').innerText(), /A \(1\/11\)[\s\S]*at 5[45]\.\d\d ms[\s\S]*idle\s+100\.00%/);

    const expected = (a: number, b: number) => {
      const perFn = new Map<string, number>();
      let n = 0;
      for (const x of samples) {
        if (x.t < a || x.t >= b) continue;
        n++;
        for (const f of x.fns) {
          const label = `${f} (${f.endsWith('_a') ? 'a' : 'b'}.py)`;
          perFn.set(label, (perFn.get(label) ?? 0) + 1);
        }
      }
      return { n, perFn };
    };
    const tableTotals = async () => new Map((await page.$$eval('#fnpanel tbody tr', (trs) => trs.map((tr) => [tr.querySelector('td.fn')?.textContent ?? '', Number((tr.children[4]?.textContent ?? '').replace(/,/g, ''))] as [string, number]))));
    const range = async () => (await page.evaluate(() => window.__pylens.state())).range as { start: number; end: number } | null;
    const drag = async (a: number, b: number) => {
      await page.mouse.move(a, laneY(0));
      await page.mouse.down();
      await page.mouse.move((a + b) / 2, laneY(0), { steps: 3 });
      await page.mouse.move(b, laneY(1), { steps: 3 });
      await page.mouse.up();
    };

    // the first half of the time range: thread A alone
    await drag(info.left + 0.5, (info.left + info.right) / 2);
    const r = (await range())!;
    const nsPerPx = (info.endNs - info.startNs) / (info.right - info.left);
    assert.ok(Math.abs(r.start - 1e6) < nsPerPx && Math.abs(r.end - 71e6) < nsPerPx, `range ${r.start}–${r.end}`);
    const want = expected(r.start, r.end);
    assert.equal(want.n, 60);
    assert.equal((await state(page)).total, want.n);
    assert.ok(await findBox(page, 'main_a (a.py:1)'));
    assert.ok(await findBox(page, 'wait_a (a.py:1)'));
    assert.equal(await findBox(page, 'main_b (b.py:1)'), null);
    assert.equal(await findBox(page, 'work_b (b.py:1)'), null);
    assert.deepEqual(await tableTotals(), want.perFn);
    assert.match(await page.locator('#rangetext').innerText(), /^\d+\.\d\d ms – \d+\.\d\d ms \(\d+\.\d\d ms\)$/);
    assert.match(await page.locator('#fnpanel caption').innerText(), /^Functions in \d+\.\d\d ms – .* — 60 samples$/);
    assert.equal(await page.locator('#clearrange').isVisible(), true);
    assert.match(await crumbs(page), /^60 samples in view in /);
    await page.keyboard.press('2');
    assert.equal((await state(page)).total, want.n, 'time order too');
    assert.equal(await findBox(page, 'main_b (b.py:1)'), null);
    await page.keyboard.press('1');

    // a range through the middle of A's idle run counts the run's samples inside it
    await page.evaluate(() => window.__pylens.setRange(45.5e6, 55.5e6));
    const cut = expected(45.5e6, 55.5e6);
    assert.equal((await state(page)).total, cut.n);
    assert.deepEqual(await tableTotals(), cut.perFn);
    // the sandwich is recomputed for the range
    await page.click('#fnpanel td.fn >> text=main_a (a.py)');
    assert.deepEqual(await page.$$eval('#sandwich .swe', (es) => es.map((e) => e.textContent)), ['50.00%  wait_a (a.py)', '30.00%  render_a (a.py)', '20.00%  parse_a (a.py)']);

    // Clear range restores the full view and the embedded table
    await page.locator('#clearrange').click();
    assert.equal(await range(), null);
    assert.equal((await state(page)).total, samples.length);
    assert.ok(await findBox(page, 'main_b (b.py:1)'));
    assert.equal(await page.locator('#fnpanel caption').isVisible(), false);
    assert.deepEqual(await tableTotals(), expected(0, Infinity).perFn);
    assert.equal(await page.locator('#clearrange').isVisible(), false);
    // a click without a drag clears it; so does Esc
    info = (await page.evaluate(() => window.__pylens.timeline()))!; // the toolbar may have grown a line ("Matched: …")
    await drag(xOf(10e6), xOf(30e6));
    assert.equal((await state(page)).total, expected((await range())!.start, (await range())!.end).n);
    await page.mouse.click(xOf(80e6), laneY(0));
    assert.equal(await range(), null);
    await drag(xOf(110e6), xOf(130e6));
    assert.ok(await range());
    assert.equal(await findBox(page, 'main_a (a.py:1)'), null);
    await page.keyboard.press('Escape');
    assert.equal(await range(), null);
    assert.equal((await state(page)).total, samples.length);
    assert.deepEqual(o.errors, []);
    await page.close();
  });

  test('a 1M-sample profile over 100k stacks renders (timings: bench/html.ts)', async () => {
    const path = writeTemp(tmp.dir, 'big.html', renderHtml(bigProfile()));
    const o = await open(path, { width: 1400, height: 800 });
    const stats = await o.page.evaluate(() => window.__pylens.stats);
    assert.ok(stats.nodesDrawn > 500, `${stats.nodesDrawn} boxes drawn`);
    assert.ok(stats.boxes > 90_000);
    assert.ok(await o.page.evaluate(() => window.__pylens.zoomTo('<module> (main.py:1)')));
    assert.deepEqual(o.errors, []);
    await o.page.close();
  });

  test('a profile that counts calls (a real cProfile dump): the table has pstats columns, sortable, with the dump\'s numbers', async () => {
    const py = installedPythons().find((x) => x.minor === 11) ?? installedPythons()[0]!;
    const script = writeTemp(tmp.dir, 'calls.py', 'def leaf(i):\n    return i * 2\ndef mid(n):\n    return [leaf(i) for i in range(n)]\nfor _ in range(30):\n    mid(500)\n');
    const dump = `${tmp.dir}/calls.pstats`;
    assert.equal(spawnSync(py.exe, ['-m', 'cProfile', '-o', dump, script]).status, 0);
    const prof = importProfile(new InputFile(readFileSync(dump), 'calls.pstats')).profile;
    const path = writeTemp(tmp.dir, 'calls.html', renderHtml(prof));
    const o = await open(path);
    const heads = await o.page.locator('#fnpanel thead th').allInnerTexts();
    for (const h of ['ncalls', 'tottime', 'cumtime']) assert.ok(heads.some((x) => x.startsWith(h)), heads.join(' | '));
    const leafRow = o.page.locator('#fnpanel tbody tr', { hasText: 'leaf' }).first();
    const cells = await leafRow.locator('td').allInnerTexts();
    assert.ok(cells.includes('15000'), cells.join(' | '));
    // sort by ncalls: leaf (15,000 calls) first
    await o.page.locator('#fnpanel thead th', { hasText: 'ncalls' }).click();
    assert.match(await o.page.locator('#fnpanel tbody tr').first().innerText(), /leaf/);
    assert.deepEqual(o.errors, []);
    await o.page.close();
  });
});
