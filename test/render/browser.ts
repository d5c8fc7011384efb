/**
 * Real Chromium for the renderer tests, through playwright-core and Debian's
 * /usr/bin/chromium (never a downloaded browser). Pages are opened from file:// URLs,
 * as users open exported files; every request and console error is recorded.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env['PYLENS_CHROMIUM'] ?? '/usr/bin/chromium';

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

export interface Opened {
  page: Page;
  url: string;
  /** Console errors, page errors and failed requests. */
  errors: string[];
  /** Every request the page made. */
  requests: string[];
}

/** A temporary directory removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-render-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function openFile(browser: Browser, path: string, viewport = { width: 1280, height: 800 }): Promise<Opened> {
  const page = await browser.newPage({ viewport });
  const url = pathToFileURL(path).href;
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => requests.push(r.url()));
  page.on('requestfailed', (r) => errors.push(`requestfailed: ${r.url()}`));
  await page.goto(url);
  return { page, url, errors, requests };
}

export function writeTemp(dir: string, name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/**
 * Count pixels of a PNG screenshot, decoded by the browser in a blank page:
 * non-background pixels, and pixels in a colour family.
 */
export async function countPixels(browser: Browser, png: Buffer, background: [number, number, number] = [255, 255, 255]): Promise<{ total: number; drawn: number; python: number; native: number; kernel: number; search: number }> {
  const page = await browser.newPage();
  try {
    return await page.evaluate(
      async ({ b64, bg }) => {
        const img = new Image();
        img.src = `data:image/png;base64,${b64}`;
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.width;
        c.height = img.height;
        const g = c.getContext('2d')!;
        g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let drawn = 0;
        let python = 0;
        let native = 0;
        let kernel = 0;
        let search = 0;
        for (let i = 0; i < d.length; i += 4) {
          const r = d[i]!;
          const gg = d[i + 1]!;
          const b = d[i + 2]!;
          if (Math.abs(r - bg[0]) + Math.abs(gg - bg[1]) + Math.abs(b - bg[2]) > 12) drawn++;
          if (r >= 236 && gg >= 148 && gg <= 227 && b <= 82) python++;
          if (r >= 68 && r <= 127 && gg >= 158 && gg <= 212 && b >= 193) native++;
          if (r >= 213 && gg >= 68 && gg <= 127 && b <= 67) kernel++;
          if (r >= 225 && gg <= 10 && b >= 225) search++;
        }
        return { total: d.length / 4, drawn, python, native, kernel, search };
      },
      { b64: png.toString('base64'), bg: background },
    );
  } finally {
    await page.close();
  }
}
