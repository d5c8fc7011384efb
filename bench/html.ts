/**
 * HTML flamegraph bench: export a large synthetic profile and time it in real Chromium.
 *
 *   node bench/html.ts [--samples N] [--stacks S] [--run R] [--out FILE] [--screenshot PNG] [--level L]
 *
 * Prints: profile build time, HTML write time and size, and in the page: first frame
 * (ms since navigation start), decode, layout build, zoom redraw (median of several),
 * time-order build and redraw, search. --screenshot also saves a screenshot of the demo
 * profile (test/render/profiles.ts) for eyeballing.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderHtml } from '../src/render/html.ts';
import { bigProfile, demoProfile } from '../test/render/profiles.ts';
import { launch, openFile } from '../test/render/browser.ts';

const { values: args } = parseArgs({
  options: {
    samples: { type: 'string', default: '1000000' },
    stacks: { type: 'string', default: '100000' },
    run: { type: 'string', default: '1' },
    level: { type: 'string', default: '6' },
    out: { type: 'string', default: join(tmpdir(), 'pylens-bench.html') },
    screenshot: { type: 'string' },
  },
});

const ms = (t: number) => `${t.toFixed(1)} ms`;
const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;
const median = (xs: number[]) => pct(xs, 0.5);

let t = performance.now();
const profile = bigProfile({ samples: Number(args.samples), stacks: Number(args.stacks), run: Number(args.run) });
console.log(`profile: ${profile.samples.length} samples, ${profile.stacks.length} stacks, ${profile.frames.length} frames (built in ${ms(performance.now() - t)})`);

renderHtml(bigProfile({ samples: 1000, stacks: 100 })); // warm the page-script cache and the JIT
t = performance.now();
const html = renderHtml(profile, { level: Number(args.level) });
const writeMs = performance.now() - t;
writeFileSync(args.out, html);
console.log(`HTML write: ${ms(writeMs)}; size ${(html.length / 1024 / 1024).toFixed(2)} MiB (${args.out})`);

const browser = await launch();
try {
  const o = await openFile(browser, args.out, { width: 1600, height: 900 });
  await o.page.waitForFunction(() => window.__pylens?.isReady, null, { timeout: 60_000 });
  const r = await o.page.evaluate(async () => {
    const p = window.__pylens;
    const first = { ...p.stats, decode: { ...p.stats.decode } };
    // One interaction per animation frame, as a user makes them: zoom into the heaviest
    // root frame and back out, timing each redraw.
    const frame = () => new Promise((res) => requestAnimationFrame(() => setTimeout(res, 0)));
    const zoom: number[] = [];
    const st = p.state() as { maxDepth: number };
    for (let i = 0; i < 20; i++) {
      p.reset();
      zoom.push(p.stats.lastRedrawMs);
      await frame();
      if (p.zoomTo('<module> (main.py:1)')) zoom.push(p.stats.lastRedrawMs);
      await frame();
    }
    const redraw: number[] = [];
    for (let i = 0; i < 10; i++) {
      redraw.push(p.redraw());
      await frame();
    }
    const t0 = performance.now();
    const matched = p.search('fn_1[0-9]');
    const searchMs = performance.now() - t0;
    p.search('');
    const t1 = performance.now();
    p.setView('time');
    const timeMs = performance.now() - t1;
    const timeBoxes = (p.state() as { boxes: number }).boxes;
    const timeRedraw: number[] = [];
    for (let i = 0; i < 10; i++) {
      timeRedraw.push(p.redraw());
      await frame();
    }
    p.zoomTo('<module> (main.py:1)');
    await frame();
    const timeZoom = p.stats.lastRedrawMs;
    return { first, zoom, redraw, matched, searchMs, timeMs, timeBoxes, timeRedraw, timeZoom, maxDepth: st.maxDepth };
  });
  const f = r.first;
  console.log(`page startup: script starts ${ms(f.scriptStartMs)}, JSON ${ms(f.jsonMs)}, base64 ${ms(f.decode.base64Ms)}, inflate ${ms(f.decode.inflateMs)}, columns ${ms(f.decode.columnsMs)}, nodes ${ms(f.modelMs)}, first draw ${ms(f.lastRedrawMs)}`);
  console.log(`page: first frame ${ms(r.first.firstFrameMs)} after navigation start (decode ${ms(r.first.decodeMs)}, merged build ${ms(r.first.lastBuildMs)}, ${r.first.boxes} boxes, depth ${r.maxDepth})`);
  console.log(`zoom redraw (one per frame, ${r.zoom.length}): median ${ms(median(r.zoom))}, p90 ${ms(pct(r.zoom, 0.9))}, max ${ms(Math.max(...r.zoom))} (first ones include JIT warm-up); plain redraw median ${ms(median(r.redraw))} (${r.first.nodesDrawn} boxes drawn)`);
  console.log(`search: ${r.matched} in ${ms(r.searchMs)}`);
  console.log(`time order: build ${ms(r.timeMs)} (${r.timeBoxes} boxes), redraw median ${ms(median(r.timeRedraw))}, zoom redraw ${ms(r.timeZoom)}`);
  if (o.errors.length) console.log('page errors:', o.errors);
  await o.page.close();

  if (args.screenshot) {
    const demo = join(tmpdir(), 'pylens-demo.html');
    writeFileSync(demo, renderHtml(demoProfile()));
    const d = await openFile(browser, demo, { width: 1400, height: 860 });
    await d.page.waitForFunction(() => window.__pylens?.isReady);
    const box = await d.page.evaluate(() => window.__pylens.findBox('OrderListView.get (views.py:88)'));
    if (box) await d.page.mouse.move(box.x + 40, box.y + 8);
    await d.page.screenshot({ path: args.screenshot });
    console.log(`screenshot: ${args.screenshot}`);
  }
} finally {
  await browser.close();
}
